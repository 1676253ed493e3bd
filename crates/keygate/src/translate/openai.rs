//! The OpenAI Chat Completions format: requests, responses and streams to
//! and from the IR.
//!
//! Parsing is strict: a request field the IR cannot carry is refused with
//! [`TranslateError::Invalid`] naming it, because silently dropping it would
//! change what the client asked for. A field whose value is `null` carries
//! nothing and is treated as absent.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::ir::{
    ChatRequest, ChatResponse, Image, Message, Part, ResponseFormat, Role, StopReason, StreamEvent,
    Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
use super::json::{
    arr, boolean, carries_nothing, invalid, join, number, obj, only_keys, optional, parse_body,
    parse_upstream, required, sse_event, string, unix_now, unsigned, unsupported, untranslatable,
    up_str, up_u64,
};
use super::{Format, StreamDecoder, StreamEncoder, TranslateError};
use crate::proxy::sse;

const FORMAT: Format = Format::OpenAiChat;

// ---------------------------------------------------------------------------
// Requests.

/// Parse a client's Chat Completions request body into the IR.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let root = parse_body(body)?;
    let mut req = ChatRequest::default();
    let mut messages = None;
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
            "max_tokens" | "max_completion_tokens" => req.max_tokens = Some(unsigned(value, k)?),
            "temperature" => req.temperature = Some(number(value, k)?),
            "top_p" => req.top_p = Some(number(value, k)?),
            "presence_penalty" => req.presence_penalty = Some(number(value, k)?),
            "frequency_penalty" => req.frequency_penalty = Some(number(value, k)?),
            "seed" => {
                req.seed = Some(
                    value
                        .as_i64()
                        .ok_or_else(|| invalid(k, "'seed' must be an integer."))?,
                )
            }
            "stop" => req.stop = parse_stop(value)?,
            "stream" => req.stream = boolean(value, k)?,
            // Only asks OpenAI to report usage in streams; keygate always
            // reports usage to the client when it translates a stream.
            "stream_options" => {
                obj(value, k)?;
            }
            "user" => req.user = Some(string(value, k)?.to_string()),
            "parallel_tool_calls" => req.parallel_tool_calls = Some(boolean(value, k)?),
            "tools" => req.tools = parse_tools(arr(value, k)?)?,
            "tool_choice" => req.tool_choice = Some(parse_tool_choice(value)?),
            "response_format" => req.response_format = Some(parse_response_format(value)?),
            // Defaults that ask for nothing beyond what every format does.
            "n" if unsigned(value, k)? == 1 => {}
            "logprobs" if !boolean(value, k)? => {}
            "store" if !boolean(value, k)? => {}
            "logit_bias" if obj(value, k)?.is_empty() => {}
            _ if carries_nothing(value) => {}
            _ => return Err(untranslatable(k)),
        }
    }
    let messages = messages.ok_or_else(|| invalid("messages", "'messages' is required."))?;
    parse_messages(&mut req, messages)?;
    Ok(req)
}

fn parse_stop(value: &Value) -> Result<Vec<String>, TranslateError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|s| string(s, "stop").map(str::to_string))
            .collect(),
        _ => Err(invalid(
            "stop",
            "'stop' must be a string or an array of strings.",
        )),
    }
}

fn parse_tools(items: &[Value]) -> Result<Vec<Tool>, TranslateError> {
    let mut tools = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("tools[{i}]");
        let tool = obj(item, &path)?;
        only_keys(tool, &["type", "function"], &path)?;
        let kind = string(required(tool, "type", &path)?, &join(&path, "type"))?;
        if kind != "function" {
            return Err(untranslatable(&format!("{path} of type '{kind}'")));
        }
        let fpath = join(&path, "function");
        let function = obj(required(tool, "function", &path)?, &fpath)?;
        // `strict: true` promises schema adherence other providers cannot
        // guarantee, so it is refused; `false` is every format's behaviour.
        if let Some(strict) = optional(function, "strict") {
            if boolean(strict, &join(&fpath, "strict"))? {
                return Err(untranslatable(&join(&fpath, "strict")));
            }
        }
        only_keys(
            function,
            &["name", "description", "parameters", "strict"],
            &fpath,
        )?;
        let name = string(required(function, "name", &fpath)?, &join(&fpath, "name"))?;
        let description = optional(function, "description")
            .map(|d| string(d, &join(&fpath, "description")).map(str::to_string))
            .transpose()?;
        let parameters = match optional(function, "parameters") {
            Some(p) => {
                obj(p, &join(&fpath, "parameters"))?;
                p.clone()
            }
            // OpenAI's documented meaning of no parameters.
            None => json!({"type": "object", "properties": {}}),
        };
        tools.push(Tool {
            name: name.to_string(),
            description,
            parameters,
        });
    }
    Ok(tools)
}

fn parse_tool_choice(value: &Value) -> Result<ToolChoice, TranslateError> {
    const P: &str = "tool_choice";
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(invalid(P, format!("'{other}' is not a valid tool_choice."))),
        },
        Value::Object(map) => {
            let kind = string(required(map, "type", P)?, "tool_choice.type")?;
            if kind != "function" {
                return Err(untranslatable(&format!("tool_choice of type '{kind}'")));
            }
            only_keys(map, &["type", "function"], P)?;
            let function = obj(required(map, "function", P)?, "tool_choice.function")?;
            only_keys(function, &["name"], "tool_choice.function")?;
            let name = string(
                required(function, "name", "tool_choice.function")?,
                "tool_choice.function.name",
            )?;
            Ok(ToolChoice::Named(name.to_string()))
        }
        _ => Err(invalid(P, "'tool_choice' must be a string or an object.")),
    }
}

fn parse_response_format(value: &Value) -> Result<ResponseFormat, TranslateError> {
    const P: &str = "response_format";
    let map = obj(value, P)?;
    match string(required(map, "type", P)?, "response_format.type")? {
        "text" => {
            only_keys(map, &["type"], P)?;
            Ok(ResponseFormat::Text)
        }
        "json_object" => {
            only_keys(map, &["type"], P)?;
            Ok(ResponseFormat::JsonObject)
        }
        "json_schema" => {
            only_keys(map, &["type", "json_schema"], P)?;
            let path = "response_format.json_schema";
            let schema = obj(required(map, "json_schema", P)?, path)?;
            only_keys(schema, &["name", "schema", "strict"], path)?;
            let name = string(required(schema, "name", path)?, &join(path, "name"))?;
            let body = match optional(schema, "schema") {
                Some(s) => s.clone(),
                None => json!({}),
            };
            let strict = optional(schema, "strict")
                .map(|s| boolean(s, &join(path, "strict")))
                .transpose()?;
            Ok(ResponseFormat::JsonSchema {
                name: name.to_string(),
                schema: body,
                strict,
            })
        }
        other => Err(invalid(
            P,
            format!("'{other}' is not a valid response_format type."),
        )),
    }
}

fn parse_messages(req: &mut ChatRequest, messages: &[Value]) -> Result<(), TranslateError> {
    // Consecutive `tool` messages answer one assistant turn: one IR user message.
    let mut last_was_tool = false;
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = obj(message, &path)?;
        let role = string(required(m, "role", &path)?, &join(&path, "role"))?;
        let content = optional(m, "content");
        let cpath = join(&path, "content");
        let is_tool = role == "tool";
        match role {
            // The IR keeps instructions apart from the turns, as Anthropic
            // and Gemini do; a late system message keeps its relative order
            // among system messages.
            "system" | "developer" => {
                only_keys(m, &["role", "content"], &path)?;
                let text = text_only(content, &cpath)?;
                req.system.push(text.concat());
            }
            "user" => {
                only_keys(m, &["role", "content"], &path)?;
                let parts = match content {
                    None => Vec::new(),
                    Some(c) => parse_user_content(c, &cpath)?,
                };
                req.messages.push(Message {
                    role: Role::User,
                    content: parts,
                });
            }
            "assistant" => {
                only_keys(m, &["role", "content", "tool_calls", "refusal"], &path)?;
                let mut parts: Vec<Part> = text_only(content, &cpath)?
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(Part::Text)
                    .collect();
                // A refusal is what the model said; it goes back as text.
                if let Some(refusal) = optional(m, "refusal") {
                    let refusal = string(refusal, &join(&path, "refusal"))?;
                    if !refusal.is_empty() {
                        parts.push(Part::Text(refusal.to_string()));
                    }
                }
                if let Some(calls) = optional(m, "tool_calls") {
                    let tpath = join(&path, "tool_calls");
                    for (j, call) in arr(calls, &tpath)?.iter().enumerate() {
                        parts.push(Part::ToolCall(parse_tool_call(
                            call,
                            &format!("{tpath}[{j}]"),
                        )?));
                    }
                }
                req.messages.push(Message {
                    role: Role::Assistant,
                    content: parts,
                });
            }
            "tool" => {
                only_keys(m, &["role", "content", "tool_call_id", "name"], &path)?;
                let id = string(
                    required(m, "tool_call_id", &path)?,
                    &join(&path, "tool_call_id"),
                )?;
                let name = optional(m, "name")
                    .map(|n| string(n, &join(&path, "name")).map(str::to_string))
                    .transpose()?;
                let result = Part::ToolResult(ToolResult {
                    id: id.to_string(),
                    name,
                    content: text_only(content, &cpath)?
                        .into_iter()
                        .map(Part::Text)
                        .collect(),
                    is_error: false,
                });
                match req.messages.last_mut() {
                    Some(last) if last_was_tool => last.content.push(result),
                    _ => req.messages.push(Message {
                        role: Role::User,
                        content: vec![result],
                    }),
                }
            }
            "function" => return Err(untranslatable(&format!("{path} with role 'function'"))),
            other => {
                return Err(invalid(
                    &join(&path, "role"),
                    format!("'{other}' is not a valid role."),
                ))
            }
        }
        last_was_tool = is_tool;
    }
    Ok(())
}

/// Content that may only hold text: a string or an array of text parts.
fn text_only(content: Option<&Value>, path: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let ppath = format!("{path}[{i}]");
                let p = obj(part, &ppath)?;
                let kind = string(required(p, "type", &ppath)?, &join(&ppath, "type"))?;
                if kind != "text" {
                    return Err(untranslatable(&format!("{ppath} of type '{kind}'")));
                }
                only_keys(p, &["type", "text"], &ppath)?;
                texts
                    .push(string(required(p, "text", &ppath)?, &join(&ppath, "text"))?.to_string());
            }
            Ok(texts)
        }
        Some(_) => Err(invalid(
            path,
            format!("'{path}' must be a string or an array."),
        )),
    }
}

fn parse_user_content(content: &Value, path: &str) -> Result<Vec<Part>, TranslateError> {
    let parts = match content {
        Value::String(s) => return Ok(vec![Part::Text(s.clone())]),
        Value::Array(parts) => parts,
        _ => {
            return Err(invalid(
                path,
                format!("'{path}' must be a string or an array."),
            ))
        }
    };
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        let p = obj(part, &ppath)?;
        match string(required(p, "type", &ppath)?, &join(&ppath, "type"))? {
            "text" => {
                only_keys(p, &["type", "text"], &ppath)?;
                let text = string(required(p, "text", &ppath)?, &join(&ppath, "text"))?;
                out.push(Part::Text(text.to_string()));
            }
            "image_url" => {
                only_keys(p, &["type", "image_url"], &ppath)?;
                let ipath = join(&ppath, "image_url");
                let url = match required(p, "image_url", &ppath)? {
                    Value::String(url) => url.as_str(),
                    Value::Object(image) => {
                        // `detail` is a resolution hint; other providers
                        // pick their own resolution and have no such knob.
                        only_keys(image, &["url", "detail"], &ipath)?;
                        string(required(image, "url", &ipath)?, &join(&ipath, "url"))?
                    }
                    _ => return Err(invalid(&ipath, format!("'{ipath}' must be an object."))),
                };
                out.push(Part::Image(parse_image_url(url, &ipath)?));
            }
            other => return Err(untranslatable(&format!("{ppath} of type '{other}'"))),
        }
    }
    Ok(out)
}

fn parse_image_url(url: &str, path: &str) -> Result<Image, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(path, "The image data URL has no data."))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| invalid(path, "Image data URLs must be base64-encoded."))?;
        return Ok(Image::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_string()));
    }
    Err(invalid(
        path,
        "Image URLs must be http(s) or base64 data URLs.",
    ))
}

fn parse_tool_call(call: &Value, path: &str) -> Result<ToolCall, TranslateError> {
    let c = obj(call, path)?;
    only_keys(c, &["id", "type", "function"], path)?;
    if let Some(kind) = optional(c, "type") {
        let kind = string(kind, &join(path, "type"))?;
        if kind != "function" {
            return Err(untranslatable(&format!("{path} of type '{kind}'")));
        }
    }
    let id = string(required(c, "id", path)?, &join(path, "id"))?;
    let fpath = join(path, "function");
    let f = obj(required(c, "function", path)?, &fpath)?;
    only_keys(f, &["name", "arguments"], &fpath)?;
    let name = string(required(f, "name", &fpath)?, &join(&fpath, "name"))?;
    let apath = join(&fpath, "arguments");
    let arguments = match optional(f, "arguments") {
        None => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| invalid(&apath, format!("'{apath}' is not valid JSON: {e}.")))?,
        // Some clients send the object itself; its meaning is unambiguous.
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(invalid(&apath, format!("'{apath}' must be a JSON string."))),
    };
    Ok(ToolCall {
        id: id.to_string(),
        name: name.to_string(),
        arguments,
    })
}

/// Render the IR as a Chat Completions request body.
pub fn render_request(request: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let mut messages = Vec::new();
    for system in &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        match message.role {
            Role::User => render_user(&message.content, &mut messages)?,
            Role::Assistant => messages.push(render_assistant(&message.content)?),
        }
    }
    body.insert("messages".into(), Value::Array(messages));
    // `max_completion_tokens` is the current name; OpenAI's reasoning
    // models refuse the deprecated `max_tokens`.
    if let Some(n) = request.max_tokens {
        body.insert("max_completion_tokens".into(), json!(n));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if request.top_k.is_some() {
        return Err(unsupported("parameter 'top_k'", FORMAT));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    if let Some(p) = request.presence_penalty {
        body.insert("presence_penalty".into(), json!(p));
    }
    if let Some(p) = request.frequency_penalty {
        body.insert("frequency_penalty".into(), json!(p));
    }
    if let Some(s) = request.seed {
        body.insert("seed".into(), json!(s));
    }
    if let Some(format) = &request.response_format {
        body.insert("response_format".into(), render_response_format(format));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), t.parameters.clone());
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    // OpenAI refuses tool_choice and parallel_tool_calls without tools;
    // without tools, "auto" and "none" both mean no calls anyway.
    let choice = match &request.tool_choice {
        Some(ToolChoice::Auto | ToolChoice::None) if request.tools.is_empty() => None,
        other => other.as_ref(),
    };
    if let Some(choice) = choice {
        let c = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), c);
    }
    if let (Some(p), false) = (request.parallel_tool_calls, request.tools.is_empty()) {
        body.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(u) = &request.user {
        body.insert("user".into(), json!(u));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
        // Without it OpenAI reports no usage in streams, and keygate bills by it.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(body).to_string().into_bytes())
}

fn render_response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut s = Map::new();
            s.insert("name".into(), json!(name));
            s.insert("schema".into(), schema.clone());
            if let Some(strict) = strict {
                s.insert("strict".into(), json!(strict));
            }
            json!({"type": "json_schema", "json_schema": s})
        }
    }
}

fn render_image(image: &Image) -> Value {
    let url = match image {
        Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Image::Url(url) => url.clone(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// Text as OpenAI content: a plain string when there is one part.
fn text_content(texts: Vec<&str>) -> Value {
    match texts.as_slice() {
        [one] => json!(one),
        _ => Value::Array(
            texts
                .iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        ),
    }
}

/// A user turn: tool results become `tool` messages, the rest user messages,
/// in their original order.
fn render_user(parts: &[Part], messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    let mut pending: Vec<Value> = Vec::new();
    let flush = |pending: &mut Vec<Value>, messages: &mut Vec<Value>| {
        if pending.is_empty() {
            return;
        }
        let content = match pending.as_slice() {
            [one] if one.get("type") == Some(&json!("text")) => {
                one.get("text").cloned().unwrap_or(Value::Null)
            }
            _ => Value::Array(std::mem::take(pending)),
        };
        pending.clear();
        messages.push(json!({"role": "user", "content": content}));
    };
    for part in parts {
        match part {
            Part::Text(t) => pending.push(json!({"type": "text", "text": t})),
            Part::Image(image) => pending.push(render_image(image)),
            Part::ToolResult(result) => {
                flush(&mut pending, messages);
                let mut texts = Vec::new();
                for p in &result.content {
                    match p {
                        Part::Text(t) => texts.push(t.as_str()),
                        Part::Image(_) => {
                            return Err(unsupported("images in tool results", FORMAT))
                        }
                        _ => return Err(unsupported("tool calls inside tool results", FORMAT)),
                    }
                }
                // OpenAI has no error flag on tool results; the failure is
                // stated in the text the model reads instead of being lost.
                let content = if result.is_error {
                    json!(format!("Error: {}", texts.concat()))
                } else if texts.is_empty() {
                    json!("")
                } else {
                    text_content(texts)
                };
                messages
                    .push(json!({"role": "tool", "tool_call_id": result.id, "content": content}));
            }
            Part::ToolCall(_) => return Err(unsupported("tool calls in user messages", FORMAT)),
        }
    }
    flush(&mut pending, messages);
    Ok(())
}

fn render_assistant(parts: &[Part]) -> Result<Value, TranslateError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => texts.push(t.as_str()),
            Part::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_string()},
            })),
            Part::Image(_) => return Err(unsupported("images in assistant messages", FORMAT)),
            Part::ToolResult(_) => {
                return Err(unsupported("tool results in assistant messages", FORMAT))
            }
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    // OpenAI requires content on an assistant message without tool calls.
    let content = match (texts.is_empty(), calls.is_empty()) {
        (false, _) => text_content(texts),
        (true, true) => json!(""),
        (true, false) => Value::Null,
    };
    m.insert("content".into(), content);
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(m))
}

// ---------------------------------------------------------------------------
// Responses.

fn parse_finish_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("stop") | None => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

fn finish_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::Other(_) => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

fn parse_usage(usage: &Map<String, Value>) -> Usage {
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(Value::as_object)
        .map(|d| up_u64(d, "cached_tokens"))
        .unwrap_or(0);
    Usage {
        // OpenAI's prompt_tokens already include cached tokens, as the IR's do.
        input_tokens: up_u64(usage, "prompt_tokens"),
        output_tokens: up_u64(usage, "completion_tokens"),
        cached_input_tokens: cached,
        cache_creation_input_tokens: 0,
    }
}

fn render_usage(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    })
}

fn upstream_tool_call(call: &Value) -> Result<ToolCall, TranslateError> {
    let bad = || TranslateError::Upstream("malformed tool call".into());
    let c = call.as_object().ok_or_else(bad)?;
    let f = c
        .get("function")
        .and_then(Value::as_object)
        .ok_or_else(bad)?;
    let raw = up_str(f, "arguments").unwrap_or("");
    let arguments = if raw.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(raw).map_err(|e| {
            TranslateError::Upstream(format!("tool call arguments are not JSON: {e}"))
        })?
    };
    Ok(ToolCall {
        id: up_str(c, "id").unwrap_or("").to_string(),
        name: up_str(f, "name").ok_or_else(bad)?.to_string(),
        arguments,
    })
}

/// Parse an upstream's complete Chat Completions answer into the IR.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let root = parse_upstream(body)?;
    if root.contains_key("error") {
        return Err(TranslateError::Upstream("the answer is an error".into()));
    }
    let choice = root
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_object)
        .ok_or_else(|| TranslateError::Upstream("the answer has no choices".into()))?;
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| TranslateError::Upstream("the choice has no message".into()))?;
    let mut content = Vec::new();
    // A refusal is what the model said; it reaches the client as text.
    for key in ["content", "refusal"] {
        if let Some(text) = up_str(message, key) {
            if !text.is_empty() {
                content.push(Part::Text(text.to_string()));
            }
        }
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            content.push(Part::ToolCall(upstream_tool_call(call)?));
        }
    }
    Ok(ChatResponse {
        id: up_str(&root, "id").unwrap_or("").to_string(),
        model: up_str(&root, "model").unwrap_or("").to_string(),
        content,
        stop_reason: parse_finish_reason(up_str(choice, "finish_reason")),
        usage: root
            .get("usage")
            .and_then(Value::as_object)
            .map(parse_usage)
            .unwrap_or_default(),
    })
}

/// Render the IR as a Chat Completions answer for the client.
pub fn render_response(response: &ChatResponse) -> Result<Vec<u8>, TranslateError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for part in &response.content {
        match part {
            Part::Text(t) => texts.push(t.as_str()),
            Part::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_string()},
            })),
            Part::Image(_) => return Err(unsupported("images in answers", FORMAT)),
            Part::ToolResult(_) => return Err(unsupported("tool results in answers", FORMAT)),
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if texts.is_empty() {
            Value::Null
        } else {
            json!(texts.concat())
        },
    );
    message.insert("refusal".into(), Value::Null);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let body = json!({
        "id": response.id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": response.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(&response.stop_reason),
        }],
        "usage": render_usage(&response.usage),
    });
    Ok(body.to_string().into_bytes())
}

// ---------------------------------------------------------------------------
// Streams.

/// Decodes an upstream's Chat Completions SSE stream into IR events.
#[derive(Default)]
pub struct Decoder {
    splitter: sse::Splitter,
    started: bool,
    next_block: usize,
    /// The block receiving deltas; a block's deltas are contiguous, so a
    /// delta for another block closes it.
    open: Option<usize>,
    /// The text block being written, while it is the open block.
    text: Option<usize>,
    /// OpenAI tool call index → IR block index.
    tools: BTreeMap<u64, usize>,
    finished: bool,
    done: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
        self.text = None;
    }

    fn event(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        if data.trim_ascii() == b"[DONE]" {
            if !self.finished {
                // Some compatible servers omit finish_reason; [DONE] still
                // says the answer is complete.
                self.close(out);
                out.push(StreamEvent::Finish {
                    stop_reason: StopReason::EndTurn,
                });
                self.finished = true;
            }
            out.push(StreamEvent::Done);
            self.done = true;
            return Ok(());
        }
        let chunk = parse_upstream(data)?;
        if chunk.contains_key("error") {
            return Err(TranslateError::Upstream(
                "the stream reported an error".into(),
            ));
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        let usage = chunk.get("usage").and_then(Value::as_object);
        if !self.started && choices.is_none_or(|c| c.is_empty()) && usage.is_none() {
            // Azure opens with a choice-less, id-less chunk of content
            // filter results; the answer starts with the next one.
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: up_str(&chunk, "id").unwrap_or("").to_string(),
                model: up_str(&chunk, "model").unwrap_or("").to_string(),
            });
        }
        let choice = choices.and_then(|c| c.first()).and_then(Value::as_object);
        if let Some(choice) = choice {
            self.choice(choice, out)?;
        }
        if let Some(usage) = usage {
            out.push(StreamEvent::Usage(parse_usage(usage)));
        }
        Ok(())
    }

    fn choice(
        &mut self,
        choice: &Map<String, Value>,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), TranslateError> {
        let delta = choice.get("delta").and_then(Value::as_object);
        if let Some(delta) = delta {
            for key in ["content", "refusal"] {
                if let Some(text) = up_str(delta, key).filter(|t| !t.is_empty()) {
                    let index = match self.text {
                        Some(index) => index,
                        None => {
                            self.close(out);
                            let index = self.next_block;
                            self.next_block += 1;
                            self.open = Some(index);
                            self.text = Some(index);
                            index
                        }
                    };
                    out.push(StreamEvent::TextDelta {
                        index,
                        text: text.to_string(),
                    });
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_delta(call, out)?;
                }
            }
        }
        if let Some(reason) = up_str(choice, "finish_reason") {
            self.close(out);
            out.push(StreamEvent::Finish {
                stop_reason: parse_finish_reason(Some(reason)),
            });
            self.finished = true;
        }
        Ok(())
    }

    fn tool_delta(
        &mut self,
        call: &Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), TranslateError> {
        let bad =
            |what: &str| TranslateError::Upstream(format!("malformed tool call delta: {what}"));
        let c = call.as_object().ok_or_else(|| bad("not an object"))?;
        let tool_index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = c.get("function").and_then(Value::as_object);
        let index = match self.tools.get(&tool_index) {
            Some(&index) if self.open == Some(index) => index,
            Some(_) => return Err(bad("deltas of tool calls interleave")),
            None => {
                let name = function
                    .and_then(|f| up_str(f, "name"))
                    .ok_or_else(|| bad("the first fragment has no name"))?;
                self.close(out);
                let index = self.next_block;
                self.next_block += 1;
                self.tools.insert(tool_index, index);
                self.open = Some(index);
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: up_str(c, "id").unwrap_or("").to_string(),
                    name: name.to_string(),
                });
                index
            }
        };
        if let Some(arguments) = function
            .and_then(|f| up_str(f, "arguments"))
            .filter(|a| !a.is_empty())
        {
            out.push(StreamEvent::ToolCallDelta {
                index,
                arguments: arguments.to_string(),
            });
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
        // a stream missing [DONE] fails in the translator.
        self.splitter.remainder();
        Ok(())
    }
}

/// Encodes IR events as a Chat Completions SSE stream for the client.
pub struct Encoder {
    model: String,
    id: String,
    created: u64,
    /// IR block index → OpenAI tool call index.
    tools: BTreeMap<usize, usize>,
    usage: Usage,
}

impl Encoder {
    /// An encoder showing the client `model`.
    pub fn new(model: &str) -> Self {
        Encoder {
            model: model.to_string(),
            id: String::new(),
            created: unix_now(),
            tools: BTreeMap::new(),
            usage: Usage::default(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let data = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        sse_event(out, None, &data);
    }
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        match event {
            StreamEvent::Start { id, .. } => {
                self.id = id.clone();
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            StreamEvent::TextDelta { text, .. } => self.chunk(json!({"content": text}), None, out),
            StreamEvent::ToolCallStart { index, id, name } => {
                let tool = self.tools.len();
                self.tools.insert(*index, tool);
                let delta = json!({"tool_calls": [{
                    "index": tool, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]});
                self.chunk(delta, None, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let tool = self.tools.get(index).copied().ok_or_else(|| {
                    TranslateError::Upstream("tool call arguments before the call".into())
                })?;
                let delta =
                    json!({"tool_calls": [{"index": tool, "function": {"arguments": arguments}}]});
                self.chunk(delta, None, out);
            }
            StreamEvent::BlockStop { .. } => {}
            StreamEvent::Finish { stop_reason } => {
                self.chunk(json!({}), Some(finish_reason(stop_reason)), out)
            }
            // OpenAI reports usage once, in a last chunk without choices.
            StreamEvent::Usage(usage) => super::merge_usage(&mut self.usage, usage),
            StreamEvent::Done => {
                let data = json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": render_usage(&self.usage),
                });
                sse_event(out, None, &data);
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Upstream streams the cross-format harness replays.

    /// Named Chat Completions SSE streams as an upstream sends them.
    pub fn streams() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "openai_text",
                concat!(
                    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
                    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n",
                    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", w\u{f6}rld \u{1f30d}\"},\"finish_reason\":null}]}\n\n",
                    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":5,\"total_tokens\":25,\"prompt_tokens_details\":{\"cached_tokens\":8}}}\n\n",
                    "data: [DONE]\n\n",
                )
                .as_bytes()
                .to_vec(),
            ),
            (
                "openai_tools",
                concat!(
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Checking.\"},\"finish_reason\":null}]}\r\n\r\n",
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\r\n\r\n",
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\r\n\r\n",
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\r\n\r\n",
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":\\\"CET\\\"}\"}}]},\"finish_reason\":null}]}\r\n\r\n",
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\r\n\r\n",
                    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":30,\"total_tokens\":80}}\r\n\r\n",
                    "data: [DONE]\r\n\r\n",
                )
                .as_bytes()
                .to_vec(),
            ),
            (
                "openai_length",
                concat!(
                    ": keep-alive comment\n\n",
                    "data: {\"id\":\"chatcmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Once upon\"},\"finish_reason\":null}]}\n\n",
                    "data: {\"id\":\"chatcmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
                    "data: {\"id\":\"chatcmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
                    "data: [DONE]\n\n",
                )
                .as_bytes()
                .to_vec(),
            ),
        ]
    }
}
