//! `keygate scan` driven as a user runs it: the real binary over corpora
//! planted at run time (every fake secret is built here from random
//! characters with the right prefix and length; keygate keys come from the
//! crate's own generator), in working trees and git histories, and
//! `--verify` against a running gateway.

use crate::support::{Backend, TestGateway};
use keygate::mock::MockOptions;
use rand::distr::{Alphanumeric, Distribution, Uniform};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const HEX: &[u8] = b"0123456789abcdef";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn from(alphabet: &[u8], len: usize) -> String {
    let pick = Uniform::new(0, alphabet.len()).unwrap();
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[pick.sample(&mut rng)]))
        .collect()
}

fn alnum(len: usize) -> String {
    Alphanumeric
        .sample_iter(rand::rng())
        .take(len)
        .map(char::from)
        .collect()
}

/// A random value for a generic assignment: letters and digits, and none of
/// the words that mark a placeholder (a 1-in-10,000 chance otherwise).
fn generic_value() -> String {
    loop {
        let value = format!("{}7", alnum(31));
        let lower = value.to_ascii_lowercase();
        if [
            "your", "here", "todo", "fixme", "secret", "token", "sample", "dummy",
        ]
        .iter()
        .all(|w| !lower.contains(w))
        {
            return value;
        }
    }
}

/// One planted secret: the rule that must find it, the secret, the file
/// and the 1-based line it is on.
#[derive(Debug, Clone)]
struct Plant {
    rule: &'static str,
    secret: String,
    file: String,
    line: usize,
}

/// Files and their contents, with every rule's secret planted in them.
fn planted_corpus() -> (Vec<(String, String)>, Vec<Plant>) {
    let keygate = keygate::auth::key::generate("live")
        .expose_secret()
        .to_string();
    let admin = keygate::auth::key::generate("admin")
        .expose_secret()
        .to_string();
    let pem_body: Vec<String> = (0..10).map(|_| from(B64, 64)).collect();
    let singles: Vec<(&'static str, &'static str, String, &'static str)> = vec![
        (
            "keygate-key",
            "app/client.py",
            keygate,
            "client = OpenAI(base_url=URL, api_key=\"{}\")",
        ),
        (
            "keygate-key",
            "ops/admin.sh",
            admin,
            "export KEYGATE_ADMIN_KEY={}",
        ),
        (
            "anthropic-api-key",
            "config/.env",
            format!("sk-ant-api03-{}AA", from(URLSAFE, 93)),
            "ANTHROPIC_API_KEY={}",
        ),
        (
            "anthropic-admin-key",
            "config/admin.env",
            format!("sk-ant-admin01-{}AA", from(URLSAFE, 93)),
            "ANTHROPIC_ADMIN_KEY={}",
        ),
        (
            "openrouter-api-key",
            "src/router.ts",
            format!("sk-or-v1-{}", from(HEX, 64)),
            "const key = '{}';",
        ),
        (
            "openai-project-key",
            "src/openai.js",
            format!("sk-proj-{}T3BlbkFJ{}", from(URLSAFE, 74), from(URLSAFE, 74)),
            "headers: { Authorization: \"Bearer {}\" }",
        ),
        (
            "openai-service-account-key",
            "deploy/values.yaml",
            format!("sk-svcacct-{}", from(URLSAFE, 120)),
            "  openaiKey: {}",
        ),
        (
            "openai-admin-key",
            "scripts/usage.py",
            format!("sk-admin-{}", from(URLSAFE, 100)),
            "ADMIN = \"{}\"",
        ),
        (
            "openai-legacy-key",
            "notebooks/old.ipynb",
            format!("sk-{}", alnum(48)),
            "    \"openai.api_key = '{}'\\n\",",
        ),
        (
            "deepseek-api-key",
            "src/deepseek.go",
            format!("sk-{}", from(HEX, 32)),
            "const apiKey = \"{}\"",
        ),
        (
            "google-api-key",
            "web/index.html",
            format!("AIza{}", from(URLSAFE, 35)),
            "<script src=\"https://maps.googleapis.com/maps/api/js?key={}\"></script>",
        ),
        (
            "groq-api-key",
            "src/groq.rs",
            format!("gsk_{}", alnum(52)),
            "let key = \"{}\";",
        ),
        (
            "xai-api-key",
            "README.md",
            format!("xai-{}", alnum(80)),
            "curl -H 'Authorization: Bearer {}' https://api.x.ai/v1/models",
        ),
        (
            "perplexity-api-key",
            "src/pplx.rb",
            format!("pplx-{}", alnum(48)),
            "PPLX = '{}'",
        ),
        (
            "github-token",
            ".github/workflows/ci.yml",
            format!("ghp_{}", alnum(36)),
            "      GH_PAT: {}",
        ),
        (
            "github-fine-grained-token",
            "docs/setup.txt",
            format!("github_pat_{}_{}", alnum(22), alnum(59)),
            "token {}",
        ),
        (
            "generic-api-key",
            "settings.toml",
            generic_value(),
            "payments_api_key = \"{}\"",
        ),
    ];
    let mut files = Vec::new();
    let mut plants = Vec::new();
    for (rule, file, secret, template) in singles {
        files.push((
            file.to_string(),
            format!(
                "# planted at run time\n\n{}\n",
                template.replace("{}", &secret)
            ),
        ));
        plants.push(Plant {
            rule,
            secret,
            file: file.to_string(),
            line: 3,
        });
    }
    let id = format!("AKIA{}", from(UPPER_DIGITS, 16));
    let aws_secret = format!("{}Ab1", from(B64, 37));
    files.push((
        "home/.aws/credentials".into(),
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {aws_secret}\n"),
    ));
    plants.push(Plant {
        rule: "aws-access-key-id",
        secret: id,
        file: "home/.aws/credentials".into(),
        line: 2,
    });
    plants.push(Plant {
        rule: "aws-secret-access-key",
        secret: aws_secret,
        file: "home/.aws/credentials".into(),
        line: 3,
    });
    files.push((
        "keys/deploy.pem".into(),
        // The armour is assembled here: no tracked line looks like a key's.
        format!(
            "{d}BEGIN RSA PRIVATE KEY{d}\n{}\n{d}END RSA PRIVATE KEY{d}\n",
            pem_body.join("\n"),
            d = "-".repeat(5)
        ),
    ));
    plants.push(Plant {
        rule: "private-key",
        secret: pem_body.concat(),
        file: "keys/deploy.pem".into(),
        line: 1,
    });

    // Look-alikes and placeholders: nothing here may be reported.
    let genuine = keygate::auth::key::generate("live")
        .expose_secret()
        .to_string();
    let mut forged = genuine.into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    files.push((
        "lookalikes.env".into(),
        format!(
            "KEYGATE_API_KEY={forged}\nOTHER=kg_test_{}\nkey = \"kg_live_{}\"\n",
            alnum(38),
            alnum(38)
        ),
    ));
    files.push((
        ".env.example".into(),
        "OPENAI_API_KEY=your-openai-key-here\nANTHROPIC_API_KEY=sk-ant-api03-abc123...\n\
         GEMINI_API_KEY=AIzaSyBabc123...\nGROQ_API_KEY=gsk_abc123def456...\n\
         API_KEY=${OPENAI_API_KEY}\nSECRET=xxxxxxxxxxxxxxxxxxxxxxxx\n"
            .to_string()
            // AWS's documented example id, assembled at run time.
            + &format!("aws_access_key_id = AKIA{}\n", "IOSFODNN7EXAMPLE"),
    ));
    files.push((
        "src/main.rs".into(),
        "fn main() {\n    let token = std::env::var(\"API_TOKEN\").unwrap();\n    println!(\"{token}\");\n}\n".into(),
    ));
    (files, plants)
}

fn write_files(root: &Path, files: &[(String, String)]) {
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Run `keygate scan` in `dir`: exit status, stdout, stderr.
fn scan(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("scan")
        .args(args)
        .current_dir(dir)
        .env_remove("KEYGATE_ADMIN_KEY")
        .env_remove("KEYGATE_URL")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn scan_json(dir: &Path, args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = scan(dir, &all);
    let findings: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, findings.as_array().unwrap().clone(), err)
}

fn places(findings: &[Value]) -> BTreeSet<(String, String, u64)> {
    findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn expected(plants: &[Plant]) -> BTreeSet<(String, String, u64)> {
    plants
        .iter()
        .map(|p| (p.rule.to_string(), p.file.clone(), p.line as u64))
        .collect()
}

fn assert_no_secret_printed(output: &str, plants: &[Plant]) {
    for plant in plants {
        assert!(
            !output.contains(&plant.secret),
            "{} secret printed unmasked",
            plant.rule
        );
    }
}

#[test]
fn every_rule_is_found_in_a_working_tree_and_no_lookalike() {
    let dir = tempfile::tempdir().unwrap();
    let (files, plants) = planted_corpus();
    write_files(dir.path(), &files);
    let (code, findings, err) = scan_json(dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(places(&findings), expected(&plants), "{findings:#?}");
    // Every rule of the scanner has a planted secret here.
    let rules: BTreeSet<&str> = plants.iter().map(|p| p.rule).collect();
    assert_eq!(rules.len(), keygate::scan::RULES.len());
    for finding in &findings {
        let plant = plants
            .iter()
            .find(|p| p.rule == finding["rule"] && p.file == finding["file"])
            .unwrap();
        let masked = finding["secret"].as_str().unwrap();
        let (head, tail) = masked.split_once("...").unwrap();
        assert!(plant.secret.starts_with(head) && plant.secret.ends_with(tail));
        assert!(
            (4..=6).contains(&head.len()) && (2..=4).contains(&tail.len()),
            "{masked}"
        );
        assert_eq!(
            finding["fingerprint"],
            keygate::scan::fingerprint(plant.rule, &plant.secret)
        );
        assert!(finding.get("commit").is_none());
    }
    let (_, text, _) = scan(dir.path(), &[]);
    let (_, sarif, _) = scan(dir.path(), &["--format", "sarif"]);
    for output in [&text, &sarif, &serde_json::to_string(&findings).unwrap()] {
        assert_no_secret_printed(output, &plants);
    }
    assert!(text.contains("app/client.py:3:"), "{text}");
}

#[test]
fn gitignored_binary_and_oversized_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let key = format!("gsk_{}", alnum(52));
    write_files(
        dir.path(),
        &[
            (".gitignore".into(), "secrets.env\nbuild/\n".into()),
            ("secrets.env".into(), format!("GROQ_API_KEY={key}\n")),
            ("build/out.txt".into(), format!("{key}\n")),
            ("big.txt".into(), format!("{}\n{key}\n", "a".repeat(4096))),
        ],
    );
    let mut binary = b"\x7fELF\0\0".to_vec();
    binary.extend_from_slice(key.as_bytes());
    std::fs::write(dir.path().join("tool.bin"), binary).unwrap();
    let (code, findings, err) = scan_json(dir.path(), &["--max-size", "1024"]);
    assert_eq!((code, findings.len()), (0, 0), "{findings:?}");
    assert!(
        err.contains("1 binary") && err.contains("1 over the size cap"),
        "{err}"
    );
    // Without the cap the big file is scanned; with --no-ignore the ignored ones too.
    let (code, findings, _) = scan_json(dir.path(), &[]);
    assert_eq!((code, places(&findings).len()), (1, 1));
    let (_, findings, _) = scan_json(dir.path(), &["--no-ignore"]);
    let files: BTreeSet<&str> = findings
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        BTreeSet::from(["big.txt", "build/out.txt", "secrets.env"])
    );
}

#[test]
fn allowlist_accepts_fingerprints_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let accepted = format!("xai-{}", alnum(80));
    let fixture = format!("pplx-{}", alnum(48));
    let inline = format!("gsk_{}", alnum(52));
    let live = format!("ghp_{}", alnum(36));
    write_files(
        dir.path(),
        &[
            ("a.env".into(), format!("XAI_API_KEY={accepted}\n")),
            ("tests/fixtures/keys.txt".into(), format!("{fixture}\n")),
            (
                "b.py".into(),
                format!("KEY = \"{inline}\"  # keygate:allow\n"),
            ),
            ("c.sh".into(), format!("export GH={live}\n")),
        ],
    );
    let (code, findings, _) = scan_json(dir.path(), &[]);
    assert_eq!((code, findings.len()), (1, 3), "{findings:?}");
    let fingerprint = keygate::scan::fingerprint("xai-api-key", &accepted);
    std::fs::write(
        dir.path().join(".keygate-scan-allow"),
        format!("# accepted: the demo key\n{fingerprint}\ntests/fixtures/**\n"),
    )
    .unwrap();
    let (code, findings, err) = scan_json(dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        places(&findings),
        BTreeSet::from([("github-token".into(), "c.sh".into(), 1)])
    );
    assert!(err.contains("allowlist of 2 entries"), "{err}");
    // An explicit allowlist replaces the default one.
    let other = dir.path().join("other-allow");
    std::fs::write(&other, "c.sh\n").unwrap();
    let (_, findings, _) = scan_json(dir.path(), &["--allowlist", other.to_str().unwrap()]);
    let files: BTreeSet<&str> = findings
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, BTreeSet::from(["a.env", "tests/fixtures/keys.txt"]));
    // A missing or broken allowlist is an error, not a silent pass.
    let (code, _, err) = scan(dir.path(), &["--allowlist", "nope"]);
    assert_eq!(code, 2, "{err}");
    std::fs::write(&other, "src/[a\n").unwrap();
    assert_eq!(
        scan(dir.path(), &["--allowlist", other.to_str().unwrap()]).0,
        2
    );
}

#[test]
fn exit_status_is_0_clean_1_found_2_error() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("ok.txt".into(), "nothing to see\n".into())]);
    let (code, out, _) = scan(dir.path(), &[]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, _) = scan_json(dir.path(), &[]);
    assert_eq!((code, out.len()), (0, 0));
    write_files(
        dir.path(),
        &[("bad.txt".into(), format!("sk-{}\n", from(HEX, 32)))],
    );
    assert_eq!(scan(dir.path(), &["ok.txt"]).0, 0);
    assert_eq!(scan(dir.path(), &["ok.txt", "bad.txt"]).0, 1);
    let (code, _, err) = scan(dir.path(), &["does-not-exist"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does-not-exist"), "{err}");
    // History of a directory that is not a repository.
    assert_eq!(scan(dir.path(), &["--history"]).0, 2);
    assert_eq!(scan(dir.path(), &["--format", "xml"]).0, 2);
}

#[test]
fn sarif_is_2_1_0_with_rules_locations_and_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let (files, plants) = planted_corpus();
    write_files(dir.path(), &files);
    let (code, out, _) = scan(dir.path(), &["--format", "sarif"]);
    assert_eq!(code, 1);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "keygate");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), keygate::scan::RULES.len());
    assert!(rules
        .iter()
        .all(|r| r["shortDescription"]["text"].is_string()));
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), plants.len());
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(result["ruleId"], ids[index]);
        assert_eq!(result["level"], "error");
        assert!(result["message"]["text"].as_str().unwrap().contains("..."));
        let location = &result["locations"][0]["physicalLocation"];
        let uri = location["artifactLocation"]["uri"].as_str().unwrap();
        let line = location["region"]["startLine"].as_u64().unwrap();
        assert!(
            plants
                .iter()
                .any(|p| p.file == uri && p.line as u64 == line),
            "{uri}:{line}"
        );
        assert_eq!(
            result["partialFingerprints"]["keygateSecret/v1"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn history_finds_a_deleted_secret_with_its_commit_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    write_files(root, &[("README.md".into(), "# demo\n".into())]);
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "start"]);
    let key = keygate::auth::key::generate("live")
        .expose_secret()
        .to_string();
    let groq = format!("gsk_{}", alnum(52));
    write_files(
        root,
        &[(
            "app/config.py".into(),
            format!("import os\n\nKEYGATE_KEY = \"{key}\"\nGROQ = \"{groq}\"\n"),
        )],
    );
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "add config"]);
    let leaked = git(root, &["rev-parse", "HEAD"]);
    // A later change to the same file keeps the secrets: still reported
    // once, at the commit that added them.
    write_files(
        root,
        &[(
            "app/config.py".into(),
            format!("import os\nimport sys\n\nKEYGATE_KEY = \"{key}\"\nGROQ = \"{groq}\"\n"),
        )],
    );
    git(root, &["commit", "-qam", "touch config"]);
    write_files(
        root,
        &[(
            "app/config.py".into(),
            "import os\nKEYGATE_KEY = os.environ[\"KEYGATE_KEY\"]\n".into(),
        )],
    );
    git(
        root,
        &["commit", "-qam", "read the key from the environment"],
    );
    // A secret only on another branch, never checked out here.
    git(root, &["checkout", "-qb", "feature"]);
    let xai = format!("xai-{}", alnum(80));
    write_files(root, &[("notes.txt".into(), format!("one\ntwo\n{xai}\n"))]);
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "notes"]);
    let feature = git(root, &["rev-parse", "HEAD"]);
    git(root, &["rm", "-q", "notes.txt"]);
    git(root, &["commit", "-qm", "drop notes"]);
    git(root, &["checkout", "-q", "main"]);

    let (code, findings, _) = scan_json(root, &[]);
    assert_eq!((code, findings.len()), (0, 0), "{findings:?}");
    let (code, findings, err) = scan_json(root, &["--history"]);
    assert_eq!(code, 1, "{err}");
    let got: BTreeSet<(String, String, u64, String)> = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().into(),
                f["file"].as_str().unwrap().into(),
                f["line"].as_u64().unwrap(),
                f["commit"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        BTreeSet::from([
            (
                "keygate-key".into(),
                "app/config.py".into(),
                3,
                leaked.clone()
            ),
            ("groq-api-key".into(), "app/config.py".into(), 4, leaked),
            ("xai-api-key".into(), "notes.txt".into(), 3, feature),
        ])
    );
    assert!(err.contains("commits"), "{err}");
    let (_, text, _) = scan(root, &["--history"]);
    for secret in [&key, &groq, &xai] {
        assert!(!text.contains(secret.as_str()));
    }
    // Paths allowlisted by glob are skipped in history too.
    std::fs::write(root.join(".keygate-scan-allow"), "app/**\n").unwrap();
    let (_, findings, _) = scan_json(root, &["--history"]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["file"], "notes.txt");
}

// The CLI is waited for synchronously: the gateway needs other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_asks_the_gateway_whether_keys_are_live() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, live) = gw.create_key(json!({"name": "live one"})).await;
    let (revoked_id, revoked) = gw.create_key(json!({"name": "leaked one"})).await;
    let response = gw
        .admin(reqwest::Method::POST, &format!("/keys/{revoked_id}/revoke"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let unknown = keygate::auth::key::generate("live")
        .expose_secret()
        .to_string();

    // The route itself: one verdict per key, in order, no secret echoed.
    let asked = [
        live.as_str(),
        revoked.as_str(),
        unknown.as_str(),
        "not a key",
    ];
    let response = gw
        .admin(reqwest::Method::POST, "/keys/lookup")
        .json(&json!({ "keys": asked }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    for secret in [&live, &revoked, &unknown] {
        assert!(!body.contains(secret.as_str()));
    }
    let answer: Value = serde_json::from_str(&body).unwrap();
    let statuses: Vec<&str> = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "revoked", "unknown", "unknown"]);
    assert_eq!(answer["data"][1]["id"], revoked_id.as_str());
    assert!(answer["data"][2].get("id").is_none());
    let too_many: Vec<String> = (0..101).map(|_| unknown.clone()).collect();
    let response = gw
        .admin(reqwest::Method::POST, "/keys/lookup")
        .json(&json!({ "keys": too_many }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = gw
        .admin(reqwest::Method::POST, "/keys/lookup")
        .json(&json!({ "keys": [], "extra": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Data keys may not ask.
    let response = gw
        .http
        .post(format!("{}/admin/v1/keys/lookup", gw.base))
        .bearer_auth(&live)
        .json(&json!({ "keys": [live.as_str()] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // The CLI, against the running gateway.
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("a.env".into(), format!("KEYGATE_API_KEY={live}\n")),
            (
                "b.py".into(),
                format!("old = \"{revoked}\"\nnew = \"{unknown}\"\n"),
            ),
            ("c.env".into(), format!("GROQ_API_KEY=gsk_{}\n", alnum(52))),
        ],
    );
    let (code, findings, err) = scan_json(
        dir.path(),
        &["--verify", "--url", &gw.base, "--admin-key", &gw.admin_key],
    );
    assert_eq!(code, 1, "{err}");
    let verdicts: BTreeSet<(String, u64, Option<String>)> = findings
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().into(),
                f["line"].as_u64().unwrap(),
                f["verified"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        BTreeSet::from([
            ("a.env".into(), 1, Some("live".into())),
            ("b.py".into(), 1, Some("revoked".into())),
            ("b.py".into(), 2, Some("unknown".into())),
            ("c.env".into(), 1, None),
        ])
    );
    let (_, text, _) = scan(
        dir.path(),
        &["--verify", "--url", &gw.base, "--admin-key", &gw.admin_key],
    );
    assert!(
        text.contains("verified: live") && text.contains("verified: revoked"),
        "{text}"
    );
    // The lookups are audited, without the secrets.
    let audit: Value = gw
        .admin(reqwest::Method::GET, "/audit?action=key.lookup")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit_text = audit.to_string();
    assert!(!audit["data"].as_array().unwrap().is_empty(), "{audit}");
    assert!(!audit_text.contains(live.as_str()));
    // An unreachable gateway is an error: the findings are still printed.
    let (code, out, err) = scan(
        dir.path(),
        &[
            "--verify",
            "--url",
            "http://127.0.0.1:9",
            "--admin-key",
            &gw.admin_key,
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(out.contains("a.env:1:"), "{out}");
    gw.finish().await;
}

#[test]
fn staged_scans_what_the_next_commit_would_add() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    write_files(root, &[("README.md".into(), "# demo\n".into())]);
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "start"]);
    let staged = format!("pplx-{}", alnum(48));
    let untracked = format!("gsk_{}", alnum(52));
    write_files(
        root,
        &[
            (
                "src/app.py".into(),
                format!("import os\nPPLX = \"{staged}\"\n"),
            ),
            ("scratch.txt".into(), format!("{untracked}\n")),
        ],
    );
    git(root, &["add", "src/app.py"]);
    // The working copy changes after staging: the index's version counts.
    write_files(root, &[("src/app.py".into(), "import os\n".into())]);
    let (code, findings, err) = scan_json(root, &["--staged"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        places(&findings),
        BTreeSet::from([("perplexity-api-key".into(), "src/app.py".into(), 2)])
    );
    assert!(findings[0].get("commit").is_none());
    git(root, &["reset", "-q", "--", "src/app.py"]);
    let (code, findings, _) = scan_json(root, &["--staged"]);
    assert_eq!((code, findings.len()), (0, 0));
    assert_eq!(scan(root, &["--staged", "--history"]).0, 2);
}
