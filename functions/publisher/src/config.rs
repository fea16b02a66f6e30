//! The publisher's settings, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EVENT_BUS_NAME` | required | the EventBridge bus (name or ARN) |
//! | `EVENT_SOURCE` | `sinch-hooks` | the events' `source` |

use pipeline::config::{ConfigError, Env};
use pipeline::events::DEFAULT_SOURCE;

/// The EventBridge bus to put events on (required).
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
/// The events' `source`; `sinch-hooks` by default.
pub const EVENT_SOURCE: &str = "EVENT_SOURCE";

/// Everything the publisher needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// The bus's name or ARN.
    pub bus: String,
    /// The events' `source`.
    pub source: String,
}

impl PublisherConfig {
    /// The configuration from the environment `env`.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let bus = env
            .optional(EVENT_BUS_NAME)
            .ok_or_else(|| ConfigError::new(EVENT_BUS_NAME, "is not set"))?;
        let source = env
            .optional(EVENT_SOURCE)
            .unwrap_or_else(|| DEFAULT_SOURCE.to_owned());
        if source.len() > 256 || source.starts_with("aws.") {
            return Err(ConfigError::new(
                EVENT_SOURCE,
                "must be at most 256 characters and not start with \"aws.\"",
            ));
        }
        Ok(Self { bus, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_bus_is_required_and_the_source_defaults() {
        assert_eq!(
            PublisherConfig::from_env(&env(&[]))
                .unwrap_err()
                .to_string(),
            ConfigError::new(EVENT_BUS_NAME, "is not set").to_string()
        );
        let config = PublisherConfig::from_env(&env(&[(EVENT_BUS_NAME, "bus")])).unwrap();
        assert_eq!(config.source, "sinch-hooks");
        let config =
            PublisherConfig::from_env(&env(&[(EVENT_BUS_NAME, "bus"), (EVENT_SOURCE, "acme.sms")]))
                .unwrap();
        assert_eq!(config.source, "acme.sms");
        assert!(
            PublisherConfig::from_env(&env(&[(EVENT_BUS_NAME, "b"), (EVENT_SOURCE, "aws.x")]))
                .is_err()
        );
    }
}
