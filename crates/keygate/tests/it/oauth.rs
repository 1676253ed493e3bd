//! The authorization server end to end on a real gateway: client
//! credentials, tokens minted from keys and tokens, narrowing, token
//! budgets, introspection, revocation (by jti and through the key record),
//! signing-key rotation with overlap, forged tokens and hostile forms.

use crate::support::{chat_body, error_code, Backend, TestGateway};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use keygate::auth::token::TokenError;
use keygate::mock::MockOptions;
use reqwest::Method;
use serde_json::{json, Value};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY_TYPE: &str = "urn:keygate:params:oauth:token-type:api_key";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Register an OAuth client; (client_id, client_secret).
async fn client(gw: &TestGateway, body: Value) -> (String, String) {
    let response = gw
        .admin(Method::POST, "/oauth-clients")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    (
        created["client_id"].as_str().unwrap().to_string(),
        created["client_secret"].as_str().unwrap().to_string(),
    )
}

/// POST a form to an OAuth endpoint; (status, JSON answer).
async fn form(
    gw: &TestGateway,
    path: &str,
    basic: Option<(&str, &str)>,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = gw.http.post(format!("{}{path}", gw.base)).form(params);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn client_token(gw: &TestGateway, id: &str, secret: &str, scope: Option<&str>) -> String {
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    let (status, body) = form(gw, "/oauth/token", Some((id, secret)), &params).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

async fn exchange(
    gw: &TestGateway,
    subject: &str,
    subject_type: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut params = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", subject_type),
    ];
    params.extend_from_slice(extra);
    form(gw, "/oauth/token", None, &params).await
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn client_credentials_tokens_call_models_under_the_clients_policy() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (id, secret) = client(
        &gw,
        json!({"name": "batch", "models": ["gpt-4o-mini"], "scopes": ["chat"]}),
    )
    .await;
    let token = client_token(&gw, &id, &secret, None).await;
    let claims = claims_of(&token);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["kg_key"], id.as_str());
    assert_eq!(claims["aud"], claims["iss"]);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600, "one hour by default");

    assert_eq!(gw.chat(&token, chat_body(false)).await.status(), 200);
    // The client's own policy binds its tokens.
    let other_model = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let (status, code) = error_code(gw.chat(&token, other_model).await).await;
    assert_eq!((status, code), (403, json!("model_not_allowed")));
    // The secret itself is no API key.
    let (status, code) = error_code(gw.chat(&secret, chat_body(false)).await).await;
    assert_eq!((status, code), (403, json!("wrong_credential_kind")));
    // Spend is the client's, and the row names the token.
    let events = gw.events_of(&id).await;
    let ok: Vec<_> = events.iter().filter(|e| e.status == 200).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].token_id.as_deref(), claims["jti"].as_str());

    // A scope wider than the client's is refused; a wrong secret is 401.
    let (status, body) = form(
        &gw,
        "/oauth/token",
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "embeddings"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_scope"))
    );
    let (status, body) = form(
        &gw,
        "/oauth/token",
        Some((&id, "kg_live_wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_client"))
    );
    // Posting the credentials in the body works too.
    let (status, _) = form(
        &gw,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200);
    gw.finish().await;
}

#[tokio::test]
async fn a_key_mints_narrow_budgeted_tokens_and_never_wider_ones() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (_, key) = gw
        .create_key(json!({"name": "backend", "models": ["gpt-4o*"], "scopes": ["chat", "models"]}))
        .await;

    let (status, body) = exchange(
        &gw,
        &key,
        API_KEY_TYPE,
        &[("scope", "chat model:gpt-4o-mini"), ("expires_in", "300")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "chat model:gpt-4o-mini");
    let browser = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(gw.chat(&browser, chat_body(false)).await.status(), 200);
    let other = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(error_code(gw.chat(&browser, other).await).await.0, 403);
    let models = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth(&browser)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 403, "the token's scope has no 'models'");

    // Wider than the key: another model family, another route family.
    for scope in ["model:claude-*", "model:gpt-*", "embeddings"] {
        let (status, body) = exchange(&gw, &key, API_KEY_TYPE, &[("scope", scope)]).await;
        assert_eq!(
            (status, body["error"].clone()),
            (400, json!("invalid_scope")),
            "{scope}"
        );
    }
    let (status, body) = exchange(
        &gw,
        &key,
        API_KEY_TYPE,
        &[("resource", "https://elsewhere.example")],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_target"))
    );

    // A budget smaller than one request's worst case: refused with 402.
    let (status, body) = exchange(&gw, &key, API_KEY_TYPE, &[("budget_usd", "0.000001")]).await;
    assert_eq!(status, 200, "{body}");
    let tiny = body["access_token"].as_str().unwrap();
    let (status, code) = error_code(gw.chat(tiny, chat_body(false)).await).await;
    assert_eq!((status, code), (402, json!("budget_exceeded")));
    // ... and it mints nothing further.
    let (status, body) = exchange(&gw, tiny, ACCESS_TOKEN_TYPE, &[]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_grant"))
    );

    // A token minted from the browser token is narrower still and dies
    // with it.
    let (status, body) = exchange(&gw, &browser, ACCESS_TOKEN_TYPE, &[("scope", "chat")]).await;
    assert_eq!(status, 200, "{body}");
    let child = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        body["scope"], "chat model:gpt-4o-mini",
        "models inherited from the parent token"
    );
    let (status, body) = exchange(&gw, &browser, ACCESS_TOKEN_TYPE, &[("scope", "models")]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_scope"))
    );
    let (status, _) = form(&gw, "/oauth/revoke", None, &[("token", &browser)]).await;
    assert_eq!(status, 401, "revocation needs authentication");
    let auth = format!("Bearer {key}");
    let response = gw
        .http
        .post(format!("{}/oauth/revoke", gw.base))
        .header("authorization", auth)
        .form(&[("token", browser.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for token in [&browser, &child] {
        let (status, code) = error_code(gw.chat(token, chat_body(false)).await).await;
        assert_eq!((status, code), (401, json!("revoked_token")));
    }
    gw.finish().await;
}

#[tokio::test]
async fn introspection_and_revocation_follow_the_rfcs_and_the_key_record() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (id, secret) = client(&gw, json!({"name": "svc"})).await;
    let (other_id, other_secret) = client(&gw, json!({"name": "other"})).await;
    let token = client_token(&gw, &id, &secret, Some("chat")).await;
    let second = client_token(&gw, &id, &secret, None).await;

    let (status, body) = form(
        &gw,
        "/oauth/introspect",
        Some((&id, &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["scope"], "chat");
    // Another client learns nothing about it, and cannot revoke it.
    let (_, body) = form(
        &gw,
        "/oauth/introspect",
        Some((&other_id, &other_secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, json!({"active": false}));
    let (status, body) = form(
        &gw,
        "/oauth/revoke",
        Some((&other_id, &other_secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unauthorized_client"))
    );
    // Unauthenticated: 401.
    let (status, body) = form(&gw, "/oauth/introspect", None, &[("token", &token)]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_client"))
    );
    // Garbage is simply inactive; revoking it is a no-op 200.
    let (_, body) = form(
        &gw,
        "/oauth/introspect",
        Some((&id, &secret)),
        &[("token", "eyJ.not.a-token")],
    )
    .await;
    assert_eq!(body, json!({"active": false}));
    assert_eq!(
        form(
            &gw,
            "/oauth/revoke",
            Some((&id, &secret)),
            &[("token", "junk")]
        )
        .await
        .0,
        200
    );

    // Revoked by jti: refused, inactive, audited.
    assert_eq!(
        form(
            &gw,
            "/oauth/revoke",
            Some((&id, &secret)),
            &[("token", &token)]
        )
        .await
        .0,
        200
    );
    let (status, code) = error_code(gw.chat(&token, chat_body(false)).await).await;
    assert_eq!((status, code), (401, json!("revoked_token")));
    let (_, body) = form(
        &gw,
        "/oauth/introspect",
        Some((&id, &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body["active"], false);
    let jti = claims_of(&token)["jti"].as_str().unwrap().to_string();
    let audit: Value = gw
        .admin(Method::GET, "/audit?action=token.revoke")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(audit.to_string().contains(&jti), "{audit}");
    // The revocation is in the store for every other node.
    let rows = gw.store().revoked_tokens_since(0, 0).await.unwrap();
    assert!(rows.iter().any(|r| r.jti == jti));

    // Revoking the client kills every token it holds.
    assert_eq!(gw.chat(&second, chat_body(false)).await.status(), 200);
    let revoked = gw
        .admin(Method::POST, &format!("/keys/{id}/revoke"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, code) = error_code(gw.chat(&second, chat_body(false)).await).await;
    assert_eq!((status, code), (401, json!("revoked_token")));
    let (status, body) = form(
        &gw,
        "/oauth/token",
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_client"))
    );
    gw.finish().await;
}

#[tokio::test]
async fn signing_keys_rotate_with_overlap_and_retire() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (id, secret) = client(&gw, json!({"name": "rot"})).await;
    let old = client_token(&gw, &id, &secret, None).await;
    let old_kid = header_of(&old)["kid"].as_str().unwrap().to_string();
    let jwks = || async {
        let body: Value = gw
            .http
            .get(format!("{}/.well-known/jwks.json", gw.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(jwks().await, vec![old_kid.clone()]);

    let signing = gw.state.tokens.signing().clone();
    let config = &gw.state.config.oauth;
    let now = keygate::time::now_ms();
    let rotation = i64::try_from(config.signing_key_rotation.as_millis()).unwrap();
    // Rotation is due: the next key is published at once, used a minute later.
    signing.refresh(now + rotation).await.unwrap();
    let published = jwks().await;
    assert_eq!(published.len(), 2);
    assert_eq!(
        signing.ring().signer().unwrap().0,
        old_kid,
        "not yet active"
    );
    let lead = i64::try_from(keygate::auth::signing::PUBLISH_LEAD.as_millis()).unwrap();
    signing.refresh(now + rotation + lead).await.unwrap();
    let new_kid = signing.ring().signer().unwrap().0.to_string();
    assert_ne!(new_kid, old_kid);
    let fresh = client_token(&gw, &id, &secret, None).await;
    assert_eq!(header_of(&fresh)["kid"], new_kid.as_str());
    // Tokens of the old key keep working during the overlap.
    assert_eq!(gw.chat(&old, chat_body(false)).await.status(), 200);
    // Once every token it signed has expired, the old key is gone.
    let overlap = config.max_token_ttl
        + keygate::auth::signing::CLOCK_SKEW
        + keygate::auth::signing::PUBLISH_LEAD;
    let after = now + rotation + lead + i64::try_from(overlap.as_millis()).unwrap() + 1000;
    signing.refresh(after).await.unwrap();
    assert_eq!(jwks().await, vec![new_kid]);
    let digest_miss = format!("{old}x");
    assert!(gw.state.tokens.verify(&digest_miss, now).is_err());
    gw.finish().await;
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let (id, secret) = client(&gw, json!({"name": "forge"})).await;
    let token = client_token(&gw, &id, &secret, None).await;
    let [header, payload, signature]: [&str; 3] =
        token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let mut claims = claims_of(&token);
    let now = keygate::time::now_ms();

    // alg none, unsigned.
    let none = format!(
        "{}.{payload}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"}))
    );
    // HS256 "signed" with the published public key.
    let jwk: Value = gw
        .http
        .get(format!("{}/.well-known/jwks.json", gw.base))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["keys"][0]
        .clone();
    let hs_header = b64(&json!({"alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"]}));
    let hs = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(jwk.to_string().as_bytes()).unwrap();
        mac.update(format!("{hs_header}.{payload}").as_bytes());
        format!(
            "{hs_header}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    // A widened payload under the original signature.
    claims["scope"] = json!("");
    claims["kg_key"] = json!("key_someoneelse");
    let tampered = format!("{header}.{}.{signature}", b64(&claims));
    // Unknown kid.
    let unknown = format!(
        "{}.{payload}.{signature}",
        b64(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "kgk_unknown"}))
    );
    let cases = [
        // `none` is not even an algorithm the JWT library can name.
        (none, TokenError::Malformed),
        (hs, TokenError::WrongHeader),
        (tampered, TokenError::BadSignature),
        (unknown, TokenError::UnknownKey),
    ];
    for (forged, expected) in &cases {
        assert_eq!(gw.state.tokens.verify(forged, now).unwrap_err(), *expected);
        let (status, code) = error_code(gw.chat(forged, chat_body(false)).await).await;
        assert_eq!((status, code), (401, json!("invalid_token")));
    }
    // The real one expires on the gateway's clock.
    let exp_ms = claims_of(&token)["exp"].as_i64().unwrap() * 1000;
    assert_eq!(
        gw.state.tokens.verify(&token, exp_ms + 31_000).unwrap_err(),
        TokenError::Expired
    );
    assert!(gw.state.tokens.verify(&token, now).is_ok());
    gw.finish().await;
}

#[tokio::test]
async fn metadata_describes_the_server_and_hostile_forms_get_oauth_errors() {
    let gw = TestGateway::start(Backend::Sqlite, MockOptions::default()).await;
    let meta: Value = gw
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            gw.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = meta["issuer"].as_str().unwrap();
    assert_eq!(meta["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(meta["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert!(meta["grant_types_supported"]
        .to_string()
        .contains("token-exchange"));

    let post = |body: Vec<u8>, content_type: &'static str| {
        gw.http
            .post(format!("{}/oauth/token", gw.base))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // An unsigned (`alg: none`) token, built here rather than written out.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(b"{}")
    );
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{\"grant_type\":\"client_credentials\"}".to_vec(), "application/json", 400, "invalid_request"),
        (b"grant_type=client_credentials&grant_type=password".to_vec(), "application/x-www-form-urlencoded", 400, "invalid_request"),
        (b"grant_type=implicit".to_vec(), "application/x-www-form-urlencoded", 400, "unsupported_grant_type"),
        (b"scope=chat".to_vec(), "application/x-www-form-urlencoded", 400, "invalid_request"),
        (b"grant_type=client_credentials".to_vec(), "application/x-www-form-urlencoded", 401, "invalid_client"),
        (vec![0xff, 0xfe, 0x00, b'='], "application/x-www-form-urlencoded", 400, "invalid_request"),
        (vec![b'a'; 70 * 1024], "application/x-www-form-urlencoded", 400, "invalid_request"),
        (format!("grant_type={EXCHANGE}&subject_token=kg_live_x&subject_token_type=urn:x").into_bytes(), "application/x-www-form-urlencoded", 400, "invalid_request"),
        (format!("grant_type={EXCHANGE}&subject_token={unsigned}&subject_token_type={ACCESS_TOKEN_TYPE}").into_bytes(), "application/x-www-form-urlencoded", 400, "invalid_grant"),
        (b"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=abc".to_vec(), "application/x-www-form-urlencoded", 400, "invalid_grant"),
    ];
    for (body, content_type, status, error) in cases {
        let response = post(body, content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], error, "{answer}");
    }
    // Basic credentials that are not base64 at all.
    let response = gw
        .http
        .post(format!("{}/oauth/token", gw.base))
        .header("authorization", format!("Basic {}", "%%%"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    gw.finish().await;
}
