//! `GET /v1/models`: only the models the credential may use, in OpenAI's
//! list shape, or Anthropic's when the client is the Anthropic SDK.

use super::{arriving, authenticate};
use crate::error::ErrorShape;
use crate::server::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// `GET /v1/models`
pub async fn list_models(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let anthropic_client = req.headers().contains_key("anthropic-version");
    let mut event = arriving("/v1/models", peer, &req, &state.config.trusted_proxies);
    let caller = match authenticate(
        &state,
        req.headers(),
        req.uri().query(),
        peer,
        crate::policy::Scope::Models,
    ) {
        Ok(caller) => caller,
        Err(error) => {
            event.status = error.status.as_u16();
            event.error_code = Some(error.code.to_string());
            state.ledger.record(event).await;
            let shape = if anthropic_client {
                ErrorShape::Anthropic
            } else {
                ErrorShape::OpenAi
            };
            return error.to_response(shape);
        }
    };
    caller.mark(&mut event);
    let key = &caller.key;
    event.status = 200;
    state.ledger.record(event).await;

    // (id as the client would send it, canonical provider/model, owner)
    let mut models: BTreeSet<(String, String, String)> = BTreeSet::new();
    for provider in state
        .registry
        .providers()
        .iter()
        .filter(|p| p.serves_env(&key.env))
    {
        for name in provider.listed_models() {
            models.insert((
                name.to_string(),
                format!("{}/{}", provider.name, name),
                provider.name.clone(),
            ));
        }
    }
    for (alias, canonical) in state.registry.aliases() {
        let owner = canonical.split('/').next().unwrap_or_default().to_string();
        models.insert((alias.to_string(), canonical, owner));
    }
    let allowed: Vec<_> = models
        .into_iter()
        .filter(|(id, canonical, _)| caller.allows_model(id, canonical))
        .collect();

    let body = if anthropic_client {
        let data: Vec<_> = allowed
            .iter()
            .map(|(id, _, _)| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": allowed.first().map(|m| &m.0),
            "last_id": allowed.last().map(|m| &m.0),
        })
    } else {
        let data: Vec<_> = allowed
            .iter()
            .map(|(id, _, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
            .collect();
        json!({"object": "list", "data": data})
    };
    axum::Json(body).into_response()
}
