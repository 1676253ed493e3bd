"""The OAuth authorization server end to end (DESIGN "Short-lived tokens"):
RFC 8414 metadata and the JWKS, client credentials, a backend minting a
narrow browser token from its key (RFC 8693), tokens on the data plane with
the official OpenAI SDK, introspection (RFC 7662) and revocation (RFC 7009),
and forged tokens refused.

Tokens are checked with PyJWT and `cryptography` against the published
JWKS, never with keygate code.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from e2e_support import assert_openai_error, marker, mock_reply, well_formed_unknown_key
from oauth_support import (
    ACCESS_TOKEN_TYPE,
    API_KEY_TOKEN_TYPE,
    INTROSPECT,
    JWT_BEARER,
    MODEL_RESOURCE,
    REVOKE,
    TOKEN,
    TOKEN_EXCHANGE,
    assert_oauth_error,
    assert_token_response,
    basic,
    bearer,
    chat_status,
    client_token,
    create_client,
    exchange_key,
    gateway_jwks,
    gateway_public_pem,
    hs256_with_public_key,
    post_form,
    require_cli,
    tamper_payload,
    tamper_signature,
    token_from_key,
    unsigned_jwt,
    unverified,
)


def verify_with_jwks(gw, token: str) -> dict[str, Any]:
    """Verify a keygate access token as a resource server would: the key
    named by `kid` from the published JWKS, ES256 only, iss and aud the
    gateway's issuer, the RFC 9068 claims required."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256", header
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt"), header
    keys = {k["kid"]: k for k in gateway_jwks(gw)["keys"]}
    assert header["kid"] in keys, "the token's kid is not published"
    key = jwt.PyJWK(keys[header["kid"]])
    claims = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=gw.url,
        issuer=gw.url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    assert claims["exp"] > time.time()
    assert claims["iat"] <= time.time() + 30
    return claims


def openai_chat_and_stream(gw, token: str) -> None:
    """The official SDK, unchanged, with the access token as its api_key."""
    with gw.openai(token) as client:
        text = f"token chat {marker()}"
        c = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        assert c.choices[0].message.content == mock_reply(text)
        text = f"token stream {marker()}"
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True
            )
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == mock_reply(text)


# ------------------------------------------------------------- discovery --


def test_authorization_server_metadata_and_jwks(oauth_gateway) -> None:
    gw = oauth_gateway
    r = gw.http.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200, r.text
    meta = r.json()
    # RFC 8414 §3.3: the issuer is the URL the metadata was fetched under.
    assert meta["issuer"] == gw.url
    for field, path in [
        ("token_endpoint", TOKEN),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("introspection_endpoint", INTROSPECT),
        ("revocation_endpoint", REVOKE),
    ]:
        assert meta[field] == gw.url + path, (field, meta[field])
    assert {"client_credentials", JWT_BEARER, TOKEN_EXCHANGE} <= set(meta["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(meta["token_endpoint_auth_methods_supported"])
    assert "response_types_supported" in meta  # REQUIRED by RFC 8414 §2
    assert {"chat", "embeddings", "messages", "generate", "models"} <= set(meta["scopes_supported"])
    assert meta["introspection_endpoint_auth_methods_supported"]
    assert meta["revocation_endpoint_auth_methods_supported"]
    assert {API_KEY_TOKEN_TYPE, ACCESS_TOKEN_TYPE} <= set(meta.get("subject_token_types_supported", []))

    r = gw.http.get("/.well-known/jwks.json")
    assert r.status_code == 200
    jwks = r.json()
    assert jwks["keys"], jwks
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk.get("alg", "ES256") == "ES256", jwk
        assert jwk["kid"] and jwk.get("use", "sig") == "sig"
        assert "d" not in jwk, "a private key component is published"
        # Each key parses as a P-256 public key with an independent library.
        key = jwt.PyJWK(jwk).key
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


# ----------------------------------------------------- client credentials --


@pytest.mark.parametrize("how", ["basic", "post"])
def test_client_credentials_token_verifies_and_drives_the_openai_sdk(oauth_gateway, how: str) -> None:
    gw = oauth_gateway
    client = create_client(gw, models=["gpt-4o*"])
    r = client_token(gw, client, how=how, scope="chat models")
    body = assert_token_response(r)
    assert body["scope"] == "chat models"
    assert 0 < body["expires_in"] <= 3600
    token = body["access_token"]

    claims = verify_with_jwks(gw, token)
    assert claims["client_id"] == client["client_id"]
    assert claims["sub"] == client["client_id"]
    assert claims["scope"] == "chat models"
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] == body["expires_in"]

    openai_chat_and_stream(gw, token)
    with gw.openai(token) as sdk:
        assert any(m.id == "gpt-4o-mini" for m in sdk.models.list())
        # The token's scope has no embeddings.
        with pytest.raises(openai.PermissionDeniedError) as e:
            sdk.embeddings.create(model="text-embedding-3-small", input="x")
        assert e.value.status_code == 403

    # Two requests, two tokens: unique jti.
    again = assert_token_response(client_token(gw, client, how=how))
    assert unverified(again["access_token"])[1]["jti"] != claims["jti"]


def test_client_secret_is_not_a_data_plane_key_and_bad_secrets_are_invalid_client(oauth_gateway) -> None:
    gw = oauth_gateway
    client = create_client(gw)
    r = gw.http.post("/v1/chat/completions", headers=bearer(client["client_secret"]),
                     json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert_openai_error(r, 403, "wrong_credential_kind")

    wrong = dict(client, client_secret=client["client_secret"][:-3] + "aaa")
    assert_oauth_error(client_token(gw, wrong), 401, "invalid_client")
    assert_oauth_error(client_token(gw, wrong, how="post"), 401, "invalid_client")
    other = create_client(gw)
    mixed = dict(client, client_secret=other["client_secret"])
    assert_oauth_error(client_token(gw, mixed), 401, "invalid_client")
    # No client authentication at all.
    assert_oauth_error(post_form(gw, TOKEN, {"grant_type": "client_credentials"}), 401, "invalid_client")
    # A plain API key is not an OAuth client.
    key = gw.create_key()
    r = post_form(gw, TOKEN, {"grant_type": "client_credentials"}, basic(key["id"], key["key"]))
    assert_oauth_error(r, 401, "invalid_client")


def test_client_token_scope_never_wider_than_the_client(oauth_gateway) -> None:
    gw = oauth_gateway
    client = create_client(gw, models=["gpt-4o-mini"], scopes=["chat"])
    assert_oauth_error(client_token(gw, client, scope="chat model:gpt-4o"), 400, "invalid_scope")
    assert_oauth_error(client_token(gw, client, scope="embeddings"), 400, "invalid_scope")
    assert_oauth_error(client_token(gw, client, resource=MODEL_RESOURCE + "gpt-4o"), 400, "invalid_scope")
    assert_oauth_error(client_token(gw, client, resource="https://elsewhere.example"), 400, "invalid_target")
    ok = assert_token_response(client_token(gw, client, scope="chat model:gpt-4o-mini", resource=gw.url))
    assert ok["scope"] == "chat model:gpt-4o-mini"
    assert chat_status(gw, ok["access_token"], "gpt-4o")[0] == 403


def test_cli_creates_an_oauth_client(oauth_gateway) -> None:
    gw = oauth_gateway
    out = gw.cli("oauth-clients", "create", "--name", f"e2e-cli-{marker()}", "--scopes", "chat",
                 "--models", "gpt-4o-mini", "--env", "live", "--format", "json")
    require_cli(out, "oauth-clients create")
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["client_secret"].startswith("kg_live_")
    body = assert_token_response(client_token(gw, created, scope="chat"))
    assert chat_status(gw, body["access_token"])[0] == 200
    assert chat_status(gw, body["access_token"], "gpt-4o")[0] == 403


# --------------------------------------------- browser token from a key --


def test_backend_mints_a_narrow_browser_token_from_its_key(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key(models=["gpt-4o*", "text-embedding-*"])
    body = token_from_key(gw, key["key"], scope="chat model:gpt-4o-mini", budget_usd="0.5", expires_in=120)
    assert body["scope"] == "chat model:gpt-4o-mini"
    assert 0 < body["expires_in"] <= 120
    token = body["access_token"]
    claims = verify_with_jwks(gw, token)
    assert claims["exp"] - claims["iat"] <= 120
    assert claims["scope"] == "chat model:gpt-4o-mini"
    assert claims["sub"] == key["id"]

    openai_chat_and_stream(gw, token)
    status, err = chat_status(gw, token, "gpt-4o")
    assert status == 403 and err["error"]["code"] == "model_not_allowed", err
    r = gw.http.post("/v1/embeddings", headers=bearer(token),
                     json={"model": "text-embedding-3-small", "input": "x"})
    assert_openai_error(r, 403, "scope_not_allowed")
    # The key itself still may do all of that.
    r = gw.http.post("/v1/embeddings", headers=bearer(key["key"]),
                     json={"model": "text-embedding-3-small", "input": "x"})
    assert r.status_code == 200, r.text

    # The ledger names the token.
    time.sleep(0.5)
    events = [e for e in gw.events(key["id"]) if e.get("token_id")]
    assert any(e["token_id"] == claims["jti"] for e in events), events[:3]

    # A token with a budget of its own mints nothing further.
    r = post_form(gw, TOKEN, {"grant_type": TOKEN_EXCHANGE, "subject_token": token,
                              "subject_token_type": ACCESS_TOKEN_TYPE})
    assert_oauth_error(r, 400, "invalid_grant")


def test_browser_token_budget_is_enforced(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key(models=["gpt-4o*"])
    # One nanodollar: not even the first request's reservation fits.
    body = token_from_key(gw, key["key"], scope="chat model:gpt-4o-mini", budget_usd="0.000000001")
    status, err = chat_status(gw, body["access_token"])
    assert status == 402, err
    # The key is untouched by its token's budget.
    assert chat_status(gw, key["key"])[0] == 200


def test_token_minted_from_a_token_is_narrower_still(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key()
    parent = token_from_key(gw, key["key"], scope="chat embeddings")["access_token"]
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token": parent, "subject_token_type": ACCESS_TOKEN_TYPE}
    child = assert_token_response(post_form(gw, TOKEN, {**data, "scope": "chat model:gpt-4o-mini"}), exchanged=True)
    assert verify_with_jwks(gw, child["access_token"])["scope"] == "chat model:gpt-4o-mini"
    assert chat_status(gw, child["access_token"])[0] == 200
    assert_oauth_error(post_form(gw, TOKEN, {**data, "scope": "models"}), 400, "invalid_scope")
    # Revoking the parent token revokes the child.
    r = post_form(gw, REVOKE, {"token": parent}, bearer(key["key"]))
    assert r.status_code == 200, r.text
    status, err = chat_status(gw, child["access_token"])
    assert status == 401 and err["error"]["code"] == "revoked_token", err


def test_scope_wider_than_the_parent_key_is_invalid_scope(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key(models=["gpt-4o-mini"], scopes=["chat"])
    for params in [
        {"scope": "chat model:gpt-4o"},  # a model the key lacks
        {"scope": "model:*"},  # a glob the key does not list
        {"scope": "embeddings"},  # a route family the key lacks
        {"scope": "chat messages"},
        {"resource": MODEL_RESOURCE + "claude-haiku-4-5"},
        {"scope": "admin"},  # not a route family at all
    ]:
        assert_oauth_error(exchange_key(gw, key["key"], **params), 400, "invalid_scope")
    assert_oauth_error(exchange_key(gw, key["key"], resource="https://evil.example"), 400, "invalid_target")
    for bad in [{"expires_in": "-5"}, {"expires_in": "soon"}, {"budget_usd": "-1"}, {"budget_usd": "NaN"}]:
        assert_oauth_error(exchange_key(gw, key["key"], **bad), 400, "invalid_request")
    ok = token_from_key(gw, key["key"], scope="chat model:gpt-4o-mini")
    assert ok["scope"] == "chat model:gpt-4o-mini"


def test_long_expires_in_is_capped(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key()
    body = token_from_key(gw, key["key"], expires_in=10**9)
    assert body["expires_in"] <= 12 * 3600  # KEYGATE_TOKEN_MAX_TTL default


def test_child_token_of_a_revoked_key_is_refused_everywhere(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key()
    token = token_from_key(gw, key["key"], scope="chat")["access_token"]
    assert chat_status(gw, token)[0] == 200

    out = gw.cli("keys", "revoke", key["id"], "--reason", "leaked", "--format", "json")
    assert out.returncode == 0, out.stderr
    r = gw.http.post("/v1/chat/completions", headers=bearer(token),
                     json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert_openai_error(r, 401, "revoked_token")
    with gw.openai(token) as sdk, pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    # Neither the key nor its token can mint anything any more.
    assert_oauth_error(exchange_key(gw, key["key"]), 400, "invalid_grant")
    r = post_form(gw, TOKEN, {"grant_type": TOKEN_EXCHANGE, "subject_token": token,
                              "subject_token_type": ACCESS_TOKEN_TYPE})
    assert_oauth_error(r, 400, "invalid_grant")
    # And introspection (as the admin) calls it inactive.
    r = post_form(gw, INTROSPECT, {"token": token}, bearer(gw.admin_key))
    assert r.status_code == 200 and r.json() == {"active": False}, r.text


# ---------------------------------------------------- forged data plane --


def forged_tokens(gw, genuine: str) -> dict[str, str]:
    header, claims = unverified(genuine)
    pem = gateway_public_pem(gw, header["kid"])
    attacker = ec.generate_private_key(ec.SECP256R1())
    wide = {**claims, "scope": "", "exp": int(time.time()) + 86400}
    return {
        "tampered payload": tamper_payload(genuine),
        "tampered signature": tamper_signature(genuine),
        "alg none": unsigned_jwt(header, wide),
        "alg none, empty-signature variant": unsigned_jwt({"typ": "at+jwt"}, wide),
        "HS256 with the gateway's public key": hs256_with_public_key(header, wide, pem),
        "ES256 by another key under the gateway's kid": jwt.encode(wide, attacker, algorithm="ES256", headers=header),
        "unknown kid": jwt.encode(wide, attacker, algorithm="ES256", headers={**header, "kid": "nope"}),
        "no typ": jwt.encode(wide, attacker, algorithm="ES256", headers={"kid": header["kid"], "typ": "JWT"}),
        "truncated": genuine[: genuine.rindex(".")],
    }


def test_forged_tokens_are_refused_on_the_data_plane(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key()
    genuine = token_from_key(gw, key["key"], scope="chat")["access_token"]
    assert chat_status(gw, genuine)[0] == 200
    for name, forged in forged_tokens(gw, genuine).items():
        r = gw.http.post("/v1/chat/completions", headers=bearer(forged),
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert_openai_error(r, 401)
        # Nor are they accepted as the subject of an exchange.
        r = post_form(gw, TOKEN, {"grant_type": TOKEN_EXCHANGE, "subject_token": forged,
                                  "subject_token_type": ACCESS_TOKEN_TYPE})
        assert_oauth_error(r, 400, "invalid_grant")
    # An expired-looking genuine token is still fine: nothing above
    # poisoned the verification cache.
    assert chat_status(gw, genuine)[0] == 200


# ------------------------------------------ introspection and revocation --


def introspect(gw, token: str, headers: dict[str, str] | None = None, **extra: str):
    return post_form(gw, INTROSPECT, {"token": token, **extra}, headers)


def test_introspection_and_revocation_as_the_client(oauth_gateway) -> None:
    gw = oauth_gateway
    client = create_client(gw)
    auth = basic(client["client_id"], client["client_secret"])
    token = assert_token_response(client_token(gw, client, scope="chat"))["access_token"]
    claims = verify_with_jwks(gw, token)

    r = introspect(gw, token, auth)
    assert r.status_code == 200 and "no-store" in r.headers.get("cache-control", "")
    info = r.json()
    assert info["active"] is True
    for name in ("client_id", "sub", "iss", "exp", "iat", "jti", "scope"):
        assert info[name] == claims[name], name
    assert info["token_type"] == "Bearer"
    # client_secret_post works too.
    r = introspect(gw, token, None, client_id=client["client_id"], client_secret=client["client_secret"])
    assert r.status_code == 200 and r.json()["active"] is True
    # Another client learns nothing of it (RFC 7662 §2.2).
    other = create_client(gw)
    r = introspect(gw, token, basic(other["client_id"], other["client_secret"]))
    assert r.status_code == 200 and r.json() == {"active": False}
    # Nor can it revoke it.
    r = post_form(gw, REVOKE, {"token": token}, basic(other["client_id"], other["client_secret"]))
    assert r.status_code in (400, 401, 403), r.text
    assert chat_status(gw, token)[0] == 200

    # Unauthenticated, or with a wrong secret: invalid_client.
    assert_oauth_error(introspect(gw, token), 401, "invalid_client")
    assert_oauth_error(introspect(gw, token, basic(client["client_id"], well_formed_unknown_key())), 401, "invalid_client")
    assert_oauth_error(post_form(gw, REVOKE, {"token": token}), 401, "invalid_client")

    r = post_form(gw, REVOKE, {"token": token, "token_type_hint": "access_token"}, auth)
    assert r.status_code == 200, r.text
    r = introspect(gw, token, auth)
    assert r.status_code == 200 and r.json() == {"active": False}
    status, err = chat_status(gw, token)
    assert status == 401 and err["error"]["code"] == "revoked_token", err
    # Revoking again, or revoking garbage, is 200 (RFC 7009 §2.2).
    assert post_form(gw, REVOKE, {"token": token}, auth).status_code == 200
    assert post_form(gw, REVOKE, {"token": "not-a-token"}, auth).status_code == 200


def test_introspection_and_revocation_with_the_minting_key(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key()
    token = token_from_key(gw, key["key"], scope="chat model:gpt-4o-mini", budget_usd="2")["access_token"]
    claims = verify_with_jwks(gw, token)
    r = introspect(gw, token, bearer(key["key"]))
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["active"] is True and info["jti"] == claims["jti"] and info["scope"] == "chat model:gpt-4o-mini"
    assert info["aud"] in (gw.url, [gw.url])
    # Another key sees nothing.
    other = gw.create_key()
    assert introspect(gw, token, bearer(other["key"])).json() == {"active": False}
    # Garbage is inactive, not an error.
    assert introspect(gw, token[:-4] + "AAAA", bearer(key["key"])).json() == {"active": False}
    assert introspect(gw, well_formed_unknown_key(), bearer(key["key"])).json() == {"active": False}
    # A missing token parameter is invalid_request.
    assert_oauth_error(post_form(gw, INTROSPECT, {"x": "1"}, bearer(key["key"])), 400, "invalid_request")
    assert_oauth_error(introspect(gw, token, bearer(well_formed_unknown_key())), 401, "invalid_client")

    assert post_form(gw, REVOKE, {"token": token}, bearer(key["key"])).status_code == 200
    assert introspect(gw, token, bearer(key["key"])).json() == {"active": False}
    r = gw.http.post("/v1/chat/completions", headers=bearer(token),
                     json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert_openai_error(r, 401, "revoked_token")
    # The key itself is untouched.
    assert chat_status(gw, key["key"])[0] == 200


def test_default_issuer_is_the_address_the_gateway_listens_on(gateway) -> None:
    meta = gateway.http.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == gateway.url
    assert meta["token_endpoint"] == gateway.url + TOKEN
