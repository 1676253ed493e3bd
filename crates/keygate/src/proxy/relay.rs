//! Relaying an upstream stream to the client as it arrives, metering it on
//! the way. Only the stream's terminal event (`[DONE]`, `message_stop`) is
//! held back until the request's ledger row is committed, so a client that
//! saw a complete stream is always in the ledger.

use super::sse::Splitter;
use super::usage::{EventKind, StreamMeter};
use crate::ledger::{Ledger, UsageEvent};
use crate::translate::Format as Dialect;
use crate::translate::StreamTranslator;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Everything the relay needs besides the upstream response.
pub struct Plan {
    /// Wire format of the stream.
    pub dialect: Dialect,
    /// When the client speaks another format: the translation, which then
    /// also meters the stream.
    pub translator: Option<StreamTranslator>,
    /// Drop OpenAI's usage-only chunk (keygate asked for it, the client did not).
    pub strip_usage_chunk: bool,
    /// Longest silence tolerated from upstream.
    pub idle_timeout: Duration,
    /// What the model costs (`None`: unpriced).
    pub price: Option<crate::ledger::pricing::Price>,
    /// The client's request body: the prompt estimate when the stream ends
    /// before the provider reported usage.
    pub request: Bytes,
    /// Where the request's row goes.
    pub ledger: Ledger,
    /// The request's row so far.
    pub event: UsageEvent,
    /// When the request arrived.
    pub started: Instant,
    /// The request's hold on its limits, settled when the stream ends.
    pub permit: Option<crate::policy::governor::Permit>,
}

enum Outcome {
    Complete,
    ClientGone,
    UpstreamCut,
    UpstreamIdle,
    /// The upstream's stream could not be translated.
    Untranslatable,
}

/// Start relaying; returns the client's response body.
pub fn relay(upstream: reqwest::Response, plan: Plan) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    tokio::spawn(run(upstream, plan, tx));
    Body::from_stream(ReceiverStream::new(rx))
}

async fn run(
    mut upstream: reqwest::Response,
    mut plan: Plan,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut splitter = Splitter::default();
    let mut meter = StreamMeter::new(plan.dialect);
    let mut held = BytesMut::new();
    let mut finished = false;
    let outcome = loop {
        let next = tokio::select! {
            // Dropping `upstream` on the way out cancels the upstream request.
            () = tx.closed() => break Outcome::ClientGone,
            next = tokio::time::timeout(plan.idle_timeout, upstream.chunk()) => next,
        };
        let chunk = match next {
            Err(_) => break Outcome::UpstreamIdle,
            Ok(Err(_)) => break Outcome::UpstreamCut,
            Ok(Ok(None)) => break Outcome::Complete,
            Ok(Ok(Some(chunk))) => chunk,
        };
        if let Some(translator) = plan.translator.as_mut() {
            match translator.push(&chunk) {
                Ok(out) => {
                    if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                        break Outcome::ClientGone;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "upstream stream could not be translated");
                    break Outcome::Untranslatable;
                }
            }
        }
        splitter.push(&chunk);
        let mut out = BytesMut::new();
        while let Some(event) = splitter.next_event() {
            let kind = meter.observe(&event);
            if finished || kind == EventKind::Terminal {
                finished = true;
                held.extend_from_slice(&event);
            } else if !(kind == EventKind::UsageOnly && plan.strip_usage_chunk) {
                out.extend_from_slice(&event);
            }
        }
        if !out.is_empty() && tx.send(Ok(out.freeze())).await.is_err() {
            break Outcome::ClientGone;
        }
    };

    let mut outcome = outcome;
    // A translated stream's end is held by the translator until now.
    if let (Outcome::Complete, Some(translator)) = (&outcome, plan.translator.as_mut()) {
        match translator.finish() {
            Ok(tail) => held.extend_from_slice(&tail),
            Err(error) => {
                tracing::warn!(%error, "upstream stream ended badly");
                outcome = Outcome::Untranslatable;
            }
        }
    }
    let mut event = plan.event;
    let mut tokens = match &plan.translator {
        Some(translator) => super::usage::Tokens::from_ir(&translator.usage()),
        None => meter.tokens(),
    };
    // The prompt was processed even if the stream ended before the
    // provider said how large it was: never bill it as nothing.
    if tokens.prompt == 0 {
        tokens.prompt = super::usage::estimate_prompt_tokens(&plan.request);
    }
    event.prompt_tokens = tokens.prompt;
    event.cached_tokens = tokens.cached;
    event.completion_tokens = tokens.completion;
    event.cost_nanos = plan.price.map_or(0, |p| p.cost(&tokens.count()));
    event.latency_ms = i64::try_from(plan.started.elapsed().as_millis()).unwrap_or(i64::MAX);
    // What was generated is spent, however the stream ended; settled before
    // the ledger row and the stream's last event.
    super::settle(plan.permit.take(), &event).await;
    match outcome {
        Outcome::Complete => {
            held.extend_from_slice(&splitter.remainder());
            plan.ledger.record(event).await;
            if !held.is_empty() {
                let _ = tx.send(Ok(held.freeze())).await;
            }
        }
        Outcome::ClientGone => {
            event.status = 499;
            event.error_code = Some("client_closed_request".into());
            plan.ledger.record(event).await;
        }
        Outcome::UpstreamCut | Outcome::UpstreamIdle | Outcome::Untranslatable => {
            let code = match outcome {
                Outcome::UpstreamIdle => "upstream_stream_timeout",
                Outcome::Untranslatable => "upstream_stream_malformed",
                _ => "upstream_stream_cut",
            };
            event.status = 502;
            event.error_code = Some(code.into());
            plan.ledger.record(event).await;
            // End the client's body with an error so it sees a truncated
            // stream, not a complete one.
            let _ = tx
                .send(Err(std::io::Error::other("upstream stream ended early")))
                .await;
        }
    }
}
