//! AWS Bedrock Runtime (Converse and ConverseStream), signed with SigV4 by
//! the `aws-sigv4` crate.

use crate::config::{AwsConfig, ProviderKey};
use crate::error::ApiError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use secrecy::ExposeSecret;
use std::time::SystemTime;

/// SigV4 service name of Bedrock Runtime.
const SERVICE: &str = "bedrock";

/// `{base}/model/{modelId}/converse` or `/converse-stream`; the model id is
/// one percent-encoded segment (ids contain `:`).
pub fn url(base: &reqwest::Url, model: &str, stream: bool) -> Result<reqwest::Url, ApiError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ApiError::bad_gateway("The upstream provider's URL is unusable."))?
        .pop_if_empty()
        .extend([
            "model",
            model,
            if stream {
                "converse-stream"
            } else {
                "converse"
            },
        ]);
    // `path_segments_mut` leaves `:` as is; AWS canonicalises the path with
    // every reserved character encoded, so send it encoded too.
    let path = url.path().replace(':', "%3A");
    url.set_path(&path);
    Ok(url)
}

/// The current value of one of the AWS secrets.
async fn current(key: &ProviderKey) -> Result<std::sync::Arc<secrecy::SecretString>, ApiError> {
    let unavailable =
        || ApiError::bad_gateway("The upstream provider's AWS credentials are unavailable.");
    let credential = key.ready().ok_or_else(unavailable)?;
    credential.current().await.map_err(|error| {
        tracing::warn!(%error, "AWS credential unavailable");
        error.to_api_error()
    })
}

/// Signs Bedrock requests with the configured AWS credentials.
#[derive(Debug)]
pub struct Signer {
    config: AwsConfig,
}

impl Signer {
    /// A signer for `config`.
    pub fn new(config: AwsConfig) -> Self {
        Signer { config }
    }

    /// The signed request.
    pub async fn sign(
        &self,
        client: &reqwest::Client,
        url: reqwest::Url,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let failed = |what: &str| {
            tracing::warn!(what, "SigV4 signing failed");
            ApiError::bad_gateway("The request to the upstream provider could not be signed.")
        };
        let accept = if stream {
            "application/vnd.amazon.eventstream"
        } else {
            "application/json"
        };
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let secret = current(&self.config.secret_access_key).await?;
        let token = match &self.config.session_token {
            Some(token) => Some(current(token).await?),
            None => None,
        };
        let identity: Identity = Credentials::new(
            self.config.access_key_id.expose_secret(),
            secret.expose_secret(),
            token.map(|t| t.expose_secret().to_string()),
            None,
            "keygate-config",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| failed("parameters"))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|_| failed("request"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|_| failed("signature"))?
            .into_parts();
        let mut request = client.post(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(request.body(body))
    }
}
