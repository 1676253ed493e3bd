//! `leak_report_keys`: who may report leaked keys.
//!
//! `KEYGATE_LEAK_REPORT_KEYS` (or `leak_report_keys` in the file) names a
//! JSON file in the shape GitHub publishes its secret-scanning signing keys
//! (`https://api.github.com/meta/public_keys/secret_scanning`):
//! `{"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC
//! KEY-----…", "is_current": true}]}`. Without it, the leak-report endpoint
//! answers 404: nobody can make the gateway revoke keys.

use super::{invalid, ConfigError, Env};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use std::path::PathBuf;

/// A reporter's ECDSA P-256 public key.
#[derive(Clone, Debug)]
pub struct ReporterKey {
    /// What the reporter names it by (`Github-Public-Key-Identifier`).
    pub identifier: String,
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

#[derive(Deserialize)]
struct KeyFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

/// Read the reporter keys the settings name (none when unset).
pub fn validate(file: Option<PathBuf>, env: &dyn Env) -> Result<Vec<ReporterKey>, ConfigError> {
    let setting = "leak_report_keys / KEYGATE_LEAK_REPORT_KEYS";
    let Some(path) = env
        .var("KEYGATE_LEAK_REPORT_KEYS")
        .map(PathBuf::from)
        .or(file)
    else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(setting, format!("{}: {e}", path.display())))?;
    let parsed: KeyFile = serde_json::from_str(&text).map_err(|e| {
        invalid(
            setting,
            format!(
                "{} is not a {{\"public_keys\": [...]}} document: {e}",
                path.display()
            ),
        )
    })?;
    if parsed.public_keys.is_empty() {
        return Err(invalid(
            setting,
            format!("{} lists no keys", path.display()),
        ));
    }
    parsed
        .public_keys
        .into_iter()
        .map(|entry| {
            let body: String = entry
                .key
                .lines()
                .filter(|line| !line.starts_with("-----"))
                .collect();
            let spki_der = B64.decode(body.trim()).map_err(|_| {
                invalid(
                    setting,
                    format!(
                        "the key '{}' is not a PEM public key",
                        crate::error::printable(&entry.key_identifier)
                    ),
                )
            })?;
            // Refused now rather than on the first report.
            aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                &spki_der,
            )
            .map_err(|_| {
                invalid(
                    setting,
                    format!(
                        "the key '{}' is not an ECDSA P-256 public key",
                        crate::error::printable(&entry.key_identifier)
                    ),
                )
            })?;
            Ok(ReporterKey {
                identifier: entry.key_identifier,
                spki_der,
            })
        })
        .collect()
}
