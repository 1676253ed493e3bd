//! Alert email over SMTP (`[[alerts.email]]`).
//!
//! One delivery is one message to every recipient of the channel:
//!
//! | header | value |
//! |---|---|
//! | `Subject` | `[keygate] <kind>: <subject>` (`[keygate] <kind>` without a subject) |
//! | `Message-ID` | `<dlv_…@<sender's domain>>`: the same on every retry of this delivery |
//! | `X-Keygate-Delivery` | the delivery id (`dlv_…`), as on webhooks |
//! | `X-Keygate-Alert-Kind` | the alert's kind |
//! | `X-Keygate-Alert-Id` | the alert's id (`alert_…`) |
//! | `Date` | when the alert was raised |
//! | `Auto-Submitted` | `auto-generated` (RFC 3834: no vacation auto-replies) |
//!
//! and a plain-text UTF-8 body with what the JSON webhook document carries
//! ([`text_body`]): the message, then kind, subject, owner, time, alert and
//! delivery ids, and the details one per line. Every attempt renders the
//! same message, so a mail system that deduplicates on `Message-ID` shows a
//! retried delivery once.
//!
//! Each attempt opens its own connection (implicit TLS, STARTTLS required,
//! or plain to a loopback relay), authenticates with AUTH PLAIN or LOGIN
//! when a user is configured, sends, and QUITs. Any failure — connect, TLS,
//! AUTH, a 4xx or 5xx reply, a timeout — is retried on the webhook schedule;
//! what is recorded is a short status (`SMTP 451`, `SMTP 535:
//! authentication refused`, `could not connect: connection refused`), never
//! the server's reply text (it may echo what it was sent) and never the
//! password.

use super::REQUEST_TIMEOUT;
use crate::config::{EmailConfig, SmtpSecurity, SmtpUrl};
use crate::credentials::Credential;
use crate::store::AlertRecord;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{header::Header, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// An email channel ready to send: TLS set up, password resolved.
pub(super) struct EmailTarget {
    smtp: SmtpUrl,
    tls: Tls,
    auth: Option<(String, Credential)>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for EmailTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailTarget")
            .field("smtp", &self.smtp.to_string())
            .field("auth", &self.auth.as_ref().map(|(user, _)| user))
            .field("from", &self.from.email)
            .field("to", &self.to.len())
            .finish()
    }
}

impl EmailTarget {
    /// The channel `config` with its password resolved; `Err` with a
    /// printable reason when TLS cannot be set up for its host.
    pub(super) fn new(
        config: &EmailConfig,
        password: Option<Credential>,
    ) -> Result<EmailTarget, String> {
        let tls = match config.smtp.security() {
            SmtpSecurity::None => Tls::None,
            security => {
                let parameters = TlsParameters::new(config.smtp.host().to_string())
                    .map_err(|e| format!("TLS for {}: {}", config.smtp, describe(&e)))?;
                match security {
                    SmtpSecurity::ImplicitTls => Tls::Wrapper(parameters),
                    _ => Tls::Required(parameters),
                }
            }
        };
        let auth = match (&config.auth, password) {
            (Some((user, _)), Some(password)) => Some((user.clone(), password)),
            _ => None,
        };
        Ok(EmailTarget {
            smtp: config.smtp.clone(),
            tls,
            auth,
            from: config.from.clone(),
            to: config.to.clone(),
        })
    }

    /// `smtps://host:port`, safe for logs.
    pub(super) fn server(&self) -> &SmtpUrl {
        &self.smtp
    }

    /// Recipients.
    pub(super) fn recipients(&self) -> usize {
        self.to.len()
    }

    /// Whether it authenticates.
    pub(super) fn authenticates(&self) -> bool {
        self.auth.is_some()
    }
}

macro_rules! keygate_header {
    ($type:ident, $name:literal) => {
        #[derive(Clone)]
        struct $type(String);

        impl Header for $type {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($type(s.to_string()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

keygate_header!(DeliveryHeader, "X-Keygate-Delivery");
keygate_header!(KindHeader, "X-Keygate-Alert-Kind");
keygate_header!(AlertIdHeader, "X-Keygate-Alert-Id");
keygate_header!(AutoSubmitted, "Auto-Submitted");

/// `[keygate] <kind>: <subject>`, or `[keygate] <kind>`.
pub fn subject(alert: &AlertRecord) -> String {
    match &alert.subject {
        Some(subject) => format!("[keygate] {}: {subject}", alert.kind),
        None => format!("[keygate] {}", alert.kind),
    }
}

/// A detail value on one line: strings as they are (control characters
/// dropped), anything else as compact JSON.
fn detail_value(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars().filter(|c| !c.is_control()).collect()
}

/// The plain-text body: the same facts as the JSON webhook document.
///
/// ```text
/// Key key_abc is 91 days old; rotate it.
///
/// kind:        key.rotation_due
/// subject:     key_abc
/// owner:       alice@example.com
/// raised at:   2026-01-01T00:00:00.000Z
/// alert id:    alert_…
/// delivery id: dlv_…
///
/// details:
///   policy: 90d
///   secret_age_days: 91
/// ```
pub fn text_body(alert: &AlertRecord, delivery_id: &str) -> String {
    let mut body = String::with_capacity(alert.message.len() + 512);
    body.push_str(alert.message.trim_end());
    body.push_str("\n\n");
    // Control characters dropped: a value is one line.
    let mut line = |name: &str, value: &str| {
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        body.push_str(&format!("{:<13}{value}\n", format!("{name}:")));
    };
    line("kind", &alert.kind);
    line("subject", alert.subject.as_deref().unwrap_or("-"));
    line("owner", alert.owner.as_deref().unwrap_or("-"));
    line("raised at", &crate::time::rfc3339(alert.created_at));
    line("alert id", &alert.id);
    line("delivery id", delivery_id);
    match &alert.details {
        Value::Object(details) if details.is_empty() => {}
        Value::Object(details) => {
            body.push_str("\ndetails:\n");
            for (name, value) in details {
                let name: String = name.chars().filter(|c| !c.is_control()).collect();
                body.push_str(&format!("  {name}: {}\n", detail_value(value)));
            }
        }
        Value::Null => {}
        other => body.push_str(&format!("\ndetails: {}\n", detail_value(other))),
    }
    body.push_str("\n-- \nSent by keygate. Replies are not read.\n");
    body
}

/// The message of `alert` delivered as `delivery_id` from `from` to `to`:
/// identical on every attempt.
pub fn message(
    alert: &AlertRecord,
    delivery_id: &str,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<Message, lettre::error::Error> {
    let raised_at = u64::try_from(alert.created_at).unwrap_or(0);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(alert))
        .date(SystemTime::UNIX_EPOCH + Duration::from_millis(raised_at))
        .message_id(Some(format!("<{delivery_id}@{}>", from.email.domain())))
        .header(DeliveryHeader(delivery_id.to_string()))
        .header(KindHeader(alert.kind.clone()))
        .header(AlertIdHeader(alert.id.clone()))
        .header(AutoSubmitted("auto-generated".into()))
        .header(ContentType::TEXT_PLAIN);
    for recipient in to {
        builder = builder.to(recipient.clone());
    }
    builder.body(text_body(alert, delivery_id))
}

/// One attempt: connect, authenticate, send, quit. `Err` is a short
/// printable status.
pub(super) async fn send(
    target: &EmailTarget,
    alert: &AlertRecord,
    delivery_id: &str,
) -> Result<(), String> {
    let email = message(alert, delivery_id, &target.from, &target.to)
        .map_err(|e| format!("could not build the email: {e}"))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.smtp.host())
        .port(target.smtp.port())
        .tls(target.tls.clone())
        .timeout(Some(REQUEST_TIMEOUT));
    if let Some((user, password)) = &target.auth {
        let password = password
            .current()
            .await
            .map_err(|e| format!("SMTP password unavailable: {e}"))?;
        builder = builder
            .credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = builder.build::<Tokio1Executor>();
    match tokio::time::timeout(REQUEST_TIMEOUT, transport.send(email)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

/// What an SMTP reply code means, in a few words.
fn code_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "421" => "service not available",
        "450" | "451" | "452" => "temporarily refused",
        "454" => "TLS or authentication temporarily unavailable",
        "501" | "502" | "503" | "504" => "command refused",
        "530" => "authentication required",
        "534" | "535" => "authentication refused",
        "538" => "encryption required for authentication",
        "550" | "551" | "553" => "address refused",
        "552" => "message too large",
        "554" => "transaction failed",
        _ => return None,
    })
}

/// An SMTP error as a short line: the reply code (never the server's text:
/// it may echo what it was sent), or what failed locally.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    if error.is_timeout() {
        return format!("timed out after {} s", REQUEST_TIMEOUT.as_secs());
    }
    if let Some(code) = error.status() {
        let code = code.to_string();
        return match code_meaning(&code) {
            Some(meaning) => format!("SMTP {code}: {meaning}"),
            None => format!("SMTP {code}"),
        };
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let io_kind = innermost
        .downcast_ref::<std::io::Error>()
        .map(|e| e.kind().to_string());
    if error.is_tls() {
        // rustls' own words (a certificate problem, a handshake alert).
        let cause = crate::error::printable(&innermost.to_string());
        return format!("TLS failed: {cause}");
    }
    if error.is_response() {
        return "unreadable SMTP reply".into();
    }
    if error.is_client() {
        let text = innermost.to_string();
        return if text.contains("STARTTLS") {
            "the server does not offer STARTTLS".into()
        } else if text.contains("authentication mechanism") {
            "the server offers no AUTH PLAIN or LOGIN".into()
        } else if text.contains("not encrypted") {
            "the connection is not encrypted".into()
        } else if text.contains("8BITMIME") || text.contains("SMTPUTF8") {
            "the server does not accept 8-bit mail or addresses".into()
        } else {
            "SMTP client error".into()
        };
    }
    // Connection and network errors: lettre's Display starts with which.
    let what = if error.to_string().starts_with("Connection") {
        "could not connect"
    } else {
        "connection failed"
    };
    match io_kind {
        Some(kind) => format!("{what}: {kind}"),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert() -> AlertRecord {
        AlertRecord {
            id: "alert_1".into(),
            kind: "key.rotation_due".into(),
            subject: Some("key_abc".into()),
            owner: Some("alice@example.com".into()),
            message: "Key key_abc is 91 days old; rotate it.".into(),
            details: json!({"age_days": 91, "policy": "90d", "nested": {"a": [1, 2]}}),
            dedupe_key: None,
            created_at: 1_767_225_600_000,
        }
    }

    fn mailbox(text: &str) -> Mailbox {
        text.parse().unwrap()
    }

    #[test]
    fn the_body_carries_what_the_json_document_does() {
        let body = text_body(&alert(), "dlv_9");
        assert!(body.starts_with("Key key_abc is 91 days old; rotate it.\n\n"));
        for line in [
            "kind:        key.rotation_due\n",
            "subject:     key_abc\n",
            "owner:       alice@example.com\n",
            "raised at:   2026-01-01T00:00:00.000Z\n",
            "alert id:    alert_1\n",
            "delivery id: dlv_9\n",
            "  age_days: 91\n",
            "  policy: 90d\n",
            "  nested: {\"a\":[1,2]}\n",
        ] {
            assert!(body.contains(line), "{line:?} not in\n{body}");
        }
        let mut bare = alert();
        bare.subject = None;
        bare.owner = None;
        bare.details = json!({});
        let body = text_body(&bare, "dlv_9");
        assert!(body.contains("subject:     -\n"), "{body}");
        assert!(!body.contains("details"), "{body}");
        assert_eq!(subject(&bare), "[keygate] key.rotation_due");
        assert_eq!(subject(&alert()), "[keygate] key.rotation_due: key_abc");
    }

    #[test]
    fn the_message_has_stable_ids_and_is_the_same_on_every_render() {
        let from = mailbox("keygate <alerts@example.com>");
        let to = [
            mailbox("oncall@example.com"),
            mailbox("Sec <sec@example.org>"),
        ];
        let render = || {
            String::from_utf8(message(&alert(), "dlv_9", &from, &to).unwrap().formatted()).unwrap()
        };
        let text = render();
        assert_eq!(text, render());
        for header in [
            "Message-ID: <dlv_9@example.com>\r\n",
            "X-Keygate-Delivery: dlv_9\r\n",
            "X-Keygate-Alert-Kind: key.rotation_due\r\n",
            "X-Keygate-Alert-Id: alert_1\r\n",
            "Auto-Submitted: auto-generated\r\n",
            "Subject: [keygate] key.rotation_due: key_abc\r\n",
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
        ] {
            assert!(text.contains(header), "{header:?} not in\n{text}");
        }
        assert!(text.contains("sec@example.org"), "{text}");
    }

    #[test]
    fn header_injection_through_alert_text_is_encoded() {
        let mut evil = alert();
        evil.subject = Some("x\r\nBcc: victim@example.com".into());
        let text = String::from_utf8(
            message(
                &evil,
                "dlv_1",
                &mailbox("a@example.com"),
                &[mailbox("b@example.com")],
            )
            .unwrap()
            .formatted(),
        )
        .unwrap();
        let (headers, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!headers.contains("\r\nBcc:"), "{text}");
        assert!(headers.contains("Subject: [keygate] key.rotation_due: =?utf-8?"));
        assert!(
            body.contains("subject:     xBcc: victim@example.com\r\n"),
            "{body}"
        );
    }

    #[test]
    fn reply_codes_become_short_statuses() {
        assert_eq!(code_meaning("535"), Some("authentication refused"));
        assert_eq!(code_meaning("299"), None);
    }
}
