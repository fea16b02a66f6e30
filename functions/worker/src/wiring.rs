//! One wiring: the worker built from its configuration and its adapters, the same way by the
//! Lambda's start-up ([`crate::lambda`]) and by the local stack (`sinch-hooks serve`), so that
//! what a setting does is decided once.
//!
//! | from [`WorkerConfig`] | into |
//! |---|---|
//! | `privacy`, `app_id`, `idempotency_ttl`, `send_rules`, `send_settle` (the ledger), `pacing` | the handlers' [`Services`] |
//! | `concurrency`, `outbound_max_receives` | the [`Worker`] |
//! | `policy`, `reply_rules` | the reply rules' hook ([`reply_rules`]) |
//!
//! The adapters (the store, the Sinch client, the queues, the scheduler, the metrics) are the
//! caller's: DynamoDB, SQS and EventBridge Scheduler in Lambda; memory or a local endpoint in
//! the stack.

use pipeline::clock::Clock;
use pipeline::config::ConfigError;
use pipeline::handlers::Services;
use pipeline::hook::Hook;
use pipeline::metrics::Metrics;
use pipeline::reply_rules::{REPLY_RULES_PARAMETER, ReplyRules, SsmParameter};
use pipeline::schedule::Lanes;
use sinch::client::SinchClient;

use crate::{Worker, WorkerConfig};

/// What a worker runs on besides its configuration.
pub struct Adapters<S, Q, H, C> {
    /// The state store.
    pub store: S,
    /// The Sinch APIs.
    pub sinch: SinchClient,
    /// The team's logic (the reply rules by default: [`reply_rules`]).
    pub hook: H,
    /// Where poison callbacks are parked.
    pub dead_letters: Q,
    /// The lanes' queues.
    pub lanes: Lanes<Q>,
    /// What takes jobs due later to their lane.
    pub scheduler: C,
    /// Where metrics go.
    pub metrics: Metrics,
}

impl<S, Q, H: Hook, C> Worker<S, Q, H, C> {
    /// The worker `config` describes, over `adapters`.
    pub fn new(config: &WorkerConfig, adapters: Adapters<S, Q, H, C>) -> Self {
        Self {
            services: Services {
                store: adapters.store,
                sinch: adapters.sinch,
                hook: adapters.hook,
                app_id: config.app_id.clone(),
                idempotency_ttl: config.idempotency_ttl,
                ledger: pipeline::ledger::Ledger::new(config.send_settle),
                send_rules: config.send_rules.clone(),
                pacing: config.pacing.clone(),
                privacy: config.privacy,
                clock: Clock::System,
            },
            dead_letters: adapters.dead_letters,
            lanes: adapters.lanes,
            scheduler: adapters.scheduler,
            concurrency: config.concurrency,
            metrics: adapters.metrics,
            outbound_max_receives: config.outbound_max_receives,
            store_health: Default::default(),
        }
    }
}

/// The reply rules as the worker's hook: those of the SSM parameter `REPLY_RULES_PARAMETER`
/// when set (read through `sdk`, again every `REPLY_RULES_CACHE_SECS`), else `REPLY_RULES` (or
/// the built-in ones). A parameter with no AWS to read it from (`sdk` is `None`, or has no
/// region or credentials) is refused, naming it.
pub fn reply_rules(
    config: &WorkerConfig,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<ReplyRules<Option<SsmParameter>>, ConfigError> {
    let settings = &config.reply_rules;
    let source = match &settings.parameter {
        None => None,
        Some(name) => Some(
            sdk.and_then(|sdk| SsmParameter::new(sdk, name.clone()))
                .ok_or_else(|| {
                    ConfigError::new(
                        REPLY_RULES_PARAMETER,
                        "is set, but there is no AWS to read it from (no region or credentials; locally, `serve --aws-endpoint`)",
                    )
                })?,
        ),
    };
    Ok(ReplyRules::new(
        source,
        config.policy.clone(),
        settings.cache_for,
    ))
}
