//! Credentials: the keygate key format, peppered hashing, the in-memory
//! verification cache and extraction of a credential from a request.

pub mod cache;
pub mod extract;
pub mod key;
pub mod oauth;
pub mod pepper;
pub mod signing;
pub mod token;

pub use cache::{KeyCache, KeyEntry, ModelAllowlist};
pub use key::{KeyKind, ParsedKey};
pub use pepper::KeyHasher;
