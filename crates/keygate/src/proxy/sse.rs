//! Server-sent events: splitting a byte stream into whole events wherever
//! the network happened to cut it, and reading an event's fields.

use bytes::{Bytes, BytesMut};

/// Accumulates stream bytes and yields complete events (each ending with
/// its blank line), accepting `\n` and `\r\n` line endings.
#[derive(Debug, Default)]
pub struct Splitter {
    buffer: BytesMut,
    /// Bytes of `buffer` already searched for a boundary.
    scanned: usize,
}

impl Splitter {
    /// Add bytes from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<Bytes> {
        // Step back over a boundary that may straddle the previous push.
        let start = self.scanned.saturating_sub(2);
        for offset in memchr::memchr_iter(b'\n', &self.buffer[start..]) {
            let i = start + offset;
            let rest = &self.buffer[i + 1..];
            let end = if rest.first() == Some(&b'\n') {
                Some(i + 2)
            } else if rest.starts_with(b"\r\n") {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = end {
                self.scanned = 0;
                return Some(self.buffer.split_to(end).freeze());
            }
        }
        self.scanned = self.buffer.len();
        None
    }

    /// Whatever is left that never formed a complete event.
    pub fn remainder(&mut self) -> Bytes {
        self.scanned = 0;
        self.buffer.split().freeze()
    }
}

fn field<'a>(event: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    event.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value = line.strip_prefix(name)?.strip_prefix(b":")?;
        Some(value.strip_prefix(b" ").unwrap_or(value))
    })
}

/// The (first) `data:` field of an event.
pub fn data(event: &[u8]) -> Option<&[u8]> {
    field(event, b"data")
}

/// The `event:` field of an event.
pub fn event_name(event: &[u8]) -> Option<&[u8]> {
    field(event, b"event")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> (Vec<Bytes>, Bytes) {
        let mut s = Splitter::default();
        let mut events = Vec::new();
        for chunk in chunks {
            s.push(chunk);
            while let Some(e) = s.next_event() {
                events.push(e);
            }
        }
        (events, s.remainder())
    }

    #[test]
    fn events_survive_any_split_point() {
        let stream: &[u8] =
            b"event: a\ndata: {\"x\":1}\n\ndata: two\r\n\r\ndata: [DONE]\n\npartial";
        let (whole, rest) = split_all(&[stream]);
        assert_eq!(whole.len(), 3);
        assert_eq!(&rest[..], b"partial");
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len() {
                let (events, rest2) =
                    split_all(&[&stream[..cut], &stream[cut..cut2], &stream[cut2..]]);
                assert_eq!(events, whole, "cut at {cut},{cut2}");
                assert_eq!(rest2, rest);
            }
        }
    }

    #[test]
    fn fields_are_read() {
        let e = b"event: message_stop\r\ndata: {\"a\":1}\r\n\r\n";
        assert_eq!(event_name(e), Some(&b"message_stop"[..]));
        assert_eq!(data(e), Some(&b"{\"a\":1}"[..]));
        assert_eq!(data(b"data:[DONE]\n\n"), Some(&b"[DONE]"[..]));
        assert_eq!(event_name(b"data: x\n\n"), None);
    }
}
