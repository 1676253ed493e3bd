"""Malformed, oversized and misdirected input: the right 4xx in the right
error shape, never a 5xx, and the gateway keeps serving (task 6)."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest

from e2e_support import (
    RawHttp,
    Spawner,
    assert_anthropic_error,
    assert_openai_error,
    assert_request_id,
    marker,
    mock_reply,
)

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
JSON = {"content-type": "application/json"}


def auth(key: dict, route: str) -> dict[str, str]:
    if route == MESSAGES:
        return {"x-api-key": key["key"], "anthropic-version": "2023-06-01"}
    return {"authorization": f"Bearer {key['key']}"}


def valid_body(route: str, text: str) -> dict:
    if route == MESSAGES:
        return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}
    if route == "/v1/embeddings":
        return {"model": "text-embedding-3-small", "input": text}
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def assert_shape(route: str, r: httpx.Response, status: int, openai_code: str | None = None,
                 anthropic_type: str | None = None) -> None:
    if route == MESSAGES:
        assert_anthropic_error(r, status, anthropic_type)
    else:
        assert_openai_error(r, status, openai_code)


def assert_still_serving(gateway, key: dict, route: str) -> None:
    text = f"after bad input {marker()}"
    r = gateway.http.post(route, headers=auth(key, route), json=valid_body(route, text))
    assert r.status_code == 200, r.text
    if route == MESSAGES:
        assert r.json()["content"][0]["text"] == mock_reply(text)
    elif route == CHAT:
        assert r.json()["choices"][0]["message"]["content"] == mock_reply(text)
    assert gateway.proc.alive()


BAD_BODIES = [
    pytest.param(b'{"model": "gpt-4o-mini", "messages": [', JSON, 400, "invalid_request_error", id="malformed-json"),
    pytest.param(b"", JSON, 400, "invalid_request_error", id="empty-body"),
    pytest.param(b"   \n ", JSON, 400, "invalid_request_error", id="whitespace-body"),
    pytest.param(b'{"model": "gpt-4o-mini", "x": "\xff\xfe\x80"}', JSON, 400, "invalid_request_error", id="non-utf8"),
    pytest.param(b'[{"model": "gpt-4o-mini"}]', JSON, 400, "invalid_request_error", id="json-array"),
    pytest.param(b'"just a string"', JSON, 400, "invalid_request_error", id="json-string"),
    pytest.param(b"null", JSON, 400, "invalid_request_error", id="json-null"),
    pytest.param(b'{"messages": []}', JSON, 400, "invalid_request_error", id="missing-model"),
    pytest.param(b'{"model": 42}', JSON, 400, "invalid_request_error", id="model-not-a-string"),
    pytest.param(b'{"model": "gpt-4o-mini", "stream": "yes"}', JSON, 400, "invalid_request_error", id="stream-not-bool"),
    pytest.param(b'{"model": "no-such-model-xyz", "messages": []}', JSON, 400, "model_not_found", id="unknown-model"),
    pytest.param(b'{"model": "nowhere/gpt-4o"}', JSON, 400, "model_not_found", id="unknown-provider"),
    pytest.param(b'{"model": "gpt-4o-mini"}', {"content-type": "text/plain"}, 415, None, id="text-plain"),
    pytest.param(b"model=gpt-4o-mini", {"content-type": "application/x-www-form-urlencoded"}, 415, None, id="form"),
    pytest.param(b'{"model": "gpt-4o-mini"} trailing', JSON, 400, "invalid_request_error", id="trailing-garbage"),
]


@pytest.mark.parametrize("route", [CHAT, MESSAGES, "/v1/embeddings"])
@pytest.mark.parametrize("body, headers, status, code", BAD_BODIES)
def test_bad_bodies(gateway, key, route, body, headers, status, code) -> None:
    r = gateway.http.post(route, content=body, headers={**auth(key, route), **headers})
    assert_shape(route, r, status, code, "invalid_request_error" if status in (400, 415) else None)
    assert_request_id(r)
    assert_still_serving(gateway, key, route)


def test_bad_bodies_are_in_the_ledger_as_refusals(gateway) -> None:
    k = gateway.create_key()
    r = gateway.http.post(CHAT, content=b"{", headers={**auth(k, CHAT), **JSON})
    rid = assert_request_id(r)
    r = gateway.http.post(CHAT, content=b"x", headers={**auth(k, CHAT), "content-type": "text/plain"})
    rid415 = assert_request_id(r)
    assert_still_serving(gateway, k, CHAT)  # durable: commits the refusals queued before it
    rows = {row["request_id"]: row for row in gateway.events(k["id"])}
    assert rows[rid]["status"] == 400 and rows[rid]["error_code"] == "invalid_request_error"
    assert rows[rid415]["status"] == 415


@pytest.mark.parametrize("route", [CHAT, MESSAGES])
def test_unknown_routes_and_wrong_methods(gateway, key, route) -> None:
    r = gateway.http.post("/v1/no/such/route", headers=auth(key, CHAT), json={})
    assert_openai_error(r, 404)
    r = gateway.http.get("/nothing-here")
    assert_openai_error(r, 404)
    r = gateway.http.post("/v1/messages/batches", headers=auth(key, MESSAGES), json={})
    assert_anthropic_error(r, 404, "not_found_error")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        r = gateway.http.request(method, route, headers=auth(key, route))
        assert_shape(route, r, 405)
    r = gateway.http.post("/v1/models", headers=auth(key, CHAT), json={})
    assert_openai_error(r, 405)
    assert_still_serving(gateway, key, route)


@pytest.mark.parametrize("route", [CHAT, MESSAGES])
def test_header_over_8_kib_is_431(gateway, key, route) -> None:
    big = "a" * (9 * 1024)
    r = gateway.http.post(route, headers={**auth(key, route), "x-padding": big}, json=valid_body(route, "x"))
    assert_shape(route, r, 431)
    # A long credential header is refused the same way, not parsed.
    r = gateway.http.post(route, headers={"authorization": "Bearer " + big}, json=valid_body(route, "x"))
    assert_shape(route, r, 431)
    # Just under the limit is fine.
    r = gateway.http.post(route, headers={**auth(key, route), "x-padding": "a" * 7000}, json=valid_body(route, f"ok {marker()}"))
    assert r.status_code == 200, r.text
    assert_still_serving(gateway, key, route)


def test_default_body_limit_accepts_a_5_mib_image(gateway, key, mock) -> None:
    image = base64.b64encode(os.urandom(5 * 1024 * 1024 * 3 // 4)).decode()  # ~5 MiB of base64
    text = f"describe this picture {marker()}"
    with gateway.openai(key["key"]) as client:
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
            ]}],
        )
    # The mock counts the images it received.
    assert completion.choices[0].message.content == mock_reply(text) + " [images: 1]"
    (rec,) = mock.requests_containing(text)
    assert rec["body_truncated"] is True  # the whole body went upstream, beyond the mock's 64 KiB record


@pytest.fixture(scope="module")
def small_limit_gateway(backend, pg, tmp_path_factory, logs_dir, mock, provider_keys):
    sp = Spawner(tmp_path_factory, logs_dir, pg, mock, provider_keys)
    gw = sp.gateway(backend, extra_env={"KEYGATE_MAX_BODY_BYTES": "1024"}, name=f"small-limit-{backend}")
    yield gw
    sp.stop_all()


@pytest.mark.parametrize("route", [CHAT, MESSAGES])
def test_body_over_the_limit_is_413(small_limit_gateway, route) -> None:
    gw = small_limit_gateway
    k = gw.create_key()
    over = valid_body(route, "x" * 2000)
    r = gw.http.post(route, headers=auth(k, route), json=over)
    assert_shape(route, r, 413, "request_too_large", "request_too_large")
    assert_request_id(r)

    # Without Content-Length (chunked): the limit still holds while reading.
    payload = json.dumps(over).encode()

    def chunks():
        for i in range(0, len(payload), 256):
            yield payload[i : i + 256]

    r = gw.http.post(route, headers={**auth(k, route), **JSON}, content=chunks())
    assert_shape(route, r, 413, "request_too_large", "request_too_large")

    # A Content-Length over the limit is refused up front, before any of
    # the body is sent.
    conn = RawHttp(gw.url)
    try:
        lines = [f"POST {route} HTTP/1.1", "Host: keygate", "Content-Type: application/json",
                 "Content-Length: 1000000"] + [f"{n}: {v}" for n, v in auth(k, route).items()]
        conn.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        early = conn.read_response()
    finally:
        conn.close()
    assert early is not None and early[0] == 413

    r = gw.http.post(route, headers=auth(k, route), json=valid_body(route, f"fits {marker()}"))
    assert r.status_code == 200, r.text
    assert_still_serving(gw, k, route)
