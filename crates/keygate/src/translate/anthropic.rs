//! The Anthropic Messages format: requests, responses and streams to and
//! from the IR.
//!
//! Parsing is strict: a request field the IR cannot carry (extended
//! thinking, documents, server tools, MCP servers…) is refused with
//! [`TranslateError::Invalid`] naming it rather than dropped. A field whose
//! value is `null` carries nothing and is treated as absent.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::ir::{
    ChatRequest, ChatResponse, Image, Message, Part, ResponseFormat, Role, StopReason, StreamEvent,
    Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
use super::json::{
    self, arr, boolean, carries_nothing, invalid, join, number, obj, only_keys, optional,
    parse_body, parse_upstream, required, sse_event, string, unsigned, unsupported, untranslatable,
    up_str, up_u64,
};
use super::{Format, StreamDecoder, StreamEncoder, TranslateError};
use crate::proxy::sse;

const FORMAT: Format = Format::Anthropic;

/// `max_tokens` sent to Anthropic, which requires it, when the client's
/// format left it unset. Every current Claude model allows at least this.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

// ---------------------------------------------------------------------------
// Requests.

/// Parse a client's Messages request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let root = parse_body(body)?;
    let mut req = ChatRequest::default();
    let mut messages = None;
    let mut disable_parallel = None;
    for (key, value) in &root {
        if value.is_null() {
            continue;
        }
        let k = key.as_str();
        match k {
            // The upstream model is chosen by routing, not by the body.
            "model" => {
                string(value, k)?;
            }
            "messages" => messages = Some(arr(value, k)?),
            "system" => req.system = parse_system(value)?,
            "max_tokens" => req.max_tokens = Some(unsigned(value, k)?),
            "temperature" => req.temperature = Some(number(value, k)?),
            "top_p" => req.top_p = Some(number(value, k)?),
            "top_k" => req.top_k = Some(unsigned(value, k)?),
            "stop_sequences" => {
                req.stop = arr(value, k)?
                    .iter()
                    .map(|s| string(s, k).map(str::to_string))
                    .collect::<Result<_, _>>()?
            }
            "stream" => req.stream = boolean(value, k)?,
            "metadata" => {
                let m = obj(value, k)?;
                only_keys(m, &["user_id"], k)?;
                req.user = optional(m, "user_id")
                    .map(|u| string(u, "metadata.user_id").map(str::to_string))
                    .transpose()?;
            }
            "tools" => req.tools = parse_tools(arr(value, k)?)?,
            "tool_choice" => {
                let (choice, disable) = parse_tool_choice(value)?;
                req.tool_choice = Some(choice);
                disable_parallel = disable;
            }
            // Disabled thinking is the default in every format.
            "thinking" if is_disabled_thinking(value) => {}
            _ if carries_nothing(value) => {}
            _ => return Err(untranslatable(k)),
        }
    }
    if req.max_tokens.is_none() {
        return Err(invalid("max_tokens", "'max_tokens' is required."));
    }
    req.parallel_tool_calls = disable_parallel.map(|d: bool| !d);
    let messages = messages.ok_or_else(|| invalid("messages", "'messages' is required."))?;
    for (i, message) in messages.iter().enumerate() {
        req.messages
            .push(parse_message(message, &format!("messages[{i}]"))?);
    }
    Ok(req)
}

fn is_disabled_thinking(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("disabled")
}

/// `cache_control` marks a prompt-cache breakpoint. It is accepted and not
/// forwarded: the other providers cache prompt prefixes automatically.
const CACHE_CONTROL: &str = "cache_control";

fn parse_system(value: &Value) -> Result<Vec<String>, TranslateError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let path = format!("system[{i}]");
                let block = obj(b, &path)?;
                let kind = string(required(block, "type", &path)?, &join(&path, "type"))?;
                if kind != "text" {
                    return Err(untranslatable(&format!("{path} of type '{kind}'")));
                }
                only_keys(block, &["type", "text", CACHE_CONTROL], &path)?;
                Ok(string(required(block, "text", &path)?, &join(&path, "text"))?.to_string())
            })
            .collect(),
        _ => Err(invalid("system", "'system' must be a string or an array.")),
    }
}

fn parse_tools(items: &[Value]) -> Result<Vec<Tool>, TranslateError> {
    let mut tools = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("tools[{i}]");
        let tool = obj(item, &path)?;
        // Server tools (web search, code execution, computer use…) run at
        // Anthropic; no other provider can run them.
        if let Some(kind) = optional(tool, "type") {
            let kind = string(kind, &join(&path, "type"))?;
            if kind != "custom" {
                return Err(untranslatable(&format!("{path} of type '{kind}'")));
            }
        }
        only_keys(
            tool,
            &["type", "name", "description", "input_schema", CACHE_CONTROL],
            &path,
        )?;
        let name = string(required(tool, "name", &path)?, &join(&path, "name"))?;
        let description = optional(tool, "description")
            .map(|d| string(d, &join(&path, "description")).map(str::to_string))
            .transpose()?;
        let schema = required(tool, "input_schema", &path)?;
        obj(schema, &join(&path, "input_schema"))?;
        tools.push(Tool {
            name: name.to_string(),
            description,
            parameters: schema.clone(),
        });
    }
    Ok(tools)
}

fn parse_tool_choice(value: &Value) -> Result<(ToolChoice, Option<bool>), TranslateError> {
    const P: &str = "tool_choice";
    let map = obj(value, P)?;
    let disable = optional(map, "disable_parallel_tool_use")
        .map(|d| boolean(d, "tool_choice.disable_parallel_tool_use"))
        .transpose()?;
    let choice = match string(required(map, "type", P)?, "tool_choice.type")? {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => {
            ToolChoice::Named(string(required(map, "name", P)?, "tool_choice.name")?.to_string())
        }
        other => {
            return Err(invalid(
                P,
                format!("'{other}' is not a valid tool_choice type."),
            ))
        }
    };
    only_keys(map, &["type", "name", "disable_parallel_tool_use"], P)?;
    Ok((choice, disable))
}

fn parse_message(message: &Value, path: &str) -> Result<Message, TranslateError> {
    let m = obj(message, path)?;
    only_keys(m, &["role", "content"], path)?;
    let role = match string(required(m, "role", path)?, &join(path, "role"))? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid(
                &join(path, "role"),
                format!("'{other}' is not a valid role."),
            ))
        }
    };
    let cpath = join(path, "content");
    let content = match required(m, "content", path)? {
        Value::String(s) => vec![Part::Text(s.clone())],
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                parts.push(parse_block(block, &format!("{cpath}[{i}]"), role)?);
            }
            parts
        }
        _ => {
            return Err(invalid(
                &cpath,
                format!("'{cpath}' must be a string or an array."),
            ))
        }
    };
    Ok(Message { role, content })
}

fn parse_block(block: &Value, path: &str, role: Role) -> Result<Part, TranslateError> {
    let b = obj(block, path)?;
    let kind = string(required(b, "type", path)?, &join(path, "type"))?;
    match (kind, role) {
        ("text", _) => {
            only_keys(b, &["type", "text", CACHE_CONTROL], path)?;
            Ok(Part::Text(
                string(required(b, "text", path)?, &join(path, "text"))?.to_string(),
            ))
        }
        ("image", Role::User) => {
            only_keys(b, &["type", "source", CACHE_CONTROL], path)?;
            Ok(Part::Image(parse_image(
                required(b, "source", path)?,
                &join(path, "source"),
            )?))
        }
        ("tool_use", Role::Assistant) => {
            only_keys(b, &["type", "id", "name", "input", CACHE_CONTROL], path)?;
            let input = required(b, "input", path)?;
            obj(input, &join(path, "input"))?;
            Ok(Part::ToolCall(ToolCall {
                id: string(required(b, "id", path)?, &join(path, "id"))?.to_string(),
                name: string(required(b, "name", path)?, &join(path, "name"))?.to_string(),
                arguments: input.clone(),
            }))
        }
        ("tool_result", Role::User) => {
            only_keys(
                b,
                &["type", "tool_use_id", "content", "is_error", CACHE_CONTROL],
                path,
            )?;
            let cpath = join(path, "content");
            let content = match optional(b, "content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(blocks)) => {
                    let mut parts = Vec::new();
                    for (i, inner) in blocks.iter().enumerate() {
                        let ipath = format!("{cpath}[{i}]");
                        let ib = obj(inner, &ipath)?;
                        let ikind = string(required(ib, "type", &ipath)?, &join(&ipath, "type"))?;
                        if ikind != "text" && ikind != "image" {
                            return Err(untranslatable(&format!("{ipath} of type '{ikind}'")));
                        }
                        parts.push(parse_block(inner, &ipath, Role::User)?);
                    }
                    parts
                }
                Some(_) => {
                    return Err(invalid(
                        &cpath,
                        format!("'{cpath}' must be a string or an array."),
                    ))
                }
            };
            Ok(Part::ToolResult(ToolResult {
                id: string(
                    required(b, "tool_use_id", path)?,
                    &join(path, "tool_use_id"),
                )?
                .to_string(),
                name: None,
                content,
                is_error: optional(b, "is_error")
                    .map(|e| boolean(e, &join(path, "is_error")))
                    .transpose()?
                    .unwrap_or(false),
            }))
        }
        _ => Err(untranslatable(&format!("{path} of type '{kind}'"))),
    }
}

fn parse_image(source: &Value, path: &str) -> Result<Image, TranslateError> {
    let s = obj(source, path)?;
    match string(required(s, "type", path)?, &join(path, "type"))? {
        "base64" => {
            only_keys(s, &["type", "media_type", "data"], path)?;
            Ok(Image::Base64 {
                media_type: string(required(s, "media_type", path)?, &join(path, "media_type"))?
                    .to_string(),
                data: string(required(s, "data", path)?, &join(path, "data"))?.to_string(),
            })
        }
        "url" => {
            only_keys(s, &["type", "url"], path)?;
            Ok(Image::Url(
                string(required(s, "url", path)?, &join(path, "url"))?.to_string(),
            ))
        }
        other => Err(untranslatable(&format!("{path} of type '{other}'"))),
    }
}

/// Render the IR as a Messages request body.
pub fn render_request(request: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    match request.system.as_slice() {
        [] => {}
        [one] => {
            body.insert("system".into(), json!(one));
        }
        many => {
            let blocks: Vec<Value> = many
                .iter()
                .map(|s| json!({"type": "text", "text": s}))
                .collect();
            body.insert("system".into(), Value::Array(blocks));
        }
    }
    let mut messages: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let mut blocks = Vec::new();
        let mut results = Vec::new();
        for part in &message.content {
            match (part, message.role) {
                (Part::ToolResult(result), Role::User) => results.push(render_tool_result(result)?),
                (Part::ToolCall(call), Role::Assistant) => blocks.push(json!({
                    "type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments,
                })),
                (Part::Text(t), _) => {
                    // Anthropic refuses empty text blocks.
                    if !t.is_empty() {
                        blocks.push(json!({"type": "text", "text": t}));
                    }
                }
                (Part::Image(image), Role::User) => blocks.push(render_image(image)),
                (Part::Image(_), Role::Assistant) => {
                    return Err(unsupported("images in assistant messages", FORMAT))
                }
                (Part::ToolCall(_), Role::User) => {
                    return Err(unsupported("tool calls in user messages", FORMAT))
                }
                (Part::ToolResult(_), Role::Assistant) => {
                    return Err(unsupported("tool results in assistant messages", FORMAT))
                }
            }
        }
        // Anthropic wants tool results first in their turn.
        results.append(&mut blocks);
        // Anthropic wants turns to alternate; consecutive turns of one
        // speaker (e.g. tool results then a user note) are one turn.
        json::push_turn(&mut messages, message.role, results);
    }
    body.insert(
        "messages".into(),
        json::turns_json(messages, "assistant", "content"),
    );
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = request.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if request.presence_penalty.is_some() {
        return Err(unsupported("parameter 'presence_penalty'", FORMAT));
    }
    if request.frequency_penalty.is_some() {
        return Err(unsupported("parameter 'frequency_penalty'", FORMAT));
    }
    if request.seed.is_some() {
        return Err(unsupported("parameter 'seed'", FORMAT));
    }
    match &request.response_format {
        // Plain text is what Anthropic answers anyway.
        None | Some(ResponseFormat::Text) => {}
        Some(_) => return Err(unsupported("parameter 'response_format'", FORMAT)),
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut tool = Map::new();
                tool.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    tool.insert("description".into(), json!(d));
                }
                tool.insert("input_schema".into(), t.parameters.clone());
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    // Without tools, "auto" and "none" both mean no calls, and Anthropic
    // refuses tool_choice without tools.
    let mut choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto | ToolChoice::None) if request.tools.is_empty() => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Named(name)) => Some(json!({"type": "tool", "name": name})),
    };
    if let (Some(parallel), false) = (request.parallel_tool_calls, request.tools.is_empty()) {
        let map = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Some(map) = map.as_object_mut() {
            map.insert("disable_parallel_tool_use".into(), json!(!parallel));
        }
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body).to_string().into_bytes())
}

fn render_image(image: &Image) -> Value {
    match image {
        Image::Base64 { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }),
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn render_tool_result(result: &ToolResult) -> Result<Value, TranslateError> {
    let mut content = Vec::new();
    for part in &result.content {
        match part {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => content.push(json!({"type": "text", "text": t})),
            Part::Image(image) => content.push(render_image(image)),
            _ => return Err(unsupported("tool calls inside tool results", FORMAT)),
        }
    }
    let mut block = Map::new();
    block.insert("type".into(), json!("tool_result"));
    block.insert("tool_use_id".into(), json!(result.id));
    block.insert("content".into(), Value::Array(content));
    if result.is_error {
        block.insert("is_error".into(), json!(true));
    }
    Ok(Value::Object(block))
}

// ---------------------------------------------------------------------------
// Responses.

fn parse_stop_reason(reason: Option<&str>, sequence: Option<&str>) -> StopReason {
    match reason {
        Some("end_turn") | None => StopReason::EndTurn,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence(sequence.map(str::to_string)),
        Some("tool_use") => StopReason::ToolUse,
        Some("refusal") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

/// Anthropic's stop_reason and stop_sequence.
fn stop_reason(reason: &StopReason) -> (&'static str, Value) {
    match reason {
        StopReason::EndTurn | StopReason::Other(_) => ("end_turn", Value::Null),
        StopReason::MaxTokens => ("max_tokens", Value::Null),
        StopReason::StopSequence(s) => ("stop_sequence", json!(s)),
        StopReason::ToolUse => ("tool_use", Value::Null),
        StopReason::ContentFilter => ("refusal", Value::Null),
    }
}

/// Anthropic's `input_tokens` excludes cache reads and writes; the IR's
/// includes them.
fn parse_usage(usage: &Map<String, Value>) -> Usage {
    let cached = up_u64(usage, "cache_read_input_tokens");
    let created = up_u64(usage, "cache_creation_input_tokens");
    Usage {
        input_tokens: up_u64(usage, "input_tokens")
            .saturating_add(cached)
            .saturating_add(created),
        output_tokens: up_u64(usage, "output_tokens"),
        cached_input_tokens: cached,
        cache_creation_input_tokens: created,
    }
}

fn render_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage
            .input_tokens
            .saturating_sub(usage.cached_input_tokens)
            .saturating_sub(usage.cache_creation_input_tokens),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    })
}

/// Parse an upstream's complete Messages answer into the IR.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let root = parse_upstream(body)?;
    if up_str(&root, "type") == Some("error") {
        return Err(TranslateError::Upstream("the answer is an error".into()));
    }
    let blocks = root
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::Upstream("the answer has no content".into()))?;
    let mut content = Vec::new();
    for block in blocks {
        let b = block
            .as_object()
            .ok_or_else(|| TranslateError::Upstream("a content block is not an object".into()))?;
        match up_str(b, "type") {
            Some("text") => content.push(Part::Text(up_str(b, "text").unwrap_or("").to_string())),
            Some("tool_use") => content.push(Part::ToolCall(ToolCall {
                id: up_str(b, "id").unwrap_or("").to_string(),
                name: up_str(b, "name")
                    .ok_or_else(|| TranslateError::Upstream("a tool call has no name".into()))?
                    .to_string(),
                arguments: b.get("input").cloned().unwrap_or_else(|| json!({})),
            })),
            other => {
                return Err(TranslateError::Upstream(format!(
                    "unexpected content block type {other:?}"
                )))
            }
        }
    }
    Ok(ChatResponse {
        id: up_str(&root, "id").unwrap_or("").to_string(),
        model: up_str(&root, "model").unwrap_or("").to_string(),
        content,
        stop_reason: parse_stop_reason(
            up_str(&root, "stop_reason"),
            up_str(&root, "stop_sequence"),
        ),
        usage: root
            .get("usage")
            .and_then(Value::as_object)
            .map(parse_usage)
            .unwrap_or_default(),
    })
}

/// Render the IR as a Messages answer for the client.
pub fn render_response(response: &ChatResponse) -> Result<Vec<u8>, TranslateError> {
    let mut content = Vec::new();
    for part in &response.content {
        match part {
            Part::Text(t) => content.push(json!({"type": "text", "text": t})),
            Part::ToolCall(call) => content.push(json!({
                "type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments,
            })),
            Part::Image(_) => return Err(unsupported("images in answers", FORMAT)),
            Part::ToolResult(_) => return Err(unsupported("tool results in answers", FORMAT)),
        }
    }
    let (reason, sequence) = stop_reason(&response.stop_reason);
    let body = json!({
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": render_usage(&response.usage),
    });
    Ok(body.to_string().into_bytes())
}

// ---------------------------------------------------------------------------
// Streams.

/// Decodes an upstream's Messages SSE stream into IR events.
#[derive(Default)]
pub struct Decoder {
    splitter: sse::Splitter,
    next_block: usize,
    /// Anthropic block index → IR block index, for blocks that have begun
    /// in the IR. Text blocks begin at their first delta, so an empty text
    /// block never shows.
    blocks: BTreeMap<u64, usize>,
    /// IR blocks begun and not yet stopped, closed before Finish when the
    /// upstream left out a content_block_stop.
    open: std::collections::BTreeSet<usize>,
    /// Anthropic block index → whether it is a text block (vs a tool call).
    kinds: BTreeMap<u64, bool>,
    /// Cache reads and writes last reported: a later usage report that
    /// states `input_tokens` without them still means the same cache use.
    cache_read: u64,
    cache_creation: u64,
    finished: bool,
    done: bool,
}

impl Decoder {
    /// A stream usage report as IR usage; what it does not state is 0, so
    /// merging keeps the earlier figure.
    fn usage(&mut self, usage: &Map<String, Value>) -> Usage {
        let cached = usage.get("cache_read_input_tokens").and_then(Value::as_u64);
        let created = usage
            .get("cache_creation_input_tokens")
            .and_then(Value::as_u64);
        self.cache_read = cached.unwrap_or(self.cache_read);
        self.cache_creation = created.unwrap_or(self.cache_creation);
        Usage {
            input_tokens: usage
                .get("input_tokens")
                .and_then(Value::as_u64)
                .map(|i| {
                    i.saturating_add(self.cache_read)
                        .saturating_add(self.cache_creation)
                })
                .unwrap_or(0),
            output_tokens: up_u64(usage, "output_tokens"),
            cached_input_tokens: cached.unwrap_or(0),
            cache_creation_input_tokens: created.unwrap_or(0),
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        for index in std::mem::take(&mut self.open) {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn text(&mut self, anthropic: u64, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let index = match self.blocks.get(&anthropic) {
            Some(&index) => index,
            None => {
                let index = self.next_block;
                self.next_block += 1;
                self.blocks.insert(anthropic, index);
                self.open.insert(index);
                index
            }
        };
        out.push(StreamEvent::TextDelta {
            index,
            text: text.to_string(),
        });
    }

    fn event(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        let event = parse_upstream(data)?;
        let bad = |what: &str| TranslateError::Upstream(format!("malformed stream event: {what}"));
        let index = event.get("index").and_then(Value::as_u64);
        match up_str(&event, "type") {
            Some("message_start") => {
                let message = event
                    .get("message")
                    .and_then(Value::as_object)
                    .ok_or_else(|| bad("message_start without message"))?;
                out.push(StreamEvent::Start {
                    id: up_str(message, "id").unwrap_or("").to_string(),
                    model: up_str(message, "model").unwrap_or("").to_string(),
                });
                if let Some(usage) = message.get("usage").and_then(Value::as_object) {
                    let usage = self.usage(usage);
                    out.push(StreamEvent::Usage(usage));
                }
            }
            Some("content_block_start") => {
                let index = index.ok_or_else(|| bad("block without index"))?;
                let block = event
                    .get("content_block")
                    .and_then(Value::as_object)
                    .ok_or_else(|| bad("block start without block"))?;
                if self.kinds.contains_key(&index) {
                    return Err(bad("a block index started twice"));
                }
                match up_str(block, "type") {
                    Some("text") => {
                        self.kinds.insert(index, true);
                        self.text(index, up_str(block, "text").unwrap_or(""), out);
                    }
                    Some("tool_use") => {
                        self.kinds.insert(index, false);
                        let ir = self.next_block;
                        self.next_block += 1;
                        self.blocks.insert(index, ir);
                        self.open.insert(ir);
                        out.push(StreamEvent::ToolCallStart {
                            index: ir,
                            id: up_str(block, "id").unwrap_or("").to_string(),
                            name: up_str(block, "name")
                                .ok_or_else(|| bad("tool_use without name"))?
                                .to_string(),
                        });
                        // Anthropic streams the input as deltas after an
                        // empty `{}`; input given up front is not lost.
                        match block.get("input") {
                            Some(Value::Object(input)) if !input.is_empty() => {
                                out.push(StreamEvent::ToolCallDelta {
                                    index: ir,
                                    arguments: Value::Object(input.clone()).to_string(),
                                })
                            }
                            _ => {}
                        }
                    }
                    other => return Err(bad(&format!("unexpected block type {other:?}"))),
                }
            }
            Some("content_block_delta") => {
                let index = index.ok_or_else(|| bad("delta without index"))?;
                let delta = event
                    .get("delta")
                    .and_then(Value::as_object)
                    .ok_or_else(|| bad("delta without delta"))?;
                match (up_str(delta, "type"), self.kinds.get(&index)) {
                    (Some("text_delta"), Some(true)) => {
                        self.text(index, up_str(delta, "text").unwrap_or(""), out)
                    }
                    (Some("input_json_delta"), Some(false)) => {
                        let json = up_str(delta, "partial_json").unwrap_or("");
                        if let (Some(&ir), false) = (self.blocks.get(&index), json.is_empty()) {
                            out.push(StreamEvent::ToolCallDelta {
                                index: ir,
                                arguments: json.to_string(),
                            });
                        }
                    }
                    (other, _) => return Err(bad(&format!("unexpected delta {other:?}"))),
                }
            }
            Some("content_block_stop") => {
                let index = index.ok_or_else(|| bad("stop without index"))?;
                if let Some(&ir) = self.blocks.get(&index) {
                    if self.open.remove(&ir) {
                        out.push(StreamEvent::BlockStop { index: ir });
                    }
                }
            }
            Some("message_delta") => {
                let delta = event.get("delta").and_then(Value::as_object);
                if let Some(delta) = delta {
                    if delta.contains_key("stop_reason") && !self.finished {
                        self.finished = true;
                        self.close_all(out);
                        out.push(StreamEvent::Finish {
                            stop_reason: parse_stop_reason(
                                up_str(delta, "stop_reason"),
                                up_str(delta, "stop_sequence"),
                            ),
                        });
                    }
                }
                if let Some(usage) = event.get("usage").and_then(Value::as_object) {
                    let usage = self.usage(usage);
                    out.push(StreamEvent::Usage(usage));
                }
            }
            Some("message_stop") => {
                if !self.finished {
                    self.finished = true;
                    self.close_all(out);
                    out.push(StreamEvent::Finish {
                        stop_reason: StopReason::EndTurn,
                    });
                }
                out.push(StreamEvent::Done);
                self.done = true;
            }
            Some("error") => {
                let message = event
                    .get("error")
                    .and_then(|e| e.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                return Err(TranslateError::Upstream(format!("stream error: {message}")));
            }
            // `ping` carries nothing; Anthropic's versioning policy says new
            // event types may appear and are to be ignored.
            _ => {}
        }
        Ok(())
    }
}

impl StreamDecoder for Decoder {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        self.splitter.push(bytes);
        while let Some(event) = self.splitter.next_event() {
            if let Some(data) = sse::data(&event) {
                self.event(data, out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        // An event without its blank line was cut off: it is not used, and
        // a stream missing message_stop fails in the translator.
        self.splitter.remainder();
        Ok(())
    }
}

/// Encodes IR events as a Messages SSE stream for the client, event names
/// and payloads as Anthropic sends them.
pub struct Encoder {
    model: String,
    id: Option<String>,
    /// Whether message_start went out. It waits for the first content so it
    /// can carry the input usage reported right after the IR's Start.
    started: bool,
    /// IR block index → Anthropic block index.
    blocks: BTreeMap<usize, usize>,
    /// The Anthropic block receiving deltas.
    open: Option<usize>,
    stop: Option<StopReason>,
    usage: Usage,
}

impl Encoder {
    /// An encoder showing the client `model`.
    pub fn new(model: &str) -> Self {
        Encoder {
            model: model.to_string(),
            id: None,
            started: false,
            blocks: BTreeMap::new(),
            open: None,
            stop: None,
            usage: Usage::default(),
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = self.id.clone().unwrap_or_default();
        let data = json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": render_usage(&self.usage),
            },
        });
        sse_event(out, Some("message_start"), &data);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(index) = self.open.take() {
            sse_event(
                out,
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// The Anthropic index of IR block `ir`, starting it with `block` when new.
    fn block(
        &mut self,
        ir: usize,
        block: Value,
        out: &mut Vec<u8>,
    ) -> Result<usize, TranslateError> {
        self.start(out);
        if let Some(&index) = self.blocks.get(&ir) {
            if self.open == Some(index) {
                return Ok(index);
            }
            return Err(TranslateError::Upstream(
                "a closed block got more content".into(),
            ));
        }
        self.close(out);
        let index = self.blocks.len();
        self.blocks.insert(ir, index);
        self.open = Some(index);
        let data = json!({"type": "content_block_start", "index": index, "content_block": block});
        sse_event(out, Some("content_block_start"), &data);
        Ok(index)
    }

    fn delta(out: &mut Vec<u8>, index: usize, delta: Value) {
        let data = json!({"type": "content_block_delta", "index": index, "delta": delta});
        sse_event(out, Some("content_block_delta"), &data);
    }
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        match event {
            StreamEvent::Start { id, .. } => self.id = Some(id.clone()),
            StreamEvent::TextDelta { index, text } => {
                let i = self.block(*index, json!({"type": "text", "text": ""}), out)?;
                Self::delta(out, i, json!({"type": "text_delta", "text": text}));
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                self.block(*index, block, out)?;
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if !self.blocks.contains_key(index) {
                    return Err(TranslateError::Upstream(
                        "tool call arguments before the call".into(),
                    ));
                }
                let i = self.block(*index, Value::Null, out)?;
                Self::delta(
                    out,
                    i,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                );
            }
            StreamEvent::BlockStop { index } => {
                if let Some(&i) = self.blocks.get(index) {
                    if self.open == Some(i) {
                        self.close(out);
                    }
                }
            }
            // Anthropic puts the stop reason and final usage in one
            // message_delta; OpenAI reports usage after finishing, so both
            // wait for Done.
            StreamEvent::Finish { stop_reason } => {
                self.start(out);
                self.close(out);
                self.stop = Some(stop_reason.clone());
            }
            StreamEvent::Usage(usage) => super::merge_usage(&mut self.usage, usage),
            StreamEvent::Done => {
                self.start(out);
                self.close(out);
                let (reason, sequence) =
                    stop_reason(self.stop.as_ref().unwrap_or(&StopReason::EndTurn));
                let data = json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": render_usage(&self.usage),
                });
                sse_event(out, Some("message_delta"), &data);
                sse_event(out, Some("message_stop"), &json!({"type": "message_stop"}));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Upstream streams the cross-format harness replays.

    /// Named Messages SSE streams as an upstream sends them.
    pub fn streams() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "anthropic_text",
                concat!(
                    "event: message_start\n",
                    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":300,\"output_tokens\":1}}}\n\n",
                    "event: content_block_start\n",
                    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                    "event: ping\n",
                    "data: {\"type\":\"ping\"}\n\n",
                    "event: content_block_delta\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Bonjour\"}}\n\n",
                    "event: content_block_delta\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\", \u{e7}a va \u{1f600}\"}}\n\n",
                    "event: content_block_stop\n",
                    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                    "event: message_delta\n",
                    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":9}}\n\n",
                    "event: message_stop\n",
                    "data: {\"type\":\"message_stop\"}\n\n",
                )
                .as_bytes()
                .to_vec(),
            ),
            (
                "anthropic_tools",
                concat!(
                    "event: message_start\r\n",
                    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\r\n\r\n",
                    "event: content_block_start\r\n",
                    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
                    "event: content_block_delta\r\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}\r\n\r\n",
                    "event: content_block_stop\r\n",
                    "data: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n",
                    "event: content_block_start\r\n",
                    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\r\n\r\n",
                    "event: content_block_delta\r\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\r\n\r\n",
                    "event: content_block_delta\r\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\r\n\r\n",
                    "event: content_block_delta\r\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\r\n\r\n",
                    "event: content_block_stop\r\n",
                    "data: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n",
                    "event: content_block_start\r\n",
                    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_time\",\"input\":{}}}\r\n\r\n",
                    "event: content_block_delta\r\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\r\n\r\n",
                    "event: content_block_stop\r\n",
                    "data: {\"type\":\"content_block_stop\",\"index\":2}\r\n\r\n",
                    "event: message_delta\r\n",
                    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":33}}\r\n\r\n",
                    "event: message_stop\r\n",
                    "data: {\"type\":\"message_stop\"}\r\n\r\n",
                )
                .as_bytes()
                .to_vec(),
            ),
            (
                "anthropic_max_tokens",
                concat!(
                    "event: message_start\n",
                    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_03\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":0}}}\n\n",
                    "event: content_block_start\n",
                    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                    "event: content_block_delta\n",
                    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Truncated\"}}\n\n",
                    "event: content_block_stop\n",
                    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                    "event: message_delta\n",
                    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}\n\n",
                    "event: message_stop\n",
                    "data: {\"type\":\"message_stop\"}\n\n",
                )
                .as_bytes()
                .to_vec(),
            ),
        ]
    }
}
