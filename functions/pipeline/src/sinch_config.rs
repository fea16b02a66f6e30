//! The Sinch client's settings from the environment: one set of variables, read by the worker
//! (the client it sends with) and by the messages API (which APIs it may accept sends for).
//!
//! | variable | what |
//! |---|---|
//! | `SINCH_PROJECT_ID`, `SINCH_KEY_ID`, `SINCH_KEY_SECRET` | the Conversation API, all or none |
//! | `SINCH_APP_ID` | the Conversation app replies and sends go from |
//! | `SINCH_REGION` | `us`, `eu` or `br` |
//! | `SINCH_SMS_SERVICE_PLAN_ID`, `SINCH_SMS_API_TOKEN` | the SMS API, both or none |
//! | `SINCH_SMS_REGION` | `us`, `eu`, `br`, `ca` or `au` |
//! | `SINCH_AUTH_URL`, `SINCH_CONVERSATION_URL`, `SINCH_SMS_URL` | overrides of the APIs' URLs (tests, simulators) |

use sinch::client::{ClientConfig, ConversationCredentials, SmsCredentials, Urls};

use crate::config::{ConfigError, Env};

/// The Sinch project (Conversation API).
pub const SINCH_PROJECT_ID: &str = "SINCH_PROJECT_ID";
/// The project's access key id.
pub const SINCH_KEY_ID: &str = "SINCH_KEY_ID";
/// The access key's secret (in AWS from Secrets Manager: `SINCH_KEY_SECRET_ARN`).
pub const SINCH_KEY_SECRET: &str = "SINCH_KEY_SECRET";
/// The Conversation app replies go from when a callback names none.
pub const SINCH_APP_ID: &str = "SINCH_APP_ID";
/// The Conversation API's region: `us`, `eu` or `br`.
pub const SINCH_REGION: &str = "SINCH_REGION";
/// The SMS API service plan.
pub const SINCH_SMS_SERVICE_PLAN_ID: &str = "SINCH_SMS_SERVICE_PLAN_ID";
/// The service plan's API token (in AWS from `SINCH_SMS_API_TOKEN_ARN`).
pub const SINCH_SMS_API_TOKEN: &str = "SINCH_SMS_API_TOKEN";
/// The SMS API's region: `us`, `eu`, `br`, `ca` or `au`.
pub const SINCH_SMS_REGION: &str = "SINCH_SMS_REGION";
/// Override of the OAuth2 server (tests, simulators).
pub const SINCH_AUTH_URL: &str = "SINCH_AUTH_URL";
/// Override of the Conversation API base URL.
pub const SINCH_CONVERSATION_URL: &str = "SINCH_CONVERSATION_URL";
/// Override of the SMS API base URL.
pub const SINCH_SMS_URL: &str = "SINCH_SMS_URL";
const CONVERSATION_REGIONS: [&str; 3] = ["us", "eu", "br"];
const SMS_REGIONS: [&str; 5] = ["us", "eu", "br", "ca", "au"];

/// The Sinch client's settings. Each API is optional, but all-or-nothing: half a set of
/// credentials is a mistake worth stopping for.
pub fn sinch_client_config<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<ClientConfig, ConfigError> {
    let region = one_of(env, SINCH_REGION, &CONVERSATION_REGIONS)?;
    let sms_region = one_of(env, SINCH_SMS_REGION, &SMS_REGIONS)?;
    let defaults = Urls::for_regions(&region, &sms_region);
    let url = |name: &'static str, default: String| -> Result<String, ConfigError> {
        match env.optional(name) {
            Some(_) => env.url(name),
            None => Ok(default),
        }
    };
    let mut config = ClientConfig::new(Urls {
        auth: url(SINCH_AUTH_URL, defaults.auth)?,
        conversation: url(SINCH_CONVERSATION_URL, defaults.conversation)?,
        sms: url(SINCH_SMS_URL, defaults.sms)?,
    });
    config.conversation = all_or_none(env, [SINCH_PROJECT_ID, SINCH_KEY_ID, SINCH_KEY_SECRET])?
        .map(|[project_id, key_id, key_secret]| ConversationCredentials {
            project_id,
            key_id,
            key_secret,
        });
    config.sms = all_or_none(env, [SINCH_SMS_SERVICE_PLAN_ID, SINCH_SMS_API_TOKEN])?.map(
        |[service_plan_id, api_token]| SmsCredentials {
            service_plan_id,
            api_token,
        },
    );
    config.connect_timeout = ClientConfig::default_connect_timeout();
    Ok(config)
}

fn one_of<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    allowed: &[&str],
) -> Result<String, ConfigError> {
    let value = env
        .optional(name)
        .unwrap_or_else(|| "us".into())
        .to_lowercase();
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            name,
            format!("must be one of {}, got {value:?}", allowed.join(", ")),
        ))
    }
}

fn all_or_none<F: Fn(&str) -> Option<String>, const N: usize>(
    env: &Env<F>,
    names: [&'static str; N],
) -> Result<Option<[String; N]>, ConfigError> {
    let values = names.map(|name| env.optional(name));
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    if let Some(index) = values.iter().position(Option::is_none) {
        let given: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        return Err(ConfigError::new(
            names[index],
            format!(
                "is not set, but {} is: set all of them or none",
                given.join(", ")
            ),
        ));
    }
    Ok(Some(values.map(Option::unwrap_or_default)))
}
