"""Hostile input on /oauth/token, /oauth/introspect and /oauth/revoke: the
right 4xx with an RFC 6749 JSON `error`, never a 5xx, and the gateway keeps
issuing tokens afterwards."""

from __future__ import annotations

import os
import socket
from typing import Any

import httpx
import pytest

from e2e_support import RawHttp, well_formed_unknown_key
from oauth_support import (
    FORM,
    INTROSPECT,
    REVOKE,
    TOKEN,
    API_KEY_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    assert_oauth_error,
    bearer,
    token_from_key,
)

ENDPOINTS = [TOKEN, INTROSPECT, REVOKE]


def cases(key: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """name -> (headers, body). Each is refused before or at parsing, on
    every endpoint."""
    good = f"grant_type=client_credentials&token=x&subject_token={key}".encode()
    return {
        "json content type": ({"content-type": "application/json"}, b'{"grant_type":"client_credentials"}'),
        "no content type": ({}, good),
        "text/plain": ({"content-type": "text/plain"}, good),
        "multipart": ({"content-type": "multipart/form-data; boundary=x"},
                      b"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n"),
        "repeated grant_type": (FORM, b"grant_type=client_credentials&grant_type=password&token=x"),
        "repeated token": (FORM, b"grant_type=client_credentials&token=a&token=b"),
        "invalid UTF-8": (FORM, b"grant_type=\xff\xfe\xfd&token=\xc3\x28"),
        "binary junk": (FORM, os.urandom(2048).replace(b"=", b"\x00") + b"\xff"),
        "oversized (> 64 KiB)": (FORM, b"grant_type=client_credentials&token=" + b"A" * (70 * 1024)),
        "too many parameters": (FORM, "&".join(f"p{i}=v" for i in range(200)).encode()),
    }


def assert_refused(r: httpx.Response, name: str) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
    assert r.headers.get("content-type", "").startswith("application/json"), (name, r.headers)
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], (name, body)
    return body


@pytest.mark.parametrize("path", ENDPOINTS)
def test_hostile_bodies_are_4xx_oauth_errors(oauth_gateway, path: str) -> None:
    gw = oauth_gateway
    key = gw.create_key()
    for name, (headers, body) in cases(key["key"]).items():
        r = gw.http.post(path, content=body, headers={**headers, **bearer(key["key"])})
        got = assert_refused(r, name)
        assert got["error"] == "invalid_request", (name, got)
    # Percent-encoded bytes that are not UTF-8 decode lossily (U+FFFD): an
    # unknown grant, an inactive token; never a 5xx.
    r = gw.http.post(path, content=b"grant_type=%ff%fe&token=%c3%28", headers={**FORM, **bearer(key["key"])})
    assert r.status_code < 500, r.text
    if path == TOKEN:
        assert_oauth_error(r, 400, "unsupported_grant_type")
    # Still issuing and introspecting.
    token = token_from_key(gw, key["key"])["access_token"]
    r = gw.http.post(INTROSPECT, content=f"token={token}".encode(), headers={**FORM, **bearer(key["key"])})
    assert r.status_code == 200 and r.json()["active"] is True
    assert gw.proc.alive()


def test_token_endpoint_parameter_errors(oauth_gateway) -> None:
    gw = oauth_gateway
    key = gw.create_key()

    def post(body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return gw.http.post(TOKEN, content=body, headers={**FORM, **(headers or {})})

    assert_oauth_error(post(b""), 400, "invalid_request")  # no grant_type
    assert_oauth_error(post(b"grant_type="), 400, "invalid_request")  # empty = omitted
    assert_oauth_error(post(b"grant_type=urn:example:bogus"), 400, "unsupported_grant_type")
    assert_oauth_error(post(b"grant_type=%00%01%02"), 400, "unsupported_grant_type")
    for grant in ("password", "authorization_code", "refresh_token", "implicit"):
        assert_oauth_error(post(f"grant_type={grant}".encode()), 400, "unsupported_grant_type")
    assert_oauth_error(post(b"grant_type=client_credentials&scope=admin"), 400, "invalid_scope")
    assert_oauth_error(post(b"grant_type=client_credentials&scope=model:%5B"), 400, "invalid_scope")
    assert_oauth_error(post(b"grant_type=client_credentials&resource=ftp://x"), 400, "invalid_target")
    # Malformed Basic credentials.
    for value in ("Basic !!!notbase64", "Basic " + "Zm9v", "Basic", b"Basic \xff\xfe", "Basic //79"):
        r = post(b"grant_type=client_credentials", {"authorization": value})
        assert_refused(r, repr(value))
        assert r.status_code in (400, 401), r.text
    # Two ways of client authentication at once.
    r = post(b"grant_type=client_credentials&client_id=a&client_secret=b",
             {"authorization": "Basic YTpi"})
    assert_oauth_error(r, 400, "invalid_request")
    # Token exchange without its parameters, with an unknown subject type,
    # with delegation, asking for another token type.
    base = f"grant_type={TOKEN_EXCHANGE}".encode()
    assert_oauth_error(post(base), 400, "invalid_request")
    assert_oauth_error(post(base + b"&subject_token=x"), 400, "invalid_request")
    assert_oauth_error(post(base + b"&subject_token=x&subject_token_type=urn:x"), 400, "invalid_request")
    k = key["key"]
    with_key = base + f"&subject_token={k}&subject_token_type={API_KEY_TOKEN_TYPE}".encode()
    assert_oauth_error(post(with_key + b"&actor_token=x&actor_token_type=urn:x"), 400, "invalid_request")
    assert_oauth_error(post(with_key + b"&requested_token_type=urn:ietf:params:oauth:token-type:refresh_token"),
                       400, "invalid_request")
    # Garbage as the subject: invalid_grant, not a crash.
    for junk in (well_formed_unknown_key(), "eyJ.eyJ.x", "eyJhbGciOiJub25lIn0.e30.", "A" * 9000):
        r = post(base + f"&subject_token={junk}&subject_token_type={API_KEY_TOKEN_TYPE}".encode())
        assert_oauth_error(r, 400, "invalid_grant")
    for junk in ("not-a-jwt", "eyJ.eyJ.x", "A" * 9000):
        r = post(base + f"&subject_token={junk}&subject_token_type=urn:ietf:params:oauth:token-type:id_token".encode())
        assert_oauth_error(r, 400, "invalid_grant")
    assert gw.proc.alive()


@pytest.mark.parametrize("path", ENDPOINTS)
def test_truncated_and_chunked_bodies(oauth_gateway, path: str) -> None:
    gw = oauth_gateway
    host = httpx.URL(gw.url).host
    port = httpx.URL(gw.url).port

    # A Content-Length larger than what arrives, then the client stops sending.
    raw = RawHttp(gw.url)
    try:
        raw.send(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
            "grant_type=client_cre".encode()
        )
        raw.sock.shutdown(socket.SHUT_WR)
        got = raw.read_response()
        if got is not None:  # the server may also just close: nothing was owed
            status, headers, body = got
            assert 400 <= status < 500, (status, body)
            assert headers.get("content-type", "").startswith("application/json")
    finally:
        raw.close()

    # A chunked body over the limit.
    raw = RawHttp(gw.url)
    try:
        chunk = b"A" * 16384
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n").encode()
        data = head + b"token="[:0]
        for _ in range(6):
            data += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        data += b"0\r\n\r\n"
        try:
            raw.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole body was read
        got = raw.read_response()
        assert got is not None, "no answer to an oversized chunked body"
        status, headers, body = got
        assert 400 <= status < 500, (status, body)
        assert headers.get("content-type", "").startswith("application/json")
    finally:
        raw.close()

    # A malformed chunked body.
    raw = RawHttp(gw.url)
    try:
        raw.send(
            (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
             "zz\r\nnot hex\r\n0\r\n\r\n").encode()
        )
        got = raw.read_response()
        if got is not None:
            assert 400 <= got[0] < 500, got
    finally:
        raw.close()
    assert gw.proc.alive()
    assert gw.http.get("/.well-known/oauth-authorization-server").status_code == 200


def test_wrong_methods_are_not_5xx(oauth_gateway) -> None:
    gw = oauth_gateway
    for path in ENDPOINTS:
        for method in ("GET", "PUT", "DELETE"):
            r = gw.http.request(method, path)
            assert 400 <= r.status_code < 500, (method, path, r.status_code)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/jwks.json"):
        r = gw.http.post(path, content=b"x", headers=FORM)
        assert 400 <= r.status_code < 500, (path, r.status_code)
