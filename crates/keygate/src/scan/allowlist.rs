//! Accepted findings: an allowlist file (`.keygate-scan-allow` in a scanned
//! root by default, or `--allowlist FILE`) with one entry a line — a
//! finding's 64-hex-digit fingerprint (that secret under that rule,
//! anywhere), or a path glob (every finding in matching files, e.g.
//! `tests/fixtures/**`). `#` starts a comment.

use super::ScanError;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The default allowlist's name, looked for in each scanned directory.
pub const DEFAULT_FILE: &str = ".keygate-scan-allow";

/// Fingerprints and path globs of accepted findings.
#[derive(Debug, Default)]
pub struct Allowlist {
    fingerprints: HashSet<String>,
    patterns: Vec<String>,
    globs: GlobSet,
}

impl Allowlist {
    /// Read allowlist files (later ones add to earlier ones).
    pub fn load(files: &[PathBuf]) -> Result<Self, ScanError> {
        let mut list = Allowlist::default();
        let mut builder = GlobSetBuilder::new();
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|e| ScanError::Allowlist {
                path: file.clone(),
                message: e.to_string(),
            })?;
            for (number, line) in text.lines().enumerate() {
                let entry = line.split_once('#').map_or(line, |(entry, _)| entry).trim();
                if entry.is_empty() {
                    continue;
                }
                if entry.len() == 64 && entry.bytes().all(|b| b.is_ascii_hexdigit()) {
                    list.fingerprints.insert(entry.to_ascii_lowercase());
                    continue;
                }
                let pattern = entry.trim_start_matches("./");
                let glob = Glob::new(pattern).map_err(|e| ScanError::Allowlist {
                    path: file.clone(),
                    message: format!("line {}: bad glob {pattern:?}: {}", number + 1, e.kind()),
                })?;
                builder.add(glob);
                // A directory name accepts everything below it too.
                if let Ok(below) = Glob::new(&format!("{}/**", pattern.trim_end_matches('/'))) {
                    builder.add(below);
                }
                list.patterns.push(pattern.to_string());
            }
        }
        list.globs = builder.build().map_err(|e| ScanError::Allowlist {
            path: files.first().cloned().unwrap_or_default(),
            message: e.to_string(),
        })?;
        Ok(list)
    }

    /// Whether every finding in `path` (relative to its scanned root) is
    /// accepted.
    pub fn allows_path(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.globs.is_match(path)
    }

    /// Whether a finding with this fingerprint is accepted.
    pub fn allows_fingerprint(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    /// Number of entries (fingerprints and globs).
    pub fn len(&self) -> usize {
        self.fingerprints.len() + self.patterns.len()
    }

    /// Whether it accepts nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_globs_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DEFAULT_FILE);
        let fp = super::super::fingerprint("groq-api-key", "gsk_x");
        std::fs::write(
            &file,
            format!("# accepted\n{fp}  # the demo key\n\ntests/fixtures\n./docs/*.md\n"),
        )
        .unwrap();
        let list = Allowlist::load(&[file]).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.allows_fingerprint(&fp));
        assert!(!list.allows_fingerprint(&"0".repeat(64)));
        assert!(list.allows_path(Path::new("tests/fixtures/a/b.env")));
        assert!(list.allows_path(Path::new("docs/setup.md")));
        assert!(!list.allows_path(Path::new("src/main.rs")));
        assert!(!Allowlist::default().allows_path(Path::new("x")));
    }

    #[test]
    fn bad_globs_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("allow");
        std::fs::write(&file, "src/[a\n").unwrap();
        assert!(Allowlist::load(std::slice::from_ref(&file)).is_err());
        assert!(Allowlist::load(&[dir.path().join("missing")]).is_err());
    }
}
