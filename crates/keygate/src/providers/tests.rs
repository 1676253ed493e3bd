#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::config::RawConfig;

fn registry(env: &[(&str, &str)], file: &str, mock: bool) -> Registry {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let raw: RawConfig = toml::from_str(file).unwrap();
    let config = Config::from_raw(raw, &env).unwrap();
    Registry::new(&config, mock.then(|| "http://127.0.0.1:1".to_string())).unwrap()
}

fn first(r: &Registry, model: &str, op: Operation) -> Route {
    r.resolve(model, op).unwrap().remove(0)
}

#[test]
fn routes_by_catalogue_prefix_and_alias() {
    let r = registry(
        &[("OPENAI_API_KEY", "a"), ("ANTHROPIC_API_KEY", "b")],
        "[aliases]\nfast = \"openai/gpt-4o-mini\"\n",
        false,
    );
    let chat = Operation::ChatCompletions;
    assert_eq!(first(&r, "gpt-4o", chat).canonical, "openai/gpt-4o");
    assert_eq!(
        first(&r, "text-embedding-3-small", Operation::Embeddings)
            .provider
            .name,
        "openai"
    );
    assert_eq!(
        first(&r, "claude-sonnet-4-5", Operation::Messages).canonical,
        "anthropic/claude-sonnet-4-5"
    );
    assert_eq!(first(&r, "fast", chat).upstream_model, "gpt-4o-mini");
    assert_eq!(
        first(&r, "anthropic/claude-x", Operation::Messages).upstream_model,
        "claude-x"
    );
    assert_eq!(r.resolve("llama-3", chat).unwrap_err().status.as_u16(), 400);
    // With translation, a Claude model is reachable in OpenAI format and a
    // GPT model in Anthropic's; embeddings only where the provider has them.
    let claude = first(&r, "claude-sonnet-4-5", chat);
    assert_eq!(
        claude.provider.format(chat, "claude-sonnet-4-5"),
        Some(Format::Anthropic)
    );
    assert!(!claude.provider.relays_as_is(chat, "claude-sonnet-4-5"));
    assert_eq!(
        r.resolve("claude-sonnet-4-5", Operation::Embeddings)
            .unwrap_err()
            .param,
        Some("model")
    );
}

#[test]
fn mock_answers_every_model_in_every_format() {
    let r = registry(&[], "", true);
    for op in [
        Operation::ChatCompletions,
        Operation::Messages,
        Operation::GenerateContent,
    ] {
        let route = first(&r, "anything", op);
        assert_eq!(route.provider.name, "mock");
        assert_eq!(route.provider.format(op, "anything"), op.client_format());
    }
}

#[test]
fn several_providers_and_keys_make_attempts_with_failover_order() {
    let r = registry(
        &[("K1", "a"), ("K2", "b"), ("K3", "c")],
        r#"
[[providers]]
name = "east"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
api_key_envs = ["K1", "K2"]
models = ["gpt-*"]
weight = 3

[[providers]]
name = "west"
kind = "openai"
base_url = "http://127.0.0.1:2/v1"
api_key_env = "K3"
models = ["gpt-*"]
"#,
        false,
    );
    let routes = r.resolve("gpt-4o", Operation::ChatCompletions).unwrap();
    assert_eq!(routes.len(), 2);
    let attempts = Registry::attempts(&routes);
    assert_eq!(attempts.len(), 3, "every key of every provider");
    // Weighted spread: over many orders, east (weight 3) leads about 3 in 4.
    let east_first = (0..2000)
        .filter(|_| Registry::attempts(&routes)[0].route.provider.name == "east")
        .count();
    assert!((1200..1800).contains(&east_first), "{east_first}");
    // A provider that failed is tried last until its cooldown ends.
    let east = routes.iter().find(|r| r.provider.name == "east").unwrap();
    east.provider.penalize(0, Failure::Unavailable);
    for _ in 0..50 {
        assert_eq!(Registry::attempts(&routes)[0].route.provider.name, "west");
    }
    // A refused key is tried after the provider's other key.
    let west = routes.iter().find(|r| r.provider.name == "west").unwrap();
    west.provider.penalize(0, Failure::KeyRefused);
    east.provider.cooled_until_ms.store(0, Ordering::Relaxed);
    east.provider.penalize(1, Failure::RateLimited(Some(30)));
    for _ in 0..50 {
        let order: Vec<(String, usize)> = Registry::attempts(&routes)
            .iter()
            .map(|a| (a.route.provider.name.clone(), a.key))
            .collect();
        let east_keys: Vec<usize> = order
            .iter()
            .filter(|(p, _)| p == "east")
            .map(|(_, k)| *k)
            .collect();
        assert_eq!(east_keys, vec![0, 1]);
    }
}

#[test]
fn alias_lists_spread_over_providers() {
    let r = registry(
        &[("OPENAI_API_KEY", "a"), ("AZ", "z")],
        r#"
[aliases]
smart = "openai/gpt-4o, azure/gpt-4o"

[[providers]]
name = "azure"
kind = "azure"
base_url = "https://example.openai.azure.com"
api_key_env = "AZ"
deployments = { "gpt-4o" = "prod-4o" }
"#,
        false,
    );
    let routes = r.resolve("smart", Operation::ChatCompletions).unwrap();
    let names: Vec<&str> = routes.iter().map(|r| r.provider.name.as_str()).collect();
    assert_eq!(names, vec!["openai", "azure"]);
}

#[test]
fn upstream_urls_keep_model_names_in_one_segment() {
    let base = reqwest::Url::parse("https://generativelanguage.googleapis.com").unwrap();
    assert_eq!(
        gemini::url(&base, "gemini-2.5-flash", true).unwrap().as_str(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    // A hostile model name cannot climb out of its path segment.
    let url = gemini::url(&base, "../../admin?x=1#", false).unwrap();
    assert!(url.path().starts_with("/v1beta/models/"), "{url}");
    assert_eq!(url.query(), None);
    assert_eq!(url.path_segments().unwrap().count(), 3);

    let bedrock = reqwest::Url::parse("https://bedrock-runtime.us-east-1.amazonaws.com").unwrap();
    assert_eq!(
        bedrock::url(&bedrock, "anthropic.claude-3-5-sonnet-20240620-v1:0", true)
            .unwrap()
            .as_str(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );

    let env: BTreeMap<String, String> = [("AZ".to_string(), "z".to_string())].into();
    let raw: RawConfig = toml::from_str(
        "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\napi_key_env = \"AZ\"\ndeployments = { \"gpt-4o\" = \"prod-4o\" }\n",
    )
    .unwrap();
    let config = Config::from_raw(raw, &env).unwrap();
    let azure = reqwest::Url::parse("https://r.openai.azure.com").unwrap();
    assert_eq!(
        azure::url(&azure, &config.providers[0], "gpt-4o", "chat/completions")
            .unwrap()
            .as_str(),
        format!(
            "https://r.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version={}",
            crate::config::DEFAULT_AZURE_API_VERSION
        )
    );
}

#[test]
fn azure_ad_and_aws_secrets_come_from_any_credential_source() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let env: BTreeMap<String, String> = [(
        "AWS_ACCESS_KEY_ID".to_string(),
        "test-access-key-id".to_string(),
    )]
    .into();
    let file = secret.display();
    let ok = format!(
        "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\n\
         azure_ad = {{ tenant_id = \"t\", client_id = \"c\", client_secret = {{ file = \"{file}\" }} }}\n\n\
         [[providers]]\nname = \"br\"\nkind = \"bedrock\"\nregion = \"us-east-1\"\n\
         aws_secret_access_key = {{ file = \"{file}\" }}\n"
    );
    let config = Config::from_raw(toml::from_str(&ok).unwrap(), &env).unwrap();
    let ad = config.providers[0].azure_ad.as_ref().unwrap();
    assert!(ad.client_secret.ready().is_some());
    let aws = config.providers[1].aws.as_ref().unwrap();
    assert!(aws.secret_access_key.ready().is_some());
    assert!(
        aws.session_token.is_none(),
        "no AWS_SESSION_TOKEN, no token"
    );
    // Exactly one source for the client secret.
    let both = format!(
        "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\n\
         azure_ad = {{ tenant_id = \"t\", client_id = \"c\", client_secret_env = \"X\", client_secret = {{ file = \"{file}\" }} }}\n"
    );
    let error = Config::from_raw(toml::from_str(&both).unwrap(), &env).unwrap_err();
    assert!(error.to_string().contains("exactly one"), "{error}");
    // The secret key's source must be usable.
    let missing = "[[providers]]\nname = \"br\"\nkind = \"bedrock\"\nregion = \"us-east-1\"\n";
    let error = Config::from_raw(toml::from_str(missing).unwrap(), &env).unwrap_err();
    assert!(
        error.to_string().contains("AWS_SECRET_ACCESS_KEY"),
        "{error}"
    );
}
