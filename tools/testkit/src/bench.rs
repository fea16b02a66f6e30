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
