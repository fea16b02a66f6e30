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
use pipeline::clock::Clock;
use pipeline::handlers::{DEFAULT_IDEMPOTENCY_TTL, Services};
use pipeline::ledger::Ledger;
use pipeline::queue::{MemoryQueue, Queue, SqsQueue, enqueue_client};
use pipeline::reply::ReplyPolicy;
use pipeline::schedule::{Lanes, MemoryScheduler};
use pipeline::store::{DynamoStore, MemoryStore, Store, dynamodb_client};
use publisher::MemorySink;
use receiver::{Receiver, ReceiverConfig};
use sinch::client::{ClientConfig, SinchClient};
use sinch::signature::{Secrets, Tolerance};
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
pub const TABLE_NAME: &str = "sinch-hooks";

/// How to build the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The webhook secrets the receiver checks.
    pub secrets: Secrets,
    /// How far a signature's timestamp may be from now.
    pub tolerance: Tolerance,
    /// The largest body taken.
    pub max_body_bytes: usize,
    /// The emulated event source mappings.
    pub event_source: EventSourceConfig,
    /// Real AWS APIs at this endpoint instead of memory.
    pub aws_endpoint: Option<String>,
    /// DynamoDB's own endpoint, when not the `aws_endpoint`.
    pub dynamodb_endpoint: Option<String>,
    /// Real Sinch; `None` starts the simulator.
    pub sinch: Option<ClientConfig>,
    /// The reply rules.
    pub policy: ReplyPolicy,
    /// The Conversation app to reply from when a callback names none.
    pub app_id: Option<String>,
    /// How many records of a batch the worker handles at once.
    pub worker_concurrency: usize,
    /// Bound on each enqueue before the receiver answers 503 (`ENQUEUE_TIMEOUT_MS`).
    pub enqueue_timeout: Duration,
    /// How long a send whose outcome is unknown waits for a report (`SEND_SETTLE_SECS`).
    pub send_settle: Duration,
    /// How long an HTTP client may take to send its request.
    pub timeouts: server::Timeouts,
    /// Batches of sends processed at once (the outbound event source's `MaximumConcurrency`).
    pub outbound_concurrency: usize,
    /// The SMS API sender when a send names none (`SINCH_SMS_SENDER`).
    pub sms_sender: Option<String>,
    /// The pause before each delivery report the simulator sends back.
    pub report_pace: Duration,
    /// Where events go besides the page.
    pub events: event_feed::EventsOptions,
    /// The send rates (`CONVERSATION_SEND_RATE`, `SMS_SEND_RATE`).
    pub pacing: pipeline::pacing::Pacing,
    /// The deployment's quiet hours (`QUIET_HOURS`).
    pub quiet_hours: Option<pipeline::quiet_hours::QuietHours>,
    /// A rate the simulator holds Sinch to, answering 429 beyond it (none: it takes all).
    pub simulated_rate: Option<f64>,
    /// What is kept of texts (`REDACT_TEXT`).
    pub privacy: pipeline::handlers::Privacy,
    /// How long items are kept in DynamoDB (`*_RETENTION_DAYS`; memory keeps everything).
    pub retention: pipeline::store::Retention,
    /// The messages API's guards (`ALLOWED_COUNTRIES`, `DESTINATION_*`, `MONTHLY_CAPS`).
    pub guards: api::guards::Guards,
    /// Keys erased contacts' opt-outs in DynamoDB (`CONTACT_HASH_KEY`).
    pub hasher: pipeline::store::ContactHasher,
}

impl Options {
    /// The settings every local run starts from: the demo's, the tests', `serve`'s before the
    /// environment and the command line.
    pub fn new(secrets: Secrets) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            secrets,
            tolerance: Tolerance::default(),
            max_body_bytes: 1024 * 1024,
            event_source: EventSourceConfig::default(),
            aws_endpoint: None,
            dynamodb_endpoint: None,
            sinch: None,
            policy: ReplyPolicy::default(),
            app_id: None,
            worker_concurrency: 10,
            enqueue_timeout: receiver::config::DEFAULT_ENQUEUE_TIMEOUT,
            send_settle: pipeline::ledger::DEFAULT_SETTLE_AFTER,
            timeouts: server::Timeouts::default(),
            outbound_concurrency: 2,
            sms_sender: None,
            report_pace: Duration::from_millis(20),
            events: event_feed::EventsOptions::default(),
            pacing: pipeline::pacing::Pacing::default(),
            quiet_hours: None,
            simulated_rate: None,
            privacy: pipeline::handlers::Privacy::default(),
            retention: pipeline::store::Retention::default(),
            guards: api::guards::Guards::default(),
            hasher: pipeline::store::ContactHasher::default(),
        }
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
            let memory_source = |queue: &MemoryQueue, dead_letters: &MemoryQueue| MemorySource {
                queue: queue.clone(),
                dead_letters: dead_letters.clone(),
                config: options.event_source,
                stats: stats.clone(),
            };
            let (store, changes) = MemoryStore::with_change_feed();
            event_feed::from_changes(changes, sink.clone(), &options.events);
            let parts = Parts {
                source: memory_source(&queue, &dead_letters),
                outbound_source: memory_source(&outbound, &outbound_dead_letters),
                bulk_source: memory_source(&bulk, &bulk_dead_letters),
                queue,
                dead_letters,
                outbound,
                bulk,
                store: store.clone(),
            };
            let mut running = launch(options, listener, address, stats, parts, sink).await?;
            running.store = Some(store);
            Ok(running)
        }
        Some(endpoint) => {
            let (sdk, parts) = aws_parts(endpoint, &options).await?;
            let running = launch(
                options.clone(),
                listener,
                address,
                stats,
                parts,
                sink.clone(),
            )
            .await?;
            event_feed::from_stream(
                &sdk,
                TABLE_NAME,
                sink,
                &options.events,
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
) -> Result<Running, StackError>
where
    Q: Queue + Clone + 'static,
    S: Store + Clone + 'static,
    Src: Source,
{
    // Real Sinch, or the simulator calling this stack's webhook back with signed reports.
    let (sinch_config, sent) = match options.sinch.clone() {
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
    let receiver_config = ReceiverConfig {
        secrets: options.secrets.clone(),
        queue_url: "local".into(),
        dead_letter_queue_url: "local".into(),
        tolerance: options.tolerance,
        max_body_bytes: options.max_body_bytes,
        enqueue_timeout: options.enqueue_timeout,
    };
    let receiver = Receiver::new(&receiver_config, parts.queue, parts.dead_letters.clone());
    // The app to send from: the configured one, or the simulator's.
    let app_id = options
        .app_id
        .clone()
        .or_else(|| simulated.then(|| "local-app".to_owned()));
    let lanes = Lanes {
        transactional: parts.outbound,
        bulk: parts.bulk,
    };
    let scheduler = MemoryScheduler::new();
    let api = Api {
        store: parts.store.clone(),
        lanes: lanes.clone(),
        scheduler: scheduler.clone(),
        config: ApiConfig {
            channels: Channels {
                conversation_app: app_id.clone().filter(|_| sinch.has_conversation()),
                sms_api: sinch.has_sms(),
                default_sms_sender: options
                    .sms_sender
                    .clone()
                    .or_else(|| simulated.then(|| "+46700000000".to_owned())),
            },
            enqueue_timeout: options.enqueue_timeout,
            quiet_hours: options.quiet_hours.clone(),
            guards: options.guards.clone(),
            ..ApiConfig::default()
        },
        clock: Clock::System,
    };
    let worker = Arc::new(Worker {
        services: Services {
            privacy: options.privacy,
            store: parts.store,
            sinch,
            hook: options.policy.clone(),
            app_id,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            // The worker holds the API's allow-list when a message leaves.
            rules: pipeline::rules::Rules {
                countries: options.guards.allowed_countries.clone(),
                ..Default::default()
            },
            ledger: Ledger::new(options.send_settle),
            pacing: options.pacing.clone(),
            clock: Clock::System,
        },
        dead_letters: parts.dead_letters,
        lanes: lanes.clone(),
        scheduler: scheduler.clone(),
        concurrency: options.worker_concurrency,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: options.event_source.max_receive_count,
        store_health: Default::default(),
    });
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
                ..options.event_source
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
        max_body_bytes: options.max_body_bytes,
        body_timeout: options.timeouts.body,
        source,
        outbound_source,
        bulk_source,
        scheduler,
        pacing: options.pacing.clone(),
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
async fn aws_parts(
    endpoint: &str,
    options: &Options,
) -> Result<
    (
        aws_config::SdkConfig,
        Parts<SqsQueue, DynamoStore, SqsSource>,
    ),
    StackError,
> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) =
        queue_with_dead_letters(&sqs, QUEUE_NAME, DEAD_LETTER_QUEUE_NAME, options).await?;
    let (outbound_url, outbound_dlq_url) = queue_with_dead_letters(
        &sqs,
        OUTBOUND_QUEUE_NAME,
        OUTBOUND_DEAD_LETTER_QUEUE_NAME,
        options,
    )
    .await?;
    let (bulk_url, bulk_dlq_url) =
        queue_with_dead_letters(&sqs, BULK_QUEUE_NAME, BULK_DEAD_LETTER_QUEUE_NAME, options)
            .await?;
    let dynamodb_sdk = match &options.dynamodb_endpoint {
        Some(endpoint) => sdk.to_builder().endpoint_url(endpoint).build(),
        None => sdk.clone(),
    };
    let store = DynamoStore::new(dynamodb_client(&dynamodb_sdk), TABLE_NAME)
        .with_retention(options.retention)
        .with_hasher(options.hasher.clone());
    store
        .create_table_if_missing()
        .await
        .map_err(|e| setup("the DynamoDB table", e))?;
    let enqueue = enqueue_client(&sdk, options.enqueue_timeout);
    let source = |queue_url: String, dead_letter_queue_url: String| SqsSource {
        client: sqs.clone(),
        queue_url,
        dead_letter_queue_url,
        config: options.event_source,
    };
    let parts = Parts {
        queue: SqsQueue::new(enqueue.clone(), &queue_url),
        dead_letters: SqsQueue::new(enqueue.clone(), &dlq_url),
        outbound: SqsQueue::new(enqueue.clone(), &outbound_url),
        bulk: SqsQueue::new(enqueue, &bulk_url),
        store,
        source: source(queue_url, dlq_url),
        outbound_source: source(outbound_url, outbound_dlq_url),
        bulk_source: source(bulk_url, bulk_dlq_url),
    };
    // The table's stream is DynamoDB's.
    Ok((dynamodb_sdk, parts))
}

/// A queue and its dead-letter queue, with the redrive policy and visibility the event source
/// emulation uses; created when missing. Their URLs.
async fn queue_with_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter_name: &str,
    options: &Options,
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
        "maxReceiveCount": options.event_source.max_receive_count.to_string()
    })
    .to_string();
    let visibility = options
        .event_source
        .visibility_timeout
        .as_secs()
        .max(1)
        .to_string();
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
