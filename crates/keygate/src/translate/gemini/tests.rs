//! Gemini codec tests.
