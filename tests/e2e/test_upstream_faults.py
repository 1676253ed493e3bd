"""Upstream failures as clients see them: 5xx → 502 without the upstream's
text, 429 → 429 with Retry-After, a cut stream is not passed off as
complete; each is in the ledger."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from e2e_support import assert_anthropic_error, assert_openai_error, marker, mock_reply, words

UPSTREAM_TEXT = "upstream-internal-detail-do-not-reflect"


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_5xx_is_502_without_upstream_text(gateway, key, clean_faults, status) -> None:
    mock = clean_faults
    mock.add_fault(status=status, path="/v1/chat/completions",
                   body={"error": {"message": UPSTREAM_TEXT, "type": "server_error"}})
    with gateway.openai(key["key"]) as client:
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert exc.value.status_code == 502
        assert UPSTREAM_TEXT not in exc.value.response.text
        assert_openai_error(exc.value.response, 502)
        rid = exc.value.response.headers["x-request-id"]
        # The fault is used up: the next request succeeds.
        text = f"recovered {marker()}"
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        ).choices[0].message.content == mock_reply(text)
    row = {r["request_id"]: r for r in gateway.events(key["id"])}[rid]
    assert row["status"] == 502 and row["provider"] == "openai"


def test_upstream_5xx_on_messages_is_anthropic_shaped_502(gateway, key, clean_faults) -> None:
    clean_faults.add_fault(status=500, path="/v1/messages", body={"type": "error", "error": {"type": "api_error", "message": UPSTREAM_TEXT}})
    r = gateway.http.post("/v1/messages", headers={"x-api-key": key["key"]},
                          json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    assert_anthropic_error(r, 502, "api_error")
    assert UPSTREAM_TEXT not in r.text


def test_upstream_429_is_429_with_retry_after(gateway, key, clean_faults) -> None:
    clean_faults.add_fault(status=429, path="/v1/chat/completions")
    with gateway.openai(key["key"]) as client, pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 429
    assert exc.value.response.headers.get("retry-after", "").isdigit()
    clean_faults.add_fault(status=429, path="/v1/messages")
    with gateway.anthropic(key["key"]) as client, pytest.raises(anthropic.RateLimitError) as aexc:
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert aexc.value.response.headers.get("retry-after", "").isdigit()


def test_upstream_rejection_of_the_provider_key_is_502(gateway, key, clean_faults) -> None:
    clean_faults.add_fault(status=401, path="/v1/chat/completions",
                           body={"error": {"message": UPSTREAM_TEXT, "code": "invalid_api_key"}})
    with gateway.openai(key["key"]) as client, pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    # Not a 401: the client's own key is fine; the operator must act.
    assert exc.value.status_code == 502
    assert UPSTREAM_TEXT not in exc.value.response.text


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_cut_stream_is_not_complete_and_is_ledgered_as_failed(gateway, key, clean_faults, route) -> None:
    clean_faults.add_fault(cut_after_chunks=3, path=route)
    text = f"cut me off {marker()}"
    if route == "/v1/messages":
        headers = {"x-api-key": key["key"]}
        body = {"model": "claude-haiku-4-5", "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": text}]}
        terminal = "message_stop"
    else:
        headers = {"authorization": f"Bearer {key['key']}"}
        body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": text}]}
        terminal = "[DONE]"
    seen: list[str] = []
    with gateway.http.stream("POST", route, headers=headers, json=body) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        with pytest.raises(httpx.HTTPError):
            for line in r.iter_lines():
                seen.append(line)
    assert not any(terminal in line for line in seen), "a cut stream was finished as if complete"
    # A durable request after it: the refusal row queued before is committed.
    with gateway.openai(key["key"]) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    row = {r["request_id"]: r for r in gateway.events(key["id"])}[rid]
    assert row["status"] == 502 and row["error_code"] == "upstream_stream_cut" and row["streamed"] is True


def test_upstream_timeout_is_504(spawn, backend, clean_faults) -> None:
    gw = spawn.gateway(backend, extra_env={"KEYGATE_UPSTREAM_TIMEOUT": "1s"}, name=f"timeout-{backend}")
    k = gw.create_key()
    clean_faults.add_fault(latency_ms=4000, path="/v1/chat/completions")
    with gw.openai(k["key"]) as client, pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 504
    assert_openai_error(exc.value.response, 504, "upstream_timeout")
    assert exc.value.response.elapsed.total_seconds() < 3.5
    clean_faults.add_fault(latency_ms=4000, path="/v1/messages")
    r = gw.http.post("/v1/messages", headers={"x-api-key": k["key"]},
                     json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    assert_anthropic_error(r, 504, "timeout_error")


@pytest.fixture
def slow_chunks(mock):
    r = mock.http.patch("/_mock/config", json={"chunk_delay_ms": 150})
    assert r.status_code == 200 and r.json()["chunk_delay_ms"] == 150
    yield mock
    mock.http.patch("/_mock/config", json={"chunk_delay_ms": 0}).raise_for_status()


def test_client_going_away_mid_stream_is_ledgered_as_499(gateway, key, slow_chunks) -> None:
    text = f"i will hang up {marker()}"
    with gateway.http.stream("POST", "/v1/chat/completions", headers={"authorization": f"Bearer {key['key']}"},
                             json={"model": "gpt-4o-mini", "stream": True,
                                   "messages": [{"role": "user", "content": text}]}) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # got the first event: hang up
    # The gateway notices at its next write; poll the ledger (bounded).
    row = None
    for _ in range(100):
        rows = {x["request_id"]: x for x in gateway.events(key["id"])}
        row = rows.get(rid)
        if row is not None:
            break
        time.sleep(0.05)
    assert row is not None, "a stream the client abandoned never reached the ledger"
    assert row["status"] == 499 and row["error_code"] == "client_closed_request" and row["streamed"] is True


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_cut_stream_is_billed_for_what_was_delivered(gateway, key, clean_faults, route) -> None:
    """DESIGN, Metering: 'a stream cut short is billed for what was
    delivered'. Content reached the client, so the row's completion tokens
    are not zero (and on Anthropic the prompt tokens, announced in
    message_start, are known)."""
    clean_faults.add_fault(cut_after_chunks=6, path=route)
    text = f"partial delivery please {marker()}"
    if route == "/v1/messages":
        headers = {"x-api-key": key["key"]}
        body = {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": text}]}
    else:
        headers = {"authorization": f"Bearer {key['key']}"}
        body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": text}]}
    delivered = ""
    with gateway.http.stream("POST", route, headers=headers, json=body) as r:
        rid = r.headers["x-request-id"]
        with pytest.raises(httpx.HTTPError):
            for line in r.iter_lines():
                if line.startswith("data:") and "{" in line:
                    event = json.loads(line[5:])
                    if route == "/v1/messages":
                        delivered += (event.get("delta") or {}).get("text", "")
                    elif event.get("choices"):
                        delivered += event["choices"][0]["delta"].get("content") or ""
    assert delivered.strip(), "the fault cut the stream before any text; raise cut_after_chunks"
    with gateway.openai(key["key"]) as client:  # durable: commits the queued row
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    row = {x["request_id"]: x for x in gateway.events(key["id"])}[rid]
    assert row["status"] == 502
    if route == "/v1/messages":
        assert row["prompt_tokens"] == words(text)
    assert row["completion_tokens"] > 0, f"delivered {words(delivered)} words, billed 0"
