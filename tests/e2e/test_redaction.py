"""Secrets stay out of logs, error answers and admin answers.

A whole gateway workload runs with debug logging for every crate and body
logging on, writing its log to a file: keys, an admin credential, an OAuth
client and its tokens, a stored provider credential, the provider keys, the
master key, the server secret and a webhook secret are all created or used —
successfully and in every wrong way (wrong key, key in the URL, revoked
key, secrets pasted into prompts, model names, descriptions and user
agents). None of them may appear in the log file, in any error answer or in
any admin answer but the one that shows a new secret once.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest

from e2e_support import Secret, Spawner, tamper


def fake(prefix: str, n: int = 40) -> Secret:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return Secret(prefix + "".join(secrets.choice(alphabet) for _ in range(n)))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_no_secret_reaches_the_log_the_errors_or_the_admin_answers(
    spawn: Spawner, provider_keys: dict[str, Secret], backend: str
) -> None:
    master = Secret(base64.b64encode(secrets.token_bytes(32)).decode())
    server_secret = Secret(secrets.token_urlsafe(40))
    webhook_secret = Secret(secrets.token_urlsafe(32))
    gw = spawn.gateway(
        backend,
        extra_env={
            "KEYGATE_LOG": "trace,h2=debug,hyper=debug,rustls=debug",
            "KEYGATE_LOG_BODIES": "true",
            "KEYGATE_MASTER_KEY": master,
            "KEYGATE_SERVER_SECRET": server_secret,
            "KEYGATE_ROTATION_WEBHOOK_SECRET": webhook_secret,
        },
        name=f"redaction-{backend}",
    )
    admin_key = gw.admin_key
    assert admin_key
    secrets_used: list[Secret] = [
        *provider_keys.values(), master, server_secret, webhook_secret, admin_key
    ]
    errors: list[str] = []
    admin_answers: list[str] = []

    def error(response: httpx.Response) -> None:
        assert response.status_code >= 400, response.status_code
        errors.append(response.text)

    # Secrets a user pastes where they do not belong.
    pasted_openai = fake("sk-proj-", 48)
    pasted_anthropic = fake("sk-ant-api03-", 80)
    pasted_github = fake("ghp_", 36)
    secrets_used += [pasted_openai, pasted_anthropic, pasted_github]

    # Keys: one used, one revoked, one whose description carries a secret.
    key = gw.create_key(description=f"the old one was {pasted_openai}")
    revoked = gw.create_key()
    secrets_used += [key["key"], revoked["key"]]
    gw.revoke(revoked["id"])

    # A stored provider credential.
    stored = fake("sk-proj-", 48)
    secrets_used.append(stored)
    r = gw.admin.post("/admin/v1/provider-credentials", json={"name": "redaction-test", "secret": stored})
    assert r.status_code == 201, r.text

    # An OAuth client and a token.
    r = gw.admin.post("/admin/v1/oauth-clients", json={"name": "redaction"})
    assert r.status_code == 201, r.text
    client = r.json()
    client_secret = Secret(client["client_secret"])
    secrets_used.append(client_secret)
    r = gw.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client_secret),
    )
    assert r.status_code == 200, r.text
    token = Secret(r.json()["access_token"])
    secrets_used.append(token)

    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"my key is {pasted_anthropic}"}]}
    bearer = lambda k: {"authorization": f"Bearer {k}", "user-agent": f"agent {pasted_github}"}  # noqa: E731

    # Successful use: key and token, JSON and streaming.
    for credential in (key["key"], token):
        r = gw.http.post("/v1/chat/completions", json=chat, headers=bearer(credential))
        assert r.status_code == 200, r.text
        with gw.http.stream(
            "POST", "/v1/chat/completions", json={**chat, "stream": True}, headers=bearer(credential)
        ) as s:
            assert s.status_code == 200
            s.read()
    # Every wrong way.
    error(gw.http.post("/v1/chat/completions", json=chat, headers=bearer(tamper(key["key"]))))
    error(gw.http.post("/v1/chat/completions", json=chat, headers=bearer(revoked["key"])))
    error(gw.http.post(f"/v1/chat/completions?key={key['key']}", json=chat))
    error(gw.http.post("/v1/chat/completions", json={**chat, "model": pasted_openai}, headers=bearer(key["key"])))
    error(gw.http.post("/v1/chat/completions", content=b'{"model": "' + pasted_openai.encode(), headers=bearer(key["key"])))
    error(gw.http.post("/v1/chat/completions", json=chat, headers=bearer(client_secret)))
    error(gw.http.post("/v1/chat/completions", json=chat, headers=bearer(admin_key)))
    error(gw.http.post("/v1/chat/completions", json=chat, headers={"x-api-key": tamper(token)}))
    error(gw.http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client["client_id"], tamper(client_secret))))
    error(gw.http.post("/oauth/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                                             "subject_token": tamper(key["key"]),
                                             "subject_token_type": "urn:keygate:params:oauth:token-type:api_key"}))
    error(gw.http.get("/admin/v1/keys", headers={"authorization": f"Bearer {key['key']}"}))
    error(gw.http.get("/admin/v1/keys", headers={"authorization": f"Bearer {tamper(admin_key)}"}))

    # Admin answers (none of these is the one that shows a new secret).
    for path in (
        "/admin/v1/keys",
        f"/admin/v1/keys/{key['id']}",
        f"/admin/v1/keys/{client['client_id']}",
        "/admin/v1/usage/events?limit=1000",
        "/admin/v1/usage",
        "/admin/v1/audit",
        "/admin/v1/provider-credentials",
        "/admin/v1/oauth-clients",
    ):
        r = gw.admin.get(path)
        assert r.status_code == 200, (path, r.status_code)
        admin_answers.append(r.text)
    gw.stop()
    log = gw.proc.stderr_path.read_text(errors="replace") if gw.proc else ""
    # The workload really was logged at debug, bodies included.
    assert "DEBUG" in log and "body" in log, "debug logging with bodies did not happen"

    def leaks(text: str) -> list[str]:
        return [f"secret #{i} ({len(s)} chars)" for i, s in enumerate(secrets_used) if s in text]

    assert not leaks(log), f"in the log: {leaks(log)}"
    for answer in errors:
        assert not leaks(answer), f"in an error answer: {leaks(answer)}"
    for answer in admin_answers:
        assert not leaks(answer), f"in an admin answer: {leaks(answer)}"
    # What was pasted is still recognisable, masked.
    assert any("…[redacted]" in a for a in admin_answers)
