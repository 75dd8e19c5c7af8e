//! The budget of fcx's fuzz targets (proptest, stable Rust), shared by every crate's
//! `fuzz` tests: a small seeded run in `cargo test` (CI), and long runs from
//! `scripts/fuzz.sh`, bounded in cases and in time.
//!
//! - `FCX_FUZZ_CASES`: cases per target (default: the target's CI budget).
//! - `FCX_FUZZ_SECONDS`: stop a target after this long even if its cases are not done.
//! - `FCX_FUZZ_SEED`: the first batch's seed (default fixed, so runs are reproducible);
//!   batch `i` uses `seed + i`.
//!
//! Each target prints `fuzz <target>: <cases> cases in <s>s (seed <seed>)`; a failure is
//! shrunk by proptest and printed with the seed of its batch.

use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// Cases per batch: a deadline is checked between batches.
const BATCH: u32 = 20_000;

/// Runs `test` on values of `strategy`: `ci_cases` of them, or the budget from the
/// environment. Panics with the shrunk failing value when a case fails.
pub fn run<S: Strategy>(
    target: &str,
    ci_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("FCX_FUZZ_CASES").unwrap_or(u64::from(ci_cases));
    let deadline = env("FCX_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let seed = env("FCX_FUZZ_SEED").unwrap_or(0x5eed_f0c5);
    let started = Instant::now();
    let mut done: u64 = 0;
    let mut batch = 0u64;
    while done < cases && deadline.map_or(true, |d| Instant::now() < d) {
        let n = (cases - done).min(u64::from(BATCH)) as u32;
        let batch_seed = seed.wrapping_add(batch);
        let mut runner = TestRunner::new(Config {
            cases: n,
            rng_seed: RngSeed::Fixed(batch_seed),
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz {target}: failed in the batch with seed {batch_seed}: {e}");
        }
        done += u64::from(n);
        batch += 1;
    }
    println!(
        "fuzz {target}: {done} cases in {:.1}s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}
