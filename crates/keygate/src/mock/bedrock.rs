//! Bedrock Runtime's Converse API: `POST /model/{modelId}/converse` (JSON)
//! and `POST /model/{modelId}/converse-stream` (AWS event-stream binary
//! frames, `application/vnd.amazon.eventstream`). Every request must carry
//! a valid SigV4 signature for the configured credentials (see
//! [`super::auth::check_sigv4`]). Errors are `{"message"}` with the AWS
//! error type in `x-amzn-errortype`.

use std::sync::Arc;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::extract::{Request, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{self, ApiError, Ctx, Flavor, Reply};
use super::auth;
use super::control::Shared;
use super::sse::Events;
use super::text::{self, Answer, Ask, Finish, Pieces, Text};

/// Content type of a converse-stream response.
pub(super) const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

pub(super) async fn converse(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Bedrock, request, |ctx| {
        if let Err(e) = auth::check_sigv4(ctx) {
            return e.into();
        }
        converse_reply(ctx, ctx.path.ends_with("/converse-stream"))
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest<'a> {
    #[serde(borrow, default)]
    messages: Option<Vec<InputMessage<'a>>>,
    #[serde(borrow, default)]
    system: Option<Text<'a>>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
    #[serde(default)]
    tool_config: Option<Value>,
}

#[derive(Deserialize)]
struct InputMessage<'a> {
    #[serde(borrow, default)]
    role: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stop_sequences: Option<Value>,
}

/// `toolConfig.toolChoice.tool.name`, else the first `toolSpec`'s name.
fn chosen_tool(config: Option<&Value>) -> Option<String> {
    let config = config?;
    let first = config
        .get("tools")?
        .as_array()?
        .iter()
        .find_map(|t| t.get("toolSpec")?.get("name")?.as_str())?;
    let forced = config
        .get("toolChoice")
        .and_then(|c| c.get("tool"))
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str);
    Some(forced.unwrap_or(first).to_owned())
}

fn converse_reply(ctx: &Ctx<'_>, stream: bool) -> Reply {
    let req: ConverseRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return ApiError::bad_json(Flavor::Bedrock, &e).into(),
    };
    let Some(messages) = &req.messages else {
        return ApiError::invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null",
        )
        .into();
    };
    if messages.first().and_then(|m| m.role.as_deref()) != Some("user") {
        return ApiError::invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        )
        .into();
    }
    let config = req.inference_config.as_ref();
    let max = match config.and_then(|c| c.max_tokens) {
        None => None,
        Some(n) if n >= 1 => u64::try_from(n).ok(),
        Some(n) => {
            return ApiError::invalid(format!(
                "1 validation error detected: Value '{n}' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"
            ))
            .into()
        }
    };
    let mut prompt = req.system.as_ref().map_or(0, |s| text::words(&s.0));
    let mut ask = Ask {
        max,
        stop: text::stop_list(config.and_then(|c| c.stop_sequences.as_ref())),
        tool: chosen_tool(req.tool_config.as_ref()),
        ..Ask::default()
    };
    for m in messages {
        let Some(content) = &m.content else { continue };
        prompt += text::words(&content.0);
        if m.role.as_deref() == Some("user") && content.1.tool_result.is_none() {
            ask.last_user = &content.0;
            ask.images = content.1.images;
        }
    }
    ask.tool_result = messages
        .last()
        .and_then(|m| m.content.as_ref())
        .and_then(|c| c.1.tool_result.clone());
    let input = prompt.max(1);
    let answer = text::answer(&ask);
    let output = answer.tokens();
    let stop_reason = match answer.finish() {
        Finish::End => "end_turn",
        Finish::Length => "max_tokens",
        Finish::Stop(_) => "stop_sequence",
        Finish::Tool => "tool_use",
    };
    let tool_id = format!("tooluse_mock_{}", ctx.state.counter());
    let cached = ctx.state.cached_tokens();
    let mut usage = json!({
        "inputTokens": input,
        "outputTokens": output,
        "totalTokens": input + output,
    });
    if cached > 0 {
        usage["cacheReadInputTokens"] = json!(cached);
    }
    let metrics = json!({ "latencyMs": ctx.state.latency_ms() });
    if !stream {
        let block = match &answer {
            Answer::Text { text, .. } => json!({ "text": text }),
            Answer::Tool { name, args, .. } => json!({"toolUse": {
                "toolUseId": tool_id,
                "name": name,
                "input": serde_json::from_str::<Value>(args).unwrap_or(Value::Null),
            }}),
        };
        return api::json(&json!({
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": stop_reason,
            "usage": usage,
            "metrics": metrics,
        }));
    }
    let mut events = Events::new(EVENT_STREAM, 1024);
    let result = (|| -> Result<(), String> {
        frame(&mut events, "messageStart", &json!({"role": "assistant"}))?;
        match &answer {
            Answer::Text { text, .. } => {
                for piece in Pieces::new(text) {
                    frame(
                        &mut events,
                        "contentBlockDelta",
                        &json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                    )?;
                }
            }
            Answer::Tool { name, args, .. } => {
                frame(
                    &mut events,
                    "contentBlockStart",
                    &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}),
                )?;
                for fragment in text::halves(args) {
                    frame(
                        &mut events,
                        "contentBlockDelta",
                        &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": fragment}}}),
                    )?;
                }
            }
        }
        frame(
            &mut events,
            "contentBlockStop",
            &json!({"contentBlockIndex": 0}),
        )?;
        frame(
            &mut events,
            "messageStop",
            &json!({ "stopReason": stop_reason }),
        )?;
        frame(
            &mut events,
            "metadata",
            &json!({"usage": usage, "metrics": metrics}),
        )
    })();
    match result {
        Ok(()) => Reply::Stream(events),
        Err(e) => ApiError::internal(e).into(),
    }
}

/// Append one event-stream message (`:event-type` = `kind`, JSON payload)
/// as its own event.
fn frame(events: &mut Events, kind: &str, payload: &Value) -> Result<(), String> {
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let message = Message::new(body)
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    aws_smithy_eventstream::frame::write_message_to(&message, events.buf())
        .map_err(|e| format!("mock could not frame an event: {e}"))?;
    events.end();
    Ok(())
}
