"""The JWT-bearer grant (RFC 7523) with a service account's downloaded key
file, and token exchange (RFC 8693) of identity tokens from a trusted OIDC
issuer (workload identity federation) — and every way an assertion or an
identity token can be wrong.

Assertions and identity tokens are built here with PyJWT and
`cryptography`; the OIDC issuer is a loopback HTTP server in this process
with an RSA key generated at run time.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from e2e_support import marker, mock_reply
from oauth_support import (
    ACCESS_TOKEN_TYPE,
    TOKEN,
    assert_oauth_error,
    assert_token_response,
    chat_status,
    create_service_account,
    exchange_identity,
    hs256_with_public_key,
    jwt_bearer,
    OidcIssuer,
    post_form,
    public_pem_of,
    require_cli,
    sign_assertion,
    assertion_claims,
    unsigned_jwt,
)


def verified_claims(gw, token: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in gw.http.get("/.well-known/jwks.json").json()["keys"] if k["kid"] == header["kid"])
    return jwt.decode(token, jwt.PyJWK(jwk), algorithms=["ES256"], audience=gw.url, issuer=gw.url)


# ---------------------------------------------------------- service accounts --


@pytest.fixture(scope="module", params=["RS256", "ES256"])
def service_account(request, oauth_gateway, tmp_path_factory) -> dict[str, Any]:
    sa = create_service_account(oauth_gateway, tmp_path_factory.mktemp("sa"), request.param,
                                "--models", "gpt-4o*")
    sa["_alg"] = request.param
    return sa


def test_service_account_key_file_and_jwt_bearer_grant(oauth_gateway, service_account) -> None:
    gw, sa = oauth_gateway, service_account
    assert sa["token_uri"] == f"{gw.url}{TOKEN}"
    assert sa["keygate_issuer"] == gw.url

    assertion = sign_assertion(sa)
    body = assert_token_response(jwt_bearer(gw, assertion, scope="chat"))
    token = body["access_token"]
    claims = verified_claims(gw, token)
    assert claims["sub"] == sa["client_id"] and claims["client_id"] == sa["client_id"]
    assert claims["scope"] == "chat"

    with gw.openai(token) as client:
        text = f"service account {marker()}"
        c = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        assert c.choices[0].message.content == mock_reply(text)
    # The account's model allowlist bounds its tokens.
    assert chat_status(gw, token, "claude-haiku-4-5")[0] == 403
    assert_oauth_error(jwt_bearer(gw, sign_assertion(sa), scope="chat model:claude-haiku-4-5"), 400, "invalid_scope")

    # The same assertion again is a replay.
    assert_oauth_error(jwt_bearer(gw, assertion), 400, "invalid_grant")
    # A fresh one (new jti) is fine; the issuer URL is an accepted audience too.
    assert_token_response(jwt_bearer(gw, sign_assertion(sa, assertion_claims(sa, aud=gw.url))))


def _bad_assertions(sa: dict[str, Any]) -> dict[str, Callable[[], str]]:
    now = int(time.time())
    alg = sa["_alg"]
    header = {"kid": sa["private_key_id"], "typ": "JWT"}
    other_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS256"
                 else ec.generate_private_key(ec.SECP256R1()))
    # A key of the other family, to claim the other algorithm.
    cross_key = (ec.generate_private_key(ec.SECP256R1()) if alg == "RS256"
                 else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    cross_alg = "ES256" if alg == "RS256" else "RS256"
    return {
        "alg none": lambda: unsigned_jwt(header, assertion_claims(sa)),
        "HS256 signed with the public key": lambda: hs256_with_public_key(
            header, assertion_claims(sa), public_pem_of(sa["private_key"])),
        "wrong audience": lambda: sign_assertion(sa, assertion_claims(sa, aud="https://other.example/token")),
        "wrong issuer": lambda: sign_assertion(sa, assertion_claims(sa, iss="someone-else")),
        "wrong subject": lambda: sign_assertion(sa, assertion_claims(sa, sub="someone-else")),
        "expired": lambda: sign_assertion(sa, assertion_claims(sa, iat=now - 7200, exp=now - 3600)),
        "not yet valid (nbf beyond the skew)": lambda: sign_assertion(
            sa, assertion_claims(sa, nbf=now + 600, exp=now + 900)),
        "lives longer than an hour": lambda: sign_assertion(sa, assertion_claims(sa, exp=now + 7200)),
        "no jti": lambda: sign_assertion(sa, assertion_claims(sa, jti=None)),
        "no exp": lambda: sign_assertion(sa, assertion_claims(sa, exp=None)),
        "unknown kid": lambda: sign_assertion(sa, kid="no-such-key-" + uuid.uuid4().hex),
        "no kid": lambda: jwt.encode(assertion_claims(sa), sa["private_key"], algorithm=alg),
        "signed by another key": lambda: sign_assertion(sa, key=other_key),
        "the other algorithm": lambda: sign_assertion(sa, key=cross_key, alg=cross_alg),
        "not a JWT": lambda: "not.a.jwt",
    }


def test_bad_assertions_are_invalid_grant(oauth_gateway, service_account) -> None:
    gw, sa = oauth_gateway, service_account
    failures = []
    for name, build in _bad_assertions(sa).items():
        r = jwt_bearer(gw, build())
        if r.status_code != 400 or r.json().get("error") != "invalid_grant":
            failures.append((name, r.status_code, r.text))
        else:
            assert_oauth_error(r, 400, "invalid_grant")
    assert not failures, failures
    # A client secret alongside an assertion is refused, not ignored.
    r = post_form(gw, TOKEN, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                              "assertion": sign_assertion(sa), "client_secret": "x"})
    assert_oauth_error(r, 400, "invalid_request")
    # Missing assertion.
    r = post_form(gw, TOKEN, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"})
    assert_oauth_error(r, 400, "invalid_request")
    # The account still works after all that.
    assert_token_response(jwt_bearer(gw, sign_assertion(sa)))


def test_replayed_assertion_is_invalid_grant(oauth_gateway, service_account) -> None:
    """A jti is accepted once: the same signed assertion again, even moments
    later and asking for something else, is a replay."""
    gw, sa = oauth_gateway, service_account
    assertion = sign_assertion(sa)
    first = jwt_bearer(gw, assertion)
    assert_token_response(first)
    again = jwt_bearer(gw, assertion, scope="chat")
    body = assert_oauth_error(again, 400, "invalid_grant")
    assert "replay" in body.get("error_description", "").lower() or "used before" in body.get(
        "error_description", "").lower(), body


# ------------------------------------------------- workload federation --


AUDIENCE_PREFIX = "keygate-e2e-"


@pytest.fixture(scope="module")
def trusted(oauth_gateway, oidc_issuer) -> dict[str, Any]:
    """A trust rule for the local issuer: repository acme/app on main only,
    tokens of at most 10 minutes for gpt-4o-mini."""
    audience = AUDIENCE_PREFIX + uuid.uuid4().hex[:8]
    out = oauth_gateway.cli(
        "trust", "add-issuer", "--issuer", oidc_issuer.url, "--audience", audience,
        "--jwks-uri", f"{oidc_issuer.url}/jwks.json",
        "--claim", "repository=acme/app", "--claim", "ref=refs/heads/main",
        "--token-ttl", "10m", "--models", "gpt-4o-mini",
    )
    require_cli(out, "trust add-issuer")
    assert out.returncode == 0, out.stderr
    return {"issuer": oidc_issuer, "audience": audience}


def test_identity_token_exchange(oauth_gateway, trusted) -> None:
    gw, issuer, audience = oauth_gateway, trusted["issuer"], trusted["audience"]
    id_token = issuer.mint(audience)
    r = exchange_identity(gw, id_token, scope="chat")
    body = assert_token_response(r, exchanged=True)
    assert body["expires_in"] <= 600  # the rule's --token-ttl
    token = body["access_token"]
    claims = verified_claims(gw, token)
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert claims["exp"] - claims["iat"] <= 600

    with gw.openai(token) as client:
        text = f"ci job {marker()}"
        c = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        assert c.choices[0].message.content == mock_reply(text)
    # The rule's models bound the token.
    status, err = chat_status(gw, token, "gpt-4o")
    assert status == 403, err
    # Asking for more than the rule allows.
    assert_oauth_error(exchange_identity(gw, issuer.mint(audience), scope="chat model:gpt-4o"), 400, "invalid_scope")
    # A branch glob-matching rule sees a real GitHub-like token with array aud.
    body = assert_token_response(exchange_identity(gw, issuer.mint(audience, aud=[audience, "other"])), exchanged=True)
    assert chat_status(gw, body["access_token"])[0] == 200
    # The minted token can be narrowed further by exchanging it.
    r = post_form(gw, TOKEN, {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                              "subject_token": token, "subject_token_type": ACCESS_TOKEN_TYPE,
                              "expires_in": "60"})
    child = assert_token_response(r, exchanged=True)
    assert child["expires_in"] <= 60


def test_bad_identity_tokens_are_invalid_grant(oauth_gateway, trusted) -> None:
    gw, issuer, audience = oauth_gateway, trusted["issuer"], trusted["audience"]
    now = int(time.time())
    header = {"kid": issuer.kid, "typ": "JWT"}
    stranger = OidcIssuer()  # serves keys, but nobody trusts it
    try:
        forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cases: dict[str, str] = {
            "untrusted issuer": stranger.mint(audience),
            "claim rule mismatch (ref)": issuer.mint(audience, ref="refs/heads/dev",
                                                     sub="repo:acme/app:ref:refs/heads/dev"),
            "claim rule mismatch (repository)": issuer.mint(audience, repository="evil/app"),
            "claim missing": issuer.mint(audience, ref=None),
            "wrong audience": issuer.mint("someone-else"),
            "expired": issuer.mint(audience, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            "not yet valid (nbf beyond the skew)": issuer.mint(audience, nbf=now + 600, exp=now + 900),
            "alg none": unsigned_jwt(header, issuer.claims(audience)),
            "HS256 signed with the issuer's public key": hs256_with_public_key(
                header, issuer.claims(audience), issuer.public_pem),
            "unknown kid": issuer.mint(audience, kid="rotated-away-" + uuid.uuid4().hex[:6]),
            "signed by another key under the issuer's kid": issuer.mint(audience, key=forger),
            "issuer claims to be another": issuer.mint(audience, iss=issuer.url + "/other"),
        }
        failures = []
        for name, id_token in cases.items():
            r = exchange_identity(gw, id_token)
            if r.status_code != 400 or r.json().get("error") != "invalid_grant":
                failures.append((name, r.status_code, r.text))
        assert not failures, failures
    finally:
        stranger.stop()
    # The keygate token type on an identity token, and vice versa, are refused.
    r = post_form(gw, TOKEN, {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                              "subject_token": issuer.mint(audience),
                              "subject_token_type": "urn:example:unknown"})
    assert_oauth_error(r, 400, "invalid_request")
    # Still fine afterwards.
    assert_token_response(exchange_identity(gw, issuer.mint(audience)), exchanged=True)
