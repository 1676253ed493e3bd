"""The official OpenAI SDK, unchanged, against keygate (task 1)."""

from __future__ import annotations

import json
import math

import openai

from e2e_support import marker, mock_reply, words


def chat_messages(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": text},
    ]


def test_plain_chat(oai: openai.OpenAI) -> None:
    text = f"hello there {marker()}"
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=chat_messages(text))
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    reply = completion.choices[0].message.content
    assert reply == mock_reply(text)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == words("Be brief.", text)
    assert completion.usage.completion_tokens == words(reply)
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streamed_chat_without_usage_option(oai: openai.OpenAI, mock) -> None:
    """Joined deltas equal the plain answer; keygate asks upstream for usage
    (to meter the stream) but strips that extra chunk, so the client sees no
    chunk without choices and no usage — exactly what it asked for."""
    text = f"stream me {marker()}"
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=chat_messages(text))
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=chat_messages(text), stream=True))
    assert len(chunks) > 2
    assert all(len(c.choices) > 0 for c in chunks), "a usage-only chunk reached a client that did not ask for it"
    assert all(c.usage is None for c in chunks)
    joined = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert joined == plain.choices[0].message.content == mock_reply(text)
    assert chunks[-1].choices[0].finish_reason == "stop"

    # keygate asked the upstream for usage in the stream.
    upstream = [json.loads(r["body"]) for r in mock.requests_containing(text)]
    streamed = [b for b in upstream if b.get("stream")]
    assert len(streamed) == 1
    assert streamed[0]["stream_options"]["include_usage"] is True


def test_streamed_chat_with_usage_option(oai: openai.OpenAI) -> None:
    text = f"count my tokens {marker()}"
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=chat_messages(text),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert chunks[-1].choices == []
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert joined == mock_reply(text)
    assert chunks[-1].usage.prompt_tokens == words("Be brief.", text)
    assert chunks[-1].usage.completion_tokens == words(joined)


def test_embeddings_float_and_default_base64(oai: openai.OpenAI, mock) -> None:
    text = f"embed this sentence {marker()}"
    as_float = oai.embeddings.create(model="text-embedding-3-small", input=text, encoding_format="float")
    default = oai.embeddings.create(model="text-embedding-3-small", input=text)
    assert len(as_float.data) == 1 and len(default.data) == 1
    v_float, v_default = as_float.data[0].embedding, default.data[0].embedding
    assert len(v_float) == len(v_default) > 0
    assert all(isinstance(x, float) for x in v_default)
    # base64 carries float32: equal to the float answer within float32 precision.
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(v_float, v_default))
    assert as_float.usage.prompt_tokens == words(text)

    # The default really went through the base64 path end to end.
    bodies = [json.loads(r["body"]) for r in mock.requests_containing(text)]
    formats = sorted(b.get("encoding_format", "<absent>") for b in bodies)
    assert formats == ["base64", "float"]


def test_models_list_follows_the_allowlist(gateway) -> None:
    restricted = gateway.create_key(models=["gpt-4o*"])
    with gateway.openai(restricted["key"]) as client:
        ids = [m.id for m in client.models.list()]
    assert "gpt-4o" in ids and "gpt-4o-mini" in ids
    assert all(i.startswith("gpt-4o") for i in ids), ids

    everything = gateway.create_key()
    with gateway.openai(everything["key"]) as client:
        all_ids = [m.id for m in client.models.list()]
    assert set(ids) < set(all_ids)
    assert any(i.startswith("claude-") for i in all_ids)
    assert "text-embedding-3-small" in all_ids


def test_explicit_provider_model_form(oai: openai.OpenAI, mock) -> None:
    text = f"explicit provider {marker()}"
    completion = oai.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": text}])
    assert completion.choices[0].message.content == mock_reply(text)
    (upstream,) = [json.loads(r["body"]) for r in mock.requests_containing(text)]
    assert upstream["model"] == "gpt-4o-mini"
