//! Stored provider credentials through the real router, on SQLite and
//! PostgreSQL: metadata only in every answer, only ciphertext in the
//! database, admin credentials only, and no body makes a 500.

use crate::support::{error_code, Backend, TestGateway, BACKENDS};
use keygate::credentials::{Credential, CredentialSpec, ResolveContext};
use keygate::mock::MockOptions;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::BTreeMap;

const SECRET_1: &str = "upstream-FIRSTfirstFIRSTfirst0001";
const SECRET_2: &str = "upstream-SECONDsecondSECOND0002";

/// Every text the database holds about provider credentials, raw.
async fn raw_rows(gw: &TestGateway) -> Vec<u8> {
    match gw.state.config.database_url_secret() {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT row_to_json(t)::text FROM provider_credentials t")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            rows.into_iter().flat_map(|(r,)| r.into_bytes()).collect()
        }
        None => {
            // The whole SQLite file and its WAL, byte for byte.
            let path = gw.state.config.sqlite_path();
            let mut bytes = std::fs::read(&path).unwrap();
            if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
                bytes.extend(wal);
            }
            bytes
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The secret must not be in `text`, nor any of its envelope.
fn assert_clean(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "secret in response: {text}");
        assert!(
            !text.contains(&secret[8..24]),
            "part of a secret in response: {text}"
        );
    }
    for field in ["ciphertext", "wrapped_key", "nonce", "\"secret\""] {
        assert!(
            !text.contains(field),
            "envelope field {field} in response: {text}"
        );
    }
}

async fn call(gw: &TestGateway, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut request = gw.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn lifecycle(backend: Backend) {
    let gw = TestGateway::start(backend, MockOptions::default()).await;
    let secrets = [SECRET_1, SECRET_2];

    let (status, text) = call(
        &gw,
        Method::POST,
        "/provider-credentials",
        Some(json!({"name": "openai-prod", "secret": SECRET_1, "description": "prod account"})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_clean(&text, &secrets);
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["name"], "openai-prod");
    assert_eq!(created["description"], "prod account");
    assert_eq!(created["hint"], "…0001");
    let master_key_id = created["master_key_id"].as_str().unwrap().to_string();
    assert_eq!(master_key_id.len(), 16);
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    let (status, text) = call(
        &gw,
        Method::POST,
        "/provider-credentials",
        Some(json!({"name": "openai-prod", "secret": SECRET_2})),
    )
    .await;
    assert_eq!(status, 409, "{text}");
    assert_clean(&text, &secrets);

    let (status, text) = call(&gw, Method::GET, "/provider-credentials", None).await;
    assert_eq!(status, 200);
    assert_clean(&text, &secrets);
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["name"], "openai-prod");

    let (status, text) = call(&gw, Method::GET, "/provider-credentials/openai-prod", None).await;
    assert_eq!(status, 200);
    assert_clean(&text, &secrets);

    // A provider credential resolved from the vault sees rotation at once
    // on the node that took the call.
    let env: BTreeMap<String, String> = BTreeMap::new();
    let ctx = ResolveContext {
        env: &env,
        base_dir: None,
        stored: Some(&gw.state.credentials),
    };
    let credential = Credential::resolve(
        &CredentialSpec::Stored {
            stored: "openai-prod".into(),
        },
        &ctx,
    )
    .await
    .unwrap();
    let before = credential.current().await.unwrap();
    assert_eq!(before.expose_secret(), SECRET_1);
    assert_eq!(credential.hint(), "stored:openai-prod …0001");
    assert!(!format!("{credential:?}").contains(SECRET_1));

    let (status, text) = call(
        &gw,
        Method::PUT,
        "/provider-credentials/openai-prod",
        Some(json!({"secret": SECRET_2})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &secrets);
    let updated: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(updated["hint"], "…0002");
    assert_eq!(
        updated["description"], "prod account",
        "kept when not given"
    );
    assert_eq!(
        credential.current().await.unwrap().expose_secret(),
        SECRET_2
    );
    assert_eq!(
        before.expose_secret(),
        SECRET_1,
        "in-flight value unchanged"
    );

    // The database holds neither secret, nor the master key.
    let raw = raw_rows(&gw).await;
    assert!(contains(&raw, "openai-prod"), "the row is there");
    for secret in secrets {
        assert!(!contains(&raw, secret), "plaintext secret in the database");
        assert!(
            !contains(&raw, &hex::encode(secret)),
            "hex secret in the database"
        );
    }
    let master = std::fs::read_to_string(gw.dir.path().join("master.key")).unwrap();
    assert!(!contains(&raw, master.trim()));

    let (status, text) = call(
        &gw,
        Method::DELETE,
        "/provider-credentials/openai-prod",
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_clean(&text, &secrets);
    assert!(
        credential.current().await.is_err(),
        "deleted: no longer served"
    );
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = call(&gw, method, "/provider-credentials/openai-prod", None).await;
        assert_eq!(status, 404);
    }
    let (status, _) = call(
        &gw,
        Method::PUT,
        "/provider-credentials/openai-prod",
        Some(json!({"secret": SECRET_1})),
    )
    .await;
    assert_eq!(status, 404);
    gw.finish().await;
}

#[tokio::test]
async fn provider_credentials_lifecycle_on_every_backend() {
    for backend in BACKENDS {
        lifecycle(backend).await;
    }
}

#[tokio::test]
async fn provider_credentials_need_an_admin_credential() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, key) = gw.create_key(json!({"name": "data"})).await;
    let routes = [
        (Method::GET, "/provider-credentials", None),
        (
            Method::POST,
            "/provider-credentials",
            Some(json!({"name": "x", "secret": SECRET_1})),
        ),
        (Method::GET, "/provider-credentials/x", None),
        (
            Method::PUT,
            "/provider-credentials/x",
            Some(json!({"secret": SECRET_1})),
        ),
        (Method::DELETE, "/provider-credentials/x", None),
    ];
    for (method, path, body) in routes {
        let url = format!("{}/admin/v1{path}", gw.base);
        let mut request = gw.http.request(method.clone(), &url).bearer_auth(&key);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (403, json!("admin_required")),
            "{method} {path}"
        );
        let mut request = gw.http.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            401,
            "{method} {path}"
        );
    }
    assert!(gw.state.credentials.list().await.unwrap().is_empty());
    gw.finish().await;
}

#[tokio::test]
async fn hostile_provider_credential_requests_get_4xx_never_500() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let long_name = "a".repeat(65);
    let cases: Vec<(Method, String, Value, u16)> = vec![
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x"}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"secret": SECRET_1}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": SECRET_1, "master_key_id": "ab"}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": 12}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": ""}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": "  \n "}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": "sk-\u{0}abc"}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": "sk-a\nb"}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": "s".repeat(16 * 1024 + 1)}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "", "secret": SECRET_1}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "../etc", "secret": SECRET_1}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "a b", "secret": SECRET_1}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "ключ", "secret": SECRET_1}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": long_name, "secret": SECRET_1}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": SECRET_1, "description": "a\u{7}b"}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!({"name": "x", "secret": SECRET_1, "description": "d".repeat(513)}),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!(["name", "secret"]),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!("just a string"),
            400,
        ),
        (
            Method::POST,
            "/provider-credentials".into(),
            json!(null),
            400,
        ),
        (
            Method::PUT,
            "/provider-credentials/x".into(),
            json!({"secret": SECRET_1}),
            404,
        ),
        (
            Method::PUT,
            "/provider-credentials/x".into(),
            json!({"name": "y"}),
            400,
        ),
        (
            Method::PUT,
            format!("/provider-credentials/{long_name}"),
            json!({"secret": SECRET_1}),
            404,
        ),
        (
            Method::GET,
            "/provider-credentials/%00".into(),
            Value::Null,
            404,
        ),
        (
            Method::GET,
            "/provider-credentials/..%2F..%2Fetc".into(),
            Value::Null,
            404,
        ),
        (
            Method::DELETE,
            "/provider-credentials/%E2%80%AE".into(),
            Value::Null,
            404,
        ),
        // Not UTF-8 once decoded: names nothing, answered in the error
        // shape (axum's own rejection would be a plain-text 400).
        (
            Method::GET,
            "/provider-credentials/%FF".into(),
            Value::Null,
            404,
        ),
        (
            Method::PUT,
            "/provider-credentials/%C3%28".into(),
            json!({"secret": SECRET_1}),
            404,
        ),
    ];
    for (method, path, body, want) in cases {
        let mut request = gw.admin(method.clone(), &path);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, want, "{method} {path} {body}: {text}");
        assert!(!text.contains(SECRET_1), "{text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(
            error["error"]["code"].is_string(),
            "{method} {path}: {text}"
        );
    }

    // Raw bodies: not JSON, wrong type, oversized, deeply nested.
    let raw_cases: Vec<(Vec<u8>, &str, u16)> = vec![
        (
            b"{\"name\": \"x\", \"secret\": ".to_vec(),
            "application/json",
            400,
        ),
        (
            b"name=x&secret=y".to_vec(),
            "application/x-www-form-urlencoded",
            415,
        ),
        (vec![0xff, 0xfe, 0x00], "application/json", 400),
        (
            format!(
                "{{\"name\":\"x\",\"secret\":\"{}\"}}",
                "s".repeat(64 * 1024)
            )
            .into_bytes(),
            "application/json",
            413,
        ),
        (
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            "application/json",
            400,
        ),
        (
            b"{\"name\":\"x\",\"secret\":\"a\",\"secret\":\"b\"}".to_vec(),
            "application/json",
            400,
        ),
    ];
    for (body, content_type, want) in raw_cases {
        let response = gw
            .admin(Method::POST, "/provider-credentials")
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(
            status,
            want,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
    }
    assert!(
        gw.state.credentials.list().await.unwrap().is_empty(),
        "nothing was stored"
    );
    gw.finish().await;
}

/// Run the real `keygate` binary.
fn keygate(
    args: &[&str],
    env: &[(&str, &str)],
    dir: &std::path::Path,
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("KEYGATE_MASTER_KEY")
        .env_remove("KEYGATE_MASTER_KEY_FILE")
        .env_remove("KEYGATE_MASTER_KEY_COMMAND")
        .env_remove("KEYGATE_DATABASE_URL")
        .env_remove("KEYGATE_ENV_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// The CLI is waited for synchronously: the gateway needs other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_adds_lists_updates_and_removes_provider_credentials() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let dir = gw.dir.path().to_path_buf();
    let env = [
        ("KEYGATE_URL", gw.base.as_str()),
        ("KEYGATE_ADMIN_KEY", gw.admin_key.as_str()),
    ];
    let secret_file = dir.join("openai.secret");
    std::fs::write(&secret_file, format!("{SECRET_1}\n")).unwrap();
    let file_arg = secret_file.display().to_string();
    let run = |args: &[&str], stdin: Option<&str>| {
        let (ok, out, err) = keygate(args, &env, &dir, stdin);
        assert!(!out.contains(SECRET_1) && !out.contains(SECRET_2), "{out}");
        assert!(!err.contains(SECRET_1) && !err.contains(SECRET_2), "{err}");
        (ok, out, err)
    };
    let (ok, out, err) = run(
        &[
            "provider-credentials",
            "add",
            "openai-prod",
            "--secret-file",
            &file_arg,
            "--description",
            "prod",
            "--format",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["hint"], "…0001");
    // The secret from standard input.
    let (ok, out, err) = run(
        &["provider-credentials", "update", "openai-prod"],
        Some(SECRET_2),
    );
    assert!(ok, "{err}");
    assert!(out.contains("…0002"), "{out}");
    assert_eq!(
        gw.state
            .credentials
            .secret("openai-prod")
            .unwrap()
            .expose_secret(),
        SECRET_2
    );
    let (ok, out, _) = run(&["provider-credentials", "list"], None);
    assert!(
        ok && out.contains("NAME") && out.contains("openai-prod"),
        "{out}"
    );
    let (ok, out, _) = run(
        &[
            "provider-credentials",
            "show",
            "openai-prod",
            "--format",
            "json",
        ],
        None,
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["description"],
        "prod"
    );
    let (ok, _, err) = run(&["provider-credentials", "add", "x"], Some(""));
    assert!(!ok && err.contains("empty"), "{err}");
    let (ok, _, err) = run(&["provider-credentials", "show", "../keys"], None);
    assert!(
        !ok && err.contains("not a provider credential name"),
        "{err}"
    );
    let (ok, _, _) = run(&["provider-credentials", "rm", "openai-prod"], None);
    assert!(ok);
    let (ok, _, err) = run(&["provider-credentials", "show", "openai-prod"], None);
    assert!(!ok && err.contains("404"), "{err}");
    gw.finish().await;
}

#[tokio::test]
async fn cli_rekey_rewraps_every_data_key_offline() {
    use keygate::credentials::{CredentialError, MasterKeySource, StoredCredentials};
    use keygate::store::sqlite::SqliteStore;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn keygate::store::Store> = Arc::new(
        SqliteStore::open(&dir.path().join("keygate.db"))
            .await
            .unwrap(),
    );
    let generated = MasterKeySource::Generated(dir.path().join("master.key"));
    let vault = StoredCredentials::open(Arc::clone(&store), generated.clone())
        .await
        .unwrap();
    for (name, secret) in [("a", SECRET_1), ("b", SECRET_2)] {
        vault
            .create(
                name,
                None,
                secrecy::SecretString::from(secret.to_string()),
                1,
            )
            .await
            .unwrap()
            .unwrap();
    }
    let old_id = vault.master_key_id().unwrap();
    drop(vault);

    let data_dir = dir.path().display().to_string();
    let new_key = dir.path().join("new.key");
    let new_arg = new_key.display().to_string();
    let (ok, out, err) = keygate(
        &[
            "--data-dir",
            &data_dir,
            "provider-credentials",
            "rekey",
            "--new-master-key-file",
            &new_arg,
            "--generate",
        ],
        &[],
        dir.path(),
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("re-wrapped 2"), "{out}");
    assert!(out.contains(&old_id), "{out}");

    // The old key no longer opens them, with a message saying what to do.
    let err = StoredCredentials::open(Arc::clone(&store), generated)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::UnknownMasterKey { .. }),
        "{err}"
    );
    let reopened = StoredCredentials::open(Arc::clone(&store), MasterKeySource::File(new_key))
        .await
        .unwrap();
    assert_eq!(reopened.secret("a").unwrap().expose_secret(), SECRET_1);
    assert_eq!(reopened.secret("b").unwrap().expose_secret(), SECRET_2);
    assert_ne!(reopened.master_key_id().unwrap(), old_id);
}

/// A second node on the same PostgreSQL database follows a rotation made
/// through the first node's admin API once it refreshes.
#[tokio::test]
async fn another_node_follows_rotation_and_deletion_on_postgres() {
    use keygate::credentials::{MasterKey, MasterKeySource, StoredCredentials};
    use keygate::store::postgres::PostgresStore;
    use std::sync::Arc;
    let master = MasterKey::from_bytes([5; 32]);
    let b64 = master.to_base64();
    let master_env = b64.expose_secret().to_string();
    let gw = TestGateway::start_with(Backend::Postgres, MockOptions::default(), move |_| {
        (
            String::new(),
            BTreeMap::from([("KEYGATE_MASTER_KEY".to_string(), master_env)]),
        )
    })
    .await;
    let url = gw.state.config.database_url_secret().unwrap().to_string();
    let (status, text) = call(
        &gw,
        Method::POST,
        "/provider-credentials",
        Some(json!({"name": "shared", "secret": SECRET_1})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["master_key_id"],
        master.id()
    );

    let other_store: Arc<dyn keygate::store::Store> =
        Arc::new(PostgresStore::connect(&url).await.unwrap());
    let node_b =
        StoredCredentials::open(Arc::clone(&other_store), MasterKeySource::Env(b64.clone()))
            .await
            .unwrap();
    assert_eq!(node_b.secret("shared").unwrap().expose_secret(), SECRET_1);

    let (status, _) = call(
        &gw,
        Method::PUT,
        "/provider-credentials/shared",
        Some(json!({"secret": SECRET_2})),
    )
    .await;
    assert_eq!(status, 200);
    node_b.refresh().await.unwrap();
    assert_eq!(node_b.secret("shared").unwrap().expose_secret(), SECRET_2);

    let (status, _) = call(&gw, Method::DELETE, "/provider-credentials/shared", None).await;
    assert_eq!(status, 200);
    node_b.refresh().await.unwrap();
    assert!(node_b.secret("shared").is_err());

    // A node whose master key did not seal the rows refuses to open them.
    call(
        &gw,
        Method::POST,
        "/provider-credentials",
        Some(json!({"name": "again", "secret": SECRET_1})),
    )
    .await;
    let new_master = MasterKey::from_bytes([6; 32]);
    let wrong = MasterKeySource::Env(new_master.to_base64());
    let err = StoredCredentials::open(Arc::clone(&other_store), wrong.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("again") && err.to_string().contains(master.id()),
        "{err}"
    );

    // Master-key rotation on PostgreSQL: afterwards the new key opens them.
    let count = keygate::credentials::rekey(other_store.as_ref(), &master, &new_master)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let rotated = StoredCredentials::open(other_store, wrong).await.unwrap();
    assert_eq!(rotated.secret("again").unwrap().expose_secret(), SECRET_1);
    gw.finish().await;
}

/// `keygate serve` with the wrong master key refuses to start, saying why.
#[tokio::test]
async fn a_gateway_with_the_wrong_master_key_refuses_to_start() {
    use keygate::config::{Config, RawConfig};
    let dir = tempfile::tempdir().unwrap();
    let config = |master: Option<&str>| {
        let mut env = BTreeMap::from([
            ("KEYGATE_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            (
                "KEYGATE_DATA_DIR".to_string(),
                dir.path().display().to_string(),
            ),
            ("OPENAI_API_KEY".to_string(), "sk-unused".to_string()),
        ]);
        if let Some(master) = master {
            env.insert("KEYGATE_MASTER_KEY".into(), master.into());
        }
        Config::from_raw(RawConfig::default(), &env).unwrap()
    };
    let first = keygate::server::start(config(None)).await.unwrap();
    first
        .state()
        .credentials
        .create(
            "p",
            None,
            secrecy::SecretString::from(SECRET_1.to_string()),
            1,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        dir.path().join("master.key").exists(),
        "generated on first need"
    );
    drop(first);
    let other = keygate::credentials::MasterKey::from_bytes([9; 32]).to_base64();
    let err = keygate::server::start(config(Some(other.expose_secret())))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("master key") && err.contains("rekey"), "{err}");
    assert!(!err.contains(other.expose_secret()));
    // The generated key still opens them.
    let again = keygate::server::start(config(None)).await.unwrap();
    assert_eq!(
        again
            .state()
            .credentials
            .secret("p")
            .unwrap()
            .expose_secret(),
        SECRET_1
    );
}
