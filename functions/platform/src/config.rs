//! Reading configuration from the environment.
//!
//! Every Lambda reads its settings once at cold start. A missing or malformed value must stop
//! start-up with one line that names the variable (and never prints a secret's value), rather
//! than fail later on the first callback. Settings are read through a lookup function so tests
//! can supply them without touching the process environment.

use std::str::FromStr;
use std::time::Duration;

/// A setting that is missing or malformed. Displays as one line naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub name: &'static str,
    /// What is wrong with it, e.g. "is not set". Never contains a secret's value.
    pub problem: String,
}

impl ConfigError {
    /// An error about the variable `name`.
    pub fn new(name: &'static str, problem: impl Into<String>) -> Self {
        Self {
            name,
            problem: problem.into(),
        }
    }
}

/// Settings looked up by name: the process environment in production, a map in tests.
pub struct Env<F>(F);

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Settings from any lookup function.
    pub fn from_lookup(lookup: F) -> Self {
        Env(lookup)
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// A value that must be present.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is not set"))
    }

    /// A number, `default` when unset, refused outside `range`.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.optional(name) else {
            return Ok(default);
        };
        let value: T = text
            .parse()
            .map_err(|_| ConfigError::new(name, format!("is not a whole number: {text:?}")))?;
        if !range.contains(&value) {
            return Err(ConfigError::new(
                name,
                format!(
                    "must be between {} and {}, got {value}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(value)
    }

    /// A duration in whole seconds.
    pub fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    /// A duration in whole milliseconds.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_millis)
    }

    /// An `http://` or `https://` URL (queue URLs, endpoints).
    pub fn url(&self, name: &'static str) -> Result<String, ConfigError> {
        let url = self.required(name)?;
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url)
        } else {
            Err(ConfigError::new(
                name,
                format!("must be an http(s) URL, got {url:?}"),
            ))
        }
    }
}

/// Ends a Lambda's init on a configuration error: one line naming the setting (Lambda reports
/// the failed init), exit code 1.
pub fn exit_at_init(function: &str, error: &ConfigError) -> ! {
    eprintln!("{function}: configuration error: {error}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(move |name| map.get(name).cloned())
    }

    #[test]
    fn required_values_are_named_when_missing_or_blank() {
        let e = env(&[("BLANK", "  ")]);
        assert_eq!(
            e.required("MISSING").unwrap_err().to_string(),
            "MISSING is not set"
        );
        assert_eq!(
            e.required("BLANK").unwrap_err().to_string(),
            "BLANK is not set"
        );
    }

    #[test]
    fn numbers_have_defaults_and_ranges() {
        let e = env(&[("N", " 42 "), ("BAD", "4x2"), ("BIG", "5000")]);
        assert_eq!(e.number("N", 1u64, 0..=100), Ok(42));
        assert_eq!(e.number("UNSET", 7u64, 0..=100), Ok(7));
        assert_eq!(
            e.number("BAD", 1u64, 0..=100).unwrap_err().to_string(),
            "BAD is not a whole number: \"4x2\""
        );
        assert_eq!(
            e.number("BIG", 1u64, 0..=100).unwrap_err().to_string(),
            "BIG must be between 0 and 100, got 5000"
        );
        assert_eq!(e.seconds("N", 1, 0..=100), Ok(Duration::from_secs(42)));
        assert_eq!(e.millis("N", 1, 0..=100), Ok(Duration::from_millis(42)));
    }

    #[test]
    fn urls_must_be_http() {
        let e = env(&[
            ("GOOD", "https://sqs.eu-west-1.amazonaws.com/1/q"),
            ("BAD", "sqs/q"),
        ]);
        assert!(e.url("GOOD").is_ok());
        assert_eq!(
            e.url("BAD").unwrap_err().to_string(),
            "BAD must be an http(s) URL, got \"sqs/q\""
        );
    }
}
