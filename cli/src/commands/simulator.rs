//! `sinch-hooks sinch-simulator`: the Sinch API simulator on its own, for functions that run
//! outside this process (`sam local invoke`, `cargo lambda watch`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::CliError;
use crate::cli::SinchSimulatorArgs;
use crate::stack::simulator::{self, Reports};

/// Runs `sinch-simulator` until Ctrl-C.
pub fn run(args: &SinchSimulatorArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    crate::logging::init("info");
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    runtime.block_on(async {
        let address = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| CliError::Usage(format!("cannot listen on {address}: {e}")))?;
        let reports = match (&args.webhook, &args.secret) {
            (Some(webhook), Some(secret)) => Some(Reports {
                webhook: webhook.clone(),
                secret: secret.clone(),
                // Alone, it knows nothing of who wrote: WhatsApp's window counts as open.
                window: Arc::new(|_| Box::pin(async { true })),
                pace: Duration::from_millis(20),
            }),
            _ => None,
        };
        simulator::spawn(listener, reports, args.rate.filter(|rate| *rate > 0.0));
        writeln!(
            stdout,
            "Sinch simulator on http://{address} (what it was sent: GET /sent)"
        )?;
        stdout.flush()?;
        let _ = tokio::signal::ctrl_c().await;
        Ok(ExitCode::SUCCESS)
    })
}
