//! JSON access shared by the codecs: typed reads that name the offending
//! parameter, and the errors every codec raises the same way.

use super::ir::Role;
use super::{Format, TranslateError};
use serde_json::{Map, Value};

/// A client request field the IR cannot carry: refused, never dropped.
pub(super) fn untranslatable(param: &str) -> TranslateError {
    TranslateError::Invalid {
        param: Some(param.to_string()),
        message: format!("parameter '{param}' cannot be translated to another provider's format"),
    }
}

/// A client request field of the wrong shape.
pub(super) fn invalid(param: &str, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid {
        param: Some(param.to_string()),
        message: message.into(),
    }
}

/// A feature the rendered format cannot express.
pub(super) fn unsupported(feature: impl Into<String>, target: Format) -> TranslateError {
    TranslateError::Unsupported {
        feature: feature.into(),
        target,
    }
}

/// Parse a client body into a JSON object.
pub(super) fn parse_body(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TranslateError::Invalid {
            param: None,
            message: "The request body must be a JSON object.".into(),
        }),
        Err(e) => Err(TranslateError::Invalid {
            param: None,
            message: format!("The request body is not valid JSON: {e}."),
        }),
    }
}

/// Parse an upstream body into a JSON object.
pub(super) fn parse_upstream(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TranslateError::Upstream(
            "the answer is not a JSON object".into(),
        )),
        Err(e) => Err(TranslateError::Upstream(format!("invalid JSON: {e}"))),
    }
}

pub(super) fn obj<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, TranslateError> {
    v.as_object()
        .ok_or_else(|| invalid(param, format!("'{param}' must be an object.")))
}

pub(super) fn arr<'a>(v: &'a Value, param: &str) -> Result<&'a Vec<Value>, TranslateError> {
    v.as_array()
        .ok_or_else(|| invalid(param, format!("'{param}' must be an array.")))
}

pub(super) fn string<'a>(v: &'a Value, param: &str) -> Result<&'a str, TranslateError> {
    v.as_str()
        .ok_or_else(|| invalid(param, format!("'{param}' must be a string.")))
}

pub(super) fn number(v: &Value, param: &str) -> Result<f64, TranslateError> {
    v.as_f64()
        .ok_or_else(|| invalid(param, format!("'{param}' must be a number.")))
}

/// A non-negative integer; integral floats (`40.0`, as the Python SDKs send
/// `top_k`) are accepted too.
pub(super) fn unsigned(v: &Value, param: &str) -> Result<u64, TranslateError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= f64::from(u32::MAX) => Ok(f as u64),
        _ => Err(invalid(
            param,
            format!("'{param}' must be a non-negative integer."),
        )),
    }
}

pub(super) fn integer(v: &Value, param: &str) -> Result<i64, TranslateError> {
    v.as_i64()
        .ok_or_else(|| invalid(param, format!("'{param}' must be an integer.")))
}

pub(super) fn owned_string(v: &Value, param: &str) -> Result<String, TranslateError> {
    string(v, param).map(str::to_string)
}

pub(super) fn boolean(v: &Value, param: &str) -> Result<bool, TranslateError> {
    v.as_bool()
        .ok_or_else(|| invalid(param, format!("'{param}' must be a boolean.")))
}

/// A member that must be present (and not null).
pub(super) fn required<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Value, TranslateError> {
    match map.get(key) {
        Some(v) if !v.is_null() => Ok(v),
        _ => {
            let param = join(path, key);
            Err(invalid(&param, format!("'{param}' is required.")))
        }
    }
}

/// A member that may be absent or null.
pub(super) fn optional<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// Whether a member asks for nothing: `null`, `[]` or `{}` (clients echo
/// such defaults back, e.g. `annotations: []` on assistant turns).
pub(super) fn carries_nothing(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Refuse any member outside `allowed` unless it carries nothing.
pub(super) fn only_keys(
    map: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), TranslateError> {
    for (key, value) in map {
        if !carries_nothing(value) && !allowed.contains(&key.as_str()) {
            return Err(untranslatable(&join(path, key)));
        }
    }
    Ok(())
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Upstream JSON access: a member of the wrong shape is the upstream's fault.
pub(super) fn up_str<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

pub(super) fn up_u64(map: &Map<String, Value>, key: &str) -> u64 {
    map.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Unix seconds for `created`. Tests pin it so snapshots and split
/// comparisons do not depend on the clock.
pub(super) fn unix_now() -> u64 {
    if cfg!(test) {
        1_700_000_000
    } else {
        u64::try_from(crate::time::now_ms() / 1000).unwrap_or(0)
    }
}

/// One SSE event carrying `data` (and `event:` when named).
pub(super) fn sse_event(out: &mut Vec<u8>, name: Option<&str>, data: &Value) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Add a turn, merged into the previous one when the same side speaks
/// again: Bedrock requires turns to alternate, and Anthropic and Gemini want
/// one turn's tool results together.
pub(super) fn push_turn(turns: &mut Vec<(Role, Vec<Value>)>, role: Role, mut content: Vec<Value>) {
    match turns.last_mut() {
        Some((last, previous)) if *last == role => previous.append(&mut content),
        _ => turns.push((role, content)),
    }
}

/// The turns as `[{"role": …, <content_key>: […]}]`, the assistant named as
/// the format names it (`assistant`, or Gemini's `model`).
pub(super) fn turns_json(
    turns: Vec<(Role, Vec<Value>)>,
    assistant: &str,
    content_key: &str,
) -> Value {
    Value::Array(
        turns
            .into_iter()
            .map(|(role, content)| {
                let role = match role {
                    Role::User => "user",
                    Role::Assistant => assistant,
                };
                let mut turn = Map::new();
                turn.insert("role".into(), Value::String(role.into()));
                turn.insert(content_key.into(), Value::Array(content));
                Value::Object(turn)
            })
            .collect(),
    )
}
