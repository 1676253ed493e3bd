//! Webhook bodies. The body of one delivery is the same on every attempt
//! (only the timestamp and signature headers change), so a receiver may
//! deduplicate on its bytes as well as on `x-keygate-delivery`.

use crate::config::WebhookFormat;
use crate::store::AlertRecord;
use serde_json::{json, Value};

/// Version of the `json` document; a field is only ever added within one.
pub const JSON_VERSION: u32 = 1;

/// Longest text in one Slack block (Slack's limit is 3,000 characters).
const SLACK_TEXT_LIMIT: usize = 2_900;
/// Detail fields shown in a Slack message (Slack's limit is 10 per block).
const SLACK_FIELDS: usize = 10;
/// Longest detail value shown in a Slack field.
const SLACK_FIELD_LIMIT: usize = 200;

/// The body of `alert` delivered as `delivery_id`, in `format`.
pub fn render(
    format: WebhookFormat,
    alert: &AlertRecord,
    delivery_id: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let document = match format {
        WebhookFormat::Json => json_document(alert, delivery_id),
        WebhookFormat::Slack => slack_message(alert),
    };
    serde_json::to_vec(&document)
}

/// keygate's own document:
///
/// ```json
/// {"version": 1, "id": "alert_…", "delivery_id": "dlv_…", "kind": "key.rotation_due",
///  "subject": "key_…", "owner": "alice@example.com", "message": "…",
///  "details": {…}, "created_at": "2026-01-01T00:00:00.000Z"}
/// ```
fn json_document(alert: &AlertRecord, delivery_id: &str) -> Value {
    json!({
        "version": JSON_VERSION,
        "id": alert.id,
        "delivery_id": delivery_id,
        "kind": alert.kind,
        "subject": alert.subject,
        "owner": alert.owner,
        "message": alert.message,
        "details": alert.details,
        "created_at": crate::time::rfc3339(alert.created_at),
    })
}

/// Slack's text escaping: `&`, `<` and `>` only. Without it, text such as a
/// key's owner could carry `<!channel>` and notify a whole channel.
fn slack_escape(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit));
    for (count, c) in text.chars().enumerate() {
        if count == limit {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// A Slack-compatible message: `text` (what notifications and clients
/// without blocks show) and `blocks` (the same, laid out, with the details).
fn slack_message(alert: &AlertRecord) -> Value {
    let kind = slack_escape(&alert.kind, 100);
    let message = slack_escape(&alert.message, SLACK_TEXT_LIMIT);
    let mut context = Vec::new();
    if let Some(subject) = &alert.subject {
        context.push(format!("subject: {}", slack_escape(subject, 200)));
    }
    if let Some(owner) = &alert.owner {
        context.push(format!("owner: {}", slack_escape(owner, 200)));
    }
    context.push(format!(
        "{} · {}",
        slack_escape(&alert.id, 100),
        crate::time::rfc3339(alert.created_at)
    ));
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("*{kind}*\n{message}") },
    })];
    if let Value::Object(details) = &alert.details {
        let fields: Vec<Value> = details
            .iter()
            .take(SLACK_FIELDS)
            .map(|(name, value)| {
                let value = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                json!({
                    "type": "mrkdwn",
                    "text": format!(
                        "*{}*\n{}",
                        slack_escape(name, 100),
                        slack_escape(&value, SLACK_FIELD_LIMIT)
                    ),
                })
            })
            .collect();
        if !fields.is_empty() {
            blocks.push(json!({ "type": "section", "fields": fields }));
        }
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }],
    }));
    json!({
        "text": format!("[keygate] {kind}: {message}"),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertRecord {
        AlertRecord {
            id: "alert_1".into(),
            kind: "key.rotation_due".into(),
            subject: Some("key_abc".into()),
            owner: Some("<!channel> & co".into()),
            message: "Key key_abc is 91 days old; rotate it.".into(),
            details: json!({"age_days": 91, "policy": "90d"}),
            dedupe_key: Some("rotation:key_abc:1".into()),
            created_at: 0,
        }
    }

    #[test]
    fn json_document_carries_the_alert_and_delivery() {
        let body = render(WebhookFormat::Json, &alert(), "dlv_9").unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({
                "version": 1,
                "id": "alert_1",
                "delivery_id": "dlv_9",
                "kind": "key.rotation_due",
                "subject": "key_abc",
                "owner": "<!channel> & co",
                "message": "Key key_abc is 91 days old; rotate it.",
                "details": {"age_days": 91, "policy": "90d"},
                "created_at": "1970-01-01T00:00:00.000Z",
            })
        );
        // Rendering is deterministic: retries send the same bytes.
        assert_eq!(
            body,
            render(WebhookFormat::Json, &alert(), "dlv_9").unwrap()
        );
    }

    #[test]
    fn slack_message_has_text_blocks_and_escapes_mentions() {
        let body = render(WebhookFormat::Slack, &alert(), "dlv_9").unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["text"],
            "[keygate] key.rotation_due: Key key_abc is 91 days old; rotate it."
        );
        let blocks = value["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "section");
        assert_eq!(blocks[1]["fields"].as_array().unwrap().len(), 2);
        let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.contains("owner: &lt;!channel&gt; &amp; co"),
            "{context}"
        );
        assert!(!body.windows(10).any(|w| w == b"<!channel>"));
    }

    #[test]
    fn slack_text_is_bounded() {
        let mut long = alert();
        long.message = "x".repeat(10_000);
        long.details = Value::Null;
        let value: Value =
            serde_json::from_slice(&render(WebhookFormat::Slack, &long, "d").unwrap()).unwrap();
        let section = value["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() < 3_000);
        assert_eq!(value["blocks"].as_array().unwrap().len(), 2);
    }
}
