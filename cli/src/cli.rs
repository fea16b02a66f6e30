//! The command line, declared with clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "sinch-hooks",
    version,
    about = "Sinch webhooks on AWS Lambda: sign and verify callbacks, and run the pipeline locally"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline in this process on embedded defaults and feed it signed sample
    /// callbacks: replies, delivery reports out of order, a duplicate, a forgery, a stale and a
    /// poison callback. Exits 0 when every step behaved as expected.
    Demo,
    /// Check a callback's signature the way the receiver does; prints `valid` (exit 0) or why
    /// not (exit 1).
    Verify(VerifyArgs),
    /// Sign a body as Sinch would: prints the four signature headers, or a curl command.
    Sign(SignArgs),
    /// Say what a callback is: one JSON line with its kind and key fields. Reads a body, or a
    /// dead-letter-queue dump (`aws sqs receive-message` output or one SQS message).
    Inspect(InspectArgs),
    /// Run the whole pipeline locally (receiver, queue, worker, store, Sinch simulator) until
    /// Ctrl-C, configured from the Lambdas' environment variables.
    Serve(ServeArgs),
    /// Post signed callbacks, freshly signed per request, to any endpoint (as Sinch would);
    /// reports the answers and latency percentiles. (`send` is its old name.)
    #[command(alias = "send")]
    PostCallbacks(PostCallbacksArgs),
    /// Write Lambda event fixtures (API Gateway requests, freshly signed, and SQS events) for
    /// `cargo lambda invoke --data-file` and `sam local invoke -e`. (`events` is its old name.)
    #[command(alias = "events")]
    Fixtures(FixturesArgs),
    /// Create the app's Conversation API webhook for URL, or update the one with that target;
    /// `--list` shows the app's webhooks. Credentials from SINCH_PROJECT_ID, SINCH_KEY_ID,
    /// SINCH_KEY_SECRET (or _ARN), SINCH_APP_ID, SINCH_REGION.
    RegisterWebhook(RegisterWebhookArgs),
    /// Move dead-lettered callbacks back to the queue (after a fix), reporting what moved.
    Redrive(RedriveArgs),
    /// Send through the messages API, or follow a message's status: against a deployed stack
    /// (SigV4, AWS credentials from the usual chain) or the local one.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Send a batch (one message per recipient) from a CSV file through the messages API, and
    /// follow it to the end with a progress bar.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Import opt-outs into the messages API's list, or export the list, as JSON lines
    /// (`{"channel": "SMS", "identity": "+46701234567"}` a line).
    #[command(subcommand)]
    Optouts(OptoutsCommand),
    /// Run the Sinch API simulator alone (OAuth2, Conversation messages:send, SMS batches),
    /// for functions run elsewhere (`sam local`, `cargo lambda watch`): what it was sent is at
    /// GET /sent. With --webhook it calls back with signed delivery reports.
    SinchSimulator(SinchSimulatorArgs),
    /// Measure what the pipeline costs on AWS: run a fixed mix (inbound messages, single
    /// sends, a batch, opt-outs) through the whole stack against an AWS endpoint (moto),
    /// counting every call where it lands; print the calls and dollars per million, and check
    /// them against a budget file. `infra/scripts/cost.sh` starts moto and runs it.
    Cost(CostArgs),
}

/// `cost`'s flags.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// The AWS endpoint (moto) the stack's calls go to, through the counting proxy.
    #[arg(long)]
    pub aws_endpoint: String,
    /// Messages of each kind.
    #[arg(long, default_value_t = 200)]
    pub n: u64,
    /// Write the report (cost.md), the chart (cost.svg) and the figures (cost.json) here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Fail (exit 1) when a kind's calls per message go over this budget file's.
    #[arg(long)]
    pub budget: Option<std::path::PathBuf>,
    /// Write the measured figures as the budget file instead of checking them.
    #[arg(long, requires = "budget")]
    pub write_budget: bool,
}

/// `sinch-simulator`'s flags.
#[derive(Debug, Args)]
pub struct SinchSimulatorArgs {
    /// Address to listen on (a container reaches the host at the docker0 address).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 3001)]
    pub port: u16,
    /// Post delivery reports for what is sent to this webhook...
    #[arg(long, requires = "secret")]
    pub webhook: Option<String>,
    /// ...signed with this secret.
    #[arg(long)]
    pub secret: Option<String>,
    /// Hold sends to this many a second per API: beyond it, 429 with `Retry-After`.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
}

/// Where the messages API is, and how to call it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The API's URL: the stack's ApiUrl output, or http://127.0.0.1:3000 for `serve`.
    #[arg(
        long,
        env = "SINCH_HOOKS_API_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub url: String,
    /// How to authenticate: `sigv4` (a deployed stack), `none` (the local one), or `auto` (SigV4 unless the URL is loopback).
    #[arg(long, value_enum, default_value = "auto")]
    pub auth: crate::messages_client::Auth,
    /// The region to sign for (default: from the URL, else the AWS configuration).
    #[arg(long)]
    pub region: Option<String>,
}

/// `batch`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// POST /batches from a CSV file: a `to` column, every other column a parameter that fills
    /// `${column}` in the text and the template's parameters (a `metadata` column: a JSON
    /// object). More than 10,000 rows go as several batches. With --wait, follows them until
    /// every message is final.
    Send(Box<BatchSendArgs>),
    /// GET /batches/{id}: its counts by status; --wait follows it to the end.
    Status(BatchStatusArgs),
}

/// What a message says and where it goes, as `message send` and `batch send` both take it.
#[derive(Debug, Args)]
pub struct ContentArgs {
    /// WHATSAPP, SMS, RCS, MESSENGER, VIBERBM, ... or SMS_API.
    #[arg(long, default_value = "WHATSAPP")]
    pub channel: String,
    /// A text message.
    #[arg(long)]
    pub text: Option<String>,
    /// A WhatsApp template's name.
    #[arg(long)]
    pub template_name: Option<String>,
    /// Its language, e.g. en_US.
    #[arg(long)]
    pub template_language: Option<String>,
    /// A template parameter, KEY=VALUE (e.g. `body[1]text=A-1042`); repeat.
    #[arg(long)]
    pub param: Vec<String>,
    /// The SMS API sender.
    #[arg(long, alias = "from")]
    pub sms_sender: Option<String>,
}

/// `batch send`'s flags.
#[derive(Debug, Args)]
pub struct BatchSendArgs {
    /// The recipients.
    #[arg(long)]
    pub csv: PathBuf,
    /// Where the messages API is, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
    /// What is sent, and on which channel (in a batch, `${column}` placeholders in the text and
    /// the parameters' values).
    #[command(flatten)]
    pub content: ContentArgs,
    /// When to send (RFC 3339).
    #[arg(long)]
    pub send_at: Option<String>,
    /// `bulk` (a batch's default) or `transactional`.
    #[arg(long)]
    pub priority: Option<String>,
    /// The shared body as JSON (every field of POST /messages but `to`), instead of the flags.
    #[arg(long)]
    pub json: Option<String>,
    /// The Idempotency-Key (a fresh ULID by default; `-N` is added per batch of 10,000).
    #[arg(long)]
    pub key: Option<String>,
    /// Follow the batches until every message is final.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `batch status`'s flags.
#[derive(Debug, Args)]
pub struct BatchStatusArgs {
    /// The batch id (`bat_...`).
    pub id: String,
    /// Where the messages API is, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Follow the batch until every message is final.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `optouts`' subcommands.
#[derive(Debug, Subcommand)]
pub enum OptoutsCommand {
    /// PUT /optouts/{channel}/{identity} for each line of FILE (`-`: standard input), marked
    /// `by: import`; prints how many were new, already there, and refused (with why). Running it
    /// again is harmless: an opt-out already there stands.
    Import(OptoutsImportArgs),
    /// GET /optouts, every page, one JSON line per opt-out (channel, identity, by, reference,
    /// opted_out_at) on standard output.
    Export(OptoutsExportArgs),
}

/// `optouts import`'s arguments.
#[derive(Debug, Args)]
pub struct OptoutsImportArgs {
    /// JSON lines, each `{"channel", "identity"}`; `-` for standard input.
    pub file: PathBuf,
    /// Where the messages API is, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
    /// How many requests at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// `optouts export`'s arguments.
#[derive(Debug, Args)]
pub struct OptoutsExportArgs {
    /// Only this channel's (SMS covers both SMS APIs).
    #[arg(long)]
    pub channel: Option<String>,
    /// Where the messages API is, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `message`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// POST /messages; the Idempotency-Key is generated unless given. --count sends a load.
    Send(Box<MessageSendArgs>),
    /// GET /messages/{id}; --wait follows it to a final status with a live line.
    Status(MessageStatusArgs),
}

/// `message send`'s flags.
#[derive(Debug, Args)]
pub struct MessageSendArgs {
    /// Where the messages API is, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
    /// An E.164 number (or another channel's identity).
    #[arg(long, required_unless_present = "json")]
    pub to: Option<String>,
    /// What is sent, and on which channel.
    #[command(flatten)]
    pub content: ContentArgs,
    /// A media message: the file's public URL.
    #[arg(long)]
    pub media_url: Option<String>,
    /// The media's caption.
    #[arg(long, requires = "media_url")]
    pub caption: Option<String>,
    /// An omni template's id.
    #[arg(long)]
    pub template_id: Option<String>,
    /// The omni template's version (`latest` accepted).
    #[arg(long)]
    pub template_version: Option<String>,
    /// An omni template parameter when a WhatsApp template is given too; repeat.
    #[arg(long)]
    pub omni_param: Vec<String>,
    /// Channels to try next, in order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub fallback: Vec<String>,
    /// A JSON object echoed back in the status.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Seconds Sinch keeps trying.
    #[arg(long)]
    pub ttl: Option<u64>,
    /// The whole request body as JSON, instead of the flags above.
    #[arg(long)]
    pub json: Option<String>,
    /// The Idempotency-Key (a fresh ULID by default; the prefix of each key with --count).
    #[arg(long)]
    pub key: Option<String>,
    /// How many sends (a load; each its own key).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// How many at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// With --count: a different recipient per send (the last six digits vary).
    #[arg(long)]
    pub vary_recipient: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `message status`'s flags.
#[derive(Debug, Args)]
pub struct MessageStatusArgs {
    /// The message id (`msg_...`).
    pub id: String,
    /// Where the messages API is, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Follow the status until it is final (READ, FAILED, an SMS final status).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// `register-webhook`'s flags.
#[derive(Debug, Args)]
pub struct RegisterWebhookArgs {
    /// The webhook URL (the stack's WebhookUrl output).
    #[arg(long, required_unless_present = "list")]
    pub url: Option<String>,
    /// Triggers, comma-separated; MESSAGE_INBOUND, MESSAGE_DELIVERY, EVENT_DELIVERY and
    /// CONTACT_CREATE by default.
    #[arg(long, value_delimiter = ',')]
    pub triggers: Vec<String>,
    /// The webhook secret (the first one when comma-separated).
    #[arg(long, conflicts_with = "secret_arn")]
    pub secret: Option<String>,
    /// Secrets Manager ARN of the webhook secret (the template's WebhookSecretArn).
    #[arg(long)]
    pub secret_arn: Option<String>,
    /// Only list the app's webhooks.
    #[arg(long)]
    pub list: bool,
}

/// `redrive`'s flags.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The queue to move messages back to (the stack's QueueUrl output).
    #[arg(long, env = "QUEUE_URL")]
    pub queue_url: String,
    /// The dead-letter queue (the stack's DeadLetterQueueUrl output).
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    pub dlq_url: String,
    /// Report what would move, move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Move at most this many.
    #[arg(long, default_value_t = usize::MAX, hide_default_value = true)]
    pub max: usize,
    /// AWS endpoint (moto_server, LocalStack); AWS itself by default.
    #[arg(long, value_name = "URL")]
    pub aws_endpoint: Option<String>,
}

/// `fixtures`' flags.
#[derive(Debug, Args)]
pub struct FixturesArgs {
    /// The secret to sign with.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Directory to write them to.
    #[arg(long, default_value = "infra/fixtures")]
    pub out: PathBuf,
}

/// What `post-callbacks` posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Conversation inbound WhatsApp "HELP" (each gets a reply).
    InboundText,
    /// SMS inbound "HELP" (each gets a reply).
    InboundSms,
    /// Conversation delivery report.
    Delivery,
    /// SMS per-recipient delivery report.
    SmsDelivery,
}

impl Kind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::InboundText => "inbound-text",
            Kind::InboundSms => "inbound-sms",
            Kind::Delivery => "delivery",
            Kind::SmsDelivery => "sms-delivery",
        }
    }
}

/// `post-callbacks`' flags.
#[derive(Debug, Args)]
pub struct PostCallbacksArgs {
    /// The webhook URL, e.g. http://127.0.0.1:3000/webhook or an API Gateway URL.
    #[arg(long)]
    pub url: String,
    /// The secret to sign with.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// What to send; every callback has fresh ids.
    #[arg(long, value_enum, default_value = "inbound-text")]
    pub kind: Kind,
    /// How many.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// How many at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `serve`'s flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on; loopback unless you mean it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Use real AWS APIs at this endpoint (moto_server, LocalStack, or AWS) for the queue, the
    /// dead-letter queue and the table, creating them when missing.
    #[arg(long, value_name = "URL")]
    pub aws_endpoint: Option<String>,
    /// DynamoDB at an endpoint of its own (DynamoDB Local beside LocalStack's SQS; a test that
    /// cuts the store alone); the `--aws-endpoint` by default.
    #[arg(long, value_name = "URL", requires = "aws_endpoint")]
    pub dynamodb_endpoint: Option<String>,
    /// How long a client may take to send a request's headers (and to start the next request
    /// on a kept-alive connection); past it, 408 and the connection is closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_secs: u64,
    /// How long a client may take to send a request's body; past it, 408.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub body_timeout_secs: u64,
    /// The Sinch simulator's pause before each delivery report it sends back, ms.
    #[arg(long, default_value_t = 20)]
    pub report_pace_ms: u64,
    /// The rate the Sinch simulator holds sends to, messages a second: beyond it, 429 with
    /// `Retry-After`, as Sinch answers (unset: it takes everything).
    #[arg(long, value_name = "PER_SECOND")]
    pub simulator_rate: Option<f64>,
    /// POST each event (as EventBridge would deliver it to a target) to this URL: develop an
    /// events consumer locally.
    #[arg(long, value_name = "URL")]
    pub events_to: Option<String>,
    /// Append each event to this file, one JSON line each.
    #[arg(long, value_name = "PATH")]
    pub events_file: Option<PathBuf>,
    /// The emulated event source mappings.
    #[command(flatten)]
    pub event_source: EventSourceArgs,
}

/// The emulated SQS event source mapping.
#[derive(Debug, Clone, Args)]
pub struct EventSourceArgs {
    /// Records per batch (1 to 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub batch_size: u8,
    /// How long to wait for a fuller batch, ms.
    #[arg(long, default_value_t = 0)]
    pub batching_window_ms: u64,
    /// How long a received message stays hidden; failed records come back after it, seconds.
    #[arg(long, default_value_t = 30)]
    pub visibility_timeout_secs: u64,
    /// Receives after which a message moves to the dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receive_count: u32,
    /// Batches processed at once.
    #[arg(long, default_value_t = 4)]
    pub max_concurrency: usize,
    /// Batches of sends (the messages API's outbound queue) processed at once: how Sinch's
    /// rate limits are respected.
    #[arg(long, default_value_t = 2)]
    pub outbound_concurrency: usize,
    /// The emulated worker timeout: each batch's deadline, seconds.
    #[arg(long, default_value_t = 20)]
    pub function_timeout_secs: u64,
}

/// `inspect`'s arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// File holding the body or dump; standard input when absent or `-`.
    pub body_file: Option<PathBuf>,
}

/// `--secret`, read like the receiver reads `SINCH_WEBHOOK_SECRET`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// Webhook secret; repeat (or separate with commas) for several. `verify` accepts any that
    /// matches; `sign` uses the first.
    #[arg(
        long = "secret",
        env = "SINCH_WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ',',
        required = true
    )]
    pub secrets: Vec<String>,
}

impl SecretArgs {
    /// The first non-empty secret (the one to sign with).
    pub fn first(&self) -> Result<&str, crate::CliError> {
        self.secrets
            .iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .ok_or_else(|| crate::CliError::Usage("--secret: no secret given".into()))
    }
}

/// `verify`'s flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The secrets to check against.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Value of x-sinch-webhook-signature-nonce.
    #[arg(long)]
    pub nonce: String,
    /// Value of x-sinch-webhook-signature-timestamp, exactly as received.
    #[arg(long)]
    pub timestamp: String,
    /// Value of x-sinch-webhook-signature.
    #[arg(long)]
    pub signature: String,
    /// Value of x-sinch-webhook-signature-algorithm, if the request had one.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Judge freshness as of this Unix time instead of now (to check a logged callback).
    #[arg(long, value_name = "UNIX")]
    pub now: Option<u64>,
    /// Largest accepted age (and lead) of the timestamp, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub max_age: u64,
    /// File holding the exact body; standard input when absent or `-`.
    pub body_file: Option<PathBuf>,
}

/// `sign`'s flags.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The secret to sign with.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Nonce to sign with; a fresh ULID by default.
    #[arg(long)]
    pub nonce: Option<String>,
    /// Unix time to sign at; now by default.
    #[arg(long)]
    pub timestamp: Option<u64>,
    /// Print a ready-to-paste curl command posting the signed body to this URL.
    #[arg(long)]
    pub url: Option<String>,
    /// File holding the exact body; standard input when absent or `-`.
    pub body_file: Option<PathBuf>,
}
