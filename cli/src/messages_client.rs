//! Calling the messages API: locally as it is, in AWS signed with SigV4 (the route is
//! authorized with `AWS_IAM`), with credentials from the standard AWS chain (environment,
//! profile, SSO, instance role).

use std::time::{Duration, Instant};

use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::answer::{self, Answer};

/// What a path segment must escape (all but RFC 3986's unreserved characters: `+` too).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How requests authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// SigV4 unless the URL is on loopback (the local stack).
    Auto,
    /// Always SigV4 (service `execute-api`).
    Sigv4,
    /// No signature.
    None,
}

/// A client of one messages API.
pub struct MessagesClient {
    http: reqwest::Client,
    base: String,
    signer: Option<Signer>,
}

struct Signer {
    identity: Identity,
    region: String,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not http(s).
    #[error("{0} is not an http(s) URL")]
    Url(String),
    /// SigV4 is wanted and no AWS credentials were found.
    #[error(
        "no AWS credentials for SigV4: {0} (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; --auth none for the local stack)"
    )]
    Credentials(String),
    /// SigV4 is wanted and no region was given or found.
    #[error("no AWS region for SigV4: give --region, or set AWS_REGION")]
    Region,
}

impl MessagesClient {
    /// `base` is the API's URL without `/messages` (the stack's ApiUrl output, or
    /// `http://127.0.0.1:3000`).
    pub async fn new(
        base: &str,
        auth: Auth,
        region: Option<String>,
        concurrency: usize,
    ) -> Result<Self, ClientError> {
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/messages")
            .to_owned();
        let host = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| ClientError::Url(base.clone()))?
            .split(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "[");
        let signer = match (auth, local) {
            (Auth::None, _) | (Auth::Auto, true) => None,
            _ => Some(signer(&host, region).await?),
        };
        Ok(Self {
            http: crate::webhook_client::http_client(concurrency),
            base,
            signer,
        })
    }

    /// Whether requests are signed with SigV4.
    pub fn signs(&self) -> bool {
        self.signer.is_some()
    }

    /// `POST /messages` with `key`.
    pub async fn send(&self, key: &str, body: &serde_json::Value) -> Answer {
        let body = body.to_string().into_bytes();
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("idempotency-key", key.to_owned()),
        ];
        self.request("POST", "/messages", &headers, body).await
    }

    /// `POST /batches` with `key`.
    pub async fn send_batch(&self, key: &str, body: &api::batches::BatchRequest) -> Answer {
        // Strings, maps and values: serializing cannot fail.
        let body = serde_json::to_vec(body).unwrap_or_default();
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("idempotency-key", key.to_owned()),
        ];
        self.request("POST", "/batches", &headers, body).await
    }

    /// `GET /batches/{id}`.
    pub async fn batch(&self, id: &str) -> Answer {
        self.request("GET", &format!("/batches/{id}"), &[], Vec::new())
            .await
    }

    /// `PUT /optouts/{channel}/{identity}` with `{"by": by}`.
    pub async fn opt_out(
        &self,
        channel: &str,
        identity: &str,
        by: &str,
        at: Option<&str>,
    ) -> Answer {
        let path = format!(
            "/optouts/{}/{}",
            percent_encoding::utf8_percent_encode(channel, PATH_SEGMENT),
            percent_encoding::utf8_percent_encode(identity, PATH_SEGMENT)
        );
        let mut body = serde_json::json!({ "by": by });
        if let Some(at) = at {
            body["at"] = serde_json::json!(at);
        }
        let body = body.to_string().into_bytes();
        let headers = [("content-type", "application/json".to_owned())];
        self.request("PUT", &path, &headers, body).await
    }

    /// `GET /optouts` from `cursor`, only `channel`'s when given.
    pub async fn opt_outs(&self, channel: Option<&str>, cursor: Option<&str>) -> Answer {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", "1000");
        if let Some(channel) = channel {
            query.append_pair("channel", channel);
        }
        if let Some(cursor) = cursor {
            query.append_pair("cursor", cursor);
        }
        let path = format!("/optouts?{}", query.finish());
        self.request("GET", &path, &[], Vec::new()).await
    }

    /// `GET /messages/{id}`.
    pub async fn status(&self, id: &str) -> Answer {
        self.request("GET", &format!("/messages/{id}"), &[], Vec::new())
            .await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        if let Some(signer) = &self.signer {
            match signer.sign(method, &url, &headers, &body) {
                Ok(signed) => headers.extend(signed),
                Err(error) => {
                    return Answer::none(
                        format!("cannot sign the request: {error}"),
                        started.elapsed(),
                    );
                }
            }
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.http.request(method, &url).body(body);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let mut answer = answer::send(request).await;
        if answer.status == Some(403) && self.signer.is_none() {
            answer.body.push_str(" (the API wants SigV4: --auth sigv4)");
        }
        answer
    }
}

async fn signer(host: &str, region: Option<String>) -> Result<Signer, ClientError> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // An API Gateway host names its region: <id>.execute-api.<region>.amazonaws.com.
    let from_host = host
        .split('.')
        .skip_while(|part| *part != "execute-api")
        .nth(1)
        .map(str::to_owned);
    let region = region
        .or(from_host)
        .or_else(|| sdk.region().map(|r| r.to_string()))
        .ok_or(ClientError::Region)?;
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| ClientError::Credentials("no provider".into()))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| ClientError::Credentials(e.to_string()))?;
    Ok(Signer {
        identity: credentials.into(),
        region,
    })
}

impl Signer {
    /// The headers that sign this request (`authorization`, `x-amz-date`, ...).
    fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
        pipeline::aws::sigv4_headers(
            &self.identity,
            &self.region,
            "execute-api",
            method,
            url,
            headers,
            body,
        )
    }
}

/// How long `status --wait` polls between reads.
pub const POLL: Duration = Duration::from_millis(250);
