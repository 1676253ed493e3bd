//! `keygate mock-provider`: a fake upstream speaking the OpenAI (and Azure
//! OpenAI), Anthropic, Gemini (AI Studio and Vertex AI, including Anthropic
//! on Vertex) and Bedrock Converse wire formats (JSON and streaming), with
//! the token endpoints of Azure AD and Google OAuth, settable latency and
//! faults. Tests, demos and benchmarks use it, and `keygate serve` runs one
//! in-process as the offline provider when nothing else is configured. It
//! shares no code with the gateway's translation layer, so tests through it
//! are not circular.
//!
//! Answers are deterministic so that tests can assert on them: the reply to
//! any conversation is `Hello from mock! You said: <last user text, first 200
//! characters>`, and token counts are whitespace-separated words (prompt: all
//! message text, at least 1; completion: words of the reply). Further:
//!
//! - media parts in the last user message (`image_url`, Anthropic `image`,
//!   `inlineData`/`fileData`, Converse `image`) append ` [images: N]`;
//! - stop sequences (`stop`, `stop_sequences`, `stopSequences`,
//!   `inferenceConfig.stopSequences`) cut the reply before the first
//!   occurrence (reason: `stop` / `stop_sequence` with the sequence /
//!   `STOP` / `stop_sequence`); then a token limit (`max_tokens`,
//!   `max_completion_tokens`, `maxOutputTokens`, `inferenceConfig.maxTokens`)
//!   cuts it to that many words (`length` / `max_tokens` / `MAX_TOKENS` /
//!   `max_tokens`);
//! - when the request offers tools and the last message is no tool result,
//!   the answer is one call to the forced tool (`tool_choice`,
//!   `toolConfig`) or else the first offered, with arguments
//!   `{"query": <last user text, first 200 characters>}`, ids
//!   `call_mock_<n>` (OpenAI), `toolu_mock_<n>` (Anthropic),
//!   `tooluse_mock_<n>` (Bedrock), reasons `tool_calls` / `tool_use` /
//!   `STOP` / `tool_use`; streams send the arguments in two fragments;
//! - when the last message carries tool results the reply is
//!   `Tool result: <result text, first 200 characters>`.
//!
//! Credentials: Gemini AI Studio routes need `x-goog-api-key` (or `?key=`);
//! Azure routes `api-version` and `api-key` or an Azure AD bearer token
//! from `POST /{tenant}/oauth2/v2.0/token`; Vertex AI routes a bearer token
//! from `POST /token`; Bedrock routes a valid SigV4 signature. Any key
//! value is accepted unless one is configured through `/_mock/config`.
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
mod auth;
mod bedrock;
pub mod control;
mod gemini;
mod openai;
mod sse;
mod text;
mod vertex;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests_cloud;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests_tools;

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
    /// AWS access key id Bedrock requests must be signed with.
    #[arg(long, env = "KEYGATE_MOCK_AWS_ACCESS_KEY_ID", default_value = DEFAULT_AWS_ACCESS_KEY_ID)]
    pub aws_access_key_id: String,
    /// AWS secret access key Bedrock requests must be signed with.
    #[arg(long, env = "KEYGATE_MOCK_AWS_SECRET_ACCESS_KEY", default_value = DEFAULT_AWS_SECRET_ACCESS_KEY, hide_env_values = true)]
    pub aws_secret_access_key: String,
    /// AWS session token Bedrock requests must carry (`x-amz-security-token`);
    /// none required when unset.
    #[arg(long, env = "KEYGATE_MOCK_AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<String>,
}

/// Access key id of the mock's AWS credentials unless configured.
pub const DEFAULT_AWS_ACCESS_KEY_ID: &str = "keygate-mock-access-key-id";
/// Secret access key of the mock's AWS credentials unless configured.
pub const DEFAULT_AWS_SECRET_ACCESS_KEY: &str = "keygate-mock-aws-secret-access-key";
pub use control::{DEFAULT_AZURE_CLIENT_ID, DEFAULT_AZURE_CLIENT_SECRET};

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            latency_ms: 0,
            chunk_delay_ms: 0,
            aws_access_key_id: DEFAULT_AWS_ACCESS_KEY_ID.to_owned(),
            aws_secret_access_key: DEFAULT_AWS_SECRET_ACCESS_KEY.to_owned(),
            aws_session_token: None,
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
        // Bedrock Runtime (SigV4-signed; the model id may be URL-encoded).
        .route("/model/{model_id}/converse", post(bedrock::converse))
        .route("/model/{model_id}/converse-stream", post(bedrock::converse))
        // Azure AD (client credentials) and Google OAuth (JWT bearer).
        .route("/{tenant}/oauth2/v2.0/token", post(auth::azure_token))
        .route("/token", post(auth::google_token))
        // Vertex AI: `{model}:{method}` is one segment; the publisher is
        // `google` (Gemini body) or `anthropic` (Messages body).
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}",
            post(vertex::predict),
        )
        .route(
            "/v1beta1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}",
            post(vertex::predict),
        )
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
