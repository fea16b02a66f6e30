//! Benchmarks with an untimed, fixed-iteration mode beside criterion's, for counting the
//! instructions a hot path executes under valgrind (`infra/scripts/profile-compare.sh`), which
//! this machine's timer noise cannot settle to a few per cent.
//!
//! | variable | the benchmark binary |
//! |---|---|
//! | none | criterion, as `criterion_main!` would run it (`--bench`, `--test`, filters) |
//! | `BENCH_ITERATIONS=N` | builds the inputs of N iterations, runs the path N times, exits |
//! | `BENCH_ITERATIONS=N` and `BENCH_SETUP_ONLY` | builds the same inputs only, exits |
//!
//! The difference of the last two runs' counts, over N, is one iteration's own cost.

/// `BENCH_ITERATIONS`, when set to a number.
pub fn iterations() -> Option<usize> {
    std::env::var("BENCH_ITERATIONS").ok()?.trim().parse().ok()
}

/// Whether only the inputs are to be built (`BENCH_SETUP_ONLY`).
pub fn setup_only() -> bool {
    std::env::var_os("BENCH_SETUP_ONLY").is_some()
}

/// `criterion_main!`, with the fixed-iteration mode: `fixed(n)` runs when `BENCH_ITERATIONS`
/// is set, the criterion groups otherwise.
#[macro_export]
macro_rules! criterion_main_or_fixed {
    ($fixed:path; $($group:path),+ $(,)?) => {
        fn main() {
            match $crate::bench::iterations() {
                Some(n) => $fixed(n),
                None => {
                    $( $group(); )+
                    criterion::Criterion::default()
                        .configure_from_args()
                        .final_summary();
                }
            }
        }
    };
}

/// Runs `body` against a moto_server of its own on a two-thread runtime, or says that `what`
/// was skipped when `MOTO_SERVER` is not set: a benchmark's store figures are optional, its
/// in-memory ones are not (tests that need moto never skip).
///
/// To the harness it is one more benchmark, named `<what>/against moto`, beside criterion's:
/// listed by `--list` (so `cargo nextest run --all-targets` runs it as a test of its own) and run
/// only when no filter is given or a filter names it, as criterion treats its own. Without
/// that, every process a runner starts for one of criterion's benchmarks would start moto and
/// run these calls again.
pub fn on_moto<Fut: std::future::Future<Output = ()>>(
    what: &str,
    body: impl FnOnce(crate::Moto) -> Fut,
) {
    let name = format!("{what}/against moto");
    match asked(&name, std::env::args().skip(1)) {
        Asked::List => println!("{name}: benchmark"),
        Asked::Skip => {}
        Asked::Run => {
            if std::env::var_os("MOTO_SERVER").is_none() {
                eprintln!("{what} against moto: skipped (set MOTO_SERVER)");
                return;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(body(crate::Moto::start()));
        }
    }
}

/// Whether the harness measures (`cargo bench` passes `--bench`), rather than checks that each
/// benchmark runs (`cargo test`, `cargo nextest run`: criterion's test mode, one iteration).
/// The moto parts make a few calls instead of hundreds when it does not.
pub fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// `full` calls when measuring, a tenth (at least one) in test mode.
pub fn calls(full: usize) -> usize {
    if measuring() {
        full
    } else {
        (full / 10).max(1)
    }
}

/// What the harness's arguments ask of a benchmark outside criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// `--list`: name it (not under `--ignored`: it is not ignored).
    List,
    /// Run it.
    Run,
    /// A filter that does not name it, or the list of ignored ones.
    Skip,
}

/// libtest's and criterion's arguments: `--list`, `--ignored`, `--exact`, and positional
/// filters (a name contains one, or equals it with `--exact`); flags that take a value
/// (`--format terse`, ...) are passed over with their value.
fn asked(name: &str, args: impl Iterator<Item = String>) -> Asked {
    const WITH_VALUE: &[&str] = &[
        "--format",
        "--color",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--plotting-backend",
        "--output-format",
        "--skip",
    ];
    let (mut list, mut ignored, mut exact) = (false, false, false);
    let mut filters = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--ignored" => ignored = true,
            "--exact" => exact = true,
            flag if WITH_VALUE.contains(&flag) => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    if ignored {
        return Asked::Skip;
    }
    let named = filters.is_empty()
        || filters.iter().any(|filter| {
            if exact {
                filter == name
            } else {
                name.contains(filter.as_str())
            }
        });
    match (named, list) {
        (false, _) => Asked::Skip,
        (true, true) => Asked::List,
        (true, false) => Asked::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::{Asked, asked};

    fn ask(args: &[&str]) -> Asked {
        asked("pacing/against moto", args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn the_harness_arguments_decide_whether_the_moto_part_runs() {
        assert_eq!(ask(&[]), Asked::Run);
        assert_eq!(ask(&["--bench"]), Asked::Run);
        assert_eq!(ask(&["--list", "--format", "terse"]), Asked::List);
        assert_eq!(
            ask(&["--list", "--format", "terse", "--ignored"]),
            Asked::Skip
        );
        assert_eq!(
            ask(&["--exact", "pacing/against moto", "--nocapture"]),
            Asked::Run
        );
        assert_eq!(ask(&["--exact", "pacing a send/unpaced"]), Asked::Skip);
        assert_eq!(ask(&["moto"]), Asked::Run);
        assert_eq!(ask(&["unpaced"]), Asked::Skip);
        // A flag's value is not a filter.
        assert_eq!(ask(&["--format", "terse"]), Asked::Run);
    }
}

/// Times measured one by one, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// The middle one.
    pub median: std::time::Duration,
    /// The 99th percentile (the slowest of fewer than a hundred).
    pub p99: std::time::Duration,
    /// The slowest.
    pub slowest: std::time::Duration,
    /// How many.
    pub count: usize,
}

impl Spread {
    /// The spread of `times` (at least one).
    pub fn of(mut times: Vec<std::time::Duration>) -> Self {
        assert!(!times.is_empty(), "no times to summarise");
        times.sort();
        Self {
            median: times[times.len() / 2],
            p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
            slowest: times[times.len() - 1],
            count: times.len(),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "median {:.2} ms, p99 {:.2} ms, slowest {:.2} ms ({} calls)",
            ms(self.median),
            ms(self.p99),
            ms(self.slowest),
            self.count
        )
    }
}
