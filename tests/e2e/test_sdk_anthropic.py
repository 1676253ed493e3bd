"""The official Anthropic SDK, unchanged, against keygate (task 2)."""

from __future__ import annotations

import json

import anthropic

from e2e_support import marker, mock_reply, words


def test_messages_create(anth: anthropic.Anthropic) -> None:
    text = f"hi claude {marker()}"
    raw = anth.messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": text}],
    )
    assert raw.headers["x-request-id"].startswith("req_")
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == mock_reply(text)
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == words("Be brief.", text)
    assert message.usage.output_tokens == words(mock_reply(text))


def test_messages_stream(anth: anthropic.Anthropic) -> None:
    text = f"stream claude {marker()}"
    with anth.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": text}],
    ) as stream:
        assert stream.response.headers["x-request-id"].startswith("req_")
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) > 1
    assert "".join(deltas) == mock_reply(text)
    assert final.content[0].text == mock_reply(text)
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == words(text)
    assert final.usage.output_tokens == words(mock_reply(text))


def test_upstream_gets_anthropic_version_and_model(anth: anthropic.Anthropic, mock) -> None:
    text = f"explicit anthropic {marker()}"
    message = anth.messages.create(
        model="anthropic/claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": text}]
    )
    assert message.content[0].text == mock_reply(text)
    (rec,) = mock.requests_containing(text)
    assert rec["path"] == "/v1/messages"
    assert rec["headers"].get("anthropic-version")
    assert json.loads(rec["body"])["model"] == "claude-haiku-4-5"


def test_models_list_in_anthropic_shape(gateway) -> None:
    restricted = gateway.create_key(models=["claude-*"])
    with gateway.anthropic(restricted["key"]) as client:
        page = client.models.list()
        ids = [m.id for m in page]
        assert all(m.type == "model" for m in page.data)
    assert "claude-sonnet-4-5" in ids
    assert all(i.startswith("claude-") for i in ids), ids

    # The raw answer is Anthropic's list shape, not OpenAI's.
    r = gateway.http.get(
        "/v1/models", headers={"x-api-key": restricted["key"], "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 200
    body = r.json()
    assert {"data", "has_more", "first_id", "last_id"} <= set(body) and "object" not in body
    assert body["has_more"] is False
