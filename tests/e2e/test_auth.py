"""Credentials: every accepted header style, every refusal with its code
(task 4)."""

from __future__ import annotations

import secrets

import anthropic
import httpx
import openai
import pytest

from e2e_support import (
    Secret,
    assert_anthropic_error,
    assert_openai_error,
    keygate_checksum,
    marker,
    mock_reply,
    tamper,
    well_formed_unknown_key,
)

CHAT = "/v1/chat/completions"


def chat_body(text: str | None = None, model: str = "gpt-4o-mini") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text or f"auth {marker()}"}]}


def test_checksum_helper_matches_real_keys(key) -> None:
    """Guards the look-alike key used below: a real key's last six characters
    are the checksum this suite computes, so the look-alike passes the
    gateway's offline check and is refused only for being unknown."""
    k = key["key"]
    ok = keygate_checksum(k[:-6]) == k[-6:]
    assert ok, "the suite's CRC32/base62 checksum does not match keygate's"


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(lambda real: well_formed_unknown_key(), id="well-formed-unknown"),
        pytest.param(tamper, id="one-char-changed"),
        pytest.param(lambda real: "sk-" + secrets.token_hex(20), id="random-string"),
        pytest.param(lambda real: real[:-1], id="truncated"),
        pytest.param(lambda real: "kg_live_" + "!" * 38, id="malformed"),
    ],
)
def test_bad_keys_are_401_invalid_api_key(gateway, key, make_bad) -> None:
    bad = Secret(make_bad(key["key"]))
    with gateway.openai(bad) as client, pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(**chat_body())
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"
    assert exc.value.response.headers.get("x-request-id", "").startswith("req_")

    with gateway.anthropic(bad) as client, pytest.raises(anthropic.AuthenticationError) as aexc:
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert aexc.value.status_code == 401
    assert aexc.value.body["type"] == "error"
    assert aexc.value.body["error"]["type"] == "authentication_error"


def test_missing_key_is_401(gateway) -> None:
    r = gateway.http.post(CHAT, json=chat_body())
    assert_openai_error(r, 401, "missing_api_key")
    r = gateway.http.post("/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []})
    assert_anthropic_error(r, 401, "authentication_error")
    # A bearer scheme without a token, and a non-bearer scheme, are no credential.
    r = gateway.http.post(CHAT, json=chat_body(), headers={"authorization": "Bearer"})
    assert_openai_error(r, 401, "missing_api_key")
    r = gateway.http.post(CHAT, json=chat_body(), headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert_openai_error(r, 401)
    # The models listing answers in the shape of the SDK that asked.
    assert_openai_error(gateway.http.get("/v1/models"), 401, "missing_api_key")
    assert_anthropic_error(gateway.http.get("/v1/models", headers={"anthropic-version": "2023-06-01"}), 401,
                           "authentication_error")


@pytest.mark.parametrize(
    "header_name, prefix",
    [("authorization", "Bearer "), ("x-api-key", ""), ("x-goog-api-key", ""), ("api-key", "")],
)
def test_every_header_style_is_accepted(gateway, key, header_name, prefix) -> None:
    text = f"header style {marker()}"
    r = gateway.http.post(CHAT, json=chat_body(text), headers={header_name: prefix + key["key"]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == mock_reply(text)


@pytest.mark.parametrize("param", ["key", "api_key", "api-key", "access_token", "token"])
def test_key_in_query_is_refused(gateway, key, param) -> None:
    # Refused even with a valid key in the header too: the URL has leaked it.
    url = httpx.URL(CHAT, params={param: key["key"]})
    r = gateway.http.post(url, json=chat_body(), headers={"authorization": f"Bearer {key['key']}"})
    err = assert_openai_error(r, 401, "credential_in_query")
    assert "query" in err["message"].lower()
    r = gateway.http.post(url, json=chat_body())
    assert_openai_error(r, 401, "credential_in_query")


def test_key_in_query_on_messages_is_refused_in_anthropic_shape(gateway, key) -> None:
    r = gateway.http.post(httpx.URL("/v1/messages", params={"key": key["key"]}), headers={"x-api-key": key["key"]},
                          json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    err = assert_anthropic_error(r, 401, "authentication_error")
    assert "query" in err["message"].lower()


def test_key_value_in_any_query_parameter_is_refused(gateway, key) -> None:
    r = gateway.http.get(httpx.URL("/v1/models", params={"x": key["key"]}), headers={"authorization": f"Bearer {key['key']}"})
    assert_openai_error(r, 401, "credential_in_query")


def test_revoked_key_is_401_revoked(gateway) -> None:
    k = gateway.create_key()
    with gateway.openai(k["key"]) as client:
        text = f"before revoke {marker()}"
        assert client.chat.completions.create(**chat_body(text)).choices[0].message.content == mock_reply(text)
        shown = gateway.cli_json("keys", "revoke", k["id"], "--reason", "e2e test", "--format", "json")
        assert shown["status"] == "revoked" and shown["revoke_reason"] == "e2e test"
        with pytest.raises(openai.AuthenticationError) as exc:
            client.chat.completions.create(**chat_body())
    assert exc.value.code == "revoked_api_key"
    with gateway.anthropic(k["key"]) as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    listed = {row["id"]: row for row in gateway.cli_json("keys", "list", "--format", "json")}
    assert listed[k["id"]]["status"] == "revoked"


def test_model_outside_allowlist_is_403(gateway) -> None:
    k = gateway.create_key(models=["gpt-4o-mini"])
    with gateway.openai(k["key"]) as client:
        text = f"allowed {marker()}"
        assert client.chat.completions.create(**chat_body(text)).choices[0].message.content == mock_reply(text)
        with pytest.raises(openai.PermissionDeniedError) as exc:
            client.chat.completions.create(**chat_body(model="gpt-4o"))
        assert exc.value.status_code == 403 and exc.value.code == "model_not_allowed"
        with pytest.raises(openai.PermissionDeniedError) as exc:
            client.embeddings.create(model="text-embedding-3-small", input="x")
        assert exc.value.code == "model_not_allowed"
    with gateway.anthropic(k["key"]) as client, pytest.raises(anthropic.PermissionDeniedError) as aexc:
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert aexc.value.body["error"]["type"] == "permission_error"


def test_allowlist_matches_canonical_form(gateway) -> None:
    k = gateway.create_key(models=["anthropic/*"])
    with gateway.anthropic(k["key"]) as client:
        text = f"canonical {marker()}"
        m = client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": text}])
        assert m.content[0].text == mock_reply(text)
    with gateway.openai(k["key"]) as client, pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(**chat_body())


def test_data_key_cannot_call_admin(gateway, key) -> None:
    for method, path in [("GET", "/admin/v1/keys"), ("POST", "/admin/v1/keys"), ("GET", "/admin/v1/usage/events")]:
        r = gateway.http.request(method, path, headers={"authorization": f"Bearer {key['key']}"},
                                 json={"name": "x"} if method == "POST" else None)
        assert_openai_error(r, 403, "admin_required")
    r = gateway.http.get("/admin/v1/keys")
    assert_openai_error(r, 401, "missing_api_key")


def test_admin_key_cannot_call_models(gateway) -> None:
    admin = gateway.admin_key
    with gateway.openai(admin) as client, pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(**chat_body())
    assert exc.value.code == "wrong_credential_kind"
    r = gateway.http.post("/v1/messages", headers={"x-api-key": admin},
                          json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    assert_anthropic_error(r, 403, "permission_error")


def test_admin_key_list_never_shows_secrets(gateway, key) -> None:
    r = gateway.admin.get("/admin/v1/keys")
    assert r.status_code == 200
    ok = key["key"] not in r.text and "kg_live_" not in r.text and "secret_hash" not in r.text
    assert ok, "GET /admin/v1/keys exposed a secret or its digest"
    shown = gateway.admin.get(f"/admin/v1/keys/{key['id']}")
    assert shown.status_code == 200 and shown.json()["hint"] == "..." + key["key"][-4:]
    ok = key["key"] not in shown.text and "key" not in shown.json()
    assert ok, "GET /admin/v1/keys/{id} exposed the secret"


def test_admin_create_refuses_unknown_fields(gateway) -> None:
    r = gateway.admin.post("/admin/v1/keys", json={"name": "x", "is_admin": True})
    assert_openai_error(r, 400)
    r = gateway.admin.post("/admin/v1/keys", json={"name": "x", "env": "prod"})
    assert_openai_error(r, 400)


def test_test_env_key_has_its_prefix(gateway) -> None:
    created = gateway.cli_json("keys", "create", "--name", f"cli-{marker()}", "--env", "test", "--models", "gpt-4o-mini,claude-*", "--format", "json")
    ok = created["key"].startswith("kg_test_")
    assert ok and created["env"] == "test" and created["models"] == ["gpt-4o-mini", "claude-*"]
    with gateway.openai(created["key"]) as client:
        text = f"test env {marker()}"
        assert client.chat.completions.create(**chat_body(text)).choices[0].message.content == mock_reply(text)
    created.clear()
