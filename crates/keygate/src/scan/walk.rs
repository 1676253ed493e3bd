//! The working tree: files under the given paths, walked in parallel by the
//! `ignore` crate (ripgrep's walker) honouring `.gitignore`, `.ignore` and
//! `.git/info/exclude`; hidden files are scanned (`.env` is one), `.git`
//! itself is not. Binary files and files over the size cap are skipped.

use super::{
    fingerprint, is_binary, scan_text, Allowlist, Finding, Progress, RuleSet, ScanError, Stats,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// How the working tree is walked.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Skip files larger than this many bytes.
    pub max_size: u64,
    /// Scan files that `.gitignore` and friends exclude too.
    pub no_ignore: bool,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_size: super::DEFAULT_MAX_SIZE,
            no_ignore: false,
            threads: 0,
        }
    }
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    too_large: AtomicU64,
    unreadable: AtomicU64,
}

/// The path as shown: without a leading `./`.
pub fn display(path: &Path) -> String {
    let shown = path.strip_prefix(".").unwrap_or(path);
    shown.to_string_lossy().into_owned()
}

/// `path` relative to the scanned root it lies under (what allowlist globs
/// match), or as given.
fn relative<'a>(path: &'a Path, roots: &[PathBuf]) -> &'a Path {
    roots
        .iter()
        .filter(|root| root.is_dir())
        .find_map(|root| path.strip_prefix(root).ok())
        .unwrap_or(path)
}

/// Scan every file under `roots`; findings in files the allowlist's globs
/// accept are left out (fingerprints are applied by the caller).
pub fn scan_paths(
    rules: &RuleSet,
    roots: &[PathBuf],
    allow: &Allowlist,
    options: &WalkOptions,
    progress: &Progress,
) -> Result<(Vec<Finding>, Stats), ScanError> {
    let Some((first, rest)) = roots.split_first() else {
        return Ok((Vec::new(), Stats::default()));
    };
    for root in roots {
        std::fs::metadata(root).map_err(|source| ScanError::Path {
            path: root.clone(),
            source,
        })?;
    }
    let mut builder = ignore::WalkBuilder::new(first);
    for root in rest {
        builder.add(root);
    }
    let obey = !options.no_ignore;
    builder
        .hidden(false)
        .parents(obey)
        .ignore(obey)
        .git_ignore(obey)
        .git_global(obey)
        .git_exclude(obey)
        .require_git(false)
        .follow_links(false)
        .threads(options.threads)
        .filter_entry(|entry| entry.file_name() != ".git");
    let counters = Counters::default();
    let (sender, receiver) = mpsc::channel::<Finding>();
    builder.build_parallel().run(|| {
        let sender = sender.clone();
        let counters = &counters;
        Box::new(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    eprintln!("warning: {error}");
                    counters.unreadable.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return ignore::WalkState::Continue;
            }
            let path = entry.path();
            if allow.allows_path(relative(path, roots)) {
                return ignore::WalkState::Continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if size > options.max_size {
                counters.too_large.fetch_add(1, Ordering::Relaxed);
                return ignore::WalkState::Continue;
            }
            let data = match std::fs::read(path) {
                Ok(data) => data,
                Err(error) => {
                    eprintln!("warning: cannot read {}: {error}", path.display());
                    counters.unreadable.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                }
            };
            if is_binary(&data) {
                counters.binary.fetch_add(1, Ordering::Relaxed);
                return ignore::WalkState::Continue;
            }
            counters.files.fetch_add(1, Ordering::Relaxed);
            let len = data.len() as u64;
            counters.bytes.fetch_add(len, Ordering::Relaxed);
            progress.inc(len);
            let found = scan_text(rules, &data);
            if !found.is_empty() {
                let file = display(path);
                for located in found {
                    let rule = super::RULES[located.rule].id;
                    let finding = Finding {
                        rule: located.rule,
                        file: file.clone(),
                        line: located.line,
                        column: located.column,
                        commit: None,
                        fingerprint: fingerprint(rule, located.secret.expose()),
                        verified: None,
                        secret: located.secret,
                    };
                    if sender.send(finding).is_err() {
                        return ignore::WalkState::Quit;
                    }
                }
            }
            ignore::WalkState::Continue
        })
    });
    drop(sender);
    let mut findings: Vec<Finding> = receiver.into_iter().collect();
    findings.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    let stats = Stats {
        files: counters.files.into_inner(),
        bytes: counters.bytes.into_inner(),
        binary: counters.binary.into_inner(),
        too_large: counters.too_large.into_inner(),
        unreadable: counters.unreadable.into_inner(),
        commits: 0,
    };
    Ok((findings, stats))
}
