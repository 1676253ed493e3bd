"""The usage ledger records every SDK request exactly once, with the tokens
the client saw, and `keygate usage` agrees with it (task 3)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from e2e_support import marker, mock_reply, words


def test_every_request_is_one_ledger_row(gateway) -> None:
    key = gateway.create_key()
    oai = gateway.openai(key["key"])
    anth = gateway.anthropic(key["key"])
    expected: dict[str, dict[str, Any]] = {}

    def expect(rid: str, **row: Any) -> None:
        assert rid.startswith("req_") and rid not in expected
        expected[rid] = row

    # A models listing is a ledger row too (no model, no provider). It is
    # queued before the requests below, whose own commits are waited for,
    # so it is committed by the time they return.
    # (Its x-request-id is checked in test_request_ids.py; here the row is
    # found by its route, so this test is about the ledger alone.)
    oai.models.list()
    models_row = dict(route="/v1/models", model=None, provider=None, prompt=0, completion=0, streamed=False)

    text = f"ledger plain {marker()}"
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    c = raw.parse()
    expect(raw.headers["x-request-id"], route="/v1/chat/completions", model="gpt-4o-mini", provider="openai",
           prompt=c.usage.prompt_tokens, completion=c.usage.completion_tokens, streamed=False)

    # Streamed without include_usage: the client never sees usage, but the
    # ledger still has the real tokens (metered from the stream).
    text = f"ledger stream {marker()}"
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], stream=True
    ) as resp:
        rid = resp.headers["x-request-id"]
        joined = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
    assert joined == mock_reply(text)
    expect(rid, route="/v1/chat/completions", model="gpt-4o", provider="openai",
           prompt=words(text), completion=words(joined), streamed=True)

    text = f"ledger stream usage {marker()}"
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        rid = resp.headers["x-request-id"]
        usage = [ch.usage for ch in resp.parse() if ch.usage is not None][-1]
    expect(rid, route="/v1/chat/completions", model="gpt-4o", provider="openai",
           prompt=usage.prompt_tokens, completion=usage.completion_tokens, streamed=True)

    raw = oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input=f"ledger embed {marker()}")
    e = raw.parse()
    expect(raw.headers["x-request-id"], route="/v1/embeddings", model="text-embedding-3-small", provider="openai",
           prompt=e.usage.prompt_tokens, completion=0, streamed=False)

    text = f"ledger claude {marker()}"
    raw = anth.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=32,
                                                 messages=[{"role": "user", "content": text}])
    m = raw.parse()
    expect(raw.headers["x-request-id"], route="/v1/messages", model="claude-haiku-4-5", provider="anthropic",
           prompt=m.usage.input_tokens, completion=m.usage.output_tokens, streamed=False)

    text = f"ledger claude stream {marker()}"
    with anth.messages.stream(model="anthropic/claude-haiku-4-5", max_tokens=32,
                              messages=[{"role": "user", "content": text}]) as stream:
        rid = stream.response.headers["x-request-id"]
        final = stream.get_final_message()
    expect(rid, route="/v1/messages", model="anthropic/claude-haiku-4-5", provider="anthropic",
           prompt=final.usage.input_tokens, completion=final.usage.output_tokens, streamed=True)
    oai.close()
    anth.close()

    rows = gateway.events(key["id"])
    by_id = {r["request_id"]: r for r in rows}
    assert len(by_id) == len(rows), "duplicate request ids in the ledger"
    models_rows = [r for r in rows if r["route"] == "/v1/models"]
    assert len(models_rows) == 1
    assert models_rows[0]["request_id"].startswith("req_")
    expected = {models_rows[0]["request_id"]: models_row, **expected}
    assert set(by_id) == set(expected), "the ledger must hold exactly one row per request"
    for rid, want in expected.items():
        row = by_id[rid]
        got = {
            "route": row["route"], "model": row["model"], "provider": row["provider"],
            "prompt": row["prompt_tokens"], "completion": row["completion_tokens"], "streamed": row["streamed"],
        }
        assert got == want, rid
        assert row["status"] == 200 and row["error_code"] is None, row
        assert row["key_id"] == key["id"]
        assert row["source_ip"] == "127.0.0.1"
        assert row["user_agent"] and ("OpenAI" in row["user_agent"] or "Anthropic" in row["user_agent"]), row
        assert row["latency_ms"] >= 0
    # Oldest first.
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    assert [r["request_id"] for r in rows] == list(expected)

    # `keygate usage --key ID --format json` totals agree with the rows.
    want_totals: dict[Any, dict[str, int]] = defaultdict(lambda: {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0})
    for row in rows:
        t = want_totals[row["model"]]
        t["requests"] += 1
        t["errors"] += row["status"] >= 400
        t["prompt_tokens"] += row["prompt_tokens"]
        t["completion_tokens"] += row["completion_tokens"]
    totals = gateway.cli_json("usage", "--key", key["id"], "--format", "json")
    assert isinstance(totals, list)
    got_totals = {}
    for t in totals:
        assert t["key_id"] == key["id"]
        got_totals[t["model"]] = {k: t[k] for k in ("requests", "errors", "prompt_tokens", "completion_tokens")}
    assert got_totals == dict(want_totals)
    assert sum(t["requests"] for t in got_totals.values()) == len(expected)


def test_hostile_model_names_do_not_stall_the_ledger(spawn, backend) -> None:
    """Client-chosen text that reaches a ledger row (the model name) must not
    make the row unwritable: a NUL character is legal JSON (\\u0000) but not
    storable in a PostgreSQL TEXT column. One such request must neither be
    retried forever ahead of every later row nor hold later requests up."""
    gw = spawn.gateway(backend, name=f"hostile-model-{backend}")
    k = gw.create_key()
    headers = {"authorization": f"Bearer {k['key']}"}
    hostile = ["gpt-4o-mini\u0000x", "no-such-model\u0000", "claude-\u0000"]
    for model in hostile:
        r = gw.http.post("/v1/chat/completions", headers=headers, json={"model": model, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code in (200, 400, 403), r.text
    text = f"after hostile {marker()}"
    r = gw.http.post("/v1/chat/completions", headers=headers,
                     json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}, timeout=30)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == mock_reply(text)
    rid = r.headers["x-request-id"]
    # Its commit was waited for before the answer: the row must be there.
    rows = {row["request_id"]: row for row in gw.events(k["id"])}
    assert rid in rows, "a request after a hostile model name is missing from the ledger (writer stalled)"
    # The hostile requests are ledgered too (with the model made storable).
    assert len(rows) == len(hostile) + 1
    assert r.elapsed.total_seconds() < 2.0, "the answer waited on a stalled ledger"
