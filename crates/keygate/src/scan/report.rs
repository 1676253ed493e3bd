//! Findings as text for people, JSON for programs and SARIF 2.1.0 for code
//! scanning dashboards. Every format shows the secret masked.

use super::{Finding, RULES};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Value};
use std::io::Write;

/// Output format of `keygate scan`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// One finding a paragraph, for people.
    #[default]
    Text,
    /// A JSON array of findings.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning, GitLab, Azure DevOps).
    Sarif,
}

/// Write `findings` in `format`.
pub fn write(
    out: &mut impl Write,
    format: ReportFormat,
    findings: &[Finding],
) -> std::io::Result<()> {
    match format {
        ReportFormat::Text => text(out, findings),
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &json_findings(findings))?;
            writeln!(out)
        }
        ReportFormat::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif(findings))?;
            writeln!(out)
        }
    }
}

/// `file:line:column  rule  masked`, then fingerprint, commit and verdict.
fn text(out: &mut impl Write, findings: &[Finding]) -> std::io::Result<()> {
    for finding in findings {
        writeln!(
            out,
            "{}:{}:{}  {}  {}",
            finding.file,
            finding.line,
            finding.column,
            finding.rule().id,
            finding.secret.masked()
        )?;
        let mut details = format!(
            "    {}; fingerprint {}",
            finding.rule().description,
            finding.fingerprint
        );
        if let Some(commit) = &finding.commit {
            details.push_str(&format!("; commit {commit}"));
        }
        if let Some(verified) = &finding.verified {
            details.push_str(&format!("; verified: {verified}"));
        }
        writeln!(out, "{details}")?;
    }
    Ok(())
}

/// One finding as JSON: `rule`, `description`, `file`, `line`, `column`,
/// `secret` (masked), `fingerprint`, and `commit` and `verified` when known.
pub fn json_finding(finding: &Finding) -> Value {
    let mut value = json!({
        "rule": finding.rule().id,
        "description": finding.rule().description,
        "file": finding.file,
        "line": finding.line,
        "column": finding.column,
        "secret": finding.secret.masked(),
        "fingerprint": finding.fingerprint,
    });
    if let Some(commit) = &finding.commit {
        value["commit"] = json!(commit);
    }
    if let Some(verified) = &finding.verified {
        value["verified"] = json!(verified);
    }
    value
}

fn json_findings(findings: &[Finding]) -> Value {
    Value::Array(findings.iter().map(json_finding).collect())
}

/// Characters escaped in a SARIF artifact URI (a relative URI reference).
const URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A SARIF 2.1.0 log: every rule in `tool.driver.rules`, one result per
/// finding with its location, the masked secret in the message and the
/// fingerprint in `partialFingerprints`.
pub fn sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id,
                "shortDescription": {"text": rule.description},
                "fullDescription": {"text": format!("{}. Revoke it at its issuer, replace it, and remove it from the file (and from history).", rule.description)},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["security", "secret"], "precision": "high"},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|finding| {
            let mut message = format!(
                "{} {} found",
                finding.rule().description,
                finding.secret.masked()
            );
            if let Some(commit) = &finding.commit {
                message.push_str(&format!(" in commit {commit}"));
            }
            if let Some(verified) = &finding.verified {
                message.push_str(&format!(" (verified: {verified})"));
            }
            let mut properties = json!({"secret": finding.secret.masked()});
            if let Some(commit) = &finding.commit {
                properties["commit"] = json!(commit);
            }
            if let Some(verified) = &finding.verified {
                properties["verified"] = json!(verified);
            }
            json!({
                "ruleId": finding.rule().id,
                "ruleIndex": finding.rule,
                "level": "error",
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": utf8_percent_encode(&finding.file.replace('\\', "/"), URI).to_string(),
                        },
                        "region": {
                            "startLine": finding.line,
                            "startColumn": finding.column,
                        },
                    },
                }],
                "partialFingerprints": {"keygateSecret/v1": finding.fingerprint},
                "properties": properties,
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "keygate",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/keygate/keygate",
                    "rules": rules,
                },
            },
            "columnKind": "utf16CodeUnits",
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Secret;

    fn finding(commit: Option<&str>) -> Finding {
        let secret = format!("gsk_{}", "Ab3".repeat(17) + "x");
        Finding {
            rule: RULES.iter().position(|r| r.id == "groq-api-key").unwrap(),
            file: "dir name/app.py".into(),
            line: 3,
            column: 7,
            commit: commit.map(String::from),
            fingerprint: crate::scan::fingerprint("groq-api-key", &secret),
            verified: None,
            secret: Secret::new(secret),
        }
    }

    #[test]
    fn no_format_prints_the_secret() {
        let findings = vec![finding(None), finding(Some("abc"))];
        let whole = findings[0].secret.expose().to_string();
        for format in [ReportFormat::Text, ReportFormat::Json, ReportFormat::Sarif] {
            let mut out = Vec::new();
            write(&mut out, format, &findings).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains(&whole), "{format:?}");
            assert!(out.contains("gsk_Ab...Ab3x"), "{format:?}: {out}");
        }
    }

    #[test]
    fn json_and_sarif_shapes() {
        let findings = vec![finding(Some("c0ffee"))];
        let value = json_findings(&findings);
        assert_eq!(value[0]["rule"], "groq-api-key");
        assert_eq!(value[0]["file"], "dir name/app.py");
        assert_eq!(value[0]["line"], 3);
        assert_eq!(value[0]["commit"], "c0ffee");
        assert!(value[0].get("verified").is_none());
        let log = sarif(&findings);
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        assert_eq!(
            run["tool"]["driver"]["rules"].as_array().unwrap().len(),
            RULES.len()
        );
        let result = &run["results"][0];
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            run["tool"]["driver"]["rules"][index]["id"],
            result["ruleId"]
        );
        assert_eq!(
            result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "dir%20name/app.py"
        );
        assert_eq!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
            3
        );
        assert_eq!(
            result["partialFingerprints"]["keygateSecret/v1"],
            findings[0].fingerprint
        );
    }
}
