//! Workload identity federation end to end: a test OIDC issuer on loopback
//! (discovery document and JWKS served by axum, keys generated here with
//! aws-lc-rs, identity tokens signed with `jsonwebtoken`), trusted through
//! the admin API with claim rules; its identity tokens are exchanged at
//! `/oauth/token` (RFC 8693) for tokens that call the data plane. Tokens
//! that miss a rule, come from another issuer or audience, name an unknown
//! key or are HMAC-"signed" with the public key are refused.

use crate::support::{chat_body, Backend, TestGateway, BACKENDS};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const KID: &str = "test-key-1";
const AUDIENCE: &str = "https://keygate.example";

/// A signing key of the test issuer.
struct IssuerKey {
    encoding: EncodingKey,
    jwk: Value,
}

fn issuer_key(kid: &str) -> IssuerKey {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    // The uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    IssuerKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
    }
}

/// Serve OIDC discovery and a JWKS for every issuer under
/// `http://<addr>/<tenant>`; returns the base URL.
async fn serve_issuer(jwks: Value) -> String {
    use axum::extract::{Path, State};
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(
                |State(base): State<(String, Value)>, Path(tenant): Path<String>| async move {
                    axum::Json(json!({
                        "issuer": format!("{}/{tenant}", base.0),
                        "jwks_uri": format!("{}/{tenant}/jwks", base.0),
                    }))
                },
            ),
        )
        .route(
            "/{tenant}/jwks",
            get(|State(base): State<(String, Value)>| async move { axum::Json(base.1) }),
        )
        .with_state((base.clone(), jwks));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A GitHub-Actions-like identity token from `issuer`.
fn identity_token(key: &IssuerKey, kid: &str, issuer: &str, overrides: Value) -> String {
    let now = now_s();
    let mut claims = json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app",
        "ref": "refs/heads/main",
        "iat": now,
        "exp": now + 300,
    });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    encode(&header, &claims, &key.encoding).unwrap()
}

async fn exchange(gw: &TestGateway, subject: &str) -> (u16, Value) {
    let response = gw
        .http
        .post(format!("{}/oauth/token", gw.base))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ID_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn expect_invalid_grant(gw: &TestGateway, subject: &str, why: &str) {
    let (status, body) = exchange(gw, subject).await;
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

async fn trust(gw: &TestGateway, body: Value) -> Value {
    let (status, rule) = send(gw, Method::POST, "/trusted-issuers", Some(body)).await;
    assert_eq!(status, 201, "{rule}");
    rule
}

fn rules() -> Value {
    json!({"repository": "acme/app", "ref": "refs/heads/main"})
}

#[tokio::test]
async fn identity_tokens_matching_a_rule_get_tokens_that_call_models() {
    for backend in BACKENDS {
        federation_round_trip(backend).await;
    }
}

async fn federation_round_trip(backend: Backend) {
    let gw = TestGateway::start(backend, MockOptions::default()).await;
    let key = issuer_key(KID);
    let base = serve_issuer(json!({"keys": [key.jwk]})).await;
    // Keys found by discovery, by a JWKS URL, and configured.
    let discovered = format!("{base}/discovered");
    let by_uri = format!("{base}/by-uri");
    let fixed = format!("{base}/fixed");
    let rule = trust(
        &gw,
        json!({"issuer": discovered, "audience": AUDIENCE, "claims": rules(),
               "models": ["gpt-4o-mini"], "name": "acme-ci"}),
    )
    .await;
    assert!(rule["id"].as_str().unwrap().starts_with("tis_"), "{rule}");
    assert_eq!(rule["token_ttl_s"], 900);
    assert_eq!(rule["status"], "enabled");
    assert_eq!(rule["claims"], rules());
    trust(
        &gw,
        json!({"issuer": by_uri, "audience": AUDIENCE, "claims": rules(),
               "jwks_uri": format!("{base}/by-uri/jwks"), "token_ttl": "5m"}),
    )
    .await;
    trust(
        &gw,
        json!({"issuer": fixed, "audience": AUDIENCE, "claims": rules(),
               "jwks": {"keys": [key.jwk]}}),
    )
    .await;
    for (issuer, ttl) in [(&discovered, 900), (&by_uri, 300), (&fixed, 900)] {
        let (status, token) = exchange(&gw, &identity_token(&key, KID, issuer, json!({}))).await;
        assert_eq!(status, 200, "{issuer}: {token}");
        let expires_in = token["expires_in"].as_i64().unwrap();
        assert!(expires_in <= ttl && expires_in > ttl - 5, "{token}");
        let response = gw
            .chat(token["access_token"].as_str().unwrap(), chat_body(false))
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    // The rule's model allowlist binds its tokens.
    let (_, token) = exchange(&gw, &identity_token(&key, KID, &discovered, json!({}))).await;
    let other = gw
        .chat(
            token["access_token"].as_str().unwrap(),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(other.status(), 403);
    let (_, listed) = send(&gw, Method::GET, "/trusted-issuers", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed["data"][0]["name"], "acme-ci");
    gw.finish().await;
}

#[tokio::test]
async fn tokens_missing_the_rule_are_invalid_grants() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let key = issuer_key(KID);
    let base = serve_issuer(json!({"keys": [key.jwk]})).await;
    let issuer = format!("{base}/acme");
    let rule = trust(
        &gw,
        json!({"issuer": issuer, "audience": AUDIENCE, "claims": rules(),
               "jwks_uri": format!("{base}/acme/jwks")}),
    )
    .await;
    // A good token works, so every refusal below is the token's fault.
    let (status, body) = exchange(&gw, &identity_token(&key, KID, &issuer, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let now = now_s();
    for (overrides, why) in [
        (json!({"ref": "refs/heads/dev"}), "claim mismatch"),
        (
            json!({"repository": "acme/app-fork"}),
            "repository mismatch",
        ),
        (json!({"repository": null}), "claim missing"),
        (json!({"aud": "https://other.example"}), "wrong audience"),
        (json!({"iat": now - 900, "exp": now - 600}), "expired"),
    ] {
        expect_invalid_grant(&gw, &identity_token(&key, KID, &issuer, overrides), why).await;
    }
    // Another issuer, never trusted (though its keys are the same).
    let untrusted = identity_token(&key, KID, &format!("{base}/evil"), json!({}));
    expect_invalid_grant(&gw, &untrusted, "untrusted issuer").await;
    // A key the issuer does not publish.
    let stranger = issuer_key("test-key-2");
    let unknown = identity_token(&stranger, "test-key-2", &issuer, json!({}));
    expect_invalid_grant(&gw, &unknown, "unknown kid").await;
    // Signed by another key under the published kid.
    let forged = identity_token(&stranger, KID, &issuer, json!({}));
    expect_invalid_grant(&gw, &forged, "forged signature").await;
    // HS256 "signed" with the issuer's public key.
    let now = now_s();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KID.into());
    let claims = json!({"iss": issuer, "aud": AUDIENCE, "sub": "x", "repository": "acme/app",
                        "ref": "refs/heads/main", "exp": now + 300});
    let public = serde_json::to_vec(&key.jwk).unwrap();
    let hs = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(&public).unwrap(),
    )
    .unwrap();
    expect_invalid_grant(&gw, &hs, "HS256 with the public key").await;

    // A disabled rule trusts nothing; enabled again, it does.
    let id = rule["id"].as_str().unwrap();
    let (status, disabled) = send(
        &gw,
        Method::POST,
        &format!("/trusted-issuers/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{disabled}");
    assert_eq!(disabled["status"], "disabled");
    let good = identity_token(&key, KID, &issuer, json!({}));
    expect_invalid_grant(&gw, &good, "disabled rule").await;
    let (status, enabled) = send(
        &gw,
        Method::POST,
        &format!("/trusted-issuers/{id}/enable"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{enabled}");
    let (status, body) = exchange(&gw, &good).await;
    assert_eq!(status, 200, "{body}");
    // Revoking the rule's key record stops it too.
    let key_id = rule["key_id"].as_str().unwrap();
    let (status, _) = send(&gw, Method::POST, &format!("/keys/{key_id}/revoke"), None).await;
    assert_eq!(status, 200);
    let again = identity_token(&key, KID, &issuer, json!({}));
    expect_invalid_grant(&gw, &again, "revoked key record").await;
    gw.finish().await;
}

#[tokio::test]
async fn rules_are_validated_and_malformed_requests_are_4xx() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let ok = json!({"issuer": "https://token.actions.githubusercontent.com", "audience": AUDIENCE,
                    "claims": {"repository": "acme/app"}});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    for (body, why) in [
        (with("claims", json!({})), "no claim rule"),
        (with("claims", json!({"repository": "*"})), "match-all glob"),
        (
            with("claims", json!({"repository": "acme/{a,b}"})),
            "alternatives",
        ),
        (with("claims", json!({"": "x"})), "empty claim name"),
        (with("claims", json!({"a\u{1}": "x"})), "control character"),
        (with("claims", json!({"repository": 5})), "number glob"),
        (with("issuer", json!("http://issuer.example")), "plain http"),
        (
            with("issuer", json!("https://issuer.example/?x=1")),
            "query",
        ),
        (with("issuer", json!("not a url")), "not a url"),
        (
            with("jwks_uri", json!("ftp://issuer.example/jwks")),
            "ftp jwks",
        ),
        (
            with("jwks", json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
            "symmetric jwk",
        ),
        (with("jwks", json!({"keys": []})), "empty jwks"),
        (
            with(
                "jwks",
                json!({"keys": [{"kty": "RSA", "n": "AAAA", "e": "AQAB", "d": "AAAA"}]}),
            ),
            "private jwk",
        ),
        (with("token_ttl", json!("13h")), "over the maximum"),
        (with("token_ttl", json!("1s")), "too short"),
        (with("token_ttl", json!("soon")), "not a duration"),
        (with("audience", json!("")), "empty audience"),
        (with("unknown", json!(1)), "unknown field"),
        (with("env", json!("nowhere")), "unknown environment"),
        (
            json!({"audience": AUDIENCE, "claims": {"a": "b"}}),
            "no issuer",
        ),
    ] {
        let (status, answer) = send(&gw, Method::POST, "/trusted-issuers", Some(body)).await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let mut both = with("jwks_uri", json!("https://issuer.example/jwks"));
    both["jwks"] = json!({"keys": [{"kty": "RSA", "n": "AAAA", "e": "AQAB"}]});
    let (status, _) = send(&gw, Method::POST, "/trusted-issuers", Some(both)).await;
    assert_eq!(status, 400, "jwks and jwks_uri");

    // Raw bodies and paths: never a 5xx.
    let bodies = [
        "",
        "null",
        "[]",
        "{",
        "\"x\"",
        "{\"issuer\": []}",
        "{\"claims\": null}",
    ];
    let paths = [
        (Method::POST, "/trusted-issuers"),
        (Method::POST, "/trusted-issuers/tis_nothere/disable"),
        (Method::POST, "/trusted-issuers/tis_nothere/enable"),
        (Method::POST, "/trusted-issuers/%FF/enable"),
        (Method::POST, "/trusted-issuers/tis_a%00b/disable"),
        (Method::GET, "/trusted-issuers"),
        (Method::GET, "/trusted-issuers?x=1"),
    ];
    for (method, path) in paths {
        for body in bodies {
            let response = gw
                .admin(method.clone(), path)
                .header("content-type", "application/json")
                .body(body)
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

    // Trusting an issuer takes an admin.
    let (status, member) = send(
        &gw,
        Method::POST,
        "/admin-credentials",
        Some(json!({"name": "dev", "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{member}");
    let response = gw
        .http
        .post(format!("{}/admin/v1/trusted-issuers", gw.base))
        .bearer_auth(member["key"].as_str().unwrap())
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let (status, created) = send(&gw, Method::POST, "/trusted-issuers", Some(ok)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["name"],
        "https://token.actions.githubusercontent.com"
    );
    gw.finish().await;
}
