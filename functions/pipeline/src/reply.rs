//! The reply policy: what to answer an inbound message, and whether it opts the sender out or
//! back in.
//!
//! Keyword rules match the whole message, compared by Unicode rules ([`fold`]): trimmed,
//! case-folded, compatibility forms unified and accents dropped (`" stop "`, `Stop`, `ＳＴＯＰ` are
//! `STOP`; `arrêt` is `ARRET`), and `"stop please"` is not `STOP`: a keyword is a command, not a
//! word to look for. An opted-out contact never
//! gets a reply, except the confirmation of the START that opts them back in. The rules come
//! from `REPLY_RULES` (JSON), changed at run time through an SSM parameter
//! ([`crate::reply_rules`]), or default to STOP/UNSUBSCRIBE, START and HELP:
//!
//! ```json
//! {
//!   "rules": [
//!     {"keywords": ["STOP", "UNSUBSCRIBE"], "action": "opt_out", "reply": "You are unsubscribed."},
//!     {"keywords": ["START"], "action": "opt_in", "reply": "Welcome back."},
//!     {"keywords": ["HELP"], "reply": "Reply STOP to unsubscribe."}
//!   ],
//!   "default_reply": "Thanks, we got your message."
//! }
//! ```

use serde::Deserialize;

use crate::hook::{Action, Decision};

/// One keyword rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The words that trigger it (matched as whole messages, ignoring case and surrounding space).
    pub keywords: Vec<String>,
    /// What it does to the contact's opt-out.
    #[serde(default)]
    pub action: Action,
    /// The reply to send, if any.
    #[serde(default)]
    pub reply: Option<String>,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyPolicy {
    #[serde(default)]
    rules: Vec<Rule>,
    /// Sent to any message no rule matched (and never to opted-out contacts).
    #[serde(default)]
    default_reply: Option<String>,
}

/// Why `REPLY_RULES` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON of the expected shape (serde's words).
    #[error("is not valid reply rules JSON: {0}")]
    Json(String),
    /// A rule (by position, from 0) with no keyword.
    #[error("rule {0} has no keywords")]
    NoKeywords(usize),
    /// A keyword in two rules (which one wins could not be told).
    #[error("keyword {0:?} appears in more than one rule")]
    Duplicate(String),
    /// An empty reply text (Sinch refuses them).
    #[error("a reply text is empty")]
    EmptyReply,
    /// No rule opts out: a person's STOP would silently stop nothing (carriers and the law
    /// require that it does).
    #[error("no rule has \"action\": \"opt_out\": a STOP would opt nobody out")]
    NoOptOut,
}

impl Default for ReplyPolicy {
    fn default() -> Self {
        let rule = |keywords: &[&str], action, reply: &str| Rule {
            keywords: keywords.iter().map(|k| fold(k)).collect(),
            action,
            reply: Some(reply.to_owned()),
        };
        Self {
            rules: vec![
                rule(
                    &["STOP", "UNSUBSCRIBE"],
                    Action::OptOut,
                    "You are unsubscribed and will get no more messages from us. Reply START to subscribe again.",
                ),
                rule(
                    &["START"],
                    Action::OptIn,
                    "You are subscribed again. Reply STOP to unsubscribe.",
                ),
                rule(
                    &["HELP"],
                    Action::None,
                    "This number is answered automatically. Reply STOP to unsubscribe, START to subscribe again.",
                ),
            ],
            default_reply: None,
        }
    }
}

impl ReplyPolicy {
    /// Parses and checks `REPLY_RULES`.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let mut policy: ReplyPolicy =
            serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for (index, rule) in policy.rules.iter_mut().enumerate() {
            rule.keywords = rule.keywords.iter().map(|k| fold(k)).collect();
            rule.keywords.retain(|k| !k.is_empty());
            if rule.keywords.is_empty() {
                return Err(PolicyError::NoKeywords(index + 1));
            }
            for keyword in &rule.keywords {
                if !seen.insert(keyword.clone()) {
                    return Err(PolicyError::Duplicate(keyword.clone()));
                }
            }
            if rule.reply.as_deref().is_some_and(|r| r.trim().is_empty()) {
                return Err(PolicyError::EmptyReply);
            }
        }
        if policy
            .default_reply
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            return Err(PolicyError::EmptyReply);
        }
        if !policy
            .rules
            .iter()
            .any(|rule| rule.action == Action::OptOut)
        {
            return Err(PolicyError::NoOptOut);
        }
        Ok(policy)
    }

    /// Decides for a message with `text` (None for media and other non-text messages) from a
    /// contact who is, before this message, `opted_out` or not.
    pub fn decide(&self, text: Option<&str>, opted_out: bool) -> Decision {
        let rule = text.map(fold).and_then(|folded| {
            self.rules
                .iter()
                .find(|rule| rule.keywords.contains(&folded))
        });
        let (action, reply) = match rule {
            Some(rule) => (rule.action, rule.reply.clone()),
            None => (Action::None, self.default_reply.clone()),
        };
        let opted_out_after = match action {
            Action::OptOut => true,
            Action::OptIn => false,
            Action::None => opted_out,
        };
        // Nobody opted out hears from us, and an opt-out is confirmed only once.
        let reply = match action {
            Action::OptOut if opted_out => None,
            Action::OptOut => reply,
            _ if opted_out_after => None,
            _ => reply,
        };
        Decision { action, reply }
    }
}

/// A text as keywords are compared: compatibility forms unified (NFKC: full-width `ＳＴＯＰ`
/// is `STOP`), case folded (`Stop` is `STOP`), accents and other marks dropped (`arrêt` is
/// `ARRET`, `ΣΤΟΠ` is `στοπ`), surrounding white space trimmed.
pub fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    text.nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .nfc()
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The reply policy is the worker's default hook: it answers inbound messages and nothing else.
impl crate::hook::Hook for ReplyPolicy {
    fn on_inbound(
        &self,
        message: crate::hook::Inbound<'_>,
    ) -> impl std::future::Future<Output = Result<Decision, crate::hook::HookError>> + Send {
        let decision = self.decide(message.message.text.as_deref(), message.opted_out_before);
        async move { Ok(decision) }
    }

    fn wants_status(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_by_unicode_rules() {
        let policy = ReplyPolicy::from_json(
            r#"{"rules": [
                {"keywords": ["STOP", "ARRÊT", "STOPP"], "action": "opt_out", "reply": "ok"},
                {"keywords": ["ΑΠΕΓΓΡΑΦΗ"], "action": "opt_out", "reply": "εντάξει"}
            ]}"#,
        )
        .unwrap();
        for text in [
            "STOP",
            "Stop",
            "ＳＴＯＰ",
            "ｓｔｏｐ",
            "\u{3000}stop\u{3000}",
            "arrêt",
            "ARRET",
            "Arrêt",
            "arre\u{0302}t",
            "stopp",
            "απεγγραφή",
            "Απεγγραφη",
        ] {
            assert_eq!(
                policy.decide(Some(text), false).action,
                Action::OptOut,
                "{text:?}"
            );
        }
        for text in ["st op", "stopped", "arrête", "S T O P"] {
            assert_eq!(
                policy.decide(Some(text), false).action,
                Action::None,
                "{text:?}"
            );
        }
        // Keywords that fold to the same word are the same keyword.
        assert!(
            ReplyPolicy::from_json(
                r#"{"rules": [{"keywords": ["STOP", "ｓｔｏｐ"], "action": "opt_out", "reply": "x"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn default_keywords_match_trimmed_and_case_folded() {
        let policy = ReplyPolicy::default();
        for text in ["STOP", " stop\n", "Stop", "unsubscribe"] {
            let decision = policy.decide(Some(text), false);
            assert_eq!(decision.action, Action::OptOut, "{text:?}");
            assert!(decision.reply.unwrap().contains("unsubscribed"));
        }
        assert_eq!(policy.decide(Some("start"), true).action, Action::OptIn);
        assert!(policy.decide(Some("help"), false).reply.is_some());
        assert_eq!(
            policy.decide(Some("stop please"), false),
            Decision {
                action: Action::None,
                reply: None
            },
            "a keyword is the whole message"
        );
        assert_eq!(policy.decide(None, false).reply, None);
    }

    #[test]
    fn opted_out_contacts_get_no_reply_but_start() {
        let policy = ReplyPolicy::from_json(
            r#"{"rules":[{"keywords":["STOP"],"action":"opt_out","reply":"bye"},{"keywords":["START"],"action":"opt_in","reply":"hi again"},{"keywords":["HELP"],"reply":"help"}],"default_reply":"thanks"}"#,
        )
        .unwrap();
        assert_eq!(
            policy.decide(Some("hello"), false).reply.as_deref(),
            Some("thanks")
        );
        assert_eq!(policy.decide(Some("hello"), true).reply, None);
        assert_eq!(policy.decide(Some("HELP"), true).reply, None);
        assert_eq!(policy.decide(None, true).reply, None);
        assert_eq!(
            policy.decide(Some("STOP"), false).reply.as_deref(),
            Some("bye")
        );
        assert_eq!(
            policy.decide(Some("STOP"), true),
            Decision {
                action: Action::OptOut,
                reply: None
            },
            "confirmed once"
        );
        assert_eq!(
            policy.decide(Some("START"), true).reply.as_deref(),
            Some("hi again")
        );
        assert_eq!(policy.decide(None, false).reply.as_deref(), Some("thanks"));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        assert!(matches!(
            ReplyPolicy::from_json("{"),
            Err(PolicyError::Json(_))
        ));
        assert!(matches!(
            ReplyPolicy::from_json(r#"{"rulez":[]}"#),
            Err(PolicyError::Json(_))
        ));
        assert_eq!(
            ReplyPolicy::from_json(r#"{"rules":[{"keywords":[" "]}]}"#),
            Err(PolicyError::NoKeywords(1))
        );
        assert_eq!(
            ReplyPolicy::from_json(r#"{"rules":[{"keywords":["a"]},{"keywords":["A "]}]}"#),
            Err(PolicyError::Duplicate("a".into()))
        );
        assert_eq!(
            ReplyPolicy::from_json(r#"{"rules":[],"default_reply":" "}"#),
            Err(PolicyError::EmptyReply)
        );
        assert!(matches!(
            ReplyPolicy::from_json(r#"{"rules":[{"keywords":["x"],"action":"explode"}]}"#),
            Err(PolicyError::Json(_))
        ));
        // Rules that would leave nobody a way to opt out.
        assert_eq!(
            ReplyPolicy::from_json(r#"{"rules":[]}"#),
            Err(PolicyError::NoOptOut)
        );
        assert_eq!(
            ReplyPolicy::from_json(r#"{"rules":[{"keywords":["HELP"],"reply":"h"}]}"#),
            Err(PolicyError::NoOptOut)
        );
        let silent =
            ReplyPolicy::from_json(r#"{"rules":[{"keywords":["STOP"],"action":"opt_out"}]}"#)
                .unwrap();
        assert_eq!(silent.decide(Some("STOP"), false).reply, None);
    }
}
