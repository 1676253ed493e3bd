//! Service accounts end to end: created through the admin API, their key
//! file's private key signs an RFC 7523 assertion (built here with
//! `jsonwebtoken`, independently of keygate's code), exchanged at
//! `/oauth/token` for a token that calls the data plane. Replays, disabled
//! keys and assertions with a wrong audience, issuer or expiry are refused.

use crate::support::{chat_body, Backend, TestGateway, BACKENDS};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sign an assertion with a key file: `claims` over the defaults.
fn assertion(file: &Value, overrides: Value) -> String {
    let client_id = file["client_id"].as_str().unwrap();
    let now = now_s();
    let mut claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": file["token_uri"],
        "iat": now,
        "exp": now + 600,
        "jti": uuid::Uuid::now_v7().to_string(),
    });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let pem = file["private_key"].as_str().unwrap().as_bytes();
    let (alg, key) = if file["algorithm"] == "ES256" {
        (Algorithm::ES256, EncodingKey::from_ec_pem(pem).unwrap())
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(pem).unwrap())
    };
    let mut header = Header::new(alg);
    header.kid = Some(file["private_key_id"].as_str().unwrap().to_string());
    encode(&header, &claims, &key).unwrap()
}

async fn token_request(gw: &TestGateway, assertion: &str) -> (u16, Value) {
    let response = gw
        .http
        .post(format!("{}/oauth/token", gw.base))
        .form(&[("grant_type", JWT_BEARER), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn expect_invalid_grant(gw: &TestGateway, assertion: &str, why: &str) {
    let (status, body) = token_request(gw, assertion).await;
    assert_eq!(status, 400, "{why}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
}

async fn send(gw: &TestGateway, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = gw.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Create a service account; its key file, with the algorithm noted for
/// the signer.
async fn create_account(gw: &TestGateway, body: Value) -> (Value, Value) {
    let algorithm = body["algorithm"].as_str().unwrap_or("RS256").to_string();
    let (status, created) = send(gw, Method::POST, "/service-accounts", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let mut file = created["key_file"].clone();
    assert_eq!(file["type"], "service_account");
    assert_eq!(file["client_id"], created["client_id"]);
    assert_eq!(created["id"], created["client_id"]);
    assert!(file["private_key"]
        .as_str()
        .unwrap()
        .starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----")));
    // The account's own secret is never shown.
    assert!(created.get("key").is_none(), "{created}");
    file["algorithm"] = json!(algorithm);
    (created, file)
}

#[tokio::test]
async fn a_key_file_gets_a_token_that_calls_models_once_per_assertion() {
    for backend in BACKENDS {
        key_file_round_trip(backend).await;
    }
}

async fn key_file_round_trip(backend: Backend) {
    let gw = TestGateway::start(backend, MockOptions::default()).await;
    for algorithm in ["RS256", "ES256"] {
        let (created, file) = create_account(
            &gw,
            json!({"name": format!("ci-{algorithm}"), "algorithm": algorithm, "models": ["gpt-4o-mini"], "rpm": 100}),
        )
        .await;
        assert_eq!(created["private_key"]["algorithm"], algorithm);
        assert_eq!(created["models"], json!(["gpt-4o-mini"]));
        let signed = assertion(&file, json!({}));
        let (status, token) = token_request(&gw, &signed).await;
        assert_eq!(status, 200, "{token}");
        assert_eq!(token["token_type"], "Bearer");
        let access = token["access_token"].as_str().unwrap();
        let response = gw.chat(access, chat_body(false)).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        // The token is bound by the account's model allowlist.
        let other = gw
            .chat(
                access,
                json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(other.status(), 403);
        // Replay of the same assertion.
        expect_invalid_grant(&gw, &signed, "replayed assertion").await;
    }
    // The private key is in no store, anywhere.
    let (_, listed) = send(&gw, Method::GET, "/service-accounts", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    assert!(!listed.to_string().contains("PRIVATE KEY"));
    gw.finish().await;
}

#[tokio::test]
async fn wrong_audience_issuer_expiry_or_key_is_an_invalid_grant() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, file) = create_account(&gw, json!({"name": "batch"})).await;
    let (_, other) = create_account(&gw, json!({"name": "other"})).await;
    let now = now_s();
    for (overrides, why) in [
        (
            json!({"aud": "https://elsewhere.example/oauth/token"}),
            "audience",
        ),
        (
            json!({"iss": other["client_id"], "sub": other["client_id"]}),
            "issuer",
        ),
        (json!({"iss": other["client_id"]}), "issuer only"),
        (json!({"iat": now - 7200, "exp": now - 3600}), "expired"),
        (json!({"exp": now + 7200}), "lives over an hour"),
        (json!({"jti": ""}), "empty jti"),
    ] {
        expect_invalid_grant(&gw, &assertion(&file, overrides), why).await;
    }
    // Signed by another account's key under this key's kid.
    let mut forged = other.clone();
    forged["private_key_id"] = file["private_key_id"].clone();
    forged["client_id"] = file["client_id"].clone();
    expect_invalid_grant(&gw, &assertion(&forged, json!({})), "another key").await;
    // HS256 "signed" with the public key.
    let client_id = file["client_id"].as_str().unwrap();
    let (_, keys) = send(
        &gw,
        Method::GET,
        &format!("/service-accounts/{client_id}/keys"),
        None,
    )
    .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "{keys}");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = file["private_key_id"].as_str().map(String::from);
    let claims = json!({"iss": client_id, "sub": client_id, "aud": file["token_uri"], "exp": now + 60, "jti": "x"});
    // The classic confusion: the public key (which anyone may know) as an
    // HMAC secret.
    let public_key = keys["data"][0]["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("-----BEGIN PUBLIC KEY-----"));
    let secret = EncodingKey::from_secret(public_key.as_bytes()).unwrap();
    let hs = encode(&header, &claims, &secret).unwrap();
    expect_invalid_grant(&gw, &hs, "HS256").await;
    gw.finish().await;
}

#[tokio::test]
async fn disabled_keys_are_refused_and_new_keys_work() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (created, file) =
        create_account(&gw, json!({"name": "deploy", "algorithm": "ES256"})).await;
    let id = created["client_id"].as_str().unwrap();
    let kid = file["private_key_id"].as_str().unwrap();
    let (status, disabled) = send(
        &gw,
        Method::POST,
        &format!("/service-accounts/{id}/keys/{kid}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{disabled}");
    assert_eq!(disabled["status"], "disabled");
    expect_invalid_grant(&gw, &assertion(&file, json!({})), "disabled key").await;

    // A second key: generated, with its own file.
    let (status, added) = send(
        &gw,
        Method::POST,
        &format!("/service-accounts/{id}/keys"),
        Some(json!({"algorithm": "RS256"})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let mut second = added["key_file"].clone();
    second["algorithm"] = json!("RS256");
    let (status, token) = token_request(&gw, &assertion(&second, json!({}))).await;
    assert_eq!(status, 200, "{token}");

    // Enabled again, the first key works again.
    let (status, enabled) = send(
        &gw,
        Method::POST,
        &format!("/service-accounts/{id}/keys/{kid}/enable"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["status"], "enabled");
    let (status, token) = token_request(&gw, &assertion(&file, json!({}))).await;
    assert_eq!(status, 200, "{token}");

    // A registered public key: no key file in the answer.
    let (status, third) = send(
        &gw,
        Method::POST,
        &format!("/service-accounts/{id}/keys"),
        Some(json!({"algorithm": "RS256", "public_key": external_rsa_public_key()})),
    )
    .await;
    assert_eq!(status, 201, "{third}");
    assert!(third.get("key_file").is_none(), "{third}");
    let (_, keys) = send(
        &gw,
        Method::GET,
        &format!("/service-accounts/{id}/keys"),
        None,
    )
    .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 3, "{keys}");

    // A revoked account gets no token, whatever key signed.
    let (status, _) = send(&gw, Method::POST, &format!("/keys/{id}/revoke"), None).await;
    assert_eq!(status, 200);
    expect_invalid_grant(&gw, &assertion(&second, json!({})), "revoked account").await;
    gw.finish().await;
}

/// An RSA public key generated here, not by keygate.
fn external_rsa_public_key() -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    use base64::Engine;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn malformed_requests_to_service_account_routes_are_4xx() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (created, file) = create_account(&gw, json!({"name": "probe"})).await;
    let id = created["client_id"].as_str().unwrap();
    let kid = file["private_key_id"].as_str().unwrap();
    // A private key where a public one belongs; its armour is assembled
    // here so no tracked line looks like a key's.
    let private_key_body = format!(
        "{{\"public_key\": \"{d}BEGIN PRIVATE KEY{d}\\nAAAA\\n{d}END PRIVATE KEY{d}\"}}",
        d = "-".repeat(5)
    );
    let bodies: Vec<String> = [
        "",
        "null",
        "[]",
        "\"x\"",
        "{",
        "{\"name\": 5}",
        "{\"name\": \"a\", \"algorithm\": \"HS256\"}",
        "{\"name\": \"a\", \"algorithm\": \"none\"}",
        "{\"name\": \"a\", \"unknown\": 1}",
        "{\"algorithm\": \"RS256\", \"public_key\": \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\"}",
        "{\"algorithm\": \"ES256\", \"public_key\": 7}",
    ]
    .into_iter()
    .map(String::from)
    .chain([private_key_body])
    .collect();
    let paths = [
        (Method::POST, "/service-accounts".to_string()),
        (Method::POST, format!("/service-accounts/{id}/keys")),
        (
            Method::POST,
            format!("/service-accounts/{id}/keys/{kid}/disable"),
        ),
        (
            Method::POST,
            format!("/service-accounts/{id}/keys/{kid}/enable"),
        ),
        (Method::GET, format!("/service-accounts/{id}/keys")),
        (Method::GET, "/service-accounts?limit=0".to_string()),
        (Method::GET, "/service-accounts?bogus=1".to_string()),
        (
            Method::POST,
            "/service-accounts/key_nothere/keys".to_string(),
        ),
        (Method::POST, "/service-accounts/%FF/keys".to_string()),
        (Method::GET, "/service-accounts/key_a%00b/keys".to_string()),
        (
            Method::POST,
            format!("/service-accounts/{id}/keys/sak_nothere/disable"),
        ),
        (
            Method::POST,
            format!("/service-accounts/{id}/keys/%00/enable"),
        ),
    ];
    for (method, path) in &paths {
        for body in &bodies {
            let response = gw
                .admin(method.clone(), path)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(
                status < 500,
                "{method} {path} with {body:?}: {status} {}",
                response.text().await.unwrap()
            );
        }
    }
    // A data key is not a service account.
    let (data_id, _) = gw.create_key(json!({"name": "plain"})).await;
    let (status, _) = send(
        &gw,
        Method::GET,
        &format!("/service-accounts/{data_id}/keys"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    gw.finish().await;
}
