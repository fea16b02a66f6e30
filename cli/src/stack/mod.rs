//! The whole pipeline in one process: receiver, queue, event source, worker, store, and (unless
//! real Sinch credentials are configured) a Sinch API simulator.
//!
//! In memory by default; with an AWS endpoint the queue, dead-letter queue and table are real
//! (moto_server, LocalStack or AWS) and created when missing.

pub mod console;
pub mod event_feed;
pub mod event_source;
pub mod http;
pub mod local_only;
pub mod server;
pub mod simulator;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::request::Channels;
use api::{Api, ApiConfig};
use pipeline::config::{ConfigError, Env};
use pipeline::queue::{MemoryQueue, Queue, SqsQueue, enqueue_client};
use pipeline::reply_rules::{ReplyRules, SsmParameter};
use pipeline::schedule::{self, Lanes, MemoryScheduler};
use pipeline::store::{DynamoStore, MemoryStore, Store, dynamodb_client};
use publisher::MemorySink;
use receiver::{Receiver, ReceiverConfig};
use sinch::client::{ClientConfig, SinchClient};
use tokio::net::TcpListener;
use tokio::sync::watch;
use worker::Worker;

use event_source::{EventSourceConfig, MemorySource, Source, SqsSource};
use http::App;
use simulator::Sent;
use stats::{Stats, Status};

/// Names of what the stack creates in AWS mode.
pub const QUEUE_NAME: &str = "sinch-hooks-callbacks";
/// The callbacks' dead-letter queue.
pub const DEAD_LETTER_QUEUE_NAME: &str = "sinch-hooks-callbacks-dlq";
/// The fast lane's queue.
pub const OUTBOUND_QUEUE_NAME: &str = "sinch-hooks-outbound";
/// The fast lane's dead-letter queue.
pub const OUTBOUND_DEAD_LETTER_QUEUE_NAME: &str = "sinch-hooks-outbound-dlq";
/// The bulk lane's queue.
pub const BULK_QUEUE_NAME: &str = "sinch-hooks-bulk";
/// The bulk lane's dead-letter queue.
pub const BULK_DEAD_LETTER_QUEUE_NAME: &str = "sinch-hooks-bulk-dlq";
/// The state table.
pub const LOCAL_TABLE: &str = "sinch-hooks";

/// How to build the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The emulated event source mappings.
    pub event_source: EventSourceConfig,
    /// Real AWS APIs at this endpoint instead of memory.
    pub aws_endpoint: Option<String>,
    /// DynamoDB's own endpoint, when not the `aws_endpoint`.
    pub dynamodb_endpoint: Option<String>,
    /// How long an HTTP client may take to send its request.
    pub timeouts: server::Timeouts,
    /// Batches of sends processed at once (the outbound event source's `MaximumConcurrency`).
    pub outbound_concurrency: usize,
    /// The pause before each delivery report the simulator sends back.
    pub report_pace: Duration,
    /// Where events go besides the page.
    pub events: event_feed::EventsOptions,
    /// A rate the simulator holds Sinch to, answering 429 beyond it (none: it takes all).
    pub simulated_rate: Option<f64>,
    /// The functions' own configurations, read as their Lambdas read them ([`Functions::from_env`]).
    pub functions: Functions,
}

/// Each function's configuration, from the same variables and by the same functions as in
/// Lambda, so that `serve` honours (and refuses) every setting the template gives them; the
/// AWS resources they name are the stack's own (`local_resource`).
#[derive(Debug, Clone)]
pub struct Functions {
    /// The receiver's ([`ReceiverConfig::from_env`]).
    pub receiver: ReceiverConfig,
    /// The worker's ([`worker::WorkerConfig::from_env`]): real Sinch when it has credentials, else
    /// the simulator.
    pub worker: worker::WorkerConfig,
    /// The messages API's ([`ApiConfig::from_env`]); its channels are the stack's.
    pub api: ApiConfig,
    /// The publisher's ([`publisher::config::PublisherConfig::from_env`]).
    pub publisher: publisher::config::PublisherConfig,
}

/// What the local stack stands in for, by variable: `Some(value)` its own value, `Some(None)`
/// the variable hidden (the stack wires that resource itself), `None` the environment's.
fn local_resource(name: &str, event_source: &EventSourceConfig) -> Option<Option<String>> {
    Some(match name {
        receiver::config::QUEUE_URL => Some(format!("http://localhost/{QUEUE_NAME}")),
        pipeline::queue::DEAD_LETTER_QUEUE_URL => {
            Some(format!("http://localhost/{DEAD_LETTER_QUEUE_NAME}"))
        }
        publisher::config::EVENT_BUS_NAME => Some("local".to_owned()),
        // The function timeout is the event source's (`--function-timeout-secs`).
        worker::config::WORKER_TIMEOUT_SECS => {
            Some(event_source.function_timeout.as_secs().to_string())
        }
        pipeline::store::TABLE_NAME
        | schedule::OUTBOUND_QUEUE_URL
        | schedule::OUTBOUND_QUEUE_ARN
        | schedule::BULK_QUEUE_URL
        | schedule::BULK_QUEUE_ARN
        | schedule::SCHEDULER_ROLE_ARN
        | schedule::SCHEDULE_GROUP => None,
        _ => return None,
    })
}

impl Functions {
    /// The functions' configurations from `env`, with the stack's own resources; the first
    /// wrong variable is the error, named. `OUTBOUND_MAX_RECEIVE_COUNT`, when unset, is the
    /// event source's `max_receive_count`: the lanes' queues park a send after it.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        event_source: &EventSourceConfig,
    ) -> Result<Self, ConfigError> {
        // Secrets come as plain variables locally: an ARN would be read by no one.
        for (name, arn) in pipeline::secrets::SECRET_SETTINGS {
            if env.optional(arn).is_some() {
                return Err(ConfigError::new(
                    arn,
                    format!("is not read by serve: set {name} to the secret itself"),
                ));
            }
        }
        // The worker's timeout is the event source's (`--function-timeout-secs`): the variable,
        // when set, must say the same.
        if let Some(value) = env.optional(worker::config::WORKER_TIMEOUT_SECS) {
            let flag = event_source.function_timeout.as_secs();
            if value.trim().parse::<u64>().ok() != Some(flag) {
                return Err(ConfigError::new(
                    worker::config::WORKER_TIMEOUT_SECS,
                    format!(
                        "is {value:?}, but serve's function timeout is --function-timeout-secs ({flag}): set them alike, or leave the variable unset"
                    ),
                ));
            }
        }
        let local = Env::from_lookup(|name: &str| match local_resource(name, event_source) {
            Some(value) => value,
            None if name == worker::config::OUTBOUND_MAX_RECEIVE_COUNT => env
                .optional(name)
                .or_else(|| Some(event_source.max_receive_count.to_string())),
            None => env.optional(name),
        });
        Ok(Self {
            receiver: ReceiverConfig::from_env(&local)?,
            worker: worker::WorkerConfig::from_env(&local)?,
            api: ApiConfig::from_env(&local)?,
            publisher: publisher::config::PublisherConfig::from_env(&local)?,
        })
    }
}

impl Options {
    /// The settings every local run starts from (the demo's, the tests', `serve`'s before its
    /// command line): the functions' from `env`, everything else the defaults.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        event_source: EventSourceConfig,
    ) -> Result<Self, ConfigError> {
        let functions = Functions::from_env(env, &event_source)?;
        Ok(Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            event_source,
            aws_endpoint: None,
            dynamodb_endpoint: None,
            timeouts: server::Timeouts::default(),
            outbound_concurrency: 2,
            report_pace: Duration::from_millis(20),
            events: event_feed::EventsOptions {
                source: Some(functions.publisher.source.clone()),
                ..event_feed::EventsOptions::default()
            },
            simulated_rate: None,
            functions,
        })
    }

    /// The Sinch APIs to use: the worker's, when it has credentials (else the simulator).
    fn real_sinch(&self) -> Option<ClientConfig> {
        let sinch = &self.functions.worker.sinch;
        (sinch.conversation.is_some() || sinch.sms.is_some()).then(|| sinch.clone())
    }
}

/// Why the stack did not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A queue, the table or a client could not be made.
    #[error("cannot set up {what}: {detail}")]
    Setup {
        /// What.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// A running stack.
pub struct Running {
    /// Where it listens.
    pub address: SocketAddr,
    /// What it counted.
    pub stats: Arc<Stats>,
    /// What the simulator was asked to send (when it runs).
    pub sent: Option<Sent>,
    /// The state (in memory mode).
    pub store: Option<MemoryStore>,
    /// The events made so far (the last [`event_feed::KEEP`]).
    pub events: MemorySink,
    status: Box<dyn Fn() -> futures::future::BoxFuture<'static, Status> + Send + Sync>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// The current status, queue depths included.
    pub async fn status(&self) -> Status {
        (self.status)().await
    }

    /// Waits until every accepted callback and send is done with (queues empty, nothing in
    /// flight), or `timeout` passes. True when drained.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status().await;
            if status.queue_visible == 0
                && status.queue_in_flight == 0
                && status.outbound_queue == 0
                && status.bulk_queue == 0
            {
                return true;
            }
            if tokio::time::Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops polling (the HTTP server stops with the process).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Starts the stack.
pub async fn start(options: Options) -> Result<Running, StackError> {
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| StackError::Listen {
                address: options.listen,
                source,
            })?;
    let address = listener.local_addr().map_err(|source| StackError::Listen {
        address: options.listen,
        source,
    })?;
    let stats = Arc::new(Stats::default());
    let sink = MemorySink::new(event_feed::KEEP);
    event_feed::forward(&sink, &options.events, stats.clone());

    match &options.aws_endpoint {
        None => {
            let (queue, dead_letters) = (
                MemoryQueue::new("callbacks"),
                MemoryQueue::new("callbacks-dlq"),
            );
            let (outbound, outbound_dead_letters) = (
                MemoryQueue::new("outbound"),
                MemoryQueue::new("outbound-dlq"),
            );
            let (bulk, bulk_dead_letters) =
                (MemoryQueue::new("bulk"), MemoryQueue::new("bulk-dlq"));
            let memory_source =
                |queue: &MemoryQueue, dead_letters: &MemoryQueue, config: EventSourceConfig| {
                    MemorySource {
                        queue: queue.clone(),
                        dead_letters: dead_letters.clone(),
                        config,
                        stats: stats.clone(),
                    }
                };
            let (store, changes) = MemoryStore::with_change_feed();
            event_feed::from_changes(changes, sink.clone(), &options.events);
            let parts = Parts {
                source: memory_source(&queue, &dead_letters, options.event_source),
                outbound_source: memory_source(
                    &outbound,
                    &outbound_dead_letters,
                    lane_event_source(&options),
                ),
                bulk_source: memory_source(&bulk, &bulk_dead_letters, lane_event_source(&options)),
                queue,
                dead_letters,
                outbound,
                bulk,
                store: store.clone(),
            };
            let hook = worker::wiring::reply_rules(&options.functions.worker, None)
                .map_err(|e| setup("the reply rules", e))?;
            let mut running = launch(options, listener, address, stats, parts, sink, hook).await?;
            running.store = Some(store);
            Ok(running)
        }
        Some(endpoint) => {
            let (sdks, parts) = aws_parts(endpoint, &options).await?;
            let hook = worker::wiring::reply_rules(&options.functions.worker, Some(&sdks.aws))
                .map_err(|e| setup("the reply rules", e))?;
            let running = launch(
                options.clone(),
                listener,
                address,
                stats,
                parts,
                sink.clone(),
                hook,
            )
            .await?;
            event_feed::from_stream(
                &sdks.dynamodb,
                LOCAL_TABLE,
                sink,
                &options.events,
                running.stats.clone(),
                running.stop.subscribe(),
            )
            .await
            .map_err(|e| setup("the table's stream", e))?;
            Ok(running)
        }
    }
}

/// The pieces that differ between memory and AWS mode.
struct Parts<Q, S, Src> {
    queue: Q,
    dead_letters: Q,
    /// The messages API's queues, which the worker sends from: the fast lane and the bulk lane.
    outbound: Q,
    bulk: Q,
    store: S,
    source: Src,
    outbound_source: Src,
    bulk_source: Src,
}

/// Whether WhatsApp's window is open for an identity, from the stack's own state: what the
/// simulator asks, as WhatsApp would know.
fn window_oracle<S: Store + Clone + 'static>(store: S) -> simulator::WindowOracle {
    Arc::new(move |identity: String| {
        let store = store.clone();
        Box::pin(async move {
            let contact = pipeline::store::ContactKey::new("WHATSAPP", &identity);
            let now_ms = pipeline::clock::unix_millis(std::time::SystemTime::now());
            store
                .contact(&contact)
                .await
                .ok()
                .and_then(|c| c.last_inbound_at_ms)
                .is_some_and(|at| now_ms.saturating_sub(at) < 24 * 3600 * 1000)
        })
    })
}

async fn launch<Q, S, Src>(
    options: Options,
    listener: TcpListener,
    address: SocketAddr,
    stats: Arc<Stats>,
    parts: Parts<Q, S, Src>,
    events: MemorySink,
    hook: ReplyRules<Option<SsmParameter>>,
) -> Result<Running, StackError>
where
    Q: Queue + Clone + 'static,
    S: Store + Clone + 'static,
    Src: Source,
{
    // Real Sinch, or the simulator calling this stack's webhook back with signed reports.
    let (sinch_config, sent) = match options.real_sinch() {
        Some(config) => (config, None),
        None => {
            let simulator = TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| setup("the Sinch simulator", e))?;
            let simulator_address = simulator
                .local_addr()
                .map_err(|e| setup("the Sinch simulator", e))?;
            let reports = simulator::Reports {
                webhook: format!("http://{address}/webhook"),
                secret: options
                    .functions
                    .receiver
                    .secrets
                    .expose()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                window: window_oracle(parts.store.clone()),
                pace: options.report_pace,
            };
            (
                simulator::client_config(simulator_address),
                Some(simulator::spawn(
                    simulator,
                    Some(reports),
                    options.simulated_rate,
                )),
            )
        }
    };
    let simulated = sent.is_some();
    let sinch = SinchClient::new(sinch_config).map_err(|e| setup("the Sinch client", e))?;
    let functions = &options.functions;
    let receiver = Receiver::new(&functions.receiver, parts.queue, parts.dead_letters.clone());
    // The app to send from: the configured one, or the simulator's.
    let mut worker_config = functions.worker.clone();
    worker_config.app_id = worker_config
        .app_id
        .or_else(|| simulated.then(|| "local-app".to_owned()));
    let app_id = worker_config.app_id.clone();
    let lanes = Lanes {
        transactional: parts.outbound,
        bulk: parts.bulk,
    };
    let scheduler = MemoryScheduler::new();
    let api = Api::new(
        ApiConfig {
            // What this stack can send through: the worker's Sinch, or the simulator.
            channels: Channels {
                conversation_app: app_id.clone().filter(|_| sinch.has_conversation()),
                sms_api: sinch.has_sms(),
                default_sms_sender: functions
                    .api
                    .channels
                    .default_sms_sender
                    .clone()
                    .or_else(|| simulated.then(|| "+46700000000".to_owned())),
            },
            ..functions.api.clone()
        },
        parts.store.clone(),
        lanes.clone(),
        scheduler.clone(),
    );
    let worker = Arc::new(Worker::new(
        &worker_config,
        worker::wiring::Adapters {
            store: parts.store,
            sinch,
            hook,
            dead_letters: parts.dead_letters,
            lanes: lanes.clone(),
            scheduler: scheduler.clone(),
            metrics: pipeline::metrics::Metrics::off(),
        },
    ));
    let source = Arc::new(parts.source);
    let outbound_source = Arc::new(parts.outbound_source);
    let bulk_source = Arc::new(parts.bulk_source);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(event_source::run(
        source.clone(),
        worker.clone(),
        options.event_source,
        stats.clone(),
        stopped.clone(),
    ));
    // Each lane has an event source of its own, with its own concurrency; the pacer holds the
    // rate across both.
    for lane_source in [&outbound_source, &bulk_source] {
        tokio::spawn(event_source::run(
            lane_source.clone(),
            worker.clone(),
            EventSourceConfig {
                max_concurrency: options.outbound_concurrency,
                ..lane_event_source(&options)
            },
            stats.clone(),
            stopped.clone(),
        ));
    }
    // EventBridge Scheduler's stand-in: what is due goes to its lane's queue.
    tokio::spawn(scheduler_loop(scheduler.clone(), lanes, stopped));
    let console = console::Console::new();
    console::follow(console.clone(), &events);
    let app = Arc::new(App {
        receiver,
        api,
        max_body_bytes: functions.receiver.max_body_bytes,
        body_timeout: options.timeouts.body,
        source,
        outbound_source,
        bulk_source,
        scheduler,
        pacing: functions.worker.pacing.clone(),
        stats: stats.clone(),
        sent: sent.clone(),
        events: events.clone(),
        console,
    });
    let status_app = app.clone();
    tokio::spawn(server::serve(
        listener,
        http::router(app),
        options.timeouts,
        stats.clone(),
    ));
    Ok(Running {
        address,
        stats,
        sent,
        store: None,
        events,
        status: Box::new(move || {
            let app = status_app.clone();
            Box::pin(async move { http::status(&app).await })
        }),
        stop,
    })
}

/// How often the local scheduler looks for due jobs.
pub const SCHEDULER_TICK: Duration = Duration::from_millis(100);

/// Hands each due job to its lane's queue, every [`SCHEDULER_TICK`], until the stack stops; a
/// job the queue does not take is tried again on the next tick.
async fn scheduler_loop<Q: Queue>(
    scheduler: MemoryScheduler,
    lanes: Lanes<Q>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SCHEDULER_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let now_ms = pipeline::clock::unix_millis(std::time::SystemTime::now());
        for due in scheduler.take_due(now_ms) {
            if let Err(error) = lanes.of(due.lane).send(&due.envelope).await {
                tracing::warn!(%error, name = %due.name, "a due job was not queued; trying again");
                let _ = pipeline::schedule::Scheduler::schedule(&scheduler, &due).await;
            }
        }
    }
}

/// SQS queue and dead-letter queue (with a redrive policy), and the DynamoDB table, created when
/// missing.
/// The AWS endpoint's SDK configuration, and DynamoDB's (its own endpoint when given).
struct AwsSdks {
    /// Every service but DynamoDB (SQS, SSM).
    aws: aws_config::SdkConfig,
    /// DynamoDB and its stream.
    dynamodb: aws_config::SdkConfig,
}

async fn aws_parts(
    endpoint: &str,
    options: &Options,
) -> Result<(AwsSdks, Parts<SqsQueue, DynamoStore, SqsSource>), StackError> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let lanes = lane_event_source(options);
    let (queue_url, dlq_url) = queue_with_dead_letters(
        &sqs,
        QUEUE_NAME,
        DEAD_LETTER_QUEUE_NAME,
        &options.event_source,
    )
    .await?;
    let (outbound_url, outbound_dlq_url) = queue_with_dead_letters(
        &sqs,
        OUTBOUND_QUEUE_NAME,
        OUTBOUND_DEAD_LETTER_QUEUE_NAME,
        &lanes,
    )
    .await?;
    let (bulk_url, bulk_dlq_url) =
        queue_with_dead_letters(&sqs, BULK_QUEUE_NAME, BULK_DEAD_LETTER_QUEUE_NAME, &lanes).await?;
    let dynamodb_sdk = match &options.dynamodb_endpoint {
        Some(endpoint) => sdk.to_builder().endpoint_url(endpoint).build(),
        None => sdk.clone(),
    };
    let worker = &options.functions.worker;
    let store = DynamoStore::new(dynamodb_client(&dynamodb_sdk), LOCAL_TABLE)
        .with_retention(worker.retention)
        .with_hasher(worker.hasher.clone());
    store
        .create_table_if_missing()
        .await
        .map_err(|e| setup("the DynamoDB table", e))?;
    let enqueue = enqueue_client(&sdk, options.functions.receiver.enqueue_timeout);
    let source = |queue_url: String, dead_letter_queue_url: String, config| SqsSource {
        client: sqs.clone(),
        queue_url,
        dead_letter_queue_url,
        config,
    };
    let parts = Parts {
        queue: SqsQueue::new(enqueue.clone(), &queue_url),
        dead_letters: SqsQueue::new(enqueue.clone(), &dlq_url),
        outbound: SqsQueue::new(enqueue.clone(), &outbound_url),
        bulk: SqsQueue::new(enqueue, &bulk_url),
        store,
        source: source(queue_url, dlq_url, options.event_source),
        outbound_source: source(outbound_url, outbound_dlq_url, lanes),
        bulk_source: source(bulk_url, bulk_dlq_url, lanes),
    };
    Ok((
        AwsSdks {
            aws: sdk,
            dynamodb: dynamodb_sdk,
        },
        parts,
    ))
}

/// The lanes' event source: the callbacks', with the lanes' own `maxReceiveCount` (the worker's
/// `OUTBOUND_MAX_RECEIVE_COUNT`, as the template gives both).
fn lane_event_source(options: &Options) -> EventSourceConfig {
    EventSourceConfig {
        max_receive_count: options.functions.worker.outbound_max_receives,
        ..options.event_source
    }
}

/// A queue and its dead-letter queue, with the redrive policy and visibility the event source
/// emulation uses; created when missing. Their URLs.
async fn queue_with_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter_name: &str,
    config: &EventSourceConfig,
) -> Result<(String, String), StackError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq_url = create_queue(sqs, dead_letter_name, &[]).await?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            setup(
                "a dead-letter queue",
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| setup("a dead-letter queue", "no QueueArn"))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": config.max_receive_count.to_string()
    })
    .to_string();
    let visibility = config.visibility_timeout.as_secs().max(1).to_string();
    let queue_url = create_queue(
        sqs,
        name,
        &[
            (QueueAttributeName::RedrivePolicy, redrive),
            (QueueAttributeName::VisibilityTimeout, visibility),
        ],
    )
    .await?;
    Ok((queue_url, dlq_url))
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(aws_sdk_sqs::types::QueueAttributeName, String)],
) -> Result<String, StackError> {
    let mut request = sqs.create_queue().queue_name(name);
    for (attribute, value) in attributes {
        request = request.attributes(attribute.clone(), value);
    }
    match request.send().await {
        Ok(output) => output
            .queue_url
            .ok_or_else(|| setup("a queue", "CreateQueue returned no URL")),
        // It exists with other attributes: use it as it is.
        Err(_) => sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| setup("a queue", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .queue_url
            .ok_or_else(|| setup("a queue", "GetQueueUrl returned no URL")),
    }
}

fn setup(what: &'static str, detail: impl std::fmt::Display) -> StackError {
    StackError::Setup {
        what,
        detail: detail.to_string(),
    }
}
