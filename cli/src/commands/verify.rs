//! `sinch-hooks verify`: the receiver's verdict on one callback, for when a signature will not
//! match.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sinch::signature::{Rejection, Secrets, SignatureParts, Tolerance, Verifier};

use crate::cli::VerifyArgs;
use crate::{CliError, body};

/// Runs `verify`: `valid` (exit 0) or why not (exit 1).
pub fn run(
    args: &VerifyArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let secrets = Secrets::new(args.secret.secrets.iter().map(|s| s.trim()))
        .map_err(|e| CliError::Usage(format!("--secret: {e}")))?;
    let body = body::read(args.body_file.as_deref(), stdin)?;
    let verifier = Verifier::new(&secrets)
        .with_tolerance(Tolerance::symmetric(Duration::from_secs(args.max_age)));
    let now = args.now.map_or_else(SystemTime::now, |unix| {
        UNIX_EPOCH + Duration::from_secs(unix)
    });
    let parts = SignatureParts {
        signature: args.signature.trim(),
        nonce: &args.nonce,
        timestamp: &args.timestamp,
        algorithm: args.algorithm.as_deref(),
    };
    match verifier.verify_parts(&body, &parts, now) {
        Ok(verified) => {
            writeln!(stdout, "valid")?;
            if secrets.len() > 1 {
                writeln!(
                    stderr,
                    "matched secret number {}",
                    verified.secret_index + 1
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(rejection) => {
            writeln!(stdout, "invalid: {}: {rejection}", rejection.reason())?;
            if let Some(hint) = hint(&rejection, &body) {
                writeln!(stderr, "hint: {hint}")?;
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// The usual reasons a genuine signature fails to verify.
fn hint(rejection: &Rejection, body: &[u8]) -> Option<String> {
    match rejection {
        Rejection::Mismatch if body.ends_with(b"\n") => Some(format!(
            "the body ({} bytes) ends with a newline; if Sinch's did not (an editor or `echo` adds \
             one), sign exactly the bytes received, e.g. with `printf '%s'`",
            body.len()
        )),
        Rejection::Mismatch => Some(format!(
            "check the secret, and that the body ({} bytes) is exactly what Sinch sent: not \
             re-formatted, re-encoded or trimmed",
            body.len()
        )),
        Rejection::TooOld { .. } | Rejection::TooNew { .. } => Some(
            "the signature is genuine; pass --now with the time it was received, or a larger \
             --max-age"
                .to_owned(),
        ),
        _ => None,
    }
}
