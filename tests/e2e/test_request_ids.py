"""Every data-plane response carries an `x-request-id` (`req_…`), and it is
the id the ledger keys the request under."""

from __future__ import annotations

import pytest

from e2e_support import assert_request_id, marker

CHAT = "/v1/chat/completions"


def test_request_ids_on_answers_and_refusals(gateway, key) -> None:
    k = key["key"]
    bearer = {"authorization": f"Bearer {k}"}
    # Refusals first: their rows are queued without waiting, and the answers
    # after them wait for their own commits, so all are stored when read.
    responses = [
        gateway.http.post(CHAT, json={"model": "gpt-4o-mini"}),  # 401
        gateway.http.post(CHAT, headers=bearer, json={"model": "no-such-model"}),  # 400
        gateway.http.post(CHAT, headers=bearer, json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": marker()}]}),
        gateway.http.post("/v1/embeddings", headers=bearer, json={"model": "text-embedding-3-small", "input": marker()}),
        gateway.http.post("/v1/messages", headers={"x-api-key": k}, json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": marker()}]}),
    ]
    ids = [assert_request_id(r) for r in responses]
    assert len(set(ids)) == len(ids)
    assert [r.status_code for r in responses] == [401, 400, 200, 200, 200]
    rows = {row["request_id"]: row for row in gateway.events(key["id"])}
    for rid, r in zip(ids, responses):
        if r.status_code != 401:  # a 401 has no key to file it under
            assert rows[rid]["status"] == r.status_code


@pytest.mark.parametrize("authorized", [True, False], ids=["ok", "401"])
def test_request_id_on_models_listing(gateway, key, authorized) -> None:
    headers = {"authorization": f"Bearer {key['key']}"} if authorized else {}
    r = gateway.http.get("/v1/models", headers=headers)
    assert r.status_code == (200 if authorized else 401)
    assert_request_id(r)


@pytest.mark.parametrize(
    "method, path, headers, expected",
    [
        ("GET", CHAT, {}, 405),
        ("POST", "/v1/unknown", {}, 404),
        ("POST", CHAT, {"x-padding": "a" * 9000}, 431),
    ],
    ids=["405", "404", "431"],
)
def test_request_id_on_edge_refusals(gateway, method, path, headers, expected) -> None:
    r = gateway.http.request(method, path, headers=headers, json={"model": "gpt-4o-mini"} if method == "POST" else None)
    assert r.status_code == expected
    assert_request_id(r)
