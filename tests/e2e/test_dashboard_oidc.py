"""Dashboard sign-in through an OpenID Provider: the authorization code
flow with PKCE against a provider played by this test (discovery, JWKS,
authorize, token; identity tokens signed with PyJWT), role rules, and the
ways a sign-in must fail."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from e2e_support import HTTP_TIMEOUT, Gateway, Secret, Spawner

CLIENT_ID = "keygate-dashboard"
REDIRECT = "http://127.0.0.1/dashboard/sign-in/oidc/callback"


class Provider:
    """An OpenID Provider that signs in whoever `user` says, once per code."""

    def __init__(self, client_secret: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "op-" + secrets.token_hex(4)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.jwks = {"keys": [jwk]}
        self.client_secret = client_secret
        self.user: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_overrides: dict[str, Any] = {}
        op = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self.reply(200, {
                        "issuer": op.url, "authorization_endpoint": f"{op.url}/authorize",
                        "token_endpoint": f"{op.url}/token", "jwks_uri": f"{op.url}/jwks",
                        "response_types_supported": ["code"], "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "code_challenge_methods_supported": ["S256"],
                    })
                elif url.path == "/jwks":
                    self.reply(200, op.jwks)
                elif url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
                    assert q["code_challenge_method"] == "S256" and "openid" in q["scope"].split()
                    code = secrets.token_urlsafe(16)
                    op.codes[code] = {**q, "user": dict(op.user)}
                    target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
                    self.reply(302, headers={"location": target})
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                auth = self.headers.get("authorization", "")
                expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{op.client_secret}".encode()).decode()
                if auth != expected:
                    return self.reply(401, {"error": "invalid_client"})
                grant = op.codes.pop(form.get("code", ""), None)  # one use per code
                if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                    return self.reply(400, {"error": "invalid_grant"})
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                ).rstrip(b"=").decode()
                if challenge != grant["code_challenge"]:
                    return self.reply(400, {"error": "invalid_grant", "error_description": "PKCE"})
                now = int(time.time())
                claims = {"iss": op.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                          "nonce": grant["nonce"], **grant["user"], **op.token_overrides}
                claims = {k: v for k, v in claims.items() if v is not None}
                token = jwt.encode(claims, op.key, algorithm="RS256", headers={"kid": op.kid})
                self.reply(200, {"id_token": token, "access_token": "opaque", "token_type": "Bearer"})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def op_and_gateway(spawn: Spawner) -> Any:
    secret = Secret(secrets.token_urlsafe(32))
    op = Provider(secret)
    roles = [
        {"claim": "groups", "match": "keygate-admins", "role": "admin"},
        {"claim": "email", "match": "*@example.com", "role": "viewer"},
    ]
    gw = spawn.gateway("sqlite", name="dashboard-oidc", extra_env={
        "KEYGATE_DASHBOARD_OIDC_ISSUER": op.url,
        "KEYGATE_DASHBOARD_OIDC_CLIENT_ID": CLIENT_ID,
        "KEYGATE_DASHBOARD_OIDC_CLIENT_SECRET": secret,
        "KEYGATE_DASHBOARD_OIDC_REDIRECT_URL": REDIRECT,
        "KEYGATE_DASHBOARD_OIDC_ROLES": json.dumps(roles),
    })
    yield op, gw
    op.stop()


def oidc_sign_in(gw: Gateway, op: Provider, *, tamper_state: bool = False) -> tuple[httpx.Client, httpx.Response]:
    """Walk the redirects as a browser would; the answer of the callback."""
    client = httpx.Client(base_url=gw.url, timeout=HTTP_TIMEOUT, follow_redirects=False)
    start = client.get("/dashboard/sign-in/oidc", params={"next": "/dashboard/keys"})
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{op.url}/authorize?")
    back = httpx.get(authorize, follow_redirects=False)
    assert back.status_code == 302
    callback = urlparse(back.headers["location"])
    assert callback.path == "/dashboard/sign-in/oidc/callback"
    query = parse_qs(callback.query)
    state = query["state"][0]
    if tamper_state:
        state = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    answer = client.get("/dashboard/sign-in/oidc/callback", params={"code": query["code"][0], "state": state})
    return client, answer


def test_sign_in_with_the_openid_provider_gives_the_rule_s_role(op_and_gateway: Any) -> None:
    op, gw = op_and_gateway
    page = httpx.get(f"{gw.url}/dashboard/sign-in")
    assert 'id="oidc-sign-in"' in page.text and "127.0.0.1" in page.text

    op.user = {"sub": "u-1", "email": "ana@example.com", "groups": ["staff"]}
    client, answer = oidc_sign_in(gw, op)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/dashboard/keys"
    keys = client.get("/dashboard/keys", headers={"sec-fetch-site": "same-origin"})
    assert keys.status_code == 200
    assert "oidc:u-1 · viewer · whole instance" in keys.text
    assert "Create a key" not in keys.text
    token = re.search(r'name="csrf" value="([^"]+)"', keys.text).group(1)
    refused = client.post("/dashboard/keys", data={"csrf": token, "name": "from-oidc-viewer"})
    assert refused.status_code == 403

    op.user = {"sub": "u-2", "email": "ops@elsewhere.test", "groups": ["keygate-admins"]}
    admin, answer = oidc_sign_in(gw, op)
    assert answer.status_code == 303
    page = admin.get("/dashboard/keys")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    created = admin.post("/dashboard/keys", data={"csrf": token, "name": "from-oidc-admin"})
    assert created.status_code == 200 and 'id="secret"' in created.text
    # The audit log names the OpenID identities.
    audit = gw.admin.get("/admin/v1/audit").json()["data"]
    assert any(e["actor"] == "oidc:u-2" and e["action"] == "key.create" for e in audit)
    assert any(e["actor"] == "oidc:u-1" and e["action"] == "dashboard.sign_in" for e in audit)


def test_openid_sign_ins_that_must_fail(op_and_gateway: Any) -> None:
    op, gw = op_and_gateway
    # Nobody's rule: signed in at the provider, no role here.
    op.user = {"sub": "u-3", "email": "eve@other.test"}
    _, answer = oidc_sign_in(gw, op)
    assert answer.status_code == 403
    assert "keygate_session" not in answer.headers.get("set-cookie", "")
    # A callback whose state is not the one this browser started.
    op.user = {"sub": "u-1", "email": "ana@example.com"}
    _, answer = oidc_sign_in(gw, op, tamper_state=True)
    assert answer.status_code == 400
    # A callback without the start's cookie (another browser).
    client = httpx.Client(base_url=gw.url, timeout=HTTP_TIMEOUT)
    assert client.get("/dashboard/sign-in/oidc/callback", params={"code": "x", "state": "y"}).status_code == 400
    # Identity tokens that must not verify.
    for override in ({"aud": "another-client"}, {"iss": "https://evil.example"}, {"nonce": "replayed"},
                     {"exp": int(time.time()) - 3600}):
        op.token_overrides = override
        _, answer = oidc_sign_in(gw, op)
        assert answer.status_code == 401, (override, answer.status_code)
        assert "keygate_session" not in answer.headers.get("set-cookie", "")
    op.token_overrides = {}
    # The provider's error comes back as a refusal.
    r = client.get("/dashboard/sign-in/oidc/callback", params={"error": "access_denied", "state": "y"})
    assert r.status_code == 401
    # Hostile callbacks.
    for params in ({"code": "a" * 5000, "state": "\x00"}, {"state": "%%%"}, {}):
        assert client.get("/dashboard/sign-in/oidc/callback", params=params).status_code in (400, 401)
