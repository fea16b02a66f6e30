//! Secrets from AWS Secrets Manager, once per cold start.
//!
//! In AWS the template passes `SINCH_WEBHOOK_SECRET_ARN` (and the Sinch credentials' ARNs), never
//! the secrets themselves; locally the plain variables are simpler. For each secret setting,
//! `<NAME>_ARN` is fetched (the secret's string value) and stands in for `<NAME>`. A warm Lambda
//! keeps what it fetched; a rotation reaches new instances, and two webhook secrets side by side
//! cover the switch (see the README).

use std::collections::HashMap;

use aws_sdk_secretsmanager::error::DisplayErrorContext;

use crate::config::{ConfigError, Env};

/// The settings that may come from Secrets Manager, with the variable naming their ARN.
pub const SECRET_SETTINGS: [(&str, &str); 4] = [
    ("SINCH_WEBHOOK_SECRET", "SINCH_WEBHOOK_SECRET_ARN"),
    ("SINCH_KEY_SECRET", "SINCH_KEY_SECRET_ARN"),
    ("SINCH_SMS_API_TOKEN", "SINCH_SMS_API_TOKEN_ARN"),
    ("CONTACT_HASH_KEY", "CONTACT_HASH_KEY_ARN"),
];

/// Whether any `*_ARN` setting is present (only then is a Secrets Manager client needed).
pub fn wanted<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> bool {
    SECRET_SETTINGS
        .iter()
        .any(|(_, arn)| env.optional(arn).is_some())
}

/// Fetches every secret named by an ARN setting, all at once (a cold start waits for one round
/// trip, not one per secret): setting name -> secret value.
pub async fn fetch<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<HashMap<&'static str, String>, ConfigError> {
    let mut wanted = Vec::new();
    for (name, arn_name) in SECRET_SETTINGS {
        let Some(arn) = env.optional(arn_name) else {
            continue;
        };
        if env.optional(name).is_some() {
            return Err(ConfigError::new(
                arn_name,
                format!("and {name} are both set: set one of them"),
            ));
        }
        wanted.push((name, arn_name, arn));
    }
    let fetches = wanted.into_iter().map(|(name, arn_name, arn)| async move {
        let output = client
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .map_err(|e| {
                ConfigError::new(
                    arn_name,
                    format!(
                        "could not be read from Secrets Manager: {}",
                        DisplayErrorContext(&e)
                    ),
                )
            })?;
        let value = output
            .secret_string
            .filter(|value| !value.trim().is_empty())
            .ok_or_else(|| ConfigError::new(arn_name, "names a secret with no string value"))?;
        Ok::<_, ConfigError>((name, value))
    });
    Ok(futures_util::future::try_join_all(fetches)
        .await?
        .into_iter()
        .collect())
}

/// The process environment, with fetched secrets standing in for their settings.
pub fn overlay(secrets: HashMap<&'static str, String>) -> Env<impl Fn(&str) -> Option<String>> {
    Env::from_lookup(move |name| {
        secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    })
}

/// The settings a Lambda starts with: the process environment, plus the secrets its `*_ARN`
/// settings name (a Secrets Manager client is only built when there are some).
pub async fn environment(
    sdk: &aws_config::SdkConfig,
) -> Result<Env<impl Fn(&str) -> Option<String>>, ConfigError> {
    let process = Env::process();
    let secrets = if wanted(&process) {
        fetch(&process, &aws_sdk_secretsmanager::Client::new(sdk)).await?
    } else {
        HashMap::new()
    };
    Ok(overlay(secrets))
}
