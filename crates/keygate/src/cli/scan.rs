//! `keygate scan`: leaked credentials in files and git history. Exit status
//! 0 when nothing is found, 1 when something is, 2 on error — what CI and
//! pre-commit hooks expect.

use super::admin_client::AdminClient;
use super::Target;
use crate::scan::allowlist::{Allowlist, DEFAULT_FILE};
use crate::scan::history::{scan_history, scan_staged};
use crate::scan::report::{write, ReportFormat};
use crate::scan::walk::{scan_paths, WalkOptions};
use crate::scan::{Finding, Progress, RuleSet, Stats, DEFAULT_MAX_SIZE};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Flags of `keygate scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files and directories to scan (default: the current directory).
    paths: Vec<PathBuf>,
    /// Scan git history too: every blob of every commit reachable from any
    /// ref, each finding with the commit that introduced it.
    #[arg(long)]
    history: bool,
    /// Scan only what is staged for the next commit (the index's version of
    /// each added or changed file), not the working tree: for pre-commit
    /// hooks.
    #[arg(long, conflicts_with = "history")]
    staged: bool,
    /// Output format (json: an array of findings; sarif: SARIF 2.1.0).
    #[arg(long, value_enum, default_value_t)]
    format: ReportFormat,
    /// Ask the running keygate (--url, --admin-key) whether each keygate
    /// key found is live, revoked, expired, suspended or unknown.
    #[arg(long)]
    verify: bool,
    /// Allowlist of accepted findings: fingerprints and path globs, one a
    /// line (default: .keygate-scan-allow in each scanned directory).
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Skip files (and blobs) larger than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_SIZE)]
    max_size: u64,
    /// Scan files that .gitignore, .ignore and .git/info/exclude leave out.
    #[arg(long)]
    no_ignore: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Never draw the progress bar (it is drawn only when stderr is a
    /// terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

/// Run the scan; the exit status says what it found.
pub fn run(args: ScanArgs, target: &Target) -> ExitCode {
    match scan(args, target) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether anything was found.
fn scan(args: ScanArgs, target: &Target) -> anyhow::Result<bool> {
    let started = Instant::now();
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let allow_files = match &args.allowlist {
        Some(file) => vec![file.clone()],
        None => paths
            .iter()
            .map(|p| p.join(DEFAULT_FILE))
            .filter(|f| f.is_file())
            .collect(),
    };
    let allow = Allowlist::load(&allow_files)?;
    let rules = RuleSet::new()?;
    let progress = Progress::new(!args.no_progress && std::io::stderr().is_terminal());
    let options = WalkOptions {
        max_size: args.max_size,
        no_ignore: args.no_ignore,
        threads: args.threads,
    };
    let mut repos: Vec<&PathBuf> = Vec::new();
    for path in &paths {
        if !repos.contains(&path) {
            repos.push(path);
        }
    }
    let (mut findings, mut stats) = (Vec::new(), Stats::default());
    if args.staged {
        for repo in &repos {
            let (found, staged_stats) =
                scan_staged(&rules, repo, &allow, args.max_size, args.threads, &progress)?;
            findings.extend(found);
            stats.add(&staged_stats);
        }
    } else {
        progress.phase("working tree".into());
        (findings, stats) = scan_paths(&rules, &paths, &allow, &options, &progress)?;
    }
    if args.history {
        for repo in &repos {
            let (found, history_stats) =
                scan_history(&rules, repo, &allow, args.max_size, args.threads, &progress)?;
            findings.extend(found);
            stats.add(&history_stats);
        }
    }
    progress.finish();
    findings.retain(|f| !allow.allows_fingerprint(&f.fingerprint));

    let verified = if args.verify {
        verify(&mut findings, target)
    } else {
        Ok(())
    };
    let mut out = std::io::stdout().lock();
    write(&mut out, args.format, &findings).context("writing the report")?;
    out.flush().context("writing the report")?;
    summary(&findings, &stats, &allow, started);
    verified?;
    Ok(!findings.is_empty())
}

/// One line on stderr: what was scanned and found.
fn summary(findings: &[Finding], stats: &Stats, allow: &Allowlist, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let mb = stats.bytes as f64 / 1e6;
    let mut line = format!(
        "keygate scan: {} finding{} in {} file{}{} ({mb:.1} MB, {seconds:.2} s, {:.0} MB/s)",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        stats.files,
        if stats.files == 1 { "" } else { "s" },
        if stats.commits > 0 {
            format!(" and blobs of {} commits", stats.commits)
        } else {
            String::new()
        },
        if seconds > 0.0 { mb / seconds } else { 0.0 },
    );
    let skipped: Vec<String> = [
        (stats.binary, "binary"),
        (stats.too_large, "over the size cap"),
        (stats.unreadable, "unreadable"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect();
    if !skipped.is_empty() {
        line.push_str(&format!("; skipped {}", skipped.join(", ")));
    }
    if !allow.is_empty() {
        line.push_str(&format!("; allowlist of {} entries", allow.len()));
    }
    eprintln!("{line}");
}

/// Largest batch `POST /admin/v1/keys/lookup` accepts.
const LOOKUP_BATCH: usize = 100;

/// Ask the gateway about every keygate key found; mark each finding with
/// the answer (`live`, `revoked`, `expired`, `suspended`, `unknown`).
fn verify(findings: &mut [Finding], target: &Target) -> anyhow::Result<()> {
    let keygate = crate::scan::RULES
        .iter()
        .position(|r| r.id == "keygate-key")
        .unwrap_or(usize::MAX);
    let mut secrets: Vec<String> = findings
        .iter()
        .filter(|f| f.rule == keygate)
        .map(|f| f.secret.expose().to_string())
        .collect();
    secrets.sort_unstable();
    secrets.dedup();
    if secrets.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answers = runtime.block_on(async {
        let client = AdminClient::new(target)?;
        let mut answers: Vec<(String, String)> = Vec::with_capacity(secrets.len());
        for batch in secrets.chunks(LOOKUP_BATCH) {
            let answer = client
                .call(
                    reqwest::Method::POST,
                    "/keys/lookup",
                    &[],
                    Some(json!({ "keys": batch })),
                )
                .await
                .context("verifying keygate keys")?;
            let data = answer["data"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(
                data.len() == batch.len(),
                "keygate answered {} verdicts for {} keys",
                data.len(),
                batch.len()
            );
            for (secret, verdict) in batch.iter().zip(data) {
                answers.push((secret.clone(), verdict_of(&verdict)));
            }
        }
        anyhow::Ok(answers)
    })?;
    for finding in findings.iter_mut().filter(|f| f.rule == keygate) {
        finding.verified = answers
            .iter()
            .find(|(secret, _)| secret == finding.secret.expose())
            .map(|(_, verdict)| verdict.clone());
    }
    Ok(())
}

/// `live` for an active key, the status otherwise.
fn verdict_of(answer: &Value) -> String {
    match answer["status"].as_str() {
        Some("active") => "live".into(),
        Some(status) => crate::error::printable(status).chars().take(32).collect(),
        None => "unknown".into(),
    }
}
