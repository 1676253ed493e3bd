//! `keygate mock-provider`: a fake upstream speaking the OpenAI, Anthropic and
//! Gemini wire formats (JSON and streaming), with settable latency and
//! faults. Tests, demos and benchmarks use it, and `keygate serve` runs one
//! in-process as the offline provider when nothing else is configured.
//!
//! Answers are deterministic so that tests can assert on them: the reply to
//! any conversation is `Hello from mock! You said: <last user text, first 200
//! characters>`, and token counts are whitespace-separated words (prompt: all
//! message text, at least 1; completion: words of the reply).
//!
//! Besides the provider routes it has a control API under `/_mock/` (never
//! part of a provider's API): recorded requests, queued faults, live
//! settings and a health check. See [`control`] for its exact shape.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::serve::ListenerExt;

mod anthropic;
mod api;
pub mod control;
mod gemini;
mod openai;
mod sse;
mod text;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

/// Options of `keygate mock-provider`.
#[derive(Clone, Debug, clap::Args)]
pub struct MockOptions {
    /// Address to listen on.
    #[arg(long, env = "KEYGATE_MOCK_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Delay before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Delay between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            latency_ms: 0,
            chunk_delay_ms: 0,
        }
    }
}

/// The mock's whole HTTP surface, state applied. Each call gets its own
/// state (recorded requests, fault queue).
pub fn router(opts: &MockOptions) -> axum::Router {
    let state = Arc::new(control::Shared::new(opts));
    axum::Router::new()
        // OpenAI.
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/responses", post(openai::responses))
        .route("/v1/models", get(openai::models))
        // GET is OpenAI's "retrieve model"; POST is Gemini's v1 (non-beta)
        // `models/{model}:generateContent`. One route, as axum requires.
        .route(
            "/v1/models/{target}",
            get(openai::model).post(gemini::generate),
        )
        // Azure OpenAI: the deployment names the model.
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai::azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(openai::azure_embeddings),
        )
        // Anthropic.
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        // Gemini: `{model}:{method}` is one path segment, split by the handler.
        .route("/v1beta/models", get(gemini::models))
        .route("/v1beta/models/{target}", post(gemini::generate))
        // Control API.
        .route(
            "/_mock/requests",
            get(control::list_requests).delete(control::clear_requests),
        )
        .route(
            "/_mock/faults",
            get(control::list_faults)
                .post(control::add_faults)
                .delete(control::clear_faults),
        )
        .route(
            "/_mock/config",
            get(control::get_config)
                .put(control::set_config)
                .patch(control::set_config)
                .post(control::set_config),
        )
        .route("/_mock/health", get(control::health))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}

/// Bind `opts.listen`, print `mock-provider listening on http://ADDR` on
/// stdout, and serve until the process ends.
pub async fn run(opts: MockOptions) -> anyhow::Result<()> {
    use std::io::Write as _;

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", opts.listen))?;
    let addr = listener.local_addr()?;
    {
        // Tests and scripts wait for this exact line, so it must not sit in
        // a buffer when stdout is a pipe.
        let mut out = std::io::stdout().lock();
        writeln!(out, "mock-provider listening on http://{addr}")?;
        out.flush()?;
    }
    serve_on(listener, opts).await
}

/// Serve the mock on an already-bound listener (e.g. port 0, as `keygate
/// serve` does for its built-in provider). Prints nothing.
pub async fn serve_on(listener: tokio::net::TcpListener, opts: MockOptions) -> anyhow::Result<()> {
    let app = router(&opts);
    // axum leaves Nagle on for accepted sockets, which stalls small
    // keep-alive responses by up to 40 ms; benchmarks would measure that.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
