//! Building streamed replies and sending them paced, or cut short.
//!
//! Events are written into one buffer with their boundaries noted. With no
//! pacing and no fault the buffer goes out as one body (cheapest); otherwise
//! it is sliced (no copies) into one chunk per event and sent as a stream,
//! sleeping `chunk_delay_ms` between chunks.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde::Serialize;

/// How long to wait before failing a cut stream, so that the events before
/// the cut are flushed to the socket first: hyper drops the connection
/// as soon as the body fails, and whatever was still buffered with it.
const CUT_GRACE: Duration = Duration::from_millis(5);

/// A streamed reply under construction.
pub(super) struct Events {
    buf: Vec<u8>,
    ends: Vec<usize>,
    content_type: &'static str,
}

impl Events {
    /// Server-sent events.
    pub(super) fn sse(capacity: usize) -> Self {
        Self::new("text/event-stream", capacity)
    }

    /// Any other incrementally sent document (Gemini's JSON array).
    pub(super) fn new(content_type: &'static str, capacity: usize) -> Self {
        Events {
            buf: Vec::with_capacity(capacity),
            ends: Vec::new(),
            content_type,
        }
    }

    /// The buffer to append the current event's bytes to.
    pub(super) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Mark the end of the current event (the unit of pacing and cutting).
    pub(super) fn end(&mut self) {
        if self.ends.last() != Some(&self.buf.len()) {
            self.ends.push(self.buf.len());
        }
    }

    /// Append `event: NAME` (when given) and `data: JSON`, then end the
    /// event with a blank line.
    pub(super) fn event<T: Serialize>(
        &mut self,
        name: Option<&str>,
        data: &T,
    ) -> Result<(), serde_json::Error> {
        if let Some(name) = name {
            self.buf.extend_from_slice(b"event: ");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut self.buf, data)?;
        self.buf.extend_from_slice(b"\n\n");
        self.end();
        Ok(())
    }

    /// Append raw bytes as a complete event.
    pub(super) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.end();
    }

    /// The HTTP response, paced by `delay_ms` between events and, with
    /// `cut` = N, failed after N events so the client sees a truncated
    /// body (the chunked encoding never terminates).
    pub(super) fn into_response(self, delay_ms: u64, cut: Option<usize>) -> Response {
        let Events {
            buf,
            ends,
            content_type,
        } = self;
        let body = if delay_ms == 0 && cut.is_none() {
            Body::from(buf)
        } else {
            let bytes = Bytes::from(buf);
            let mut chunks = Vec::with_capacity(ends.len() + 1);
            let mut start = 0;
            for end in ends {
                chunks.push(bytes.slice(start..end));
                start = end;
            }
            if start < bytes.len() {
                chunks.push(bytes.slice(start..));
            }
            paced(chunks, Duration::from_millis(delay_ms), cut)
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// `chunks` as a streaming body: a pause before each chunk but the first,
/// and with `cut` = N an error instead of chunk N+1 (or instead of the
/// clean end when there are no more).
fn paced(chunks: Vec<Bytes>, delay: Duration, cut: Option<usize>) -> Body {
    struct St {
        chunks: std::vec::IntoIter<Bytes>,
        sent: usize,
        done: bool,
    }
    let start = St {
        chunks: chunks.into_iter(),
        sent: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut st| async move {
        if st.done {
            return None;
        }
        let next = if cut == Some(st.sent) {
            None
        } else {
            st.chunks.next()
        };
        if st.sent > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match next {
            Some(chunk) => {
                st.sent += 1;
                Some((Ok(chunk), st))
            }
            None if cut.is_some() => {
                tokio::time::sleep(CUT_GRACE).await;
                st.done = true;
                Some((Err(io::Error::other("mock-provider fault: stream cut")), st))
            }
            None => None,
        }
    });
    Body::from_stream(stream)
}

/// A JSON document cut short: its first half, then a failed body.
pub(super) fn cut_json(bytes: Bytes) -> Body {
    let half = bytes.slice(..bytes.len() / 2);
    paced(vec![half], Duration::ZERO, Some(1))
}
