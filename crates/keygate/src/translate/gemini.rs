//! The gemini format: requests, responses and streams to and from the IR.

use super::ir::{ChatRequest, ChatResponse, StreamEvent};
use super::{StreamDecoder, StreamEncoder, TranslateError, Format};

const FORMAT: Format = Format::Gemini;

/// Parse a request body.
pub fn parse_request(_body: &[u8]) -> Result<ChatRequest, TranslateError> {
    Err(TranslateError::Unsupported { feature: "translation from this format".into(), target: FORMAT })
}

/// Render a request body.
pub fn render_request(_request: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    Err(TranslateError::Unsupported { feature: "translation".into(), target: FORMAT })
}

/// Parse a complete response body.
pub fn parse_response(_body: &[u8]) -> Result<ChatResponse, TranslateError> {
    Err(TranslateError::Upstream("not implemented".into()))
}

/// Render a complete response body.
pub fn render_response(_response: &ChatResponse) -> Result<Vec<u8>, TranslateError> {
    Err(TranslateError::Upstream("not implemented".into()))
}

/// Stream decoder.
#[derive(Default)]
pub struct Decoder {}

impl StreamDecoder for Decoder {
    fn push(&mut self, _bytes: &[u8], _out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        Err(TranslateError::Upstream("not implemented".into()))
    }
    fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), TranslateError> {
        Err(TranslateError::Upstream("not implemented".into()))
    }
}

/// Stream encoder.
pub struct Encoder {
    model: String,
}

impl Encoder {
    /// An encoder showing the client `model`.
    pub fn new(model: &str) -> Self {
        Encoder { model: model.to_string() }
    }
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, _event: &StreamEvent, _out: &mut Vec<u8>) -> Result<(), TranslateError> {
        let _ = &self.model;
        Err(TranslateError::Upstream("not implemented".into()))
    }
}
