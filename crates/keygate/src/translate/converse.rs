//! The Bedrock Converse format (`model/{id}/converse` and
//! `converse-stream`): requests, responses and streams to and from the IR.
//!
//! Converse is an upstream format; parsing its requests exists for
//! completeness (and tests). Its stream is AWS event-stream binary framing,
//! one JSON event per frame, decoded and written with
//! `aws-smithy-eventstream`.

#[cfg(test)]
mod tests;

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
use serde_json::{json, Map, Value};

use super::gemini::parse_data_url;
use super::ir::{
    ChatRequest, ChatResponse, Image, Message, Part, ResponseFormat, Role, StopReason, StreamEvent,
    Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
use super::json::{self, invalid, untranslatable};
use super::{merge_usage, Format, StreamDecoder, StreamEncoder, TranslateError};

const FORMAT: Format = Format::Converse;

/// The prelude: total length, headers length, prelude CRC.
const PRELUDE: usize = 12;
/// AWS caps an event-stream message at 16 MiB; anything claiming more is
/// refused before it is buffered.
const MAX_FRAME: usize = 16 << 20;

fn unsupported(feature: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported {
        feature: feature.into(),
        target: FORMAT,
    }
}

fn upstream(detail: impl Into<String>) -> TranslateError {
    TranslateError::Upstream(detail.into())
}

/// The object's fields, skipping explicit nulls.
fn fields(map: &Map<String, Value>) -> impl Iterator<Item = (&str, &Value)> {
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.as_str(), v))
}

/// An object with exactly one field (Converse's unions), as (name, value).
fn union<'a>(value: &'a Value, param: &str) -> Result<(&'a str, &'a Value), TranslateError> {
    let map = json::obj(value, param)?;
    let mut it = fields(map);
    match (it.next(), it.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(invalid(
            param,
            format!("'{param}' must have exactly one member"),
        )),
    }
}

/// Parse a Converse request body.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| TranslateError::Invalid {
        param: None,
        message: format!("The request body is not valid JSON: {e}"),
    })?;
    let root = root.as_object().ok_or_else(|| TranslateError::Invalid {
        param: None,
        message: "The request body must be a JSON object".into(),
    })?;
    let mut request = ChatRequest::default();
    for (name, value) in fields(root) {
        match name {
            "messages" => request.messages = parse_messages(value)?,
            "system" => {
                for (i, block) in json::arr(value, name)?.iter().enumerate() {
                    let p = format!("system[{i}]");
                    match union(block, &p)? {
                        ("text", text) => request
                            .system
                            .push(json::owned_string(text, &format!("{p}.text"))?),
                        (other, _) => return Err(untranslatable(&format!("{p}.{other}"))),
                    }
                }
            }
            "inferenceConfig" => {
                for (field, v) in fields(json::obj(value, name)?) {
                    let p = format!("inferenceConfig.{field}");
                    match field {
                        "maxTokens" => request.max_tokens = Some(json::unsigned(v, &p)?),
                        "temperature" => request.temperature = Some(json::number(v, &p)?),
                        "topP" => request.top_p = Some(json::number(v, &p)?),
                        "stopSequences" => {
                            request.stop = json::arr(v, &p)?
                                .iter()
                                .enumerate()
                                .map(|(i, s)| json::owned_string(s, &format!("{p}[{i}]")))
                                .collect::<Result<_, _>>()?;
                        }
                        _ => return Err(untranslatable(&p)),
                    }
                }
            }
            "toolConfig" => parse_tool_config(value, &mut request)?,
            "additionalModelRequestFields" => {
                for (field, v) in fields(json::obj(value, name)?) {
                    let p = format!("additionalModelRequestFields.{field}");
                    match field {
                        "top_k" => request.top_k = Some(json::unsigned(v, &p)?),
                        _ => return Err(untranslatable(&p)),
                    }
                }
            }
            // In the URL for the REST API; harmless here since routing
            // decides the model.
            "modelId" => request.model = json::owned_string(value, name)?,
            _ => return Err(untranslatable(name)),
        }
    }
    Ok(request)
}

fn parse_tool_config(value: &Value, request: &mut ChatRequest) -> Result<(), TranslateError> {
    for (field, v) in fields(json::obj(value, "toolConfig")?) {
        let p = format!("toolConfig.{field}");
        match field {
            "tools" => {
                for (i, tool) in json::arr(v, &p)?.iter().enumerate() {
                    let tp = format!("{p}[{i}]");
                    let spec = match union(tool, &tp)? {
                        ("toolSpec", spec) => spec,
                        (other, _) => return Err(untranslatable(&format!("{tp}.{other}"))),
                    };
                    let sp = format!("{tp}.toolSpec");
                    let mut tool = Tool {
                        name: String::new(),
                        description: None,
                        parameters: json!({"type": "object", "properties": {}}),
                    };
                    for (field, v) in fields(json::obj(spec, &sp)?) {
                        let fp = format!("{sp}.{field}");
                        match field {
                            "name" => tool.name = json::owned_string(v, &fp)?,
                            "description" => tool.description = Some(json::owned_string(v, &fp)?),
                            "inputSchema" => match union(v, &fp)? {
                                ("json", schema) => tool.parameters = schema.clone(),
                                (other, _) => return Err(untranslatable(&format!("{fp}.{other}"))),
                            },
                            _ => return Err(untranslatable(&fp)),
                        }
                    }
                    if tool.name.is_empty() {
                        return Err(invalid(&format!("{sp}.name"), "a tool needs a name"));
                    }
                    request.tools.push(tool);
                }
            }
            "toolChoice" => {
                request.tool_choice = Some(match union(v, &p)? {
                    ("auto", _) => ToolChoice::Auto,
                    ("any", _) => ToolChoice::Required,
                    ("tool", named) => {
                        let name = named.get("name").ok_or_else(|| {
                            invalid(&format!("{p}.tool.name"), "a tool choice needs a name")
                        })?;
                        ToolChoice::Named(json::owned_string(name, &format!("{p}.tool.name"))?)
                    }
                    (other, _) => return Err(untranslatable(&format!("{p}.{other}"))),
                });
            }
            _ => return Err(untranslatable(&p)),
        }
    }
    Ok(())
}

fn parse_messages(value: &Value) -> Result<Vec<Message>, TranslateError> {
    let mut messages = Vec::new();
    for (i, message) in json::arr(value, "messages")?.iter().enumerate() {
        let param = format!("messages[{i}]");
        let mut role = None;
        let mut content = Vec::new();
        for (field, v) in fields(json::obj(message, &param)?) {
            let p = format!("{param}.{field}");
            match field {
                "role" => {
                    role = Some(match json::owned_string(v, &p)?.as_str() {
                        "user" => Role::User,
                        "assistant" => Role::Assistant,
                        _ => {
                            return Err(invalid(&p, format!("'{p}' must be 'user' or 'assistant'")))
                        }
                    })
                }
                "content" => {
                    for (j, block) in json::arr(v, &p)?.iter().enumerate() {
                        content.push(parse_block(block, &format!("{p}[{j}]"))?);
                    }
                }
                _ => return Err(untranslatable(&p)),
            }
        }
        messages.push(Message {
            role: role
                .ok_or_else(|| invalid(&format!("{param}.role"), "a message needs a role"))?,
            content,
        });
    }
    Ok(messages)
}

fn parse_block(value: &Value, param: &str) -> Result<Part, TranslateError> {
    let (kind, v) = union(value, param)?;
    let p = format!("{param}.{kind}");
    Ok(match kind {
        "text" => Part::Text(json::owned_string(v, &p)?),
        "image" => Part::Image(parse_image(v, &p)?),
        "toolUse" => {
            let map = json::obj(v, &p)?;
            let mut call = ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: json!({}),
            };
            for (field, v) in fields(map) {
                let fp = format!("{p}.{field}");
                match field {
                    "toolUseId" => call.id = json::owned_string(v, &fp)?,
                    "name" => call.name = json::owned_string(v, &fp)?,
                    "input" => call.arguments = v.clone(),
                    _ => return Err(untranslatable(&fp)),
                }
            }
            if call.id.is_empty() || call.name.is_empty() {
                return Err(invalid(&p, format!("'{p}' needs a toolUseId and a name")));
            }
            Part::ToolCall(call)
        }
        "toolResult" => {
            let map = json::obj(v, &p)?;
            let mut result = ToolResult {
                id: String::new(),
                name: None,
                content: Vec::new(),
                is_error: false,
            };
            for (field, v) in fields(map) {
                let fp = format!("{p}.{field}");
                match field {
                    "toolUseId" => result.id = json::owned_string(v, &fp)?,
                    "status" => {
                        result.is_error = match json::owned_string(v, &fp)?.as_str() {
                            "success" => false,
                            "error" => true,
                            _ => {
                                return Err(invalid(
                                    &fp,
                                    format!("'{fp}' must be 'success' or 'error'"),
                                ))
                            }
                        }
                    }
                    "content" => {
                        for (k, item) in json::arr(v, &fp)?.iter().enumerate() {
                            let ip = format!("{fp}[{k}]");
                            let (kind, v) = union(item, &ip)?;
                            let kp = format!("{ip}.{kind}");
                            result.content.push(match kind {
                                "text" => Part::Text(json::owned_string(v, &kp)?),
                                // Other formats take results as text.
                                "json" => Part::Text(v.to_string()),
                                "image" => Part::Image(parse_image(v, &kp)?),
                                _ => return Err(untranslatable(&kp)),
                            });
                        }
                    }
                    _ => return Err(untranslatable(&fp)),
                }
            }
            if result.id.is_empty() {
                return Err(invalid(&p, format!("'{p}' needs a toolUseId")));
            }
            Part::ToolResult(result)
        }
        // document, video, cachePoint, guardContent, reasoningContent…
        _ => return Err(untranslatable(&p)),
    })
}

fn parse_image(value: &Value, param: &str) -> Result<Image, TranslateError> {
    let mut format = None;
    let mut data = None;
    for (field, v) in fields(json::obj(value, param)?) {
        let p = format!("{param}.{field}");
        match field {
            "format" => format = Some(json::owned_string(v, &p)?),
            "source" => match union(v, &p)? {
                ("bytes", bytes) => data = Some(json::owned_string(bytes, &format!("{p}.bytes"))?),
                // An S3 location only Bedrock can read.
                (other, _) => return Err(untranslatable(&format!("{p}.{other}"))),
            },
            _ => return Err(untranslatable(&p)),
        }
    }
    match (format, data) {
        (Some(format), Some(data)) => Ok(Image::Base64 {
            media_type: format!("image/{format}"),
            data,
        }),
        _ => Err(invalid(
            param,
            format!("'{param}' needs a format and a source"),
        )),
    }
}

/// Render the IR as a Converse body (the model and streaming are chosen by
/// the URL).
pub fn render_request(request: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    let mut body = Map::new();
    let mut has_tool_blocks = false;
    // Bedrock requires turns to alternate, while other formats send, say,
    // one message per tool result: adjacent turns of one speaker are one
    // turn, their content in order.
    let mut messages: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let mut content = Vec::new();
        for part in &message.content {
            has_tool_blocks |= matches!(part, Part::ToolCall(_) | Part::ToolResult(_));
            content.push(render_block(part)?);
        }
        json::push_turn(&mut messages, message.role, content);
    }
    body.insert(
        "messages".into(),
        json::turns_json(messages, "assistant", "content"),
    );
    if !request.system.is_empty() {
        let system: Vec<Value> = request
            .system
            .iter()
            .map(|t| json!({ "text": t }))
            .collect();
        body.insert("system".into(), Value::Array(system));
    }

    let mut config = Map::new();
    if let Some(n) = request.max_tokens {
        config.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), json!(request.stop));
    }
    if !config.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(config));
    }
    // Converse has no top-k of its own; it passes model-specific fields
    // through. `top_k` is the name Anthropic's models on Bedrock (the main
    // users of top-k there) take; a model that does not know it answers
    // with a validation error, which beats a silently ignored setting.
    if let Some(k) = request.top_k {
        body.insert("additionalModelRequestFields".into(), json!({ "top_k": k }));
    }
    if request.presence_penalty.is_some() {
        return Err(unsupported("parameter 'presence_penalty'"));
    }
    if request.frequency_penalty.is_some() {
        return Err(unsupported("parameter 'frequency_penalty'"));
    }
    if request.seed.is_some() {
        return Err(unsupported("parameter 'seed'"));
    }
    match &request.response_format {
        // Plain text is what Converse returns anyway.
        None | Some(ResponseFormat::Text) => {}
        Some(_) => return Err(unsupported("structured output (response_format)")),
    }
    if request.parallel_tool_calls == Some(false) {
        return Err(unsupported("disabling parallel tool calls"));
    }
    if request.user.is_some() {
        return Err(unsupported("parameter 'user' (end-user id)"));
    }

    let choice = match &request.tool_choice {
        None | Some(ToolChoice::Auto) => Some(json!({ "auto": {} })),
        Some(ToolChoice::Required) => Some(json!({ "any": {} })),
        Some(ToolChoice::Named(name)) => Some(json!({ "tool": { "name": name } })),
        // Converse cannot forbid tool calls. Leaving the tools out means
        // the same — the model cannot call what it does not know — except
        // that Bedrock refuses toolUse/toolResult blocks without a
        // toolConfig, so with tool history there is no faithful rendering.
        Some(ToolChoice::None) if has_tool_blocks && !request.tools.is_empty() => {
            return Err(unsupported("tool_choice 'none'"))
        }
        Some(ToolChoice::None) => None,
    };
    if !request.tools.is_empty() {
        if let Some(choice) = choice {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    let mut spec = Map::new();
                    spec.insert("name".into(), json!(tool.name));
                    if let Some(d) = &tool.description {
                        spec.insert("description".into(), json!(d));
                    }
                    spec.insert("inputSchema".into(), json!({ "json": tool.parameters }));
                    json!({ "toolSpec": spec })
                })
                .collect();
            let mut tool_config = Map::new();
            tool_config.insert("tools".into(), Value::Array(tools));
            // Auto is Converse's default; it is only spelled out when asked.
            if request.tool_choice.is_some() {
                tool_config.insert("toolChoice".into(), choice);
            }
            body.insert("toolConfig".into(), Value::Object(tool_config));
        }
    } else if matches!(
        request.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Named(_))
    ) {
        return Err(TranslateError::Invalid {
            param: None,
            message: "a tool choice that requires a tool call needs tools".into(),
        });
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| upstream(e.to_string()))
}

fn render_block(part: &Part) -> Result<Value, TranslateError> {
    Ok(match part {
        Part::Text(text) => json!({ "text": text }),
        Part::Image(image) => json!({ "image": render_image(image)? }),
        Part::ToolCall(call) => {
            let input = match &call.arguments {
                Value::Null => json!({}),
                other => other.clone(),
            };
            json!({ "toolUse": { "toolUseId": call.id, "name": call.name, "input": input } })
        }
        Part::ToolResult(result) => {
            let mut content = Vec::new();
            for part in &result.content {
                content.push(match part {
                    Part::Text(text) => json!({ "text": text }),
                    Part::Image(image) => json!({ "image": render_image(image)? }),
                    _ => return Err(unsupported("nested tool calls in tool results")),
                });
            }
            let mut block = Map::new();
            block.insert("toolUseId".into(), json!(result.id));
            block.insert("content".into(), Value::Array(content));
            // `status` is only accepted by some models (Anthropic's), so it
            // is sent only when it says something: that the tool failed.
            if result.is_error {
                block.insert("status".into(), json!("error"));
            }
            json!({ "toolResult": block })
        }
    })
}

fn render_image(image: &Image) -> Result<Value, TranslateError> {
    let (media_type, data) = match image {
        Image::Base64 { media_type, data } => (media_type.as_str(), data.as_str()),
        // Bedrock fetches nothing from the web; only inline data works.
        Image::Url(url) => parse_data_url(url).ok_or_else(|| unsupported("image URLs"))?,
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => return Err(unsupported(format!("images of type '{other}'"))),
    };
    Ok(json!({ "format": format, "source": { "bytes": data } }))
}

fn stop_reason(reason: &str, additional: Option<&Value>) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        // Anthropic's models on Bedrock say which sequence matched.
        "stop_sequence" => StopReason::StopSequence(
            additional
                .and_then(|a| a.get("stop_sequence"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        "guardrail_intervened" | "content_filtered" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

fn render_stop_reason(stop: &StopReason) -> &str {
    match stop {
        StopReason::EndTurn => "end_turn",
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence(_) => "stop_sequence",
        StopReason::ContentFilter => "content_filtered",
        StopReason::Other(name)
            if matches!(
                name.as_str(),
                "guardrail_intervened" | "model_context_window_exceeded"
            ) =>
        {
            name
        }
        // Converse clients know only its own reasons; the turn did end.
        StopReason::Other(_) => "end_turn",
    }
}

fn parse_usage(value: &Value) -> Usage {
    let count = |name: &str| value.get(name).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cacheReadInputTokens");
    let written = count("cacheWriteInputTokens");
    Usage {
        // Bedrock's inputTokens leaves out cache reads and writes; the IR's
        // input_tokens counts them.
        input_tokens: count("inputTokens")
            .saturating_add(cached)
            .saturating_add(written),
        output_tokens: count("outputTokens"),
        cached_input_tokens: cached,
        cache_creation_input_tokens: written,
    }
}

fn render_usage(usage: &Usage) -> Value {
    let input = usage
        .input_tokens
        .saturating_sub(usage.cached_input_tokens)
        .saturating_sub(usage.cache_creation_input_tokens);
    let mut map = Map::new();
    map.insert("inputTokens".into(), json!(input));
    map.insert("outputTokens".into(), json!(usage.output_tokens));
    map.insert(
        "totalTokens".into(),
        json!(usage.input_tokens.saturating_add(usage.output_tokens)),
    );
    if usage.cached_input_tokens > 0 {
        map.insert(
            "cacheReadInputTokens".into(),
            json!(usage.cached_input_tokens),
        );
    }
    if usage.cache_creation_input_tokens > 0 {
        map.insert(
            "cacheWriteInputTokens".into(),
            json!(usage.cache_creation_input_tokens),
        );
    }
    Value::Object(map)
}

/// Converse answers carry no id (only the HTTP request id, which the codec
/// does not see), so one is made up.
#[cfg(not(test))]
fn new_id() -> String {
    format!("msg_bdrk_{}", uuid::Uuid::now_v7().simple())
}

/// Tests (the cross-format harness among them) compare decodings of one
/// stream made by different decoders, so there the made-up id is fixed.
#[cfg(test)]
fn new_id() -> String {
    "msg_bdrk_test".into()
}

/// Parse a complete Converse answer.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| upstream(format!("invalid JSON: {e}")))?;
    let blocks = root
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| upstream("the answer has no output message"))?;
    let mut content = Vec::new();
    for block in blocks {
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            content.push(Part::Text(text.to_string()));
        } else if let Some(call) = block.get("toolUse") {
            let field = |name: &str| {
                call.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| upstream(format!("a toolUse block without {name}")))
            };
            content.push(Part::ToolCall(ToolCall {
                id: field("toolUseId")?,
                name: field("name")?,
                arguments: call.get("input").cloned().unwrap_or_else(|| json!({})),
            }));
        }
        // reasoningContent (extended thinking) is not part of the answer.
    }
    let reason = root
        .get("stopReason")
        .and_then(Value::as_str)
        .ok_or_else(|| upstream("the answer has no stopReason"))?;
    Ok(ChatResponse {
        id: new_id(),
        model: String::new(),
        content,
        stop_reason: stop_reason(reason, root.get("additionalModelResponseFields")),
        usage: root.get("usage").map(parse_usage).unwrap_or_default(),
    })
}

/// Render a complete answer as a Converse response.
pub fn render_response(response: &ChatResponse) -> Result<Vec<u8>, TranslateError> {
    let mut content = Vec::new();
    for part in &response.content {
        content.push(match part {
            Part::Text(_) | Part::ToolCall(_) => render_block(part)?,
            Part::Image(_) | Part::ToolResult(_) => {
                return Err(upstream("an answer holds an image or a tool result"))
            }
        });
    }
    let mut body = json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": render_stop_reason(&response.stop_reason),
        "usage": render_usage(&response.usage),
        "metrics": { "latencyMs": 0 },
    });
    if let StopReason::StopSequence(Some(sequence)) = &response.stop_reason {
        body["additionalModelResponseFields"] = json!({ "stop_sequence": sequence });
    }
    serde_json::to_vec(&body).map_err(|e| upstream(e.to_string()))
}

fn header<'a>(frame: &'a Frame, name: &str) -> Option<&'a str> {
    frame
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// Decodes a ConverseStream body (AWS event-stream frames).
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// The id to show; made up at the first event unless preset.
    id: Option<String>,
    started: bool,
    /// Converse block index → IR block number, for blocks that produced
    /// something (reasoning blocks never do).
    blocks: Vec<(u64, usize)>,
    stopped: bool,
    done: bool,
}

impl Decoder {
    /// A decoder that shows `id` instead of a made-up one: the response's
    /// `x-amzn-requestid`, say, or a fixed id so that two decodings of one
    /// stream can be compared.
    pub fn with_id(id: &str) -> Self {
        Decoder {
            id: Some(id.to_string()),
            ..Decoder::default()
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.id.take().unwrap_or_else(new_id),
                model: String::new(),
            });
        }
    }

    fn block(&mut self, converse_index: u64) -> Option<usize> {
        self.blocks
            .iter()
            .find(|b| b.0 == converse_index)
            .map(|b| b.1)
    }

    fn new_block(&mut self, converse_index: u64) -> usize {
        let index = self.blocks.len();
        self.blocks.push((converse_index, index));
        index
    }

    fn frame(&mut self, frame: &Frame, out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        match header(frame, ":message-type") {
            Some("event") | None => {}
            Some("exception") => {
                return Err(upstream(format!(
                    "upstream exception {}: {}",
                    header(frame, ":exception-type").unwrap_or("unknown"),
                    String::from_utf8_lossy(frame.payload())
                )))
            }
            Some(other) => {
                return Err(upstream(format!(
                    "upstream {other} {}: {}",
                    header(frame, ":error-code").unwrap_or("unknown"),
                    header(frame, ":error-message").unwrap_or("")
                )))
            }
        }
        let Some(event) = header(frame, ":event-type") else {
            return Err(upstream("an event without :event-type"));
        };
        if self.done {
            return Ok(());
        }
        let payload: Value = serde_json::from_slice(frame.payload())
            .map_err(|e| upstream(format!("invalid JSON in {event}: {e}")))?;
        let index = || {
            payload
                .get("contentBlockIndex")
                .and_then(Value::as_u64)
                .ok_or_else(|| upstream(format!("{event} without contentBlockIndex")))
        };
        match event {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                self.start(out);
                let converse_index = index()?;
                if let Some(tool) = payload.pointer("/start/toolUse") {
                    let field = |name: &str| {
                        tool.get(name)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| upstream(format!("a toolUse start without {name}")))
                    };
                    let (id, name) = (field("toolUseId")?, field("name")?);
                    if self.block(converse_index).is_some() {
                        return Err(upstream("a content block started twice"));
                    }
                    let index = self.new_block(converse_index);
                    out.push(StreamEvent::ToolCallStart { index, id, name });
                }
            }
            "contentBlockDelta" => {
                self.start(out);
                let converse_index = index()?;
                let delta = payload.get("delta");
                if let Some(text) = delta.and_then(|d| d.get("text")).and_then(Value::as_str) {
                    // Text blocks have no start event: they begin here.
                    let index = match self.block(converse_index) {
                        Some(index) => index,
                        None => self.new_block(converse_index),
                    };
                    out.push(StreamEvent::TextDelta {
                        index,
                        text: text.to_string(),
                    });
                } else if let Some(input) = delta
                    .and_then(|d| d.pointer("/toolUse/input"))
                    .and_then(Value::as_str)
                {
                    let index = self
                        .block(converse_index)
                        .ok_or_else(|| upstream("tool input for a block that was not started"))?;
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: input.to_string(),
                    });
                }
                // reasoningContent and citations are not part of the answer.
            }
            "contentBlockStop" => {
                if let Some(index) = self.block(index()?) {
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            "messageStop" => {
                self.start(out);
                let reason = payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .ok_or_else(|| upstream("messageStop without stopReason"))?;
                self.stopped = true;
                out.push(StreamEvent::Finish {
                    stop_reason: stop_reason(reason, payload.get("additionalModelResponseFields")),
                });
            }
            "metadata" => {
                if let Some(usage) = payload.get("usage") {
                    out.push(StreamEvent::Usage(parse_usage(usage)));
                }
                if self.stopped {
                    self.done = true;
                    out.push(StreamEvent::Done);
                }
            }
            // Event types added later carry nothing keygate translates.
            _ => {}
        }
        Ok(())
    }
}

impl StreamDecoder for Decoder {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(prelude) = self.buf.get(start..start + PRELUDE) {
            let word = |at: usize| {
                prelude
                    .get(at..at + 4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_be_bytes)
            };
            // Checked before waiting for the rest, so a corrupt length is an
            // error now rather than a wait for bytes that never come.
            if crc32fast::hash(prelude.get(..8).unwrap_or_default()) != word(8) {
                return Err(upstream("event-stream prelude checksum mismatch"));
            }
            let total = word(0) as usize;
            if !(PRELUDE + 4..=MAX_FRAME).contains(&total) {
                return Err(upstream("event-stream frame length out of range"));
            }
            let Some(bytes) = self.buf.get(start..start + total) else {
                break;
            };
            let frame = read_message_from(bytes)
                .map_err(|e| upstream(format!("event-stream frame: {e}")))?;
            start += total;
            self.frame(&frame, out)?;
        }
        self.buf.drain(..start);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        if !self.buf.is_empty() {
            return Err(upstream("the stream ended inside an event-stream frame"));
        }
        // Usage is optional; the answer ended properly if it stopped.
        if self.stopped {
            self.done = true;
            out.push(StreamEvent::Done);
        }
        Ok(())
    }
}

/// One event-stream frame as Bedrock writes it.
fn frame(
    event_type: &'static str,
    payload: &Value,
    out: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let frame = Frame::new_from_parts(
        vec![
            Header::new(":event-type", HeaderValue::String(event_type.into())),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            Header::new(":message-type", HeaderValue::String("event".into())),
        ],
        payload.to_string().into_bytes(),
    );
    write_message_to(&frame, out).map_err(|e| upstream(format!("event-stream frame: {e}")))
}

/// Encodes IR events as a ConverseStream body.
pub struct Encoder {
    usage: Usage,
}

impl Encoder {
    /// An encoder for a client shown `model` (Converse streams never name
    /// the model, so it is not written).
    pub fn new(_model: &str) -> Self {
        Encoder {
            usage: Usage::default(),
        }
    }
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        match event {
            StreamEvent::Start { .. } => {
                frame("messageStart", &json!({ "role": "assistant" }), out)
            }
            StreamEvent::TextDelta { index, text } => frame(
                "contentBlockDelta",
                &json!({ "contentBlockIndex": index, "delta": { "text": text } }),
                out,
            ),
            StreamEvent::ToolCallStart { index, id, name } => frame(
                "contentBlockStart",
                &json!({
                    "contentBlockIndex": index,
                    "start": { "toolUse": { "toolUseId": id, "name": name } },
                }),
                out,
            ),
            StreamEvent::ToolCallDelta { index, arguments } => frame(
                "contentBlockDelta",
                &json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": arguments } } }),
                out,
            ),
            StreamEvent::BlockStop { index } => frame(
                "contentBlockStop",
                &json!({ "contentBlockIndex": index }),
                out,
            ),
            StreamEvent::Finish { stop_reason } => {
                let mut payload = json!({ "stopReason": render_stop_reason(stop_reason) });
                if let StopReason::StopSequence(Some(sequence)) = stop_reason {
                    payload["additionalModelResponseFields"] = json!({ "stop_sequence": sequence });
                }
                frame("messageStop", &payload, out)
            }
            StreamEvent::Usage(usage) => {
                merge_usage(&mut self.usage, usage);
                Ok(())
            }
            StreamEvent::Done => frame(
                "metadata",
                &json!({ "usage": render_usage(&self.usage), "metrics": { "latencyMs": 0 } }),
                out,
            ),
        }
    }
}

/// Upstream streams for the cross-format tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

    /// A frame as Bedrock writes it, `p` padding (which hides the length of
    /// the content from an observer) included.
    pub(crate) fn frame(event_type: &'static str, payload: &str, out: &mut Vec<u8>) {
        let message = Message::new_from_parts(
            vec![
                Header::new(":event-type", HeaderValue::String(event_type.into())),
                Header::new(
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
                Header::new(":message-type", HeaderValue::String("event".into())),
            ],
            payload.as_bytes().to_vec(),
        );
        write_message_to(&message, out).unwrap();
    }

    /// Named ConverseStream bodies: text with cache reads and writes, and
    /// text followed by two tool calls.
    pub fn streams() -> Vec<(&'static str, Vec<u8>)> {
        let mut text = Vec::new();
        frame(
            "messageStart",
            r#"{"p":"abcdefghijklmnopqrstu","role":"assistant"}"#,
            &mut text,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"}"#,
            &mut text,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"! How can I help — today?"},"p":"abcdefghijk"}"#,
            &mut text,
        );
        frame(
            "contentBlockStop",
            r#"{"contentBlockIndex":0,"p":"abcdefghijklmnopqrstuvwxyzABCDEFGH"}"#,
            &mut text,
        );
        frame(
            "messageStop",
            r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW","stopReason":"end_turn"}"#,
            &mut text,
        );
        frame(
            "metadata",
            r#"{"metrics":{"latencyMs":412},"p":"abcdefghijklmnopqrs","usage":{"cacheReadInputTokens":2048,"cacheWriteInputTokens":512,"inputTokens":12,"outputTokens":9,"totalTokens":2581}}"#,
            &mut text,
        );

        let mut tools = Vec::new();
        frame(
            "messageStart",
            r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGH","role":"assistant"}"#,
            &mut tools,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"I'll look up both."},"p":"abcdefghijklmnop"}"#,
            &mut tools,
        );
        frame(
            "contentBlockStop",
            r#"{"contentBlockIndex":0,"p":"abcdefghijklmnopqrstuvwxyzABCD"}"#,
            &mut tools,
        );
        frame(
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR","start":{"toolUse":{"name":"get_weather","toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"}}}"#,
            &mut tools,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":""}},"p":"abcdefghijklmn"}"#,
            &mut tools,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\": \"Par"}},"p":"abcdefghijklmnopqrstuvwx"}"#,
            &mut tools,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"is\"}"}},"p":"abcdefghijklmnopqrstuvwxyzAB"}"#,
            &mut tools,
        );
        frame(
            "contentBlockStop",
            r#"{"contentBlockIndex":1,"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"}"#,
            &mut tools,
        );
        frame(
            "contentBlockStart",
            r#"{"contentBlockIndex":2,"p":"abcdefghij","start":{"toolUse":{"name":"get_time","toolUseId":"tooluse_3vB9qHk1T8yOa0c2LZx4dA"}}}"#,
            &mut tools,
        );
        frame(
            "contentBlockDelta",
            r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"timezone\": \"Europe/Paris\"}"}},"p":"abcdefghijklmnopqrstuvwxyzABCDEFG"}"#,
            &mut tools,
        );
        frame(
            "contentBlockStop",
            r#"{"contentBlockIndex":2,"p":"abcdefghijklmnopqrstuvw"}"#,
            &mut tools,
        );
        frame(
            "messageStop",
            r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM","stopReason":"tool_use"}"#,
            &mut tools,
        );
        frame(
            "metadata",
            r#"{"metrics":{"latencyMs":1288},"p":"abcdefghijklmnopqrstuvwxyzABCDEF","usage":{"inputTokens":412,"outputTokens":97,"totalTokens":509}}"#,
            &mut tools,
        );

        vec![("converse_text_cached", text), ("converse_tool_use", tools)]
    }
}
