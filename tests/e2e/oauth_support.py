"""Helpers for the OAuth end-to-end tests: token requests, JWTs built with
PyJWT and `cryptography` (never keygate code), a local OIDC issuer on a
loopback HTTP server thread, and a gateway whose issuer URL is the address
it listens on.

Every key here is generated at run time; nothing credential-shaped is
committed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from e2e_support import HTTP_TIMEOUT, Gateway, Secret, marker

TOKEN = "/oauth/token"
INTROSPECT = "/oauth/introspect"
REVOKE = "/oauth/revoke"

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
API_KEY_TOKEN_TYPE = "urn:keygate:params:oauth:token-type:api_key"
MODEL_RESOURCE = "urn:keygate:model:"

FORM = {"content-type": "application/x-www-form-urlencoded"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def master_key() -> Secret:
    """A fresh master key: base64 of 32 random bytes."""
    return Secret(base64.b64encode(secrets.token_bytes(32)).decode())


def oauth_env(port: int | None = None, issuer: str | None = None) -> dict[str, str]:
    """Environment of a gateway listening on `port` whose issuer is its own
    URL (unless `issuer` names another)."""
    port = port or free_port()
    return {
        "KEYGATE_LISTEN": f"127.0.0.1:{port}",
        "KEYGATE_OAUTH_ISSUER": issuer or f"http://127.0.0.1:{port}",
        "KEYGATE_KEY_REFRESH_INTERVAL": "200ms",
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT, without checking anything."""
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An `alg: none` JWT: the header and claims, no signature."""
    return f"{b64url_json({**header, 'alg': 'none'})}.{b64url_json(claims)}."


def hs256_with_public_key(header: dict[str, Any], claims: dict[str, Any], public_pem: bytes) -> str:
    """The key-confusion forgery: HS256 with the verifier's PUBLIC key (PEM
    bytes) as the HMAC secret. PyJWT refuses to do this, so by hand."""
    signing_input = f"{b64url_json({**header, 'alg': 'HS256'})}.{b64url_json(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tamper_payload(token: str) -> str:
    """The token with one claim changed and the signature kept."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "chat embeddings messages generate models"
    claims["exp"] = claims["exp"] + 86400
    return f"{head}.{b64url_json(claims)}.{sig}"


def tamper_signature(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


# ------------------------------------------------------------ token calls --


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: both parts form-urlencoded, then Basic."""
    from urllib.parse import quote

    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def post_form(gw: Gateway, path: str, data: dict[str, Any] | list[tuple[str, str]],
              headers: dict[str, str] | None = None) -> httpx.Response:
    """A form POST; a list of pairs may repeat a parameter."""
    from urllib.parse import urlencode

    pairs = list(data.items()) if isinstance(data, dict) else data
    return gw.http.post(path, content=urlencode(pairs).encode(), headers={**FORM, **(headers or {})})


def assert_oauth_error(r: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """An RFC 6749 §5.2 error: the status, JSON `{"error", "error_description"}`,
    not cacheable."""
    assert r.status_code == status, f"{r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    if error is not None:
        assert body["error"] == error, body
    assert "no-store" in r.headers.get("cache-control", ""), r.headers
    return body


def assert_token_response(r: httpx.Response, exchanged: bool = False) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert "no-store" in r.headers.get("cache-control", "")
    body = r.json()
    assert body["token_type"] == "Bearer", body
    assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    if exchanged:
        assert body["issued_token_type"] == ACCESS_TOKEN_TYPE, body
    body["access_token"] = Secret(body["access_token"])
    return body


def exchange_key(gw: Gateway, key: str, **params: Any) -> httpx.Response:
    """Token exchange with a keygate API key as the subject."""
    data = [("grant_type", TOKEN_EXCHANGE), ("subject_token", key),
            ("subject_token_type", API_KEY_TOKEN_TYPE)]
    for name, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            data.append((name, str(v)))
    return post_form(gw, TOKEN, data)


def token_from_key(gw: Gateway, key: str, **params: Any) -> dict[str, Any]:
    return assert_token_response(exchange_key(gw, key, **params), exchanged=True)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def chat_status(gw: Gateway, token: str, model: str = "gpt-4o-mini") -> tuple[int, dict[str, Any]]:
    r = gw.http.post("/v1/chat/completions", headers=bearer(token),
                     json={"model": model, "messages": [{"role": "user", "content": f"hi {marker()}"}]})
    return r.status_code, r.json()


def error_code(body: dict[str, Any]) -> str | None:
    return (body.get("error") or {}).get("code") if isinstance(body.get("error"), dict) else None


# ------------------------------------------------------- gateway's JWKS --


def gateway_jwks(gw: Gateway) -> dict[str, Any]:
    r = gw.http.get("/.well-known/jwks.json")
    assert r.status_code == 200, r.text
    return r.json()


def gateway_public_pem(gw: Gateway, kid: str) -> bytes:
    """The gateway's public key `kid` as PEM (what an attacker can fetch)."""
    for jwk in gateway_jwks(gw)["keys"]:
        if jwk.get("kid") == kid:
            key = ECAlgorithm.from_jwk(json.dumps(jwk))
            return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raise AssertionError(f"kid {kid} not in the gateway's JWKS")


# ------------------------------------------------------ interface probes --


def require_admin_route(r: httpx.Response, what: str) -> None:
    """Skip (not fail) while the admin route of `what` has not landed: the
    gateway answers 404 for a route it does not know."""
    if r.status_code in (404, 405):
        pytest.skip(f"{what} has not landed in this build (HTTP {r.status_code})")


def require_cli(out, what: str) -> None:
    if out.returncode != 0 and ("unrecognized subcommand" in out.stderr or "unexpected argument" in out.stderr
                                 or "invalid value" in out.stderr and "subcommand" in out.stderr):
        pytest.skip(f"`keygate {what}` has not landed in this build")


def create_client(gw: Gateway, **fields: Any) -> dict[str, Any]:
    """An OAuth client through the admin API (same body as POST /keys)."""
    body = {"name": f"e2e-client-{marker()}", **fields}
    r = gw.admin.post("/admin/v1/oauth-clients", json=body)
    require_admin_route(r, "POST /admin/v1/oauth-clients")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["client_id"] and created["client_secret"].startswith("kg_"), sorted(created)
    created["client_secret"] = Secret(created["client_secret"])
    return created


def client_token(gw: Gateway, client: dict[str, Any], how: str = "basic", **params: Any) -> httpx.Response:
    data: list[tuple[str, str]] = [("grant_type", "client_credentials")]
    headers: dict[str, str] = {}
    if how == "basic":
        headers = basic(client["client_id"], client["client_secret"])
    else:
        data += [("client_id", client["client_id"]), ("client_secret", client["client_secret"])]
    for name, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            data.append((name, str(v)))
    return post_form(gw, TOKEN, data, headers)


def create_service_account(gw: Gateway, out_dir, alg: str = "RS256", *extra: str) -> dict[str, Any]:
    """`keygate service-accounts create`; returns the key file's JSON."""
    path = out_dir / f"sa-{marker()}.json"
    out = gw.cli("service-accounts", "create", "--name", f"e2e-sa-{marker()}", "--out", str(path),
                 "--algorithm", alg, *extra)
    require_cli(out, "service-accounts create")
    assert out.returncode == 0, out.stderr
    assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
    doc = json.loads(path.read_text())
    assert doc["type"] == "service_account", sorted(doc)
    assert {"client_id", "private_key_id", "private_key", "token_uri", "keygate_issuer"} <= set(doc)
    # PKCS#8 armour, assembled here so no tracked line looks like a key's.
    assert doc["private_key"].startswith("-" * 5 + "BEGIN PRIVATE " + "KEY" + "-" * 5), "not PKCS#8 PEM"
    doc["private_key"] = Secret(doc["private_key"])
    return doc


def assertion_claims(sa: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": sa["client_id"],
        "sub": sa["client_id"],
        "aud": sa["token_uri"],
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign_assertion(sa: dict[str, Any], claims: dict[str, Any] | None = None, *, kid: str | None = None,
                   alg: str | None = None, key: Any = None) -> str:
    """An RFC 7523 assertion signed with the key file's private key (PyJWT)."""
    alg = alg or ("ES256" if _key_type(sa["private_key"]) == "EC" else "RS256")
    return jwt.encode(claims or assertion_claims(sa), key or sa["private_key"], algorithm=alg,
                      headers={"kid": kid or sa["private_key_id"]})


def _key_type(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return "EC" if isinstance(key, ec.EllipticCurvePrivateKey) else "RSA"


def public_pem_of(private_pem: str) -> bytes:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def jwt_bearer(gw: Gateway, assertion: str, **params: Any) -> httpx.Response:
    data = [("grant_type", JWT_BEARER), ("assertion", assertion)]
    data += [(k, str(v)) for k, v in params.items()]
    return post_form(gw, TOKEN, data)


# ------------------------------------------------------ local OIDC issuer --


class OidcIssuer:
    """A minimal OpenID Provider on a loopback HTTP server thread: discovery
    document and JWKS of an RSA key generated here; `mint` signs identity
    tokens like GitHub Actions' (repository, ref, …)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "e2e-" + secrets.token_hex(6)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.jwks = {"keys": [jwk]}
        self.fetches: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                issuer.fetches.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json",
                            "id_token_signing_alg_values_supported": ["RS256"],
                            "response_types_supported": ["id_token"], "subject_types_supported": ["public"]}
                elif self.path == "/jwks.json":
                    body = issuer.jwks
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="oidc-issuer", daemon=True)
        self.thread.start()

    @property
    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "ref": "refs/heads/main",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, audience: str, *, kid: str | None = None, key: Any = None, **overrides: Any) -> str:
        return jwt.encode(self.claims(audience, **overrides), key or self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid, "typ": "JWT"})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def exchange_identity(gw: Gateway, id_token: str, **params: Any) -> httpx.Response:
    data = [("grant_type", TOKEN_EXCHANGE), ("subject_token", id_token), ("subject_token_type", ID_TOKEN_TYPE)]
    data += [(k, str(v)) for k, v in params.items()]
    return post_form(gw, TOKEN, data)


def new_http(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0))
