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

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::control::Shared;
use super::openai::token_limit;
use super::sse::Events;
use super::text::{self, Pieces, Text};

/// Models listed by `GET /v1beta/models`; every other name is served too.
const MODELS: &[&str] = &["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"];

pub(super) async fn models(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Gemini, request, |_| {
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
    api::handle(state, Flavor::Gemini, request, generate_reply).await
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
struct PartOut<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
}

impl UsageMetadata {
    fn new(prompt: u64, candidates: u64) -> Self {
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: prompt + candidates,
        }
    }
}

fn chunk<'a>(
    text: &'a str,
    finish_reason: Option<&'static str>,
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    response_id: &'a str,
) -> GenerateResponse<'a> {
    GenerateResponse {
        candidates: [Candidate {
            content: CandidateContent {
                parts: [PartOut { text }],
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

fn generate_reply(ctx: &Ctx<'_>) -> Reply {
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
    let mut last_user: &str = "";
    for c in contents {
        let Some(parts) = &c.parts else { continue };
        prompt += text::words(&parts.0);
        // A content without a role is the user's (single-turn requests).
        if c.role.as_deref().is_none_or(|r| r == "user") {
            last_user = &parts.0;
        }
    }
    let prompt = prompt.max(1);
    if let Mode::Count = mode {
        return api::json(&serde_json::json!({ "totalTokens": prompt }));
    }
    let limit = match token_limit(
        req.generation_config.and_then(|g| g.max_output_tokens),
        "maxOutputTokens",
    ) {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    let full = text::reply(last_user);
    let (content, completion, cut) = text::generate(&full, limit);
    let finish = if cut { "MAX_TOKENS" } else { "STOP" };
    let id = ctx.state.id("");
    let usage = |candidates| UsageMetadata::new(prompt, candidates);
    let response = |text, finish, candidates| chunk(text, finish, usage(candidates), model, &id);
    if let Mode::Json = mode {
        return api::json(&response(content, Some(finish), completion));
    }

    // One chunk per word, usage cumulative, the last chunk carrying the
    // finish reason (as the real API does).
    let pieces: Vec<&str> = Pieces::new(content).collect();
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
