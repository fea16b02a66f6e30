//! `sinch-hooks serve`: the whole pipeline on one port until Ctrl-C, configured from the same
//! environment variables as the Lambdas.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use pipeline::config::{ConfigError, Env};

use crate::CliError;
use crate::cli::{EventSourceArgs, ServeArgs};
use crate::stack::{self, Options, event_source::EventSourceConfig};

/// Runs `serve` until Ctrl-C.
pub fn run(args: &ServeArgs) -> Result<ExitCode, CliError> {
    let options = options_from_env(&Env::process(), args)
        .map_err(|e| CliError::Usage(format!("configuration: {e}")))?;
    crate::logging::init("info");
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    runtime.block_on(async move {
        let running = stack::start(options.clone())
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let url = format!("http://{}", running.address);
        println!("sinch-hooks local stack on {url}");
        println!("  POST {url}/webhook   signed Sinch callbacks");
        println!("  POST {url}/messages  the messages API (GET {url}/messages/ID for a status): no authentication locally; AWS_IAM in AWS");
        println!("  GET  {url}/          live status page   (JSON at {url}/status, events at {url}/events)");
        if let Some(to) = &options.events.to {
            println!("  events: each POSTed to {to}");
        }
        if let Some(file) = &options.events.file {
            println!("  events: each appended to {}", file.display());
        }
        println!(
            "  queue and state: {}",
            options
                .aws_endpoint
                .as_deref()
                .map_or("in memory".to_owned(), |e| format!("AWS APIs at {e}"))
        );
        println!(
            "  Sinch: {}",
            if running.sent.is_some() {
                "simulator (set SINCH_PROJECT_ID/SINCH_KEY_ID/SINCH_KEY_SECRET or the SMS pair for real Sinch)"
            } else {
                "real Sinch APIs"
            }
        );
        println!("Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        running.stop();
        Ok(ExitCode::SUCCESS)
    })
}

/// The stack's options: the functions' own configurations, read from the Lambdas' environment
/// variables as the Lambdas read them ([`stack::Functions::from_env`]), plus the command line.
pub fn options_from_env<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    args: &ServeArgs,
) -> Result<Options, ConfigError> {
    check_event_source(&args.event_source)?;
    let mut options = Options::from_env(env, event_source_config(&args.event_source))?;
    options.listen = SocketAddr::new(args.host, args.port);
    options.aws_endpoint = args.aws_endpoint.clone();
    options.dynamodb_endpoint = args.dynamodb_endpoint.clone();
    options.timeouts = stack::server::Timeouts {
        header: Duration::from_secs(args.header_timeout_secs),
        body: Duration::from_secs(args.body_timeout_secs),
    };
    options.outbound_concurrency = args.event_source.outbound_concurrency;
    options.report_pace = Duration::from_millis(args.report_pace_ms);
    options.events.to = args.events_to.clone();
    options.events.file = args.events_file.clone();
    options.simulated_rate = args.simulator_rate.filter(|rate| *rate > 0.0);
    Ok(options)
}

/// What AWS would refuse: an SQS event source whose queue's visibility timeout is shorter than
/// the function's timeout (a record would come back while it is still being processed).
pub fn check_event_source(args: &EventSourceArgs) -> Result<(), ConfigError> {
    if args.visibility_timeout_secs < args.function_timeout_secs {
        return Err(ConfigError::new(
            "--visibility-timeout-secs",
            format!(
                "is {} s, below the function timeout of {} s (--function-timeout-secs); AWS refuses such an event source, as a record would come back while it is still being handled",
                args.visibility_timeout_secs, args.function_timeout_secs
            ),
        ));
    }
    Ok(())
}

/// The event source settings the flags give.
pub fn event_source_config(args: &EventSourceArgs) -> EventSourceConfig {
    EventSourceConfig {
        batch_size: usize::from(args.batch_size),
        batching_window: Duration::from_millis(args.batching_window_ms),
        visibility_timeout: Duration::from_secs(args.visibility_timeout_secs),
        max_receive_count: args.max_receive_count,
        max_concurrency: args.max_concurrency,
        function_timeout: Duration::from_secs(args.function_timeout_secs),
    }
}
