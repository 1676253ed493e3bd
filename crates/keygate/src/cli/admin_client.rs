//! The operator commands' client for the admin API.

use super::Target;
use anyhow::{anyhow, Context};
use serde_json::Value;
use std::time::Duration;

/// An authenticated admin API client.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    admin_key: String,
}

impl AdminClient {
    /// Find the gateway and the admin credential: `--admin-key`,
    /// `KEYGATE_ADMIN_KEY`, or the bootstrap file in the data directory.
    pub fn new(target: &Target) -> anyhow::Result<Self> {
        let admin_key = match &target.admin_key {
            Some(key) => key.trim().to_string(),
            None => {
                let dir = target.data_dir.clone().unwrap_or_else(|| ".".into());
                let path = crate::config::bootstrap_key_path(&dir);
                std::fs::read_to_string(&path)
                    .map(|text| text.trim().to_string())
                    .with_context(|| {
                        format!(
                            "no admin credential: pass --admin-key, set KEYGATE_ADMIN_KEY, or run where {} exists",
                            path.display()
                        )
                    })?
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(AdminClient {
            http,
            base: format!("{}/admin/v1", target.url.trim_end_matches('/')),
            admin_key,
        })
    }

    /// Send a request and return the JSON answer, or the server's error message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach keygate at {}", self.base))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"].as_str().unwrap_or("no details");
            return Err(anyhow!("keygate answered {status}: {message}"));
        }
        Ok(value)
    }
}
