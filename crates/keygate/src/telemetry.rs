//! Logging: `KEYGATE_LOG` (an env-filter, default `info`) and
//! `KEYGATE_LOG_FORMAT` (`text` or `json`), to standard error. Every line,
//! and every panic message, passes the [`redact`] redactor on its way out.
//! Prometheus metrics are in [`metrics`].

pub mod metrics;
pub mod redact;

use std::io::Write;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once, and the redacting panic hook.
pub fn init() {
    let filter = EnvFilter::try_from_env("KEYGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("KEYGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingWriter::default);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string();
        let _ = writeln!(std::io::stderr(), "{}", redact::redact(&text));
    }));
}

/// One log event's text, written to standard error redacted when the
/// event is complete (the formatter writes each event through one writer).
#[derive(Default)]
pub struct RedactingWriter {
    buffer: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let result = std::io::stderr().write_all(redact::redact(&text).as_bytes());
        self.buffer.clear();
        result
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
