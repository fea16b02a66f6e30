//! `sinch-hooks cost`: the cost run ([`crate::cost`]), its report, and the budget check.
//!
//! | flags | does | exit |
//! |---|---|---|
//! | `--aws-endpoint URL` | runs the mix, prints the report | 0; 2 when the run could not finish |
//! | `--out DIR` | also writes `cost.md`, `cost.svg`, `cost.json` there | |
//! | `--budget FILE` | checks each kind's calls per message against the file's, when run at its `n` | 1 when over, naming each overrun |
//! | `--budget FILE --write-budget` | writes the measured figures as the budget (over one of the same `n`: each operation's larger figure, so runs add up to their worst) | 0 |

use std::io::Write;
use std::process::ExitCode;

use crate::CliError;
use crate::cli::CostArgs;
use crate::cost::report::{self, Budget};

/// Runs `cost`.
pub fn run(args: &CostArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    crate::cost::count_logs();
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    let measured = runtime
        .block_on(crate::cost::run(&args.aws_endpoint, args.n.max(1)))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let markdown = report::markdown(&measured);
    writeln!(stdout, "{markdown}")?;
    if let Some(dir) = &args.out {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| CliError::ReadFile {
                path: path.display().to_string(),
                source,
            })
        };
        std::fs::create_dir_all(dir)?;
        write("cost.md", markdown)?;
        write("cost.svg", report::svg(&measured))?;
        write(
            "cost.json",
            serde_json::to_string_pretty(&measured).unwrap_or_default(),
        )?;
    }
    let Some(path) = &args.budget else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.write_budget {
        // Over a budget of the same n, each operation's worst of the runs.
        let existing: Option<Budget> = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let budget = match existing {
            Some(existing) => existing.merged(&Budget::of(&measured)),
            None => Budget::of(&measured),
        };
        let budget = serde_json::to_string_pretty(&budget).unwrap_or_default();
        std::fs::write(path, budget + "\n")?;
        writeln!(stdout, "budget written to {}", path.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    let budget: Budget = std::fs::read(path)
        .map_err(|source| CliError::ReadFile {
            path: path.display().to_string(),
            source,
        })
        .and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
        })?;
    // Calls per message depend on n (reads per invocation, a batch's per-chunk work): only a
    // run at the budget's own n is held to it.
    if budget.n != args.n {
        writeln!(
            stdout,
            "not checked against {}: its figures are for n = {}",
            path.display(),
            budget.n
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let overruns = budget.overruns(&measured);
    if overruns.is_empty() {
        writeln!(stdout, "within the budget of {}", path.display())?;
        Ok(ExitCode::SUCCESS)
    } else {
        for overrun in &overruns {
            writeln!(stdout, "over budget: {overrun}")?;
        }
        Ok(ExitCode::from(1))
    }
}
