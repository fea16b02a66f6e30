//! The AWS SDK configuration the Lambdas start with: the standard chain (credentials, region),
//! an HTTPS client that trusts AWS's own roots, compiled in, and for local runs every AWS API at
//! one endpoint.
//!
//! | variable | in AWS | locally |
//! |---|---|---|
//! | `SINCH_HOOKS_AWS_ENDPOINT` | empty (the template declares it so `sam local --env-vars` can set it) | `http://172.17.0.1:5000`, say |
//!
//! Not `AWS_ENDPOINT_URL`, which the SDK also reads (and `cargo lambda watch` runs use): declared
//! empty in the template, the SDK would warn about it at every cold start in AWS.
//!
//! **Trust.** AWS's service endpoints chain to the Amazon Trust Services roots (Amazon Root CA 1
//! to 4, cross-signed by Starfield Services Root G2), which `aws-roots.pem` holds. Trusting
//! those, compiled in, spares a cold start the SDK's default: reading the system's CA bundle and
//! then every file of its certificate directory, and parsing them all (about 145 files on
//! Debian; most of the receiver's init, measured). With an endpoint override (moto,
//! LocalStack), the platform's roots are used, since that endpoint may be anything.
//!
//! **Region and credentials.** Lambda puts both in the environment (`AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), where the SDK's default
//! chains look first. When they are there, the environment's providers are taken directly: the
//! same region and credentials the chains would find, without building the chains' later links
//! at every cold start (an IMDS client, an STS client for web identity with its endpoint
//! partitions and their regular expressions, the ECS and profile providers). Anywhere else
//! (a laptop with a profile, SSO, a container's credentials endpoint), the default chains.

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::Env;

/// Every AWS API at this endpoint, when set and not empty.
pub const AWS_ENDPOINT: &str = "SINCH_HOOKS_AWS_ENDPOINT";

/// The roots of trust of AWS's endpoints (PEM).
pub const AWS_ROOTS: &[u8] = include_bytes!("aws-roots.pem");

/// The SDK configuration from the environment.
pub async fn sdk_config() -> SdkConfig {
    let env = Env::process();
    let loader = from_the_environment(aws_config::defaults(BehaviorVersion::latest()), &env);
    match env.optional(AWS_ENDPOINT) {
        Some(endpoint) => loader.endpoint_url(endpoint),
        None => match aws_https_client() {
            Some(client) => loader.http_client(client),
            None => loader,
        },
    }
    .load()
    .await
}

/// The region and the credentials from the environment's providers when the environment holds
/// them, as in Lambda (the default chains, which would find them there first, otherwise).
fn from_the_environment<F: Fn(&str) -> Option<String>>(
    loader: ConfigLoader,
    env: &Env<F>,
) -> ConfigLoader {
    // The region chain's first link reads these two, in this order.
    let loader = match env
        .optional("AWS_REGION")
        .or_else(|| env.optional("AWS_DEFAULT_REGION"))
    {
        Some(region) => loader.region(Region::new(region)),
        None => loader,
    };
    if env.optional("AWS_ACCESS_KEY_ID").is_some()
        && env.optional("AWS_SECRET_ACCESS_KEY").is_some()
    {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    }
}

/// An HTTPS client for AWS's endpoints that trusts only the Amazon roots (`None` if that
/// cannot be set up, and the SDK's default is used).
pub fn aws_https_client() -> Option<SharedHttpClient> {
    let trust = TrustStore::empty().with_pem_certificate(AWS_ROOTS);
    let context = TlsContext::builder().with_trust_store(trust).build().ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// The headers that sign a request to an AWS API with SigV4 (`authorization`, `x-amz-date`,
/// ...), for the few calls made without an SDK client (the CLI's calls of the messages API, the
/// worker's read of its reply rules).
pub fn sigv4_headers(
    identity: &aws_smithy_runtime_api::client::identity::Identity,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_roots() {
        let text = std::str::from_utf8(AWS_ROOTS).unwrap();
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        // As the SDK reads them: PEM to DER, then into a rustls root store.
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AWS_ROOTS)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).expect("a parsable root");
        }
        assert_eq!(roots.len(), 5);
        assert!(aws_https_client().is_some());
    }

    fn lookup(
        vars: &'static [(&'static str, &'static str)],
    ) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_lookup(move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[tokio::test]
    async fn the_region_is_the_environments_when_it_holds_one() {
        for (vars, region) in [
            (&[("AWS_REGION", "eu-west-1")][..], "eu-west-1"),
            (
                &[("AWS_DEFAULT_REGION", "eu-central-1")][..],
                "eu-central-1",
            ),
            (
                &[
                    ("AWS_REGION", "eu-west-1"),
                    ("AWS_DEFAULT_REGION", "us-east-1"),
                ][..],
                "eu-west-1",
            ),
            (
                &[("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "us-east-2")][..],
                "us-east-2",
            ),
        ] {
            let loader = aws_config::defaults(BehaviorVersion::latest());
            let sdk = from_the_environment(loader, &lookup(vars)).load().await;
            assert_eq!(sdk.region().map(|r| r.as_ref()), Some(region), "{vars:?}");
        }
    }
}
