use super::*;
use crate::store::sqlite::SqliteStore;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ctx<'a>(env: &'a dyn Env, stored: Option<&'a StoredCredentials>) -> ResolveContext<'a> {
    ResolveContext {
        env,
        base_dir: None,
        stored,
    }
}

async fn value(c: &Credential) -> String {
    c.current().await.unwrap().expose_secret().to_string()
}

const SECRET_A: &str = "upstream-secret-aaaaaaaaaaaa1111";
const SECRET_B: &str = "upstream-secret-bbbbbbbbbbbb2222";

#[derive(serde::Deserialize)]
struct Holder {
    api_key: CredentialSpec,
}

fn parse(toml_text: &str) -> Result<CredentialSpec, String> {
    toml::from_str::<Holder>(toml_text)
        .map(|h| h.api_key)
        .map_err(|e| e.to_string())
}

#[test]
fn spec_reads_every_source_from_toml() {
    assert_eq!(
        parse(r#"api_key = { env = "OPENAI_API_KEY" }"#).unwrap(),
        CredentialSpec::Env {
            env: "OPENAI_API_KEY".into()
        }
    );
    assert_eq!(
        parse(r#"api_key = { file = "/run/secrets/openai" }"#).unwrap(),
        CredentialSpec::File {
            file: "/run/secrets/openai".into()
        }
    );
    assert_eq!(
        parse(r#"api_key = { dotenv = ".env", var = "X" }"#).unwrap(),
        CredentialSpec::DotEnv {
            dotenv: ".env".into(),
            var: "X".into()
        }
    );
    assert_eq!(
        parse(r#"api_key = { command = ["vault","kv","get","-field=key","secret/openai"], ttl = "5m" }"#)
            .unwrap(),
        CredentialSpec::Command {
            command: vec!["vault".into(), "kv".into(), "get".into(), "-field=key".into(), "secret/openai".into()],
            ttl: Some("5m".into())
        }
    );
    assert_eq!(
        parse(r#"api_key = { stored = "openai-prod" }"#).unwrap(),
        CredentialSpec::Stored {
            stored: "openai-prod".into()
        }
    );
}

#[test]
fn spec_refuses_unknown_keys_mixtures_and_bad_values() {
    for bad in [
        r#"api_key = { env = "X", extra = 1 }"#,
        r#"api_key = { env = "X", file = "/y" }"#,
        r#"api_key = { }"#,
        r#"api_key = { dotenv = ".env" }"#,
        r#"api_key = { env = "X", var = "Y" }"#,
        r#"api_key = { env = "X", ttl = "5m" }"#,
        r#"api_key = { command = [] }"#,
        r#"api_key = { command = ["x"], ttl = "soon" }"#,
        r#"api_key = { command = ["x"], ttl = "10ms" }"#,
        r#"api_key = { stored = "../etc" }"#,
        r#"api_key = "sk-literal""#,
    ] {
        assert!(parse(bad).is_err(), "{bad} should be refused");
    }
}

#[tokio::test]
async fn env_source_reads_once_and_hints_without_the_secret() {
    let vars = env(&[("OPENAI_API_KEY", "  upstream-abcdefghijklmnopx9aQ\n")]);
    let spec = CredentialSpec::Env {
        env: "OPENAI_API_KEY".into(),
    };
    let c = Credential::resolve(&spec, &ctx(&vars, None)).await.unwrap();
    assert_eq!(value(&c).await, "upstream-abcdefghijklmnopx9aQ");
    assert_eq!(c.hint(), "env:OPENAI_API_KEY …x9aQ");
    let debug = format!("{c:?}");
    assert!(!debug.contains("abcdefgh"), "{debug}");
    c.invalidate();
    assert_eq!(value(&c).await, "upstream-abcdefghijklmnopx9aQ");

    let err = Credential::resolve(
        &CredentialSpec::Env { env: "NOPE".into() },
        &ctx(&vars, None),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CredentialError::MissingEnv { .. }));
    assert!(err.to_string().contains("NOPE"));
    // Short secrets hint nothing of their value.
    let short = Credential::fixed("env:S", SecretString::from("short".to_string()));
    assert_eq!(short.hint(), "env:S …");
}

#[test]
fn dotenv_overlay_fills_in_only_what_the_environment_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(
        &path,
        "# comment\nOPENAI_API_KEY=from-file\nGROQ_API_KEY=\"groq-file\"\n",
    )
    .unwrap();
    let base = env(&[("OPENAI_API_KEY", "from-process")]);
    let overlay = DotEnvOverlay::load(&base, Some(&path)).unwrap();
    assert_eq!(
        overlay.var("OPENAI_API_KEY").as_deref(),
        Some("from-process")
    );
    assert_eq!(overlay.var("GROQ_API_KEY").as_deref(), Some("groq-file"));
    assert_eq!(overlay.var("MISSING"), None);
    assert!(!format!("{overlay:?}").contains("groq-file"));
    // KEYGATE_ENV_FILE wins over the setting and must exist.
    let named = env(&[("KEYGATE_ENV_FILE", "/nonexistent/.env")]);
    assert!(DotEnvOverlay::load(&named, Some(&path)).is_err());
}

#[test]
fn dotenv_parse_errors_never_quote_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(&path, "GOOD=1\nBAD LINE sk-leakyleakyleaky'\n").unwrap();
    let err = dotenv::DotEnvVars::read(&path).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("leaky"), "{text}");
    assert!(matches!(err, CredentialError::DotEnvParse { .. }));
}

#[test]
fn config_load_reads_the_env_file_setting() {
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join("keys.env");
    std::fs::write(&dotenv, "OPENAI_API_KEY=sk-from-dotenv\n").unwrap();
    let config_file = dir.path().join("keygate.toml");
    std::fs::write(
        &config_file,
        format!("env_file = {:?}\n", dotenv.display().to_string()),
    )
    .unwrap();
    let config = crate::config::Config::load(Some(&config_file), &env(&[])).unwrap();
    assert_eq!(config.env_file.as_deref(), Some(dotenv.as_path()));
    assert!(config.providers.iter().any(|p| p.name == "openai"));
}

#[tokio::test(start_paused = true)]
async fn dotenv_source_reads_its_variable_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.env");
    std::fs::write(&path, format!("OTHER=x\nKEY={SECRET_A}\n")).unwrap();
    let spec = CredentialSpec::DotEnv {
        dotenv: path.clone(),
        var: "KEY".into(),
    };
    let vars = env(&[]);
    let c = Credential::resolve(&spec, &ctx(&vars, None)).await.unwrap();
    assert_eq!(value(&c).await, SECRET_A);
    assert!(c.hint().starts_with("dotenv:") && c.hint().ends_with("…1111"));
    std::fs::write(&path, format!("KEY={SECRET_B}\nOTHER=yy\n")).unwrap();
    tokio::time::advance(file::RECHECK).await;
    assert_eq!(value(&c).await, SECRET_B);
    let missing = CredentialSpec::DotEnv {
        dotenv: path,
        var: "ABSENT".into(),
    };
    assert!(matches!(
        Credential::resolve(&missing, &ctx(&vars, None)).await,
        Err(CredentialError::MissingDotEnvVar { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn file_source_trims_and_rereads_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openai");
    std::fs::write(&path, format!("{SECRET_A}\n")).unwrap();
    let vars = env(&[]);
    let c = Credential::resolve(
        &CredentialSpec::File { file: path.clone() },
        &ctx(&vars, None),
    )
    .await
    .unwrap();
    let in_flight = c.current().await.unwrap();
    assert_eq!(in_flight.expose_secret(), SECRET_A);
    // Rewrite in place (new length, so the identity differs).
    std::fs::write(&path, format!("{SECRET_B}xx\n")).unwrap();
    assert_eq!(value(&c).await, SECRET_A, "not re-checked within a second");
    tokio::time::advance(file::RECHECK).await;
    assert_eq!(value(&c).await, format!("{SECRET_B}xx"));
    // The request that took the old value still holds it.
    assert_eq!(in_flight.expose_secret(), SECRET_A);
}

#[tokio::test(start_paused = true)]
async fn file_source_follows_a_kubernetes_style_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let v1 = root.join("..2026_01");
    let v2 = root.join("..2026_02");
    std::fs::create_dir(&v1).unwrap();
    std::fs::create_dir(&v2).unwrap();
    // Same length on purpose: only the inode tells the versions apart.
    std::fs::write(v1.join("api-key"), format!("{SECRET_A}\n")).unwrap();
    std::fs::write(v2.join("api-key"), format!("{SECRET_B}\n")).unwrap();
    std::os::unix::fs::symlink("..2026_01", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/api-key", root.join("api-key")).unwrap();
    let vars = env(&[]);
    let c = Credential::resolve(
        &CredentialSpec::File {
            file: root.join("api-key"),
        },
        &ctx(&vars, None),
    )
    .await
    .unwrap();
    assert_eq!(value(&c).await, SECRET_A);
    // Atomic swap of ..data, as the kubelet does it.
    std::os::unix::fs::symlink("..2026_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    tokio::time::advance(file::RECHECK).await;
    assert_eq!(value(&c).await, SECRET_B);
}

#[tokio::test(start_paused = true)]
async fn file_source_invalidate_rereads_at_once_and_a_vanished_file_keeps_the_last_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, SECRET_A).unwrap();
    let vars = env(&[]);
    let c = Credential::resolve(
        &CredentialSpec::File { file: path.clone() },
        &ctx(&vars, None),
    )
    .await
    .unwrap();
    std::fs::write(&path, SECRET_B).unwrap();
    c.invalidate();
    assert_eq!(
        value(&c).await,
        SECRET_B,
        "invalidate skips the one-second wait"
    );
    std::fs::remove_file(&path).unwrap();
    tokio::time::advance(file::RECHECK).await;
    assert_eq!(value(&c).await, SECRET_B);
    // Missing or empty at startup is an error that quotes nothing.
    let err = Credential::resolve(
        &CredentialSpec::File { file: path.clone() },
        &ctx(&vars, None),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CredentialError::Read { .. }));
    std::fs::write(&path, "\n").unwrap();
    assert!(matches!(
        Credential::resolve(&CredentialSpec::File { file: path }, &ctx(&vars, None)).await,
        Err(CredentialError::Empty { .. })
    ));
}

/// A fake command: answers from `answers` in turn (the last one repeats)
/// and reports each run on a channel.
fn fake_runner(
    answers: Vec<Result<&'static str, ()>>,
) -> (
    CommandRunner,
    Arc<AtomicUsize>,
    tokio::sync::mpsc::UnboundedReceiver<usize>,
) {
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let counter = Arc::clone(&runs);
    let runner = CommandRunner::new(move |_argv| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let answer = answers[n.min(answers.len() - 1)];
        let _ = tx.send(n + 1);
        async move {
            answer
                .map(|s| SecretString::from(s.to_string()))
                .map_err(|()| CredentialError::Command {
                    program: "fake".into(),
                    reason: "exited with exit status: 1".into(),
                })
        }
        .boxed()
    });
    (runner, runs, rx)
}

#[tokio::test(start_paused = true)]
async fn command_value_is_cached_for_its_ttl_and_refreshed_in_the_background() {
    let (runner, runs, mut ran) = fake_runner(vec![Ok(SECRET_A), Ok(SECRET_B)]);
    let ttl = Duration::from_secs(300);
    let c = Credential::from_command(vec!["vault".into(), "read".into()], ttl, runner)
        .await
        .unwrap();
    assert_eq!(ran.recv().await, Some(1));
    assert_eq!(c.hint(), "command:vault …1111");
    tokio::time::advance(Duration::from_secs(200)).await;
    assert_eq!(value(&c).await, SECRET_A);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "cached");
    // Past 80 % of the lifetime: the old value serves while a refresh runs.
    tokio::time::advance(Duration::from_secs(41)).await;
    assert_eq!(value(&c).await, SECRET_A);
    assert_eq!(ran.recv().await, Some(2));
    // The refresh has run; once it is applied the new value serves.
    let mut seen = value(&c).await;
    while seen != SECRET_B {
        tokio::task::yield_now().await;
        seen = value(&c).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_command_refresh_keeps_the_last_good_value_until_it_expires() {
    let (runner, runs, mut ran) = fake_runner(vec![Ok(SECRET_A), Err(())]);
    let c = Credential::from_command(vec!["op".into()], Duration::from_secs(100), runner)
        .await
        .unwrap();
    ran.recv().await;
    tokio::time::advance(Duration::from_secs(81)).await;
    assert_eq!(value(&c).await, SECRET_A);
    assert_eq!(
        ran.recv().await,
        Some(2),
        "background refresh ran and failed"
    );
    tokio::time::advance(Duration::from_secs(18)).await;
    assert_eq!(value(&c).await, SECRET_A, "still inside the lifetime");
    tokio::time::advance(Duration::from_secs(2)).await;
    let err = c.current().await.unwrap_err();
    assert!(matches!(err, CredentialError::Command { .. }));
    assert!(runs.load(Ordering::SeqCst) >= 3);
}

#[tokio::test(start_paused = true)]
async fn command_invalidate_reruns_the_command_on_the_next_request() {
    let third_value = "upstream-third-value-for-rotation-0003";
    let (runner, runs, _ran) = fake_runner(vec![Ok(SECRET_A), Ok(SECRET_B), Ok(third_value)]);
    let c = Credential::from_command(vec!["aws".into()], Duration::from_secs(300), runner)
        .await
        .unwrap();
    // The first refusal of a value re-runs the command at once, even right
    // after it ran (a rotation just after start is picked up).
    c.invalidate();
    assert_eq!(value(&c).await, SECRET_B);
    // The value that re-run produced is not invalidated again within a
    // second: a dead key cannot make every request run the command.
    c.invalidate();
    assert_eq!(value(&c).await, SECRET_B, "debounced");
    tokio::time::advance(Duration::from_secs(2)).await;
    c.invalidate();
    assert_eq!(value(&c).await, third_value);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn real_commands_run_without_a_shell_and_never_reveal_their_output() {
    let vars = env(&[]);
    let spec = |argv: &[&str]| CredentialSpec::Command {
        command: argv.iter().map(|s| s.to_string()).collect(),
        ttl: None,
    };
    let c = Credential::resolve(&spec(&["printf", "%s\\n", SECRET_A]), &ctx(&vars, None))
        .await
        .unwrap();
    assert_eq!(value(&c).await, SECRET_A);
    // No shell: the metacharacters are plain arguments.
    let c = Credential::resolve(&spec(&["echo", "a;b", "$HOME"]), &ctx(&vars, None))
        .await
        .unwrap();
    assert_eq!(value(&c).await, "a;b $HOME");
    let err = Credential::resolve(&spec(&["true"]), &ctx(&vars, None))
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialError::Empty { .. }), "{err}");
    let err = Credential::resolve(
        &spec(&[
            "sh",
            "-c",
            "echo sk-stdout-leak; echo sk-stderr-leak >&2; exit 3",
        ]),
        &ctx(&vars, None),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(!text.contains("leak"), "{text}");
    let err = Credential::resolve(&spec(&["/nonexistent/keygate-helper"]), &ctx(&vars, None))
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialError::Command { .. }));
    let err = command::run_process(vec!["sleep".into(), "5".into()], Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not finish"), "{err}");
}

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; 32])
}

#[test]
fn envelope_round_trips_and_refuses_tampering() {
    let master = key(7);
    let secret = SecretString::from(SECRET_A.to_string());
    let sealed = envelope::seal(&master, "openai", &secret).unwrap();
    assert_eq!(sealed.master_key_id, master.id());
    assert_eq!(master.id().len(), 16);
    assert!(!sealed
        .ciphertext
        .windows(SECRET_A.len())
        .any(|w| w == SECRET_A.as_bytes()));
    assert_eq!(
        envelope::open(&master, "openai", &sealed)
            .unwrap()
            .expose_secret(),
        SECRET_A
    );
    // Every seal uses a fresh data key and nonces.
    let again = envelope::seal(&master, "openai", &secret).unwrap();
    assert_ne!(again.ciphertext, sealed.ciphertext);
    assert_ne!(again.wrapped_key, sealed.wrapped_key);

    let mut tampered = sealed.clone();
    tampered.ciphertext[0] ^= 1;
    assert!(matches!(
        envelope::open(&master, "openai", &tampered),
        Err(CredentialError::Decrypt { .. })
    ));
    let mut tampered = sealed.clone();
    tampered.wrapped_key[3] ^= 1;
    assert!(envelope::open(&master, "openai", &tampered).is_err());
    let mut tampered = sealed.clone();
    tampered.data_nonce[0] ^= 1;
    assert!(envelope::open(&master, "openai", &tampered).is_err());
    let mut tampered = sealed.clone();
    tampered.data_nonce.truncate(4);
    assert!(envelope::open(&master, "openai", &tampered).is_err());
    // The name is bound: a row's envelope moved to another name fails.
    assert!(envelope::open(&master, "anthropic", &sealed).is_err());
    // Swapping data-key or ciphertext between rows fails too.
    let other = envelope::seal(&master, "anthropic", &secret).unwrap();
    let mixed = Sealed {
        ciphertext: other.ciphertext.clone(),
        data_nonce: other.data_nonce.clone(),
        ..sealed.clone()
    };
    assert!(envelope::open(&master, "openai", &mixed).is_err());
    // A wrong master key: refused by id, and by the cipher when the id is forged.
    let wrong = key(8);
    assert!(matches!(
        envelope::open(&wrong, "openai", &sealed),
        Err(CredentialError::UnknownMasterKey { .. })
    ));
    let forged = Sealed {
        master_key_id: wrong.id().to_string(),
        ..sealed.clone()
    };
    assert!(matches!(
        envelope::open(&wrong, "openai", &forged),
        Err(CredentialError::Decrypt { .. })
    ));
    let text = format!(
        "{master:?} {sealed:?} {:?}",
        envelope::open(&wrong, "openai", &forged)
    );
    assert!(!text.contains(SECRET_A));
}

#[test]
fn rewrap_moves_the_data_key_to_the_new_master_key_only() {
    let (old, new) = (key(1), key(2));
    let sealed = envelope::seal(&old, "n", &SecretString::from(SECRET_B.to_string())).unwrap();
    let moved = envelope::rewrap(&old, &new, "n", &sealed).unwrap();
    assert_eq!(
        moved.ciphertext, sealed.ciphertext,
        "the secret is not re-encrypted"
    );
    assert_eq!(moved.master_key_id, new.id());
    assert_eq!(
        envelope::open(&new, "n", &moved).unwrap().expose_secret(),
        SECRET_B
    );
    assert!(envelope::open(&old, "n", &moved).is_err());
    assert!(envelope::rewrap(&new, &old, "n", &sealed).is_err());
}

#[tokio::test]
async fn master_key_sources() {
    let dir = tempfile::tempdir().unwrap();
    let b64 = key(9).to_base64();
    let from_env = MasterKeySource::from_settings(
        &env(&[("KEYGATE_MASTER_KEY", b64.expose_secret())]),
        None,
        None,
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        from_env.load(false).await.unwrap().unwrap().id(),
        key(9).id()
    );
    assert!(!format!("{from_env:?}").contains(b64.expose_secret()));
    assert!(MasterKeySource::from_settings(
        &env(&[
            ("KEYGATE_MASTER_KEY", "x"),
            ("KEYGATE_MASTER_KEY_FILE", "/k")
        ]),
        None,
        None,
        dir.path()
    )
    .is_err());
    let short = MasterKeySource::Env(SecretString::from("c2hvcnQ=".to_string()));
    assert!(short.load(false).await.is_err());
    let command = MasterKeySource::command(&format!("printf %s {}", b64.expose_secret())).unwrap();
    assert_eq!(
        command.load(false).await.unwrap().unwrap().id(),
        key(9).id()
    );

    let generated = MasterKeySource::from_settings(&env(&[]), None, None, dir.path()).unwrap();
    assert!(
        generated.load(false).await.unwrap().is_none(),
        "not created unless needed"
    );
    let made = generated.load(true).await.unwrap().unwrap();
    let again = generated.load(false).await.unwrap().unwrap();
    assert_eq!(made.id(), again.id());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join(master_key::GENERATED_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

async fn sqlite(dir: &std::path::Path) -> Arc<dyn crate::store::Store> {
    Arc::new(SqliteStore::open(&dir.join("keygate.db")).await.unwrap())
}

#[tokio::test]
async fn vault_stores_rotates_follows_other_nodes_and_rekeys() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let source = MasterKeySource::Generated(dir.path().join("master.key"));
    let node_a = StoredCredentials::open(Arc::clone(&store), source.clone())
        .await
        .unwrap();
    assert_eq!(node_a.master_key_id(), None, "no key until one is needed");
    let meta = node_a
        .create(
            "openai-prod",
            Some("prod".into()),
            SecretString::from(SECRET_A.to_string()),
            1000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.hint, "…1111");
    assert!(node_a
        .create(
            "openai-prod",
            None,
            SecretString::from(SECRET_B.to_string()),
            1001
        )
        .await
        .unwrap()
        .is_none());

    let node_b = StoredCredentials::open(Arc::clone(&store), source.clone())
        .await
        .unwrap();
    let vars = env(&[]);
    let spec = CredentialSpec::Stored {
        stored: "openai-prod".into(),
    };
    let on_b = Credential::resolve(&spec, &ctx(&vars, Some(&node_b)))
        .await
        .unwrap();
    assert_eq!(value(&on_b).await, SECRET_A);
    assert_eq!(on_b.hint(), "stored:openai-prod …1111");

    // Rotation on node A: at once there, on B after its refresh.
    node_a
        .replace(
            "openai-prod",
            SecretString::from(SECRET_B.to_string()),
            None,
            1000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        node_a.secret("openai-prod").unwrap().expose_secret(),
        SECRET_B
    );
    assert_eq!(value(&on_b).await, SECRET_A);
    node_b.refresh().await.unwrap();
    assert_eq!(value(&on_b).await, SECRET_B);

    // Deletion follows too.
    node_a
        .create("gone", None, SecretString::from("x".repeat(20)), 5)
        .await
        .unwrap();
    node_b.refresh().await.unwrap();
    assert!(node_b.secret("gone").is_ok());
    assert!(node_a.delete("gone").await.unwrap());
    node_b.refresh().await.unwrap();
    assert!(matches!(
        node_b.secret("gone"),
        Err(CredentialError::NotStored { .. })
    ));
    // A name not stored (yet) resolves, fails requests, and serves once added.
    let later = Credential::resolve(
        &CredentialSpec::Stored {
            stored: "gone".into(),
        },
        &ctx(&vars, Some(&node_b)),
    )
    .await
    .unwrap();
    assert!(matches!(
        later.current().await,
        Err(CredentialError::NotStored { .. })
    ));
    assert_eq!(later.hint(), "stored:gone");
    node_a
        .create("gone", None, SecretString::from(SECRET_A.to_string()), 6)
        .await
        .unwrap();
    node_b.refresh().await.unwrap();
    assert_eq!(value(&later).await, SECRET_A);
    assert!(matches!(
        Credential::resolve(&spec, &ctx(&vars, None)).await,
        Err(CredentialError::NoVault)
    ));

    // Master-key rotation, offline.
    let old = source.load(false).await.unwrap().unwrap();
    let new = key(42);
    assert_eq!(rekey(store.as_ref(), &old, &new).await.unwrap(), 2);
    assert_eq!(
        rekey(store.as_ref(), &old, &new).await.unwrap(),
        0,
        "repeatable"
    );
    let err = StoredCredentials::open(Arc::clone(&store), source.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialError::UnknownMasterKey { .. }));
    assert!(err.to_string().contains("openai-prod") && err.to_string().contains("rekey"));
    let new_source = MasterKeySource::Env(new.to_base64());
    let node_c = StoredCredentials::open(Arc::clone(&store), new_source)
        .await
        .unwrap();
    assert_eq!(
        node_c.secret("openai-prod").unwrap().expose_secret(),
        SECRET_B
    );
    assert_eq!(node_c.master_key_id().as_deref(), Some(new.id()));

    // Rows exist but the generated key is gone: a clear startup error.
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let err = StoredCredentials::open(Arc::clone(&store), source)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn a_configured_master_key_is_checked_at_open_even_with_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let bad = MasterKeySource::Env(SecretString::from("not-base64!".to_string()));
    let err = StoredCredentials::open(Arc::clone(&store), bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("KEYGATE_MASTER_KEY"), "{err}");
    assert!(!err.to_string().contains("not-base64"), "{err}");
    let good = MasterKeySource::Env(key(3).to_base64());
    let vault = StoredCredentials::open(store, good).await.unwrap();
    assert_eq!(vault.master_key_id().as_deref(), Some(key(3).id()));
}

#[tokio::test(start_paused = true)]
async fn a_failing_command_is_not_rerun_by_every_waiting_request() {
    let (runner, runs, _ran) = fake_runner(vec![Ok(SECRET_A), Err(()), Err(()), Ok(SECRET_B)]);
    let c = Credential::from_command(vec!["vault".into()], Duration::from_secs(10), runner)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(c.current().await.is_err());
    assert!(c.current().await.is_err());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "second request got the recent failure"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(c.current().await.is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(value(&c).await, SECRET_B);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[test]
fn sync_resolution_covers_env_file_and_dotenv_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), SECRET_A).unwrap();
    let vars = env(&[("K", SECRET_B)]);
    let file = Credential::resolve_sync(
        &CredentialSpec::File { file: "key".into() },
        &vars,
        Some(dir.path()),
    )
    .unwrap();
    assert!(file.hint().ends_with("…1111"));
    assert!(file.source_label().starts_with("file:"));
    let from_env =
        Credential::resolve_sync(&CredentialSpec::Env { env: "K".into() }, &vars, None).unwrap();
    assert_eq!(from_env.hint(), "env:K …2222");
    for spec in [
        CredentialSpec::Stored { stored: "x".into() },
        CredentialSpec::Command {
            command: vec!["true".into()],
            ttl: None,
        },
    ] {
        assert!(spec.needs_gateway());
        assert!(Credential::resolve_sync(&spec, &vars, None).is_err());
    }
}

#[tokio::test]
async fn invalidating_a_stored_credential_rereads_it_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let source = MasterKeySource::Env(key(4).to_base64());
    let serving = StoredCredentials::open(Arc::clone(&store), source.clone())
        .await
        .unwrap();
    let admin = StoredCredentials::open(Arc::clone(&store), source)
        .await
        .unwrap();
    admin
        .create("p", None, SecretString::from(SECRET_A.to_string()), 1)
        .await
        .unwrap();
    serving.refresh().await.unwrap();
    let vars = env(&[]);
    let c = Credential::resolve(
        &CredentialSpec::Stored { stored: "p".into() },
        &ctx(&vars, Some(&serving)),
    )
    .await
    .unwrap();
    admin
        .replace("p", SecretString::from(SECRET_B.to_string()), None, 2)
        .await
        .unwrap();
    assert_eq!(value(&c).await, SECRET_A, "not yet refreshed");
    c.invalidate();
    tokio::time::timeout(Duration::from_secs(10), async {
        while value(&c).await != SECRET_B {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the invalidation re-read the row");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn envelope_round_trips_any_secret_under_any_name(
        name in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
        secret in "\\PC{1,200}",
        flip in 0usize..1000,
    ) {
        let master = key(11);
        let sealed = envelope::seal(&master, &name, &SecretString::from(secret.clone())).unwrap();
        let opened = envelope::open(&master, &name, &sealed).unwrap();
        proptest::prop_assert_eq!(opened.expose_secret(), secret.as_str());
        let mut tampered = sealed.clone();
        let at = flip % tampered.ciphertext.len();
        tampered.ciphertext[at] ^= 0x80;
        proptest::prop_assert!(envelope::open(&master, &name, &tampered).is_err());
    }
}

#[tokio::test]
async fn env_credentials_after_startup_see_the_env_file_of_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join(".env");
    std::fs::write(&dotenv, format!("KG_TEST_ONLY_IN_FILE={SECRET_A}\n")).unwrap();
    let mut config = crate::config::Config::from_raw(Default::default(), &env(&[])).unwrap();
    config.env_file = Some(dotenv);
    let overlay = DotEnvOverlay::for_config(&crate::config::ProcessEnv, &config).unwrap();
    let c = Credential::resolve(
        &CredentialSpec::Env {
            env: "KG_TEST_ONLY_IN_FILE".into(),
        },
        &ctx(&overlay, None),
    )
    .await
    .unwrap();
    assert_eq!(value(&c).await, SECRET_A);
    let error = CredentialError::MissingEnv { var: "X".into() }.to_api_error();
    assert_eq!(error.status, 503);
}
