//! A gateway and a mock provider on loopback, per test.

use keygate::config::{Config, RawConfig};
use keygate::mock::MockOptions;
use keygate::server::AppState;
use keygate::store::{Store, UsageFilter};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::sync::oneshot;

/// Which database a test gateway keeps its state in.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn postgres_admin_url() -> String {
    std::env::var("KEYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database for one test; dropped by [`drop_database`].
pub async fn fresh_database() -> (String, String) {
    let name = format!(
        "kg_it_{}",
        Alphanumeric
            .sample_string(&mut rand::rng(), 12)
            .to_lowercase()
    );
    run_as_postgres_admin(&format!("CREATE DATABASE {name}")).await;
    let base = postgres_admin_url();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    (name, url)
}

pub async fn drop_database(name: &str) {
    run_as_postgres_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

async fn run_as_postgres_admin(statement: &str) {
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut admin).await.unwrap();
}

/// Start a mock provider on an ephemeral port.
pub async fn mock(options: MockOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(keygate::mock::serve_on(
        listener,
        MockOptions {
            listen: addr,
            ..options
        },
    ));
    addr
}

pub struct TestGateway {
    pub base: String,
    pub admin_key: String,
    pub state: AppState,
    pub mock: SocketAddr,
    pub http: reqwest::Client,
    /// The PostgreSQL database this gateway created, for a second node.
    pub database_url: Option<String>,
    database: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    /// A gateway on `backend` whose OpenAI and Anthropic providers are a
    /// fresh mock with `options`.
    pub async fn start(backend: Backend, options: MockOptions) -> TestGateway {
        Self::start_with(backend, options, |_| (String::new(), BTreeMap::new())).await
    }

    /// Like [`start`](Self::start), with a TOML config file and extra
    /// environment variables made from the mock's address.
    pub async fn start_with(
        backend: Backend,
        options: MockOptions,
        extra: impl FnOnce(SocketAddr) -> (String, BTreeMap<String, String>),
    ) -> TestGateway {
        let mock = mock(options).await;
        let (toml_text, extra_env) = extra(mock);
        let dir = tempfile::tempdir().unwrap();
        let provider_key = format!(
            "sk-test-{}",
            Alphanumeric.sample_string(&mut rand::rng(), 24)
        );
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("KEYGATE_LISTEN".into(), "127.0.0.1:0".into());
        env.insert("KEYGATE_DATA_DIR".into(), dir.path().display().to_string());
        env.insert("OPENAI_API_KEY".into(), provider_key.clone());
        env.insert("OPENAI_BASE_URL".into(), format!("http://{mock}/v1"));
        env.insert("ANTHROPIC_API_KEY".into(), provider_key.clone());
        env.insert("ANTHROPIC_BASE_URL".into(), format!("http://{mock}"));
        let (database, database_url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (name, url) = fresh_database().await;
                env.insert("KEYGATE_DATABASE_URL".into(), url.clone());
                (Some(name), Some(url))
            }
        };
        env.extend(extra_env);
        let raw: RawConfig = toml::from_str(&toml_text).unwrap();
        let config = Config::from_raw(raw, &env).unwrap();
        let gateway = keygate::server::start(config).await.unwrap();
        let state = gateway.state().clone();
        let addr = gateway.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(gateway.run(async move {
            let _ = stop.await;
        }));
        // A node joining a database that already has admins creates no
        // bootstrap credential: use the first node's.
        let admin_key = std::fs::read_to_string(dir.path().join("admin.key"))
            .map(|text| text.trim().to_string())
            .unwrap_or_default();
        TestGateway {
            base: format!("http://{addr}"),
            admin_key,
            state,
            mock,
            http: reqwest::Client::new(),
            database_url,
            database,
            shutdown: Some(shutdown),
            dir,
        }
    }

    /// Load a key another node created into this node's cache now,
    /// instead of waiting for the refresh.
    pub async fn load_key(&self, id: &str) {
        let record = self.store().get_key(id).await.unwrap().unwrap();
        self.state.keys.upsert(&record);
    }

    pub fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    /// A request to the admin API with the admin credential.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(&self.admin_key)
    }

    /// Create a data-plane key through the admin API; returns (id, secret).
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let response = self
            .admin(reqwest::Method::POST, "/keys")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{created}");
        (
            created["id"].as_str().unwrap().to_string(),
            created["key"].as_str().unwrap().to_string(),
        )
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn fault(&self, fault: Value) {
        let response = self
            .http
            .post(format!("http://{}/_mock/faults", self.mock))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Wait until the ledger has committed at least `rows` rows.
    pub async fn ledger_rows(&self, rows: u64) {
        let mut committed = self.state.ledger.committed();
        committed.wait_for(|n| *n >= rows).await.unwrap();
    }

    /// Ledger rows of a key, after the ledger moved every recorded row into
    /// the store.
    pub async fn events_of(&self, key_id: &str) -> Vec<keygate::ledger::UsageEvent> {
        self.state.ledger.flush().await;
        let filter = UsageFilter {
            key_id: Some(key_id.to_string()),
            ..Default::default()
        };
        self.store().usage_events(&filter, 1000).await.unwrap()
    }

    /// Everything in this gateway's ledger journal.
    pub fn journal_text(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path().join("journal")).unwrap() {
            text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
        text
    }

    pub async fn finish(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(name) = self.database.take() {
            drop_database(&name).await;
        }
    }
}

pub fn chat_body(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "count the words here"}]})
}

/// Status and `error.code` of an error response.
pub async fn error_code(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].clone())
}
