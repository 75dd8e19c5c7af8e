//! Skips the test runner shows. `cargo test` has no run-time skip: a `#[test]` that returns
//! early on a host without root, pasta, Chromium, CRIU or PostgreSQL counts as *passed*. A test
//! target built with `harness = false` runs its tests through [`run`] instead (libtest-mimic:
//! libtest's output, summary line and flags), and a test whose host lacks something it
//! [`Needs`] is reported `ignored (needs ...)` and counted in the summary's `N ignored`.
//!
//! ```no_run
//! // crates/fcx/tests/e2e_x.rs, declared in Cargo.toml as
//! // [[test]]
//! // name = "e2e_x"
//! // harness = false
//! use fcx_testkit::skip::{self, Needs};
//!
//! fn main() -> std::process::ExitCode {
//!     let needs = Needs::new()
//!         .root()
//!         .executable("/usr/bin/pasta", "package passt");
//!     skip::run(vec![skip::test("reaches_the_target", &needs, reaches_the_target)])
//! }
//!
//! fn reaches_the_target() {
//!     // a plain test body: a panic fails it
//! }
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

pub use libtest_mimic::Trial;
use libtest_mimic::{Arguments, Completion};

/// What tests need of their host. Each check runs once, when it is added; what is missing
/// becomes the skip reason of every test that needs it.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    missing: Vec<String>,
}

impl Needs {
    /// Nothing yet.
    pub fn new() -> Needs {
        Needs::default()
    }

    /// Root (effective uid 0): namespaces, mounts, cgroups, `setuid`.
    pub fn root(self) -> Needs {
        self.check("root", is_root())
    }

    /// An executable file at `path`; `hint` says where it comes from (e.g. `package passt`).
    pub fn executable(self, path: &str, hint: &str) -> Needs {
        let ok = Path::new(path)
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        self.check(&format!("{path} ({hint})"), ok)
    }

    /// A program `name` on `PATH`; `hint` says where it comes from.
    pub fn command(self, name: &str, hint: &str) -> Needs {
        let ok = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| {
                dir.join(name)
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        });
        self.check(&format!("{name} on PATH ({hint})"), ok)
    }

    /// Anything else: `what` is missing unless `ok`.
    pub fn check(mut self, what: &str, ok: bool) -> Needs {
        if !ok {
            self.missing.push(what.to_owned());
        }
        self
    }

    /// Why tests that need this cannot run here (`needs root and /usr/bin/pasta (...)`), or
    /// `None` when the host has everything.
    pub fn reason(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| format!("needs {}", self.missing.join(" and ")))
    }
}

/// A test named `name` that runs `body` when the host has everything `needs` lists, and is
/// reported ignored with the reason otherwise. A panic in `body` fails the test, as in libtest.
pub fn test(name: impl Into<String>, needs: &Needs, body: impl FnOnce() + Send + 'static) -> Trial {
    let reason = needs.reason();
    Trial::ignorable_test(name, move || match reason {
        Some(reason) => Ok(Completion::ignored_with(reason)),
        None => {
            body();
            Ok(Completion::Completed)
        }
    })
}

/// Runs `trials` with libtest's command line (name filters, `--exact`, `--list`,
/// `--test-threads`, ...); the exit code is libtest's (101 when a test failed).
pub fn run(trials: Vec<Trial>) -> ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `trials` as [`run`] does, with the runner's output in a file instead of stdout (a
    /// second summary line in this test binary's output would mislead whoever reads it).
    fn run_quietly(trials: Vec<Trial>) -> (libtest_mimic::Conclusion, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runner.log");
        let args = Arguments {
            test_threads: Some(1),
            logfile: Some(log.to_string_lossy().into_owned()),
            ..Arguments::default()
        };
        let conclusion = libtest_mimic::run(&args, trials);
        (conclusion, std::fs::read_to_string(&log).unwrap())
    }

    #[test]
    fn the_reason_names_everything_missing() {
        assert_eq!(Needs::new().check("a", true).reason(), None);
        let needs = Needs::new()
            .check("a", false)
            .executable("/surely/not/here", "package x")
            .command("surely-no-such-program-fcx", "package y");
        assert_eq!(
            needs.reason().unwrap(),
            "needs a and /surely/not/here (package x) and surely-no-such-program-fcx on PATH \
             (package y)"
        );
        assert_eq!(Needs::new().command("sh", "coreutils").reason(), None);
        assert_eq!(
            Needs::new().executable("/bin/sh", "coreutils").reason(),
            None
        );
    }

    #[test]
    fn a_test_whose_needs_are_missing_is_ignored_and_never_runs() {
        let missing = Needs::new().check("a unicorn", false);
        let (conclusion, output) = run_quietly(vec![test("needs_a_unicorn", &missing, || {
            panic!("must not run")
        })]);
        assert_eq!(
            (
                conclusion.num_ignored,
                conclusion.num_passed,
                conclusion.num_failed
            ),
            (1, 0, 0)
        );
        // What the runner prints: the test, its skip reason, and the count in the summary.
        assert!(
            output.contains("test needs_a_unicorn ... ignored (needs a unicorn)"),
            "{output}"
        );
        assert!(output.contains("0 passed; 0 failed; 1 ignored"), "{output}");
    }

    #[test]
    fn a_test_whose_needs_are_met_runs_and_a_panic_fails_it() {
        let met = Needs::new();
        let (conclusion, _) = run_quietly(vec![
            test("passes", &met, || {}),
            test("fails", &met, || panic!("expected failure")),
        ]);
        assert_eq!(
            (
                conclusion.num_passed,
                conclusion.num_failed,
                conclusion.num_ignored
            ),
            (1, 1, 0)
        );
        assert!(conclusion.has_failed());
    }
}
