//! The built-in model catalogue: which bare model names go to which provider
//! configured from its standard environment variable, and the models listed
//! by `GET /v1/models` for it.

/// Model globs routed to a provider configured from the environment.
pub fn routing_globs(provider: &str) -> &'static [&'static str] {
    match provider {
        "openai" => &[
            "gpt-*",
            "o1*",
            "o3*",
            "o4*",
            "chatgpt-*",
            "text-embedding-*",
            "omni-moderation-*",
            "davinci-*",
            "babbage-*",
        ],
        "anthropic" => &["claude-*"],
        "groq" => &[
            "llama-*",
            "llama3-*",
            "meta-llama/*",
            "mixtral-*",
            "gemma*",
            "qwen*",
            "moonshotai/*",
            "openai/gpt-oss-*",
        ],
        "deepseek" => &["deepseek-*"],
        "gemini" => &[
            "gemini-*",
            "gemma-*",
            "text-embedding-004",
            "gemini-embedding-*",
        ],
        _ => &[],
    }
}

/// Well-known model ids a provider serves, for model listings.
pub fn known_models(provider: &str) -> &'static [&'static str] {
    match provider {
        "openai" => &[
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "gpt-5-mini",
            "o3",
            "o3-mini",
            "o4-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
        ],
        "anthropic" => &[
            "claude-opus-4-1",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-3-7-sonnet-latest",
            "claude-3-5-haiku-latest",
        ],
        "groq" => &[
            "llama-3.3-70b-versatile",
            "llama-3.1-8b-instant",
            "openai/gpt-oss-120b",
        ],
        "deepseek" => &["deepseek-chat", "deepseek-reasoner"],
        "gemini" => &["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash"],
        _ => &[],
    }
}
