//! Reading a callback body: from a file when one is named, else from standard input, always
//! as exact bytes (a trailing newline is part of what Sinch signed, or of what it did not).

use std::io::Read;
use std::path::Path;

use crate::CliError;

/// The bytes of `file`, or of `stdin` when it is absent or `-`.
pub fn read(file: Option<&Path>, stdin: &mut dyn Read) -> Result<Vec<u8>, CliError> {
    match file {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).map_err(|source| CliError::ReadFile {
                path: path.display().to_string(),
                source,
            })
        }
        _ => {
            let mut body = Vec::new();
            stdin.read_to_end(&mut body).map_err(CliError::ReadStdin)?;
            Ok(body)
        }
    }
}
