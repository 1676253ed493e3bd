//! Vertex AI: `POST /v1/projects/{p}/locations/{l}/publishers/google/models/
//! {model}:generateContent` / `:streamGenerateContent` (Gemini bodies, see
//! [`super::gemini`]) and `…/publishers/anthropic/models/{model}:rawPredict`
//! / `:streamRawPredict` (Anthropic Messages bodies without `model` and with
//! `anthropic_version: "vertex-2023-10-16"`). Every request needs a bearer
//! token from the mock's `POST /token`; auth errors are Google-shaped,
//! errors about an Anthropic body Anthropic-shaped.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::api::{self, ApiError, Flavor, Reply};
use super::auth;
use super::control::Shared;
use super::{anthropic, gemini};

fn not_found(message: String) -> Reply {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message,
        param: None,
        code: None,
    }
    .into()
}

pub(super) async fn predict(State(state): State<Arc<Shared>>, request: Request) -> Response {
    api::handle(state, Flavor::Gemini, request, |ctx| {
        if let Err(e) = auth::check_google_bearer(ctx) {
            return e.into();
        }
        // "", v1, projects, p, locations, l, publishers, {publisher}, models, target
        let publisher = ctx.path.split('/').nth(7).unwrap_or_default();
        match publisher {
            "google" => gemini::generate_reply(ctx),
            "anthropic" => {
                let target = auth::form_decode(ctx.path.rsplit('/').next().unwrap_or_default());
                let Some((model, method)) = target.split_once(':') else {
                    return not_found(format!("Method not found: POST {}", ctx.path));
                };
                let reply = match method {
                    "rawPredict" => anthropic::messages_reply(ctx, Some(model), false),
                    "streamRawPredict" => anthropic::messages_reply(ctx, Some(model), true),
                    _ => return not_found(format!("Method not found: {method}")),
                };
                match reply {
                    Reply::Error(e) => {
                        Reply::Raw(api::error_response(Flavor::Anthropic, ctx.state, &e))
                    }
                    other => other,
                }
            }
            _ => not_found(format!(
                "Publisher Model `{}` not found.",
                ctx.path.trim_start_matches('/')
            )),
        }
    })
    .await
}
