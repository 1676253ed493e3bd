//! Converse ⇄ IR: snapshots of requests, responses and streams, refusals,
//! event-stream framing (split-independent, checksummed) and hostile input.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::fixtures::{frame as fixture_frame, streams};
use super::*;
use crate::translate::StreamTranslator;

/// Snapshots live in `translate/snapshots/`, named after this module.
fn snapshots() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.bind_to_scope()
}

fn parse(body: Value) -> Result<ChatRequest, TranslateError> {
    parse_request(body.to_string().as_bytes())
}

fn rendered(request: &ChatRequest) -> Value {
    serde_json::from_slice(&render_request(request).unwrap()).unwrap()
}

fn decode(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, TranslateError> {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.push(chunk, &mut out)?;
    }
    decoder.finish(&mut out)?;
    Ok(out)
}

fn fixture(name: &str) -> Vec<u8> {
    streams()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| bytes)
        .unwrap()
}

fn param_of(error: TranslateError) -> Option<String> {
    match error {
        TranslateError::Invalid { param, .. } => param,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn full_request() -> Value {
    json!({
        "system": [{ "text": "You are terse." }, { "text": "Use metric units." }],
        "messages": [
            { "role": "user", "content": [
                { "text": "What's in the image, and the weather in Paris?" },
                { "image": { "format": "png", "source": { "bytes": "iVBORw0KGgo=" } } }
            ]},
            { "role": "assistant", "content": [
                { "text": "A cat. Checking." },
                { "toolUse": { "toolUseId": "tooluse_1", "name": "get_weather", "input": { "city": "Paris" } } }
            ]},
            { "role": "user", "content": [
                { "toolResult": { "toolUseId": "tooluse_1", "content": [
                    { "text": "18°C" }, { "json": { "sky": "cloudy" } },
                    { "image": { "format": "jpeg", "source": { "bytes": "/9j/" } } }
                ], "status": "success" } },
                { "text": "And now?" }
            ]},
            { "role": "assistant", "content": [
                { "toolUse": { "toolUseId": "tooluse_2", "name": "get_weather", "input": { "city": "Oslo" } } }
            ]},
            { "role": "user", "content": [
                { "toolResult": { "toolUseId": "tooluse_2", "content": [{ "text": "service down" }], "status": "error" } }
            ]}
        ],
        "inferenceConfig": { "maxTokens": 300, "temperature": 0.3, "topP": 0.8, "stopSequences": ["\n\nHuman:"] },
        "additionalModelRequestFields": { "top_k": 50 },
        "toolConfig": {
            "tools": [{ "toolSpec": { "name": "get_weather", "description": "Weather for a city",
                "inputSchema": { "json": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } } }],
            "toolChoice": { "tool": { "name": "get_weather" } }
        }
    })
}

#[test]
fn request_to_ir() {
    let _snapshots = snapshots();
    insta::assert_debug_snapshot!(parse(full_request()).unwrap());
}

#[test]
fn tool_choices_parse() {
    let choice = |c: Value| {
        parse(json!({ "messages": [], "toolConfig": {
            "tools": [{ "toolSpec": { "name": "f", "inputSchema": { "json": {} } } }], "toolChoice": c } }))
        .map(|r| r.tool_choice)
    };
    assert_eq!(choice(json!({ "auto": {} })), Ok(Some(ToolChoice::Auto)));
    assert_eq!(choice(json!({ "any": {} })), Ok(Some(ToolChoice::Required)));
    assert_eq!(
        param_of(choice(json!({ "auto": {}, "any": {} })).unwrap_err()).as_deref(),
        Some("toolConfig.toolChoice")
    );
}

#[test]
fn untranslatable_fields_are_refused_by_name() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "guardrailConfig": {} }), "guardrailConfig"),
        (json!({ "promptVariables": {} }), "promptVariables"),
        (
            json!({ "additionalModelResponseFieldPaths": ["/x"] }),
            "additionalModelResponseFieldPaths",
        ),
        (
            json!({ "performanceConfig": { "latency": "optimized" } }),
            "performanceConfig",
        ),
        (
            json!({ "additionalModelRequestFields": { "thinking": {} } }),
            "additionalModelRequestFields.thinking",
        ),
        (
            json!({ "inferenceConfig": { "topK": 3 } }),
            "inferenceConfig.topK",
        ),
        (
            json!({ "system": [{ "cachePoint": { "type": "default" } }] }),
            "system[0].cachePoint",
        ),
        (
            json!({ "toolConfig": { "tools": [{ "cachePoint": { "type": "default" } }] } }),
            "toolConfig.tools[0].cachePoint",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "document": {} }] }] }),
            "messages[0].content[0].document",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "image": { "format": "png", "source": { "s3Location": {} } } }] }] }),
            "messages[0].content[0].image.source.s3Location",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "toolResult": { "toolUseId": "t", "content": [{ "document": {} }] } }] }] }),
            "messages[0].content[0].toolResult.content[0].document",
        ),
    ];
    for (body, expected) in cases {
        let error = parse(body).unwrap_err();
        let message = error.to_string();
        assert_eq!(param_of(error).as_deref(), Some(expected));
        assert_eq!(
            message,
            format!("parameter '{expected}' cannot be translated to another provider's format")
        );
    }
}

#[test]
fn malformed_requests_name_the_param() {
    assert!(matches!(
        parse_request(b"nope"),
        Err(TranslateError::Invalid { param: None, .. })
    ));
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "messages": "hi" }), "messages"),
        (
            json!({ "messages": [{ "content": [] }] }),
            "messages[0].role",
        ),
        (
            json!({ "messages": [{ "role": "system", "content": [] }] }),
            "messages[0].role",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "text": 1 }] }] }),
            "messages[0].content[0].text",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{}] }] }),
            "messages[0].content[0]",
        ),
        (
            json!({ "messages": [], "inferenceConfig": { "maxTokens": "many" } }),
            "inferenceConfig.maxTokens",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "toolResult": { "toolUseId": "t", "status": "meh" } }] }] }),
            "messages[0].content[0].toolResult.status",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            param_of(parse(body).unwrap_err()).as_deref(),
            Some(expected)
        );
    }
}

fn ir_request() -> ChatRequest {
    ChatRequest {
        model: "anthropic.claude-sonnet-4".into(),
        system: vec!["Be helpful.".into()],
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text("Weather in Paris? Here is a photo.".into()),
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/4AAQ".into(),
                    }),
                    Part::Image(Image::Url("data:image/webp;base64,UklGRg==".into())),
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Text("Let me check.".into()),
                    Part::ToolCall(ToolCall {
                        id: "call_abc".into(),
                        name: "get_weather".into(),
                        arguments: json!({ "city": "Paris" }),
                    }),
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    Part::ToolResult(ToolResult {
                        id: "call_abc".into(),
                        name: None,
                        content: vec![Part::Text("18°C".into())],
                        is_error: false,
                    }),
                    Part::ToolResult(ToolResult {
                        id: "call_abc".into(),
                        name: None,
                        content: vec![Part::Text("rate limited".into())],
                        is_error: true,
                    }),
                ],
            },
        ],
        max_tokens: Some(1024),
        temperature: Some(0.5),
        top_p: Some(0.9),
        top_k: Some(25),
        stop: vec!["END".into()],
        tools: vec![Tool {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
        }],
        tool_choice: Some(ToolChoice::Required),
        stream: true,
        ..ChatRequest::default()
    }
}

#[test]
fn ir_to_request() {
    let _snapshots = snapshots();
    insta::assert_json_snapshot!(rendered(&ir_request()));
}

#[test]
fn request_round_trips_through_ir() {
    let request = parse(full_request()).unwrap();
    let again = parse_request(&render_request(&request).unwrap()).unwrap();
    // JSON tool results come back as text: the IR holds results as text.
    let mut expected = request.clone();
    expected.model.clear();
    assert_eq!(again, expected);
}

#[test]
fn tool_choice_rendering() {
    let with = |choice: Option<ToolChoice>, history: bool| {
        let mut request = ir_request();
        request.tool_choice = choice;
        if !history {
            request.messages.truncate(1);
        }
        render_request(&request).map(|b| serde_json::from_slice::<Value>(&b).unwrap())
    };
    let auto = with(Some(ToolChoice::Auto), true).unwrap();
    assert_eq!(auto["toolConfig"]["toolChoice"], json!({ "auto": {} }));
    assert!(with(None, true).unwrap()["toolConfig"]
        .get("toolChoice")
        .is_none());
    let named = with(Some(ToolChoice::Named("get_weather".into())), true).unwrap();
    assert_eq!(
        named["toolConfig"]["toolChoice"],
        json!({ "tool": { "name": "get_weather" } })
    );
    // "none" without tool history: the tools are left out, which means the same.
    assert!(with(Some(ToolChoice::None), false)
        .unwrap()
        .get("toolConfig")
        .is_none());
    // With tool history Bedrock needs the toolConfig, so "none" cannot be said.
    assert_eq!(
        with(Some(ToolChoice::None), true),
        Err(TranslateError::Unsupported {
            feature: "tool_choice 'none'".into(),
            target: Format::Converse
        })
    );
    let mut no_tools = ir_request();
    no_tools.tools.clear();
    assert!(matches!(
        render_request(&no_tools),
        Err(TranslateError::Invalid { .. })
    ));
}

#[test]
fn render_refuses_what_converse_lacks() {
    let feature = |mutate: &dyn Fn(&mut ChatRequest)| {
        let mut request = ir_request();
        mutate(&mut request);
        match render_request(&request) {
            Err(TranslateError::Unsupported { feature, target }) => {
                assert_eq!(target, Format::Converse);
                feature
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    };
    assert_eq!(
        feature(&|r| r.messages[0].content[1] = Part::Image(Image::Url("https://x/a.png".into()))),
        "image URLs"
    );
    assert_eq!(
        feature(&|r| {
            r.messages[0].content[1] = Part::Image(Image::Base64 {
                media_type: "image/heic".into(),
                data: "AA==".into(),
            })
        }),
        "images of type 'image/heic'"
    );
    feature(&|r| r.presence_penalty = Some(0.1));
    feature(&|r| r.frequency_penalty = Some(0.1));
    feature(&|r| r.seed = Some(1));
    feature(&|r| r.response_format = Some(ResponseFormat::JsonObject));
    feature(&|r| {
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "x".into(),
            schema: json!({}),
            strict: None,
        })
    });
    feature(&|r| r.parallel_tool_calls = Some(false));
    feature(&|r| r.user = Some("u".into()));
    let mut text = ir_request();
    text.response_format = Some(ResponseFormat::Text);
    assert!(render_request(&text).is_ok());
}

#[test]
fn responses_to_ir() {
    let _snapshots = snapshots();
    let bodies = [
        json!({
            "output": { "message": { "role": "assistant", "content": [{ "text": "Hello!" }] } },
            "stopReason": "end_turn",
            "usage": { "inputTokens": 10, "outputTokens": 3, "totalTokens": 2573,
                "cacheReadInputTokens": 2048, "cacheWriteInputTokens": 512 },
            "metrics": { "latencyMs": 300 }
        }),
        json!({
            "output": { "message": { "role": "assistant", "content": [
                { "reasoningContent": { "reasoningText": { "text": "hmm", "signature": "x" } } },
                { "text": "Checking." },
                { "toolUse": { "toolUseId": "tooluse_A", "name": "get_weather", "input": { "city": "Paris" } } }
            ] } },
            "stopReason": "tool_use",
            "usage": { "inputTokens": 100, "outputTokens": 40, "totalTokens": 140 },
            "metrics": { "latencyMs": 900 }
        }),
        json!({
            "output": { "message": { "role": "assistant", "content": [{ "text": "1, 2, 3" }] } },
            "stopReason": "stop_sequence",
            "additionalModelResponseFields": { "stop_sequence": "4" },
            "usage": { "inputTokens": 5, "outputTokens": 6, "totalTokens": 11 }
        }),
        json!({
            "output": { "message": { "role": "assistant", "content": [{ "text": "Sorry." }] } },
            "stopReason": "guardrail_intervened",
            "usage": { "inputTokens": 5, "outputTokens": 2, "totalTokens": 7 }
        }),
        json!({
            "output": { "message": { "role": "assistant", "content": [{ "text": "Long" }] } },
            "stopReason": "max_tokens",
            "usage": { "inputTokens": 5, "outputTokens": 1, "totalTokens": 6 }
        }),
    ];
    let parsed: Vec<ChatResponse> = bodies
        .iter()
        .map(|b| {
            let response = parse_response(b.to_string().as_bytes()).unwrap();
            assert_eq!(response.id, "msg_bdrk_test");
            response
        })
        .collect();
    insta::assert_debug_snapshot!(parsed);
}

#[test]
fn ir_to_response() {
    let _snapshots = snapshots();
    let response = ChatResponse {
        id: "chatcmpl-1".into(),
        model: "gpt-4o".into(),
        content: vec![
            Part::Text("Calling.".into()),
            Part::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "f".into(),
                arguments: json!({ "x": 1 }),
            }),
        ],
        stop_reason: StopReason::ToolUse,
        usage: Usage {
            input_tokens: 3000,
            output_tokens: 20,
            cached_input_tokens: 2048,
            cache_creation_input_tokens: 512,
        },
    };
    let bytes = render_response(&response).unwrap();
    insta::assert_json_snapshot!(serde_json::from_slice::<Value>(&bytes).unwrap());
    let back = parse_response(&bytes).unwrap();
    assert_eq!(back.usage, response.usage);
    assert_eq!(back.content, response.content);
    assert_eq!(back.stop_reason, response.stop_reason);
}

#[test]
fn bad_responses_are_upstream_errors() {
    for body in [
        &b""[..],
        b"{}",
        b"{\"output\":{\"message\":{\"content\":[]}}}",
        b"{\"output\":{\"message\":{\"content\":[{\"toolUse\":{\"name\":\"f\"}}]}},\"stopReason\":\"tool_use\"}",
    ] {
        assert!(matches!(parse_response(body), Err(TranslateError::Upstream(_))));
    }
}

#[test]
fn streams_to_ir() {
    let _snapshots = snapshots();
    for (name, bytes) in streams() {
        insta::assert_debug_snapshot!(name, decode(&[&bytes]).unwrap());
    }
}

#[test]
fn encoder_output_decodes_to_the_same_events() {
    let _snapshots = snapshots();
    for (_, bytes) in streams() {
        let events = decode(&[&bytes]).unwrap();
        let mut encoder = Encoder::new("m");
        let mut out = Vec::new();
        for event in &events {
            encoder.encode(event, &mut out).unwrap();
        }
        assert_eq!(decode(&[&out]).unwrap(), events);
    }
    // The frames themselves, readably: event type and payload per frame.
    let events = decode(&[&fixture("converse_tool_use")]).unwrap();
    let mut encoder = Encoder::new("m");
    let mut out = Vec::new();
    for event in &events {
        encoder.encode(event, &mut out).unwrap();
    }
    let mut listing = String::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let total = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let frame = read_message_from(&rest[..total]).unwrap();
        listing.push_str(&format!(
            "{} {}\n",
            header(&frame, ":event-type").unwrap(),
            String::from_utf8_lossy(frame.payload())
        ));
        rest = &rest[total..];
    }
    insta::assert_snapshot!(listing);
}

#[test]
fn decoder_shows_a_given_id() {
    let mut decoder = Decoder::with_id("req-7f3a");
    let mut out = Vec::new();
    decoder
        .push(&fixture("converse_text_cached"), &mut out)
        .unwrap();
    assert_eq!(
        out.first(),
        Some(&StreamEvent::Start {
            id: "req-7f3a".into(),
            model: String::new()
        })
    );
}

#[test]
fn exceptions_are_upstream_errors() {
    let message = Frame::new_from_parts(
        vec![
            Header::new(
                ":exception-type",
                HeaderValue::String("throttlingException".into()),
            ),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            Header::new(":message-type", HeaderValue::String("exception".into())),
        ],
        br#"{"message":"Too many requests, please wait before trying again."}"#.to_vec(),
    );
    let mut bytes = Vec::new();
    fixture_frame("messageStart", r#"{"role":"assistant"}"#, &mut bytes);
    write_message_to(&message, &mut bytes).unwrap();
    match decode(&[&bytes]) {
        Err(TranslateError::Upstream(detail)) => assert!(detail.contains("throttlingException")),
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

#[test]
fn bad_checksums_are_errors() {
    let good = fixture("converse_text_cached");
    // A flipped payload byte breaks the message CRC.
    let mut payload = good.clone();
    payload[30] ^= 0x01;
    assert!(matches!(
        decode(&[&payload]),
        Err(TranslateError::Upstream(_))
    ));
    // A flipped length breaks the prelude CRC, caught before waiting for
    // the bytes the bad length promises.
    let mut prelude = good.clone();
    prelude[1] ^= 0x40;
    let mut decoder = Decoder::with_id("x");
    assert!(matches!(
        decoder.push(&prelude[..12], &mut Vec::new()),
        Err(TranslateError::Upstream(_))
    ));
    // The last byte of the last frame (its CRC).
    let mut last = good;
    let end = last.len() - 1;
    last[end] ^= 0xff;
    assert!(matches!(decode(&[&last]), Err(TranslateError::Upstream(_))));
}

#[test]
fn truncated_streams() {
    let bytes = fixture("converse_text_cached");
    // Cut inside a frame: an error at close.
    assert!(matches!(
        decode(&[&bytes[..bytes.len() - 5]]),
        Err(TranslateError::Upstream(_))
    ));
    // Cut after messageStop, before metadata: the answer did end.
    let mut without_metadata = Vec::new();
    for (event, payload) in [
        ("messageStart", r#"{"role":"assistant"}"#),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ),
        ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        ("messageStop", r#"{"stopReason":"end_turn"}"#),
    ] {
        fixture_frame(event, payload, &mut without_metadata);
    }
    let events = decode(&[&without_metadata]).unwrap();
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    // Cut before messageStop: incomplete, as the translator reports.
    let mut translator = StreamTranslator::new(Format::Converse, Format::Converse, "m");
    translator
        .push(&without_metadata[..without_metadata.len() / 2])
        .unwrap();
    assert!(translator.finish().is_err());
}

#[test]
fn translator_holds_back_the_end_and_counts_cached_usage() {
    let mut translator = StreamTranslator::new(Format::Converse, Format::Converse, "m");
    let early = translator.push(&fixture("converse_text_cached")).unwrap();
    assert!(!early.is_empty());
    assert!(translator.is_done());
    assert_eq!(
        translator.usage(),
        Usage {
            input_tokens: 2572,
            output_tokens: 9,
            cached_input_tokens: 2048,
            cache_creation_input_tokens: 512
        }
    );
    assert!(!translator.finish().unwrap().is_empty());
}

fn split_at(bytes: &[u8], points: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(bytes[start..cut].to_vec());
        start = cut;
    }
    chunks.push(bytes[start..].to_vec());
    chunks
}

#[test]
fn huge_counts_saturate() {
    let body = json!({
        "output": { "message": { "role": "assistant", "content": [] } },
        "stopReason": "end_turn",
        "usage": { "inputTokens": u64::MAX, "outputTokens": u64::MAX, "cacheReadInputTokens": u64::MAX,
            "cacheWriteInputTokens": 1 }
    });
    let response = parse_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(response.usage.input_tokens, u64::MAX);
    assert!(render_response(&response).is_ok());
}

#[test]
fn adjacent_turns_of_one_speaker_merge() {
    let result = |id: &str| Message {
        role: Role::User,
        content: vec![Part::ToolResult(ToolResult {
            id: id.into(),
            name: Some("f".into()),
            content: vec![Part::Text("ok".into())],
            is_error: false,
        })],
    };
    let call = |id: &str| {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: "f".into(),
            arguments: json!({}),
        })
    };
    let request = ChatRequest {
        messages: vec![
            Message {
                role: Role::Assistant,
                content: vec![call("a"), call("b")],
            },
            result("a"),
            result("b"),
        ],
        tools: vec![Tool {
            name: "f".into(),
            description: None,
            parameters: json!({ "type": "object" }),
        }],
        ..ChatRequest::default()
    };
    let body = rendered(&request);
    let turns = body["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1]["content"].as_array().unwrap().len(), 2);
}

proptest! {
    #[test]
    fn decoding_does_not_depend_on_splits(points in prop::collection::vec(any::<prop::sample::Index>(), 0..32)) {
        for (_, bytes) in streams() {
            let whole = decode(&[&bytes]).unwrap();
            let chunks = split_at(&bytes, &points);
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(decode(&refs).unwrap(), whole);
        }
    }

    #[test]
    fn hostile_bytes_do_not_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let _ = decode(&refs);
    }

    /// Garbage behind a valid prelude reaches the header and payload parsing.
    #[test]
    fn hostile_frames_do_not_panic(body in prop::collection::vec(any::<u8>(), 4..200), headers_len in 0u32..200) {
        let total = (body.len() + 12) as u32;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&total.to_be_bytes());
        bytes.extend_from_slice(&headers_len.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes.extend_from_slice(&body);
        let _ = decode(&[&bytes]);
    }

    #[test]
    fn mutated_streams_do_not_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for (_, mut bytes) in streams() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&[&bytes]);
            let _ = decode(&[&bytes[..i]]);
        }
    }

    #[test]
    fn hostile_bodies_do_not_panic(body in "\\PC{0,200}") {
        let _ = parse_request(body.as_bytes());
        let _ = parse_response(body.as_bytes());
    }
}
