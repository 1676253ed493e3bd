//! Server-sent events, reassembled from bytes however they were split.

use super::upstream;
use crate::translate::TranslateError;

/// An event larger than this is refused rather than buffered without end.
const MAX_EVENT: usize = 16 << 20;

/// Collects SSE lines into the `data` of complete events.
#[derive(Default)]
pub(super) struct Lines {
    /// Bytes of the line not yet ended.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no line end, so a long line
    /// arriving in many small pieces is not rescanned from its start.
    scanned: usize,
    /// The current event's data lines, joined by `\n`.
    data: Option<String>,
}

impl Lines {
    /// Feed bytes; the data of every event they complete goes to `out`.
    pub(super) fn push(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<String>,
    ) -> Result<(), TranslateError> {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        let mut i = self.scanned.min(self.pending.len());
        while let Some(offset) = self
            .pending
            .get(i..)
            .and_then(|rest| memchr::memchr2(b'\r', b'\n', rest))
        {
            let end = i + offset;
            let next = if self.pending.get(end) == Some(&b'\r') {
                match self.pending.get(end + 1) {
                    // A CR at the end of what arrived may be half of a CRLF.
                    None => break,
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                }
            } else {
                end + 1
            };
            let line = self.pending.get(start..end).unwrap_or_default().to_vec();
            self.line(&line, out)?;
            start = next;
            i = next;
        }
        self.pending.drain(..start.min(self.pending.len()));
        // All that is left is one unended line; a final CR may yet be half
        // of a CRLF, so it is looked at again.
        self.scanned = self.pending.len().saturating_sub(1);
        let buffered = self.pending.len() + self.data.as_ref().map_or(0, String::len);
        if buffered > MAX_EVENT {
            return Err(upstream("a stream event is too large"));
        }
        Ok(())
    }

    /// The stream closed. An event not ended by a blank line is dropped,
    /// as the SSE spec says: it may be cut anywhere, and Google ends every
    /// event properly, so a stream cut mid-event is reported incomplete.
    /// A CR held back as possibly half a CRLF did end its line.
    pub(super) fn finish(&mut self, out: &mut Vec<String>) -> Result<(), TranslateError> {
        let pending = std::mem::take(&mut self.pending);
        self.scanned = 0;
        if let Some(line) = pending.strip_suffix(b"\r") {
            self.line(line, out)?;
        }
        self.data = None;
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<String>) -> Result<(), TranslateError> {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(data);
            }
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = line.get(colon + 1..).unwrap_or_default();
                (
                    line.get(..colon).unwrap_or_default(),
                    value.strip_prefix(b" ").unwrap_or(value),
                )
            }
            None => (line, &b""[..]),
        };
        // Comments (empty field name), `event`, `id` and `retry` carry
        // nothing Gemini uses.
        if field == b"data" {
            let value =
                std::str::from_utf8(value).map_err(|_| upstream("a stream event is not UTF-8"))?;
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
        Ok(())
    }
}
