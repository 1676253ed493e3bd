//! Git history: every blob any commit reachable from any ref introduced,
//! each scanned once, and each secret reported with the oldest commit that
//! added it to that file. Also the index (`--staged`): what the next commit
//! would add.
//!
//! It runs the `git` binary rather than linking a git implementation:
//! `git log --all -m --raw` lists, oldest commit first, every blob each
//! commit added or changed (merges against each parent, so a secret added
//! while resolving a conflict is seen), and one long-lived `git cat-file
//! --batch` streams the distinct blobs to worker threads. That is the
//! same plumbing git's own tools trust, it reads packs, alternates, partial
//! clones and every object format git knows, and it costs no build time.

use super::{
    fingerprint, is_binary, scan_text, Allowlist, Finding, Progress, RuleSet, ScanError, Stats,
};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};

/// A blob to scan and where it first appeared.
#[derive(Debug)]
struct Blob {
    oid: String,
    commit: String,
    path: String,
}

fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        // Never page, never prompt, never read a terminal.
        .env("GIT_PAGER", "cat")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    command
}

fn run_git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, ScanError> {
    let output = git(dir)
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        return Err(ScanError::Git(format!(
            "git {} in {}: {}",
            args.first().copied().unwrap_or_default(),
            dir.display(),
            message.trim()
        )));
    }
    Ok(output.stdout)
}

/// The blobs of `log` output (`--raw -z --format=%x01%H`), each once, in
/// order of first appearance; and the number of commits.
fn parse_log(log: &[u8], allow: &Allowlist) -> (Vec<Blob>, u64) {
    let mut blobs = Vec::new();
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut commits: HashSet<&[u8]> = HashSet::new();
    let mut commit: &[u8] = b"";
    let mut fields = log.split(|&b| b == 0);
    while let Some(field) = fields.next() {
        let field = field.strip_prefix(b"\n").unwrap_or(field);
        if let Some(id) = field.strip_prefix(b"\x01") {
            commit = id;
            commits.insert(id);
            continue;
        }
        let Some(raw) = field.strip_prefix(b":") else {
            continue;
        };
        // `:old_mode new_mode old_oid new_oid status`, then the path.
        let Some(path) = fields.next() else { break };
        let parts: Vec<&[u8]> = raw.split(|&b| b == b' ').collect();
        let [_, new_mode, _, new_oid, status] = parts.as_slice() else {
            continue;
        };
        // Regular files only: not deletions, symlinks or submodules.
        if status.starts_with(b"D") || !new_mode.starts_with(b"100") {
            continue;
        }
        if !seen.insert(new_oid) {
            continue;
        }
        let path = String::from_utf8_lossy(path).into_owned();
        if allow.allows_path(Path::new(&path)) {
            continue;
        }
        blobs.push(Blob {
            oid: String::from_utf8_lossy(new_oid).into_owned(),
            commit: String::from_utf8_lossy(commit).into_owned(),
            path,
        });
    }
    (blobs, commits.len() as u64)
}

/// The directory to run git in and the pathspec for `path` (a file is
/// looked up from its directory).
fn locate(path: &Path) -> Result<(&Path, String), ScanError> {
    let (dir, spec) = if path.is_file() {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        (dir, format!(":(literal){name}"))
    } else {
        (path, ".".to_string())
    };
    run_git(dir, &["rev-parse", "--show-toplevel"])
        .map_err(|_| ScanError::Git(format!("{} is not in a git repository", path.display())))?;
    Ok((dir, spec))
}

/// Scan the history of the repository `path` lies in (limited to `path`
/// when it is a subdirectory or a file).
pub fn scan_history(
    rules: &RuleSet,
    path: &Path,
    allow: &Allowlist,
    max_size: u64,
    threads: usize,
    progress: &Progress,
) -> Result<(Vec<Finding>, Stats), ScanError> {
    let (dir, spec) = locate(path)?;
    let log = run_git(
        dir,
        &[
            "-c",
            "core.quotePath=false",
            "log",
            "--all",
            "-m",
            "--raw",
            "--no-renames",
            "--no-abbrev",
            "--no-color",
            "--no-ext-diff",
            "--reverse",
            "--format=%x01%H",
            "-z",
            "--",
            &spec,
        ],
    )?;
    let (blobs, commits) = parse_log(&log, allow);
    drop(log);
    progress.phase(format!(
        "history: {} blobs in {commits} commits",
        blobs.len()
    ));
    let (findings, mut stats) = scan_blobs(rules, dir, &blobs, max_size, threads, progress)?;
    stats.commits = commits;
    Ok((findings, stats))
}

/// Scan what is staged for the next commit under `path` (the index's
/// version of each added or changed file): what a pre-commit hook checks.
pub fn scan_staged(
    rules: &RuleSet,
    path: &Path,
    allow: &Allowlist,
    max_size: u64,
    threads: usize,
    progress: &Progress,
) -> Result<(Vec<Finding>, Stats), ScanError> {
    let (dir, spec) = locate(path)?;
    let diff = run_git(
        dir,
        &[
            "-c",
            "core.quotePath=false",
            "diff",
            "--cached",
            "--raw",
            "--no-renames",
            "--no-abbrev",
            "--no-color",
            "--no-ext-diff",
            "-z",
            "--",
            &spec,
        ],
    )?;
    let (blobs, _) = parse_log(&diff, allow);
    progress.phase(format!("staged: {} files", blobs.len()));
    scan_blobs(rules, dir, &blobs, max_size, threads, progress)
}

/// Scan each blob once; a secret is reported once per file, at the first
/// blob (the oldest commit) it appears in.
fn scan_blobs(
    rules: &RuleSet,
    dir: &Path,
    blobs: &[Blob],
    max_size: u64,
    threads: usize,
    progress: &Progress,
) -> Result<(Vec<Finding>, Stats), ScanError> {
    let mut stats = Stats::default();
    if blobs.is_empty() {
        return Ok((Vec::new(), stats));
    }

    let mut child = git(dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ScanError::Git(format!("cannot run git cat-file: {e}")))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ScanError::Git("git cat-file has no pipes".into()));
    };
    let oids: Vec<String> = blobs.iter().map(|b| b.oid.clone()).collect();
    let writer = std::thread::spawn(move || {
        for oid in oids {
            if stdin.write_all(oid.as_bytes()).is_err() || stdin.write_all(b"\n").is_err() {
                return;
            }
        }
    });

    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        threads
    };
    let (work, queue) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let queue = Arc::new(Mutex::new(queue));
    let (found_tx, found_rx) = mpsc::channel::<(usize, super::Located)>();
    let read = std::thread::scope(|scope| -> Result<(), ScanError> {
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            let found_tx = found_tx.clone();
            scope.spawn(move || loop {
                let next = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let Ok((index, data)) = next else { return };
                progress.inc(data.len() as u64);
                for located in scan_text(rules, &data) {
                    if found_tx.send((index, located)).is_err() {
                        return;
                    }
                }
            });
        }
        let result = read_blobs(stdout, blobs.len(), max_size, &work, &mut stats);
        drop(work);
        result
    });
    drop(found_tx);
    let _ = writer.join();
    let status = child.wait();
    read?;
    if !status.is_ok_and(|s| s.success()) {
        return Err(ScanError::Git("git cat-file failed".into()));
    }

    // Each secret once per file: at the oldest commit that added it.
    let mut located: Vec<(usize, super::Located)> = found_rx.into_iter().collect();
    located.sort_by_key(|(index, l)| (*index, l.line, l.column));
    let mut reported: HashMap<(String, String), ()> = HashMap::new();
    let mut findings = Vec::new();
    for (index, l) in located {
        let blob = &blobs[index];
        let rule = super::RULES[l.rule].id;
        let print = fingerprint(rule, l.secret.expose());
        if reported
            .insert((print.clone(), blob.path.clone()), ())
            .is_some()
        {
            continue;
        }
        findings.push(Finding {
            rule: l.rule,
            file: blob.path.clone(),
            line: l.line,
            column: l.column,
            commit: (!blob.commit.is_empty()).then(|| blob.commit.clone()),
            fingerprint: print,
            verified: None,
            secret: l.secret,
        });
    }
    Ok((findings, stats))
}

/// Read `count` answers of `git cat-file --batch` and hand the text blobs
/// to the workers.
fn read_blobs(
    stdout: impl Read,
    count: usize,
    max_size: u64,
    work: &mpsc::SyncSender<(usize, Vec<u8>)>,
    stats: &mut Stats,
) -> Result<(), ScanError> {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut header = Vec::new();
    let broken = |what: &str| ScanError::Git(format!("git cat-file: {what}"));
    for index in 0..count {
        header.clear();
        reader
            .read_until(b'\n', &mut header)
            .map_err(|e| broken(&e.to_string()))?;
        let text = String::from_utf8_lossy(&header);
        let parts: Vec<&str> = text.split_whitespace().collect();
        let size: u64 = match parts.as_slice() {
            [_, "blob", size] => size.parse().map_err(|_| broken("bad header"))?,
            [_, "missing"] => {
                stats.unreadable += 1;
                continue;
            }
            _ => return Err(broken("unexpected answer")),
        };
        if size > max_size {
            stats.too_large += 1;
            std::io::copy(&mut (&mut reader).take(size + 1), &mut std::io::sink())
                .map_err(|e| broken(&e.to_string()))?;
            continue;
        }
        let mut data = vec![0u8; usize::try_from(size).map_err(|_| broken("blob too large"))?];
        reader
            .read_exact(&mut data)
            .map_err(|e| broken(&e.to_string()))?;
        let mut newline = [0u8; 1];
        reader
            .read_exact(&mut newline)
            .map_err(|e| broken(&e.to_string()))?;
        if is_binary(&data) {
            stats.binary += 1;
            continue;
        }
        stats.files += 1;
        stats.bytes += size;
        if work.send((index, data)).is_err() {
            return Err(broken("workers stopped"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_parsing_keeps_each_blob_once_and_skips_deletions_and_links() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let z = "0".repeat(40);
        let log = format!(
            "\x01c1\0\n:000000 100644 {z} {a} A\0x y.txt\0:000000 120000 {z} {b} A\0link\0\
             \x01c2\0\n:100644 100644 {a} {b} M\0x y.txt\0:000000 100644 {z} {a} A\0copy.txt\0\
             \x01c3\0\n:100644 000000 {b} {z} D\0x y.txt\0"
        );
        let (blobs, commits) = parse_log(log.as_bytes(), &Allowlist::default());
        assert_eq!(commits, 3);
        let got: Vec<_> = blobs
            .iter()
            .map(|b| (b.oid.as_str(), b.commit.as_str(), b.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(a.as_str(), "c1", "x y.txt"), (b.as_str(), "c2", "x y.txt")]
        );
    }
}
