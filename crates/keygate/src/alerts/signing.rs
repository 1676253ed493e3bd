//! Webhook signatures, as receivers verify them:
//!
//! ```text
//! x-keygate-timestamp: 1767225600
//! x-keygate-signature: v1=<hex HMAC-SHA256(secret, "1767225600." + body)>
//! ```
//!
//! The timestamp is part of what is signed, so a captured request cannot be
//! replayed later with a fresh timestamp; a receiver refuses timestamps far
//! from its own clock ([`verify`] takes the tolerance; five minutes is
//! usual). A future scheme would add `v2=…` beside `v1=…` in the same header
//! (comma-separated), so receivers take any `v1=` entry that verifies.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-keygate-signature";
/// Header carrying the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-keygate-timestamp";
/// Header carrying the delivery id: the same on every retry of one alert to
/// one channel, so a receiver can drop duplicates.
pub const DELIVERY_HEADER: &str = "x-keygate-delivery";
/// Header carrying the alert's kind (`key.rotation_due`), for routing
/// without parsing the body.
pub const KIND_HEADER: &str = "x-keygate-alert-kind";

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The timestamp header is not a whole number of seconds.
    #[error("x-keygate-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (a replay, or a
    /// badly wrong clock).
    #[error("x-keygate-timestamp is outside the accepted window")]
    Stale,
    /// No `v1=` signature in the header.
    #[error("x-keygate-signature has no v1= signature")]
    Missing,
    /// No `v1=` signature matches the body and timestamp under the secret.
    #[error("x-keygate-signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length; the error exists for fixed-key MACs.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `x-keygate-signature` value for `body` sent at `timestamp` (Unix
/// seconds): `v1=` and 64 lowercase hex digits.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, &timestamp.to_string(), body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("v1={digest}")
}

/// Check a delivery as a receiver would: `timestamp` and `signature` are the
/// header values, `body` the raw request body, `now` the receiver's Unix
/// time in seconds. The comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
    tolerance: std::time::Duration,
) -> Result<(), VerifyError> {
    let timestamp = timestamp.trim();
    let sent: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.abs_diff(sent) > tolerance.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let mut found = false;
    for candidate in signature.split(',').map(str::trim) {
        let Some(hex_digest) = candidate.strip_prefix("v1=") else {
            continue;
        };
        found = true;
        let Ok(digest) = hex::decode(hex_digest) else {
            continue;
        };
        if let Some(mac) = mac(secret, timestamp, body) {
            if mac.verify_slice(&digest).is_ok() {
                return Ok(());
            }
        }
    }
    Err(if found {
        VerifyError::Mismatch
    } else {
        VerifyError::Missing
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MINUTES_5: Duration = Duration::from_secs(300);

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Independent of this module: HMAC-SHA256(key, "1700000000.{}"),
        // computed with `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            sign(b"whsec_test", 1_700_000_000, b"{}"),
            "v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn verifies_its_own_signature_and_nothing_else() {
        let body = br#"{"kind":"key.rotation_due"}"#;
        let signature = sign(b"secret-one", 1_700_000_000, body);
        verify(
            b"secret-one",
            "1700000000",
            body,
            &signature,
            1_700_000_100,
            MINUTES_5,
        )
        .unwrap();
        let wrong_secret = verify(
            b"secret-two",
            "1700000000",
            body,
            &signature,
            1_700_000_000,
            MINUTES_5,
        );
        assert_eq!(wrong_secret, Err(VerifyError::Mismatch));
        let other_body = verify(
            b"secret-one",
            "1700000000",
            b"{}",
            &signature,
            1_700_000_000,
            MINUTES_5,
        );
        assert_eq!(other_body, Err(VerifyError::Mismatch));
        // The timestamp is signed: moving it breaks the signature.
        let moved = verify(
            b"secret-one",
            "1700000001",
            body,
            &signature,
            1_700_000_000,
            MINUTES_5,
        );
        assert_eq!(moved, Err(VerifyError::Mismatch));
    }

    #[test]
    fn old_or_malformed_headers_are_refused() {
        let signature = sign(b"s", 1_700_000_000, b"x");
        assert_eq!(
            verify(
                b"s",
                "1700000000",
                b"x",
                &signature,
                1_700_000_301,
                MINUTES_5
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(
                b"s",
                "1700000000",
                b"x",
                &signature,
                1_699_999_699,
                MINUTES_5
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"s", "soon", b"x", &signature, 1_700_000_000, MINUTES_5),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(
                b"s",
                "1700000000",
                b"x",
                "sha256=abc",
                1_700_000_000,
                MINUTES_5
            ),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            verify(b"s", "1700000000", b"x", "v1=zz", 1_700_000_000, MINUTES_5),
            Err(VerifyError::Mismatch)
        );
        // Any v1= entry that verifies is enough (room for several schemes or
        // secrets during a rotation).
        let both = format!("v1=00, {signature}, v2=ff");
        verify(b"s", "1700000000", b"x", &both, 1_700_000_000, MINUTES_5).unwrap();
    }
}
