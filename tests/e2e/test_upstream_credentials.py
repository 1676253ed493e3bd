"""The provider's key goes upstream; the client's keygate key never does
(task 5). Checked on what the mock provider actually received."""

from __future__ import annotations

import json

from e2e_support import marker, mock_reply


def test_upstream_sees_provider_keys_never_client_keys(gateway, key, mock, provider_keys) -> None:
    k = key["key"]
    tag = marker()
    with gateway.openai(k) as oai:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"oa {tag}"}])
        list(oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"oas {tag}"}], stream=True))
        oai.embeddings.create(model="text-embedding-3-small", input=f"emb {tag}")
    with gateway.anthropic(k) as anth:
        anth.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": f"an {tag}"}])
        with anth.messages.stream(model="claude-haiku-4-5", max_tokens=16,
                                  messages=[{"role": "user", "content": f"ans {tag}"}]) as s:
            s.get_final_message()
    # Every header style the gateway accepts, and the key in a body field too
    # (a client that sends it there must not have it forwarded as a header).
    for name, value in [("x-api-key", k), ("x-goog-api-key", k), ("api-key", k), ("authorization", f"Bearer {k}")]:
        r = gateway.http.post("/v1/chat/completions", headers={name: value},
                              json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hs {tag}"}]})
        assert r.status_code == 200
        r = gateway.http.post("/v1/messages", headers={name: value, "anthropic-version": "2023-06-01"},
                              json={"model": "claude-haiku-4-5", "max_tokens": 8,
                                    "messages": [{"role": "user", "content": f"hsa {tag}"}]})
        assert r.status_code == 200

    records = mock.requests_containing(tag)
    openai_recs = [r for r in records if r["path"] in ("/v1/chat/completions", "/v1/embeddings")]
    anthropic_recs = [r for r in records if r["path"] == "/v1/messages"]
    assert len(openai_recs) == 3 + 4 and len(anthropic_recs) == 2 + 4

    for rec in openai_recs:
        h = rec["headers"]
        ok = h.get("authorization") == "Bearer " + provider_keys["openai"]
        assert ok, "OpenAI upstream did not get 'Authorization: Bearer <provider key>'"
        assert "x-api-key" not in h and "api-key" not in h and "x-goog-api-key" not in h
    for rec in anthropic_recs:
        h = rec["headers"]
        ok = h.get("x-api-key") == provider_keys["anthropic"]
        assert ok, "Anthropic upstream did not get 'x-api-key: <provider key>'"
        assert h.get("anthropic-version"), "anthropic-version missing upstream"
        assert "authorization" not in h and "api-key" not in h and "x-goog-api-key" not in h
        # Anthropic's key never goes to OpenAI and vice versa.
        crossed = provider_keys["openai"] in json.dumps(rec)
        assert not crossed, "the OpenAI provider key went to the Anthropic upstream"

    # The client's key, the admin key and any keygate-shaped string: nowhere
    # upstream, in any header or body, of any request the mock ever saw.
    admin = gateway.admin_key
    for rec in mock.requests():
        blob = json.dumps(rec)
        leaked = k in blob or admin in blob or any(v.find("kg_") >= 0 for v in rec["headers"].values())
        assert not leaked, f"a keygate credential reached the upstream ({rec['method']} {rec['path']})"

    # And the replies were the mock's, relayed intact.
    r = gateway.http.post("/v1/chat/completions", headers={"authorization": f"Bearer {k}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"final {tag}"}]})
    assert r.json()["choices"][0]["message"]["content"] == mock_reply(f"final {tag}")


def test_client_headers_are_not_forwarded_except_api_versions(gateway, key, mock) -> None:
    tag = marker()
    r = gateway.http.post(
        "/v1/messages",
        headers={"x-api-key": key["key"], "anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04",
                 "cookie": "session=abc", "x-custom-client": "hello"},
        json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": tag}]},
    )
    assert r.status_code == 200, r.text
    (rec,) = mock.requests_containing(tag)
    h = rec["headers"]
    assert h["anthropic-version"] == "2023-06-01"
    assert h["anthropic-beta"] == "tools-2024-04-04"
    assert "cookie" not in h and "x-custom-client" not in h
