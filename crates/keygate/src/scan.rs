//! `keygate scan`: finds leaked credentials — keygate's own keys
//! (checksum-verified) and every major provider's — in files and in git
//! history.
//!
//! A file is read once; an aho-corasick automaton over every rule's
//! keywords decides which rules' regexes run on it at all ([`rules`]). The
//! working tree is walked in parallel by the `ignore` crate, honouring
//! `.gitignore` ([`walk`]); history is every blob reachable from any ref,
//! each scanned once ([`history`]). Findings carry the secret only in
//! memory: everything printed shows it masked ([`report`]), and accepted
//! findings are listed by fingerprint or path in an allowlist
//! ([`allowlist`]).

pub mod allowlist;
pub mod history;
pub mod report;
pub mod rules;
pub mod walk;

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use zeroize::Zeroizing;

pub use allowlist::Allowlist;
pub use rules::{RuleSet, RULES};

/// Files larger than this are skipped unless `--max-size` says otherwise.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// A file with a NUL byte in its first 8 KiB is binary and skipped.
pub const BINARY_SNIFF: usize = 8 * 1024;
/// A line holding this marker is never reported (`# keygate:allow`).
pub const INLINE_ALLOW: &[u8] = b"keygate:allow";

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A path to scan does not exist or cannot be read.
    #[error("cannot scan {path}: {source}")]
    Path {
        /// The path named on the command line.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The allowlist file cannot be read or has a bad line.
    #[error("allowlist {path}: {message}")]
    Allowlist {
        /// The allowlist file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `git` failed or is missing (history scans).
    #[error("git: {0}")]
    Git(String),
    /// A rule does not compile (a bug).
    #[error(transparent)]
    Rule(#[from] rules::RuleError),
}

/// A secret found, held only in memory and zeroed when dropped; its `Debug`
/// never shows it.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Hold `text`.
    pub fn new(text: String) -> Self {
        Secret(Zeroizing::new(text))
    }

    /// Hold ASCII bytes (rules match ASCII only).
    pub fn from_ascii(bytes: &[u8]) -> Self {
        Secret::new(bytes.iter().map(|&b| char::from(b)).collect())
    }

    /// The secret itself: only for fingerprints and `--verify`, never for
    /// output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret as printed: its first six and last four characters
    /// (first four and last two when shorter than 24), the rest elided.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let (head, tail) = if chars.len() >= 24 {
            (6, 4)
        } else if chars.len() >= 12 {
            (4, 2)
        } else {
            (2, 0)
        };
        let head: String = chars.iter().take(head).collect();
        let tail: String = chars[chars.len().saturating_sub(tail)..].iter().collect();
        format!("{head}...{tail}")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

/// The fingerprint of a finding: SHA-256 over the rule id, a colon and the
/// secret, in hex. Stable across files, lines and commits, so one line of an
/// allowlist accepts a secret wherever it appears; it does not reveal the
/// secret.
pub fn fingerprint(rule: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule.as_bytes());
    hasher.update(b":");
    hasher.update(secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// One secret found.
#[derive(Debug)]
pub struct Finding {
    /// Index into [`RULES`].
    pub rule: usize,
    /// File, as given or walked (working tree), or relative to the
    /// repository root (history).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// The commit that introduced it (history scans).
    pub commit: Option<String>,
    /// [`fingerprint`] of rule and secret.
    pub fingerprint: String,
    /// What a running keygate said about it (`--verify`, keygate keys).
    pub verified: Option<String>,
    /// The secret; never printed unmasked.
    pub secret: Secret,
}

impl Finding {
    /// The rule that found it.
    pub fn rule(&self) -> &'static rules::Rule {
        &RULES[self.rule]
    }
}

/// A secret found in one text, before it is placed in a file or commit.
#[derive(Debug)]
pub struct Located {
    /// Index into [`RULES`].
    pub rule: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
    /// The secret.
    pub secret: Secret,
}

/// Whether `data` looks binary: a NUL byte in its first 8 KiB.
pub fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(BINARY_SNIFF)]).is_some()
}

/// Every secret in `data` with its line and column, skipping lines marked
/// `keygate:allow`.
pub fn scan_text(rules: &RuleSet, data: &[u8]) -> Vec<Located> {
    let hits = rules.scan(data);
    let mut found = Vec::with_capacity(hits.len());
    let (mut line, mut line_start, mut counted) = (1usize, 0usize, 0usize);
    for hit in hits {
        for newline in memchr::memchr_iter(b'\n', &data[counted..hit.start]) {
            line += 1;
            line_start = counted + newline + 1;
        }
        counted = hit.start;
        let line_end =
            memchr::memchr(b'\n', &data[hit.start..]).map_or(data.len(), |i| hit.start + i);
        if memchr::memmem::find(&data[line_start..line_end], INLINE_ALLOW).is_some() {
            continue;
        }
        found.push(Located {
            rule: hit.rule,
            line,
            column: hit.start - line_start + 1,
            secret: hit.secret,
        });
    }
    found
}

/// What a scan read: files (or blobs) scanned and bytes, and what it skipped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Files or blobs scanned.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Skipped: binary.
    pub binary: u64,
    /// Skipped: over the size cap.
    pub too_large: u64,
    /// Skipped: unreadable (reported on stderr).
    pub unreadable: u64,
    /// Commits walked (history scans).
    pub commits: u64,
}

impl Stats {
    /// Add another scan's counts.
    pub fn add(&mut self, other: &Stats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.binary += other.binary;
        self.too_large += other.too_large;
        self.unreadable += other.unreadable;
        self.commits += other.commits;
    }
}

/// Progress of a long scan: a spinner with the bytes scanned and the rate
/// on stderr when it is a terminal, nothing otherwise. Cheap to clone and
/// update from every worker thread.
#[derive(Clone)]
pub struct Progress(indicatif::ProgressBar);

impl Progress {
    /// A progress display: visible only when `show` (stderr is a terminal).
    pub fn new(show: bool) -> Self {
        if !show {
            return Progress::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg}: {bytes} scanned ({bytes_per_sec}), {elapsed}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Progress(bar)
    }

    /// A hidden display (tests, libraries).
    pub fn hidden() -> Self {
        Progress(indicatif::ProgressBar::hidden())
    }

    /// Name the current phase.
    pub fn phase(&self, message: String) {
        self.0.set_message(message);
    }

    /// One file or blob of `bytes` done.
    pub fn inc(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    /// Clear the display.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_shows_only_the_edges() {
        let long = Secret::new("sk-proj-abcdefghijklmnopqrstuvwxyz0123".into());
        assert_eq!(long.masked(), "sk-pro...0123");
        let mid = Secret::new(format!("AKIA{}", "ABCDEFGHIJKLMNOP"));
        assert_eq!(mid.masked(), "AKIA...OP");
        assert_eq!(Secret::new("abc".into()).masked(), "ab...");
        assert_eq!(format!("{long:?}"), "Secret(sk-pro...0123)");
    }

    #[test]
    fn fingerprints_depend_on_rule_and_secret() {
        let a = fingerprint("groq-api-key", "gsk_a");
        assert_eq!(a.len(), 64);
        assert_eq!(a, fingerprint("groq-api-key", "gsk_a"));
        assert_ne!(a, fingerprint("groq-api-key", "gsk_b"));
        assert_ne!(a, fingerprint("xai-api-key", "gsk_a"));
    }

    #[test]
    fn lines_columns_and_inline_allow() {
        let rules = RuleSet::new().unwrap();
        let key = crate::auth::key::generate("live");
        let key = secrecy::ExposeSecret::expose_secret(&key).to_string();
        let text = format!("a\nb\n  K={key}\nK={key} # keygate:allow\n\nX=\"{key}\"\n");
        let found = scan_text(&rules, text.as_bytes());
        let places: Vec<_> = found.iter().map(|f| (f.line, f.column)).collect();
        assert_eq!(places, vec![(3, 5), (6, 4)]);
        assert!(found.iter().all(|f| f.secret.expose() == key));
    }

    #[test]
    fn binary_sniffing() {
        assert!(is_binary(b"abc\0def"));
        assert!(!is_binary(b"abc"));
        let mut late = vec![b'a'; BINARY_SNIFF];
        late.push(0);
        assert!(!is_binary(&late));
    }
}
