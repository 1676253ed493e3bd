//! Cross-format tests: snapshot tests of every OpenAI ↔ Anthropic direction
//! for requests, responses and streams, refusals, hostile inputs, and the
//! stream harness that replays every format's fixture streams split at
//! random points through every client format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::ir::{StopReason, StreamEvent};
use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

type Fixtures = fn() -> Vec<(&'static str, Vec<u8>)>;

/// Upstream formats with working stream decoders, with their fixtures.
/// Adding a format is one line here.
fn upstreams() -> Vec<(Format, Fixtures)> {
    vec![
        (Format::OpenAiChat, openai::fixtures::streams),
        (Format::Anthropic, anthropic::fixtures::streams),
        (Format::Gemini, gemini::fixtures::streams),
        (Format::Converse, converse::fixtures::streams),
    ]
}

/// Client formats with working stream encoders (and decoders, which the
/// content invariant reads the client's stream back with).
/// TODO: add `Format::Gemini` once its codec works.
const CLIENTS: &[Format] = &[Format::OpenAiChat, Format::Anthropic, Format::Gemini];

fn short(format: Format) -> &'static str {
    match format {
        Format::OpenAiChat => "openai",
        Format::Anthropic => "anthropic",
        Format::Gemini => "gemini",
        Format::Converse => "converse",
    }
}

fn bytes(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

// ---------------------------------------------------------------------------
// Request fixtures.

fn openai_requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "system_multiturn_params",
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Bonjour."},
                    {"role": "user", "content": "How are you?"}
                ],
                "max_tokens": 200,
                "temperature": 0.5,
                "top_p": 0.9,
                "stop": "END",
                "user": "user-42",
                "stream": true,
                "stream_options": {"include_usage": true},
                "n": 1,
                "logprobs": false,
                "logit_bias": null
            }),
        ),
        (
            "tools_and_results",
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "user", "content": "Weather and time in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_a", "content": "18C, cloudy"},
                    {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "14:05"}]},
                    {"role": "user", "content": "Thanks!"}
                ],
                "tools": [
                    {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                    {"type": "function", "function": {"name": "get_time", "strict": false}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": false,
                "max_completion_tokens": 300
            }),
        ),
        (
            "images_and_stops",
            json!({
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "Compare these."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
                ]}],
                "stop": ["\n\n", "END"],
                "tool_choice": "required",
                "tools": [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]
            }),
        ),
        (
            "tool_choice_none_response_text",
            json!({
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "Plain"}],
                "tool_choice": "none",
                "tools": [{"type": "function", "function": {"name": "unused"}}],
                "response_format": {"type": "text"}
            }),
        ),
    ]
}

fn anthropic_requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "system_multiturn_params",
            json!({
                "model": "claude-sonnet-4-5",
                "system": "You are terse.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
                    {"role": "user", "content": "How are you?"}
                ],
                "max_tokens": 1024,
                "temperature": 0.7,
                "top_p": 0.95,
                "stop_sequences": ["END"],
                "metadata": {"user_id": "user-42"},
                "stream": true,
                "thinking": {"type": "disabled"}
            }),
        ),
        (
            "system_blocks_tools_results",
            json!({
                "model": "claude-sonnet-4-5",
                "system": [
                    {"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "Use tools."}
                ],
                "messages": [
                    {"role": "user", "content": "Weather and time in Paris?"},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                            "content": [{"type": "text", "text": "clock unavailable"}]},
                        {"type": "text", "text": "And tomorrow?"}
                    ]}
                ],
                "tools": [
                    {"name": "get_weather", "description": "Weather by city",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                        "cache_control": {"type": "ephemeral"}},
                    {"name": "get_time", "input_schema": {"type": "object"}}
                ],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "max_tokens": 512
            }),
        ),
        (
            "images_named_tool",
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.png"}},
                    {"type": "text", "text": "Describe."}
                ]}],
                "tools": [{"name": "describe", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "describe"},
                "max_tokens": 100
            }),
        ),
        (
            "tool_choice_auto_parallel",
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "Go"}],
                "tools": [{"type": "custom", "name": "go", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": false},
                "max_tokens": 10
            }),
        ),
    ]
}

fn target(model: &str) -> Target<'_> {
    Target {
        model,
        stream: false,
    }
}

#[test]
fn openai_requests_to_anthropic() {
    for (name, body) in openai_requests() {
        let stream = body["stream"] == json!(true);
        let out = request(
            Format::OpenAiChat,
            Format::Anthropic,
            &bytes(body),
            Target {
                model: "claude-sonnet-4-5",
                stream,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        insta::assert_json_snapshot!(
            format!("request_openai_to_anthropic__{name}"),
            json_of(&out)
        );
    }
}

#[test]
fn anthropic_requests_to_openai() {
    for (name, body) in anthropic_requests() {
        let stream = body["stream"] == json!(true);
        let out = request(
            Format::Anthropic,
            Format::OpenAiChat,
            &bytes(body),
            Target {
                model: "gpt-4o",
                stream,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        insta::assert_json_snapshot!(
            format!("request_anthropic_to_openai__{name}"),
            json_of(&out)
        );
    }
}

/// Parsing what a renderer produced gives back the same IR.
#[test]
fn requests_round_trip_through_each_format() {
    for (name, body) in openai_requests() {
        let ir = openai::parse_request(&bytes(body)).unwrap();
        let again = openai::parse_request(&openai::render_request(&ir).unwrap()).unwrap();
        assert_eq!(again, ir, "{name}");
    }
    for (name, body) in anthropic_requests() {
        let ir = anthropic::parse_request(&bytes(body)).unwrap();
        let again = anthropic::parse_request(&anthropic::render_request(&ir).unwrap()).unwrap();
        assert_eq!(again, ir, "{name}");
    }
}

#[test]
fn consecutive_tool_messages_become_one_user_message() {
    let ir = openai::parse_request(&bytes(openai_requests().remove(1).1)).unwrap();
    assert_eq!(ir.messages.len(), 4);
    assert_eq!(ir.messages[2].content.len(), 2);
    assert!(ir.messages[2]
        .content
        .iter()
        .all(|p| matches!(p, ir::Part::ToolResult(_))));
}

#[test]
fn anthropic_max_tokens_defaults_when_unset() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let out = request(
        Format::OpenAiChat,
        Format::Anthropic,
        &bytes(body),
        target("claude"),
    )
    .unwrap();
    assert_eq!(
        json_of(&out)["max_tokens"],
        json!(anthropic::DEFAULT_MAX_TOKENS)
    );
}

// ---------------------------------------------------------------------------
// Refusals.

fn openai_error(extra: Value) -> TranslateError {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    request(
        Format::OpenAiChat,
        Format::Anthropic,
        &bytes(body),
        target("claude"),
    )
    .unwrap_err()
}

fn anthropic_error(extra: Value) -> TranslateError {
    let mut body =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    request(
        Format::Anthropic,
        Format::OpenAiChat,
        &bytes(body),
        target("gpt"),
    )
    .unwrap_err()
}

fn param(e: &TranslateError) -> Option<&str> {
    match e {
        TranslateError::Invalid { param, .. } => param.as_deref(),
        _ => None,
    }
}

#[test]
fn openai_fields_the_ir_cannot_carry_are_refused_by_name() {
    let cases = [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"audio": {"voice": "alloy"}}), "audio"),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (json!({"prediction": {"type": "content"}}), "prediction"),
        (
            json!({"web_search_options": {"search_context_size": "low"}}),
            "web_search_options",
        ),
        (json!({"functions": [{"name": "f"}]}), "functions"),
        (json!({"function_call": "auto"}), "function_call"),
        (json!({"no_such_field": 1}), "no_such_field"),
        (
            json!({"messages": [{"role": "user", "name": "bob", "content": "hi"}]}),
            "messages[0].name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "strict": true}}]}),
            "tools[0].function.strict",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0] of type 'input_audio'",
        ),
    ];
    for (extra, expected) in cases {
        let e = openai_error(extra.clone());
        assert_eq!(param(&e), Some(expected), "{extra}: {e:?}");
        assert!(e.to_string().contains("cannot be translated"), "{e}");
    }
}

#[test]
fn anthropic_fields_the_ir_cannot_carry_are_refused_by_name() {
    let cases = [
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
            "thinking",
        ),
        (json!({"container": "c"}), "container"),
        (
            json!({"mcp_servers": [{"type": "url", "url": "https://mcp"}]}),
            "mcp_servers",
        ),
        (json!({"service_tier": "auto"}), "service_tier"),
        (
            json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0] of type 'web_search_20250305'",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}),
            "messages[0].content[0] of type 'document'",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "citations": [{}]}]}]}),
            "messages[0].content[0].citations",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}]}),
            "messages[0].content[0] of type 'thinking'",
        ),
    ];
    for (extra, expected) in cases {
        let e = anthropic_error(extra.clone());
        assert_eq!(param(&e), Some(expected), "{extra}: {e:?}");
    }
}

#[test]
fn render_time_lacks_name_the_rendered_format() {
    for extra in [
        json!({"presence_penalty": 0.5}),
        json!({"frequency_penalty": 0.5}),
        json!({"seed": 7}),
        json!({"response_format": {"type": "json_object"}}),
    ] {
        assert!(
            matches!(
                openai_error(extra.clone()),
                TranslateError::Unsupported {
                    target: Format::Anthropic,
                    ..
                }
            ),
            "{extra}"
        );
    }
    assert_eq!(
        anthropic_error(json!({"top_k": 5})),
        TranslateError::Unsupported {
            feature: "parameter 'top_k'".into(),
            target: Format::OpenAiChat
        }
    );
    let image_result = json!({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}
    ]});
    assert!(matches!(
        anthropic_error(image_result),
        TranslateError::Unsupported {
            target: Format::OpenAiChat,
            ..
        }
    ));
}

#[test]
fn wrong_types_and_missing_fields_name_the_param() {
    let cases = [
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"max_tokens": -1}), "max_tokens"),
        (json!({"stop": 3}), "stop"),
        (json!({"messages": "hi"}), "messages"),
        (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "messages[0].content[0].image_url",
        ),
    ];
    for (extra, expected) in cases {
        let e = openai_error(extra.clone());
        assert_eq!(param(&e), Some(expected), "{extra}: {e:?}");
    }
    let e = anthropic_error(json!({"max_tokens": null}));
    assert_eq!(param(&e), Some("max_tokens"));
    let e = anthropic_error(json!({"tool_choice": {"type": "tool"}}));
    assert_eq!(param(&e), Some("tool_choice.name"));
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    let deep_array = "[".repeat(100_000);
    let deep_object = "{\"a\":".repeat(100_000);
    let inputs: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"",
        b"null",
        b"[]",
        b"\xff\xfe",
        deep_array.as_bytes(),
        deep_object.as_bytes(),
    ];
    for input in inputs {
        assert!(openai::parse_request(input).is_err());
        assert!(anthropic::parse_request(input).is_err());
        assert!(openai::parse_response(input).is_err());
        assert!(anthropic::parse_response(input).is_err());
    }
}

// ---------------------------------------------------------------------------
// Responses.

fn openai_responses() -> Vec<(&'static str, Value)> {
    vec![
        (
            "text_cached_usage",
            json!({
                "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": null},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 7, "total_tokens": 1207,
                    "prompt_tokens_details": {"cached_tokens": 1024}}
            }),
        ),
        (
            "tool_calls",
            json!({
                "id": "chatcmpl-10", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]}, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100}
            }),
        ),
        (
            "length",
            json!({
                "id": "chatcmpl-11", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
            }),
        ),
        (
            "content_filter",
            json!({
                "id": "chatcmpl-12", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
                    "finish_reason": "content_filter"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
            }),
        ),
    ]
}

fn anthropic_responses() -> Vec<(&'static str, Value)> {
    let message = |id: &str, content: Value, stop: &str, seq: Value, usage: Value| {
        json!({"id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": content, "stop_reason": stop, "stop_sequence": seq, "usage": usage})
    };
    vec![
        (
            "text_cached_usage",
            message(
                "msg_1",
                json!([{"type": "text", "text": "Hello!"}]),
                "end_turn",
                Value::Null,
                json!({"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 1000, "output_tokens": 5}),
            ),
        ),
        (
            "tool_use",
            message(
                "msg_2",
                json!([{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]),
                "tool_use",
                Value::Null,
                json!({"input_tokens": 50, "output_tokens": 30}),
            ),
        ),
        (
            "stop_sequence",
            message(
                "msg_3",
                json!([{"type": "text", "text": "One, two"}]),
                "stop_sequence",
                json!("three"),
                json!({"input_tokens": 5, "output_tokens": 3}),
            ),
        ),
        (
            "max_tokens",
            message(
                "msg_4",
                json!([{"type": "text", "text": "Long"}]),
                "max_tokens",
                Value::Null,
                json!({"input_tokens": 5, "output_tokens": 1}),
            ),
        ),
        (
            "refusal",
            message(
                "msg_5",
                json!([]),
                "refusal",
                Value::Null,
                json!({"input_tokens": 5, "output_tokens": 0}),
            ),
        ),
    ]
}

#[test]
fn openai_responses_to_anthropic() {
    for (name, body) in openai_responses() {
        let (out, usage) = response(
            Format::OpenAiChat,
            Format::Anthropic,
            &bytes(body),
            "client-model",
        )
        .unwrap();
        insta::assert_json_snapshot!(
            format!("response_openai_to_anthropic__{name}"),
            json_of(&out)
        );
        // Usage that reaches the ledger is the upstream's, cached included.
        if name == "text_cached_usage" {
            assert_eq!(usage.input_tokens, 1200);
            assert_eq!(usage.cached_input_tokens, 1024);
        }
    }
}

#[test]
fn anthropic_responses_to_openai() {
    for (name, body) in anthropic_responses() {
        let (out, usage) = response(
            Format::Anthropic,
            Format::OpenAiChat,
            &bytes(body),
            "client-model",
        )
        .unwrap();
        insta::assert_json_snapshot!(
            format!("response_anthropic_to_openai__{name}"),
            json_of(&out)
        );
        if name == "text_cached_usage" {
            assert_eq!(usage.input_tokens, 1210);
            assert_eq!(usage.cached_input_tokens, 1000);
            assert_eq!(usage.cache_creation_input_tokens, 200);
        }
    }
}

/// Anthropic → IR → Anthropic keeps usage exactly, cache split included.
#[test]
fn anthropic_usage_round_trips_exactly() {
    for (name, body) in anthropic_responses() {
        let ir = anthropic::parse_response(&bytes(body.clone())).unwrap();
        let out = json_of(&anthropic::render_response(&ir).unwrap());
        for key in [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ] {
            let want = body["usage"].get(key).cloned().unwrap_or(json!(0));
            assert_eq!(out["usage"][key], want, "{name}.{key}");
        }
    }
}

#[test]
fn upstream_garbage_is_an_upstream_error() {
    let bodies = [
        json!({"choices": []}),
        json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}}]}),
        json!({"type": "error", "error": {"type": "overloaded_error"}}),
        json!({"content": [{"type": "mystery"}]}),
    ];
    for body in bodies {
        let b = bytes(body.clone());
        let o = openai::parse_response(&b);
        let a = anthropic::parse_response(&b);
        assert!(
            matches!(o, Err(TranslateError::Upstream(_))) || o.is_ok(),
            "{body}"
        );
        assert!(
            matches!(a, Err(TranslateError::Upstream(_))) || a.is_ok(),
            "{body}"
        );
    }
    assert!(openai::parse_response(&bytes(json!({"choices": []}))).is_err());
    assert!(anthropic::parse_response(&bytes(json!({"type": "error"}))).is_err());
}

// ---------------------------------------------------------------------------
// Streams.

fn translate_chunks(
    from: Format,
    to: Format,
    chunks: &[&[u8]],
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let mut t = StreamTranslator::new(from, to, "client-model");
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(t.push(chunk)?);
    }
    out.extend(t.finish()?);
    Ok((out, t.usage()))
}

/// `stream` cut at `points` (taken modulo its length, sorted).
fn split<'a>(stream: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for cut in cuts {
        chunks.push(&stream[last..cut]);
        last = cut;
    }
    chunks.push(&stream[last..]);
    chunks
}

#[test]
fn streams_translate_between_every_pair() {
    for (from, fixtures) in upstreams() {
        for (name, stream) in fixtures() {
            for &to in CLIENTS {
                let (out, _) = translate_chunks(from, to, &[&stream])
                    .unwrap_or_else(|e| panic!("{name} → {to:?}: {e:?}"));
                let text = String::from_utf8(out).unwrap();
                insta::assert_snapshot!(format!("stream_{name}__to_{}", short(to)), text);
            }
        }
    }
}

#[test]
fn stream_end_is_held_until_finish() {
    for (from, fixtures) in upstreams() {
        for (name, stream) in fixtures() {
            for &to in CLIENTS {
                let mut t = StreamTranslator::new(from, to, "m");
                let early = String::from_utf8(t.push(&stream).unwrap()).unwrap();
                // A Gemini stream ends only when the upstream closes it.
                assert_eq!(t.is_done(), from != Format::Gemini, "{name}");
                let end_marker = match to {
                    Format::OpenAiChat => "[DONE]",
                    Format::Anthropic => "message_stop",
                    Format::Gemini | Format::Converse => "finishReason",
                };
                assert!(!early.contains(end_marker), "{name} → {to:?}");
                let late = String::from_utf8(t.finish().unwrap()).unwrap();
                assert!(late.contains(end_marker), "{name} → {to:?}");
            }
        }
    }
}

#[test]
fn a_stream_without_its_final_event_fails_at_finish() {
    for (from, fixtures) in upstreams() {
        if from == Format::Converse {
            // Event-stream frames, not SSE: covered by the Converse tests
            // (a stream cut before messageStop is incomplete).
            continue;
        }
        for (name, stream) in fixtures() {
            // Drop the last event (and keep only part of it). Events end in
            // a blank line, `\n\n` or (Google) `\r\n\r\n`.
            let body = &stream[..stream.len() - 2];
            let last = body
                .windows(2)
                .rposition(|w| w == b"\n\n")
                .map(|i| i + 2)
                .unwrap_or(0)
                .max(
                    body.windows(4)
                        .rposition(|w| w == b"\r\n\r\n")
                        .map(|i| i + 4)
                        .unwrap_or(0),
                );
            // A lone CR ends a line in SSE, so `…\r\n\r` is still a whole
            // event: cut two bytes off a CRLF stream to leave it unfinished.
            let unfinished = if stream.ends_with(b"\r\n\r\n") { 2 } else { 1 };
            for cut in [stream.len() - unfinished, last, last + 3] {
                for &to in CLIENTS {
                    let result = translate_chunks(from, to, &[&stream[..cut]]);
                    assert!(
                        matches!(result, Err(TranslateError::Upstream(_))),
                        "{name} cut at {cut}"
                    );
                }
            }
        }
    }
}

#[test]
fn anthropic_error_event_is_an_upstream_error() {
    let stream = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let mut t = StreamTranslator::new(Format::Anthropic, Format::OpenAiChat, "m");
    assert!(matches!(t.push(stream), Err(TranslateError::Upstream(_))));
}

#[test]
fn hostile_streams_are_errors_not_panics() {
    let deep = format!("data: {}\n\n", "[".repeat(50_000));
    let cases: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"x\"}}]}}]}\n\n".to_vec(),
        b"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n".to_vec(),
        b"data: {\"type\":\"content_block_start\",\"content_block\":{\"type\":\"text\"}}\n\n".to_vec(),
        b"data: \"just a string\"\n\n".to_vec(),
        b"data: {truncated\n\n".to_vec(),
    ];
    for case in cases {
        for from in [Format::OpenAiChat, Format::Anthropic] {
            for &to in CLIENTS {
                assert!(translate_chunks(from, to, &[&case]).is_err());
            }
        }
    }
}

/// What a stream says: its text, its tool calls (id, name, arguments).
fn content(format: Format, stream: &[u8]) -> (String, Vec<(String, String, Value)>) {
    let mut decoder = decoder(format);
    let mut events = Vec::new();
    decoder.push(stream, &mut events).unwrap();
    decoder.finish(&mut events).unwrap();
    let mut text = String::new();
    let mut calls: Vec<(usize, String, String, String)> = Vec::new();
    for event in events {
        match event {
            StreamEvent::TextDelta { text: t, .. } => text.push_str(&t),
            StreamEvent::ToolCallStart { index, id, name } => {
                calls.push((index, id, name, String::new()))
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let call = calls.iter_mut().find(|c| c.0 == index).unwrap();
                call.3.push_str(&arguments);
            }
            _ => {}
        }
    }
    let calls = calls
        .into_iter()
        .map(|(_, id, name, args)| {
            let args = if args.is_empty() {
                json!({})
            } else {
                serde_json::from_str(&args).unwrap()
            };
            (id, name, args)
        })
        .collect();
    (text, calls)
}

fn stop_of(format: Format, stream: &[u8]) -> Option<StopReason> {
    let mut decoder = decoder(format);
    let mut events = Vec::new();
    decoder.push(stream, &mut events).unwrap();
    // Gemini streams have no end event: their stop comes at close.
    decoder.finish(&mut events).unwrap();
    events.into_iter().find_map(|e| match e {
        StreamEvent::Finish { stop_reason } => Some(stop_reason),
        _ => None,
    })
}

#[test]
fn stream_content_and_usage_survive_translation() {
    for (from, fixtures) in upstreams() {
        for (name, stream) in fixtures() {
            let (_, upstream_usage) = translate_chunks(from, from, &[&stream]).unwrap();
            for &to in CLIENTS {
                let (out, usage) = translate_chunks(from, to, &[&stream]).unwrap();
                assert_eq!(content(to, &out), content(from, &stream), "{name} → {to:?}");
                // The client's stream reports the usage keygate bills.
                let (_, client_usage) = translate_chunks(to, to, &[&out]).unwrap();
                assert_eq!(usage, upstream_usage, "{name}");
                assert_eq!(client_usage.input_tokens, usage.input_tokens, "{name}");
                assert_eq!(client_usage.output_tokens, usage.output_tokens, "{name}");
                assert_eq!(
                    client_usage.cached_input_tokens, usage.cached_input_tokens,
                    "{name}"
                );
                let tool_use = stop_of(from, &stream) == Some(StopReason::ToolUse);
                assert_eq!(
                    stop_of(to, &out) == Some(StopReason::ToolUse),
                    tool_use,
                    "{name}"
                );
            }
        }
    }
}

proptest! {
    /// However the network splits the upstream's bytes, the client gets
    /// the same bytes.
    #[test]
    fn stream_translation_does_not_depend_on_splits(
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        for (from, fixtures) in upstreams() {
            for (name, stream) in fixtures() {
                for &to in CLIENTS {
                    let (whole, _) = translate_chunks(from, to, &[&stream]).unwrap();
                    let chunks = split(&stream, &points);
                    let (pieces, _) = translate_chunks(from, to, &chunks).unwrap();
                    prop_assert_eq!(&pieces, &whole, "{} → {:?} split at {:?}", name, to, points);
                }
            }
        }
    }

    /// Arbitrary bytes never panic any parser or decoder.
    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = openai::parse_request(&input);
        let _ = anthropic::parse_request(&input);
        let _ = openai::parse_response(&input);
        let _ = anthropic::parse_response(&input);
        let mut framed = b"data: ".to_vec();
        framed.extend_from_slice(&input);
        framed.extend_from_slice(b"\n\n");
        for (from, _) in upstreams() {
            for &to in CLIENTS {
                let _ = translate_chunks(from, to, &[&input]);
                let _ = translate_chunks(from, to, &[&framed]);
            }
        }
    }

    /// Fixture streams with one byte changed are translated or refused,
    /// never a panic.
    #[test]
    fn corrupted_fixture_streams_never_panic(at in any::<usize>(), byte in any::<u8>()) {
        for (from, fixtures) in upstreams() {
            for (_, mut stream) in fixtures() {
                let i = at % stream.len();
                stream[i] = byte;
                for &to in CLIENTS {
                    let _ = translate_chunks(from, to, &[&stream]);
                }
            }
        }
    }
}

#[test]
fn tool_choice_without_tools_is_left_out_where_upstreams_refuse_it() {
    for choice in ["auto", "none"] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tool_choice": choice, "parallel_tool_calls": true});
        let out = json_of(
            &request(
                Format::OpenAiChat,
                Format::Anthropic,
                &bytes(body),
                target("c"),
            )
            .unwrap(),
        );
        assert!(out.get("tool_choice").is_none(), "{out}");
    }
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}});
    let out = json_of(
        &request(
            Format::Anthropic,
            Format::OpenAiChat,
            &bytes(body),
            target("g"),
        )
        .unwrap(),
    );
    assert!(out.get("tool_choice").is_none(), "{out}");
    assert!(out.get("parallel_tool_calls").is_none(), "{out}");
}

fn decode(format: Format, stream: &[u8]) -> Vec<StreamEvent> {
    let mut d = decoder(format);
    let mut events = Vec::new();
    d.push(stream, &mut events).unwrap();
    d.finish(&mut events).unwrap();
    events
}

#[test]
fn azure_prelude_chunk_does_not_start_the_answer() {
    let stream = concat!(
        "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n",
        "data: [DONE]\n\n",
    );
    let events = decode(Format::OpenAiChat, stream.as_bytes());
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "c1".into(),
                model: "gpt-4o".into()
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "x".into()
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::Finish {
                stop_reason: StopReason::EndTurn
            },
            StreamEvent::Done,
        ]
    );
}

#[test]
fn interleaved_openai_tool_deltas_are_refused() {
    let stream = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]}}]}\n\n",
    );
    let mut d = decoder(Format::OpenAiChat);
    let mut events = Vec::new();
    assert!(matches!(
        d.push(stream.as_bytes(), &mut events),
        Err(TranslateError::Upstream(_))
    ));
}

#[test]
fn anthropic_stream_without_message_delta_still_finishes() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"a\":1}}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: some_future_event\ndata: {\"type\":\"some_future_event\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let events = decode(Format::Anthropic, stream.as_bytes());
    assert_eq!(
        &events[2..],
        &[
            StreamEvent::ToolCallStart {
                index: 0,
                id: "t".into(),
                name: "f".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"a\":1}".into()
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::Finish {
                stop_reason: StopReason::EndTurn
            },
            StreamEvent::Done,
        ]
    );
}

/// A later Anthropic usage report that omits the cache fields does not
/// shrink the input total reported at message_start.
#[test]
fn anthropic_stream_usage_keeps_cache_totals() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":3,\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (_, usage) =
        translate_chunks(Format::Anthropic, Format::OpenAiChat, &[stream.as_bytes()]).unwrap();
    assert_eq!(
        usage,
        Usage {
            input_tokens: 103,
            output_tokens: 7,
            cached_input_tokens: 100,
            cache_creation_input_tokens: 0
        }
    );
}

#[test]
fn anthropic_blocks_left_open_are_stopped_before_finish() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"hi\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let events = decode(Format::Anthropic, stream.as_bytes());
    assert_eq!(
        &events[1..],
        &[
            StreamEvent::TextDelta {
                index: 0,
                text: "hi".into()
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::Finish {
                stop_reason: StopReason::EndTurn
            },
            StreamEvent::Done,
        ]
    );
}

#[test]
fn echoed_empty_defaults_and_refusals_are_accepted() {
    let body = json!({"model": "m", "metadata": {}, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "refusal": "I can't.", "annotations": [], "audio": null},
        {"role": "user", "content": "ok"}
    ]});
    let ir = openai::parse_request(&bytes(body)).unwrap();
    assert_eq!(
        ir.messages[1].content,
        vec![ir::Part::Text("I can't.".into())]
    );
}

#[test]
fn a_stream_cut_before_its_usage_is_billed_for_what_was_delivered() {
    // Three content deltas, then the upstream is cut: no usage, no end.
    let mut stream = Vec::new();
    for text in ["one", "two", "three"] {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
        stream.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    for &to in CLIENTS {
        let mut t = StreamTranslator::new(Format::OpenAiChat, to, "m");
        t.push(&stream).unwrap();
        assert!(t.finish().is_err(), "{to:?}: incomplete");
        assert_eq!(
            t.usage().output_tokens,
            3,
            "{to:?}: billed per delivered delta"
        );
    }
}
