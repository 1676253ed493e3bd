"""With no provider configured, `keygate serve` answers with its built-in
mock so a first request works offline (task 9)."""

from __future__ import annotations

from e2e_support import marker, mock_reply, words


def test_builtin_mock_answers_a_fresh_key(spawn, backend, mock) -> None:
    def last_seq() -> int:
        return max((r["seq"] for r in mock.requests()), default=-1)

    before = last_seq()
    gw = spawn.gateway(backend, with_providers=False, name=f"builtin-{backend}")
    assert "built-in mock provider" in gw.stdout
    assert "created the first admin credential in" in gw.stdout
    k = gw.create_key()
    text = f"offline hello {marker()}"
    with gw.openai(k["key"]) as client:
        c = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        assert c.choices[0].message.content == mock_reply(text)
        assert c.usage.prompt_tokens == words(text)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True) if ch.choices)
        assert streamed == mock_reply(text)
    with gw.anthropic(k["key"]) as client:
        m = client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": text}])
        assert m.content[0].text == mock_reply(text)
    # The shared external mock was not involved.
    assert last_seq() == before
    rows = gw.events(k["id"])
    assert len(rows) == 3 and all(r["status"] == 200 for r in rows)
