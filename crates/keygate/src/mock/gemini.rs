//! Gemini wire format: `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` (SSE with `?alt=sse`, else a streamed JSON
//! array), `:countTokens`, and `GET /v1beta/models`. Errors in Google's
//! shape `{"error":{"code","message","status"}}`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::auth;
use super::control::Shared;
use super::openai::token_limit;
use super::sse::Events;
use super::text::{self, Answer, Ask, Finish, Pieces, Text};

/// Models listed by `GET /v1beta/models`; every other name is served too.
const MODELS: &[&str] = &["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"];

pub(super) async fn models(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Gemini, request, |ctx| {
        if let Err(e) = auth::check_gemini_key(ctx) {
            return e.into();
        }
        let models: Vec<_> = MODELS
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": format!("models/{m}"),
                    "version": "001",
                    "displayName": m,
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 65_536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                })
            })
            .collect();
        api::json(&serde_json::json!({ "models": models }))
    })
    .await
}

pub(super) async fn generate(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Gemini, request, |ctx| {
        if let Err(e) = auth::check_gemini_key(ctx) {
            return e.into();
        }
        generate_reply(ctx)
    })
    .await
}

#[derive(Deserialize)]
struct GenerateRequest<'a> {
    #[serde(borrow, default)]
    contents: Option<Vec<Content<'a>>>,
    #[serde(borrow, default, alias = "system_instruction")]
    #[serde(rename = "systemInstruction")]
    system_instruction: Option<Content<'a>>,
    #[serde(default, alias = "generation_config")]
    #[serde(rename = "generationConfig")]
    generation_config: Option<GenerationConfig>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default, alias = "tool_config")]
    #[serde(rename = "toolConfig")]
    tool_config: Option<Value>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parts: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct GenerationConfig {
    #[serde(default, alias = "max_output_tokens")]
    #[serde(rename = "maxOutputTokens")]
    max_output_tokens: Option<i64>,
    #[serde(default, alias = "stop_sequences")]
    #[serde(rename = "stopSequences")]
    stop_sequences: Option<Value>,
}

/// The function the request makes the model call: the first of
/// `allowedFunctionNames` in mode `ANY`, else the first declared; none in
/// mode `NONE`.
fn chosen_tool(tools: Option<&Value>, config: Option<&Value>) -> Option<String> {
    let first = tools?
        .as_array()?
        .iter()
        .filter_map(|t| {
            t.get("functionDeclarations")
                .or_else(|| t.get("function_declarations"))?
                .as_array()
        })
        .flatten()
        .find_map(|d| d.get("name").and_then(Value::as_str))?;
    let calling = config.and_then(|c| {
        c.get("functionCallingConfig")
            .or_else(|| c.get("function_calling_config"))
    });
    let mode = calling
        .and_then(|f| f.get("mode"))
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    let allowed = calling
        .and_then(|f| {
            f.get("allowedFunctionNames")
                .or_else(|| f.get("allowed_function_names"))
        })
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    match mode.as_deref() {
        Some("NONE") => None,
        Some("ANY") => Some(allowed.unwrap_or(first).to_owned()),
        _ => Some(first.to_owned()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    candidates: [Candidate<'a>; 1],
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: CandidateContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct CandidateContent<'a> {
    parts: [PartOut<'a>; 1],
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cached_content_token_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl UsageMetadata {
    fn new(prompt: u64, candidates: u64, cached: u64) -> Self {
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: prompt + candidates,
            cached_content_token_count: cached,
        }
    }
}

fn chunk<'a>(
    part: PartOut<'a>,
    finish_reason: Option<&'static str>,
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    response_id: &'a str,
) -> GenerateResponse<'a> {
    GenerateResponse {
        candidates: [Candidate {
            content: CandidateContent {
                parts: [part],
                role: "model",
            },
            finish_reason,
            index: 0,
        }],
        usage_metadata,
        model_version,
        response_id,
    }
}

fn not_found(message: String) -> Reply {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message,
        param: None,
        code: None,
    }
    .into()
}

/// `{model}:{method}` on the last path segment (AI Studio or Vertex AI).
pub(super) fn generate_reply(ctx: &Ctx<'_>) -> Reply {
    // The last segment is `{model}:{method}`; some clients escape the colon.
    let target = ctx.path.rsplit('/').next().unwrap_or_default();
    let target: Cow<'_, str> = if target.contains("%3A") || target.contains("%3a") {
        Cow::Owned(target.replace("%3A", ":").replace("%3a", ":"))
    } else {
        Cow::Borrowed(target)
    };
    let Some((model, method)) = target.split_once(':') else {
        return not_found(format!("Method not found: POST {}", ctx.path));
    };
    let mode = match method {
        "generateContent" => Mode::Json,
        "streamGenerateContent" if is_sse(ctx.query) => Mode::Sse,
        "streamGenerateContent" => Mode::Array,
        "countTokens" => Mode::Count,
        _ => return not_found(format!("Method not found: {method}")),
    };
    if model.is_empty() {
        return not_found("models/ is not found for API version v1beta".into());
    }
    let req: GenerateRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return ApiError::bad_json(Flavor::Gemini, &e).into(),
    };
    let Some(contents) = &req.contents else {
        return ApiError::invalid("* GenerateContentRequest.contents: contents is not specified")
            .into();
    };
    let mut prompt = req
        .system_instruction
        .as_ref()
        .and_then(|s| s.parts.as_ref())
        .map_or(0, |t| text::words(&t.0));
    let mut ask = Ask::default();
    for c in contents {
        let Some(parts) = &c.parts else { continue };
        prompt += text::words(&parts.0);
        // A content without a role is the user's (single-turn requests).
        if c.role.as_deref().is_none_or(|r| r == "user") && parts.1.tool_result.is_none() {
            ask.last_user = &parts.0;
            ask.images = parts.1.images;
        }
    }
    ask.tool_result = contents
        .last()
        .and_then(|c| c.parts.as_ref())
        .and_then(|p| p.1.tool_result.clone());
    ask.tool = chosen_tool(req.tools.as_ref(), req.tool_config.as_ref());
    let prompt = prompt.max(1);
    if let Mode::Count = mode {
        return api::json(&serde_json::json!({ "totalTokens": prompt }));
    }
    let config = req.generation_config.as_ref();
    ask.max = match token_limit(config.and_then(|g| g.max_output_tokens), "maxOutputTokens") {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    ask.stop = text::stop_list(config.and_then(|g| g.stop_sequences.as_ref()));
    let answer = text::answer(&ask);
    let completion = answer.tokens();
    let finish = match answer.finish() {
        Finish::Length => "MAX_TOKENS",
        Finish::End | Finish::Stop(_) | Finish::Tool => "STOP",
    };
    let cached = ctx.state.cached_tokens();
    let id = ctx.state.id("");
    let usage = |candidates| UsageMetadata::new(prompt, candidates, cached);
    let text_part = |text| PartOut {
        text: Some(text),
        function_call: None,
    };
    let content = match &answer {
        Answer::Text { text, .. } => text.as_str(),
        Answer::Tool { name, args, .. } => {
            let call = serde_json::json!({
                "name": name,
                "args": serde_json::from_str::<Value>(args).unwrap_or(Value::Null),
            });
            let part = PartOut {
                text: None,
                function_call: Some(call),
            };
            let doc = chunk(part, Some(finish), usage(completion), model, &id);
            return match mode {
                Mode::Json => api::json(&doc),
                Mode::Sse => {
                    let mut events = Events::sse(512);
                    let buf = events.buf();
                    buf.extend_from_slice(b"data: ");
                    if let Err(e) = serde_json::to_writer(&mut *buf, &doc) {
                        return e.into();
                    }
                    buf.extend_from_slice(b"\r\n\r\n");
                    events.end();
                    Reply::Stream(events)
                }
                _ => {
                    let mut events = Events::new("application/json", 512);
                    let buf = events.buf();
                    buf.push(b'[');
                    if let Err(e) = serde_json::to_writer(&mut *buf, &doc) {
                        return e.into();
                    }
                    buf.push(b']');
                    events.end();
                    Reply::Stream(events)
                }
            };
        }
    };
    let response =
        |text, finish, candidates| chunk(text_part(text), finish, usage(candidates), model, &id);
    if let Mode::Json = mode {
        return api::json(&response(content, Some(finish), completion));
    }

    // One chunk per word, usage cumulative, the last chunk carrying the
    // finish reason (as the real API does).
    let mut pieces: Vec<&str> = Pieces::new(content).collect();
    if pieces.is_empty() {
        // Cut before any text (a stop sequence at the start): one empty
        // chunk still carries the finish reason and usage.
        pieces.push("");
    }
    let mut events = match mode {
        Mode::Sse => Events::sse(256 * (pieces.len() + 1)),
        _ => Events::new("application/json", 256 * (pieces.len() + 1)),
    };
    let last = pieces.len().saturating_sub(1);
    let mut so_far = 0;
    for (i, piece) in pieces.iter().enumerate() {
        if !piece.trim().is_empty() {
            so_far += 1;
        }
        let chunk = response(piece, (i == last).then_some(finish), so_far);
        let buf = events.buf();
        let written = match mode {
            // Google frames its SSE events with CRLF line ends.
            Mode::Sse => {
                buf.extend_from_slice(b"data: ");
                let r = serde_json::to_writer(&mut *buf, &chunk);
                buf.extend_from_slice(b"\r\n\r\n");
                r
            }
            _ => {
                buf.extend_from_slice(if i == 0 { b"[" } else { b",\r\n" });
                let r = serde_json::to_writer(&mut *buf, &chunk);
                if i == last {
                    buf.push(b']');
                }
                r
            }
        };
        if let Err(e) = written {
            return e.into();
        }
        events.end();
    }
    Reply::Stream(events)
}

#[derive(Clone, Copy)]
enum Mode {
    Json,
    Sse,
    Array,
    Count,
}

fn is_sse(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
}
