"""Hostile input on the Gemini client route and on translated requests: a
clear 4xx in the client's own error shape, never a 5xx, and the gateway keeps
serving (task 3)."""

from __future__ import annotations

import json

import httpx
import pytest

from e2e_support import assert_anthropic_error, assert_openai_error, marker, mock_reply

JSON = {"content-type": "application/json"}


def goog(key: dict) -> dict[str, str]:
    return {"x-goog-api-key": key["key"]}


def gemini_body(text: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def assert_google_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]
    assert isinstance(err["status"], str) and err["status"]
    return err


def assert_gemini_serving(gateway, key: dict) -> None:
    text = f"still here {marker()}"
    r = gateway.http.post("/v1beta/models/gpt-4o-mini:generateContent", headers=goog(key), json=gemini_body(text))
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == mock_reply(text)
    assert gateway.proc.alive()


BAD_GEMINI_BODIES = [
    pytest.param(b'{"contents": [', JSON, 400, id="malformed-json"),
    pytest.param(b"", JSON, 400, id="empty-body"),
    pytest.param(b"[1, 2]", JSON, 400, id="json-array"),
    pytest.param(b'{"contents": "\xff\xfe"}', JSON, 400, id="non-utf8"),
    pytest.param(b'{"contents": []} trailing', JSON, 400, id="trailing-garbage"),
    pytest.param(b'{"contents": 5}', JSON, 400, id="contents-not-a-list"),
    pytest.param(b'{"contents": [{"role": "user", "parts": [{"text": 7}]}]}', JSON, 400, id="text-not-a-string"),
    pytest.param(b'{"contents": [{"role": "wizard", "parts": [{"text": "x"}]}]}', JSON, 400, id="unknown-role"),
    pytest.param(b'{"contents": [{"role": "user", "parts": [{"text": "x"}]}], "safetySettings": []}', JSON, 400, id="untranslatable-field"),
    pytest.param(b'{"contents": [{"role": "user", "parts": [{"text": "x"}]}], "bogus": 1}', JSON, 400, id="unknown-field"),
    pytest.param(b'{"contents": []}', {"content-type": "text/plain"}, 415, id="text-plain"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, JSON, 400, id="deep-nesting"),
]


@pytest.mark.parametrize("body, headers, status", BAD_GEMINI_BODIES)
def test_bad_gemini_bodies(gateway, key, body, headers, status) -> None:
    # gpt-4o-mini is an OpenAI model: the body is translated, so every part
    # of it is checked, not just relayed.
    r = gateway.http.post(
        "/v1beta/models/gpt-4o-mini:generateContent", content=body, headers={**goog(key), **headers}
    )
    assert_google_error(r, status)
    assert_gemini_serving(gateway, key)


@pytest.mark.parametrize(
    "path, status",
    [
        pytest.param("/v1beta/models/gpt-4o-mini:countTokens", 404, id="unknown-method"),
        pytest.param("/v1beta/models/gpt-4o-mini", 404, id="no-method"),
        pytest.param("/v1beta/models/" + "m" * 300 + ":generateContent", 400, id="model-too-long"),
        pytest.param("/v1beta/models/:generateContent", 400, id="empty-model"),
        pytest.param("/v1beta/models/..%2F..%2Fadmin%2Fv1%2Fkeys:generateContent", 400, id="traversal"),
        pytest.param("/v1beta/models/gpt-4o-mini:streamGenerateContent", 400, id="stream-without-sse"),
    ],
)
def test_hostile_gemini_paths(gateway, key, path, status) -> None:
    r = gateway.http.post(path, headers=goog(key), json=gemini_body("x"))
    assert_google_error(r, status)
    assert_gemini_serving(gateway, key)


def test_gemini_key_in_the_query_is_refused_with_the_reason(gateway, key) -> None:
    r = gateway.http.post(
        f"/v1beta/models/gpt-4o-mini:generateContent?key={key['key']}", json=gemini_body("x")
    )
    err = assert_google_error(r, 401)
    assert "query" in err["message"]
    assert key["key"] not in r.text


def test_gemini_route_without_a_credential_is_401(gateway) -> None:
    r = gateway.http.post("/v1beta/models/gpt-4o-mini:generateContent", json=gemini_body("x"))
    assert_google_error(r, 401)


BAD_TRANSLATED_MESSAGES = [
    pytest.param({"model": "gpt-4o-mini", "max_tokens": 10, "messages": "hi"}, id="messages-not-a-list"),
    pytest.param({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]}, id="content-not-text"),
    pytest.param({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, id="document-block"),
    pytest.param({"model": "gpt-4o-mini", "max_tokens": 10, "thinking": {"type": "enabled", "budget_tokens": 10}, "messages": [{"role": "user", "content": "x"}]}, id="thinking"),
    pytest.param({"model": "gpt-4o-mini", "max_tokens": "ten", "messages": [{"role": "user", "content": "x"}]}, id="max-tokens-not-a-number"),
    pytest.param({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, id="tool-result-without-id"),
]


@pytest.mark.parametrize("body", BAD_TRANSLATED_MESSAGES)
def test_bad_anthropic_bodies_for_an_openai_model(gateway, key, body) -> None:
    headers = {"x-api-key": key["key"], "anthropic-version": "2023-06-01"}
    r = gateway.http.post("/v1/messages", headers=headers, json=body)
    assert_anthropic_error(r, 400, "invalid_request_error")
    text = f"fine {marker()}"
    ok = gateway.http.post(
        "/v1/messages",
        headers=headers,
        json={"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": text}]},
    )
    assert ok.status_code == 200, ok.text


BAD_TRANSLATED_CHATS = [
    pytest.param({"model": "claude-haiku-4-5", "messages": [{"role": "tool", "content": "x"}]}, id="tool-without-call-id"),
    pytest.param({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]}, id="image-url-not-text"),
    pytest.param({"model": "claude-haiku-4-5", "n": 3, "messages": [{"role": "user", "content": "x"}]}, id="n-greater-than-one"),
    pytest.param({"model": "claude-haiku-4-5", "logit_bias": {"1": 2}, "messages": [{"role": "user", "content": "x"}]}, id="logit-bias"),
    pytest.param({"model": "claude-haiku-4-5", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}, id="tool-arguments-not-json"),
]


@pytest.mark.parametrize("body", BAD_TRANSLATED_CHATS)
def test_bad_openai_bodies_for_a_claude_model(gateway, key, body) -> None:
    r = gateway.http.post("/v1/chat/completions", headers={"authorization": f"Bearer {key['key']}"}, json=body)
    err = assert_openai_error(r, 400)
    assert err["type"] == "invalid_request_error"
