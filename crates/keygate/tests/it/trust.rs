//! Trusted issuers (filled in below).
