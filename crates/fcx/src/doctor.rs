//! `fcx doctor`: prints the host checks of the OCI backend and of outbound networking
//! (`fcx_runtime::host`: which egress mode a server would run and why), one line each with
//! the command that fixes a failure, and with `--fix` applies the fixes that are safe to
//! automate (the hybrid-cgroup mount, cgroup2 delegation in a container) before checking
//! again; it also says whether snapshot starts (CRIU) work, as a warning.

use std::path::PathBuf;
use std::process::ExitCode;

use fcx_runtime::host::{self, Check, Need, Status};

/// Flags of `fcx doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// OCI runtime to check: crun, runc, youki, or the path of a runtime binary (as
    /// `fcx server --oci-runtime`).
    #[arg(
        long,
        alias = "oci-runtime",
        env = "FCX_OCI_RUNTIME",
        default_value = "crun"
    )]
    runtime: String,
    /// The server's data dir; the overlay test mount is made on its filesystem.
    #[arg(long, env = "FCX_DATA_DIR", default_value = "./.fcx")]
    data_dir: PathBuf,
    /// CRIU binary to check for snapshot starts (as `fcx server --criu`; default: PATH).
    #[arg(long, env = "FCX_CRIU")]
    criu: Option<PathBuf>,
    /// Egress mode to check, as `fcx server --egress` (auto, veth or pasta).
    #[arg(long, env = "FCX_EGRESS", default_value = "auto")]
    egress: fcx_runtime::egress::Requested,
    /// Apply the safe fixes (moving controllers off a hybrid host's cgroup2 mount; in a
    /// container, a read-only cgroup2 mount remounted and its processes moved off the cgroup
    /// root), then check again.
    #[arg(long)]
    fix: bool,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    println!(
        "fcx doctor: can this host run OCI (custom-container) instances, and give instances \
         outbound networking?\n\
         runtime: {}   data dir: {}   egress: {}\n",
        args.runtime,
        args.data_dir.display(),
        args.egress
    );
    let all = |a: &DoctorArgs| {
        let mut checks = host::check_host(&a.runtime, &a.data_dir);
        checks.extend(host::check_egress(a.egress));
        relax_pasta(&mut checks);
        checks.push(host::check_snapshots(a.criu.as_deref()));
        checks
    };
    let mut checks = all(&args);
    if args.fix {
        apply_fixes(&checks);
        checks = all(&args);
    }
    print_checks(&checks, args.fix);
    summary(&checks)
}

/// Without pasta a veth-egress server still runs everything: pasta is then optional.
fn relax_pasta(checks: &mut [Check]) {
    let veth = checks
        .iter()
        .any(|c| c.name == host::EGRESS && c.status == Status::Ok && c.detail.starts_with("veth"));
    for c in checks.iter_mut().filter(|c| c.name == host::PASTA) {
        if veth && c.status == Status::Fail {
            c.status = Status::Warn;
            c.detail.push_str(" (only needed with --egress pasta)");
        }
    }
}

/// Applies the fix of every fixable check that is not OK, saying what happened.
fn apply_fixes(checks: &[Check]) {
    let fixable: Vec<&Check> = checks
        .iter()
        .filter(|c| c.fixable && c.status != Status::Ok)
        .collect();
    if fixable.is_empty() {
        println!("--fix: nothing here that fcx doctor fixes by itself\n");
        return;
    }
    for c in fixable {
        let command = c.fix.as_deref().unwrap_or("");
        match host::apply_fix(c.name) {
            Ok(true) => println!(
                "--fix: {}: ran `{command}` (lasts until the next reboot)\n",
                c.name
            ),
            Ok(false) => println!("--fix: {}: nothing left to change\n", c.name),
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    " (run it as root: sudo fcx doctor --fix)"
                } else {
                    ""
                };
                println!(
                    "--fix: {}: could not apply `{command}`: {e}{hint}\n",
                    c.name
                );
            }
        }
    }
}

fn print_checks(checks: &[Check], fixed: bool) {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let indent = " ".repeat(2 + 6 + width + 2);
    for c in checks {
        let label = match c.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let scope = match (c.status, c.need) {
            (Status::Ok, _) | (_, Need::Oci) => "",
            (_, Need::Egress) => " (only instances with internetAccess need it)",
            (_, Need::Snapshots) => " (only functions with fcxSnapshot need it)",
        };
        println!("  {label:<6}{:<width$}  {}{scope}", c.name, c.detail);
        if c.status == Status::Ok {
            continue;
        }
        if let Some(fix) = &c.fix {
            println!("{indent}fix: {fix}");
        }
        if c.fixable && !fixed {
            println!("{indent}`fcx doctor --fix` applies it (until the next reboot)");
        }
    }
    println!();
}

/// The closing line and the exit code: 1 when any check failed (warnings pass).
fn summary(checks: &[Check]) -> ExitCode {
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if failed == 0 {
        let warnings = match warned {
            0 => String::new(),
            n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
        };
        println!("All checks passed{warnings}: this host can run OCI instances and their egress.");
        return ExitCode::SUCCESS;
    }
    let s = if failed == 1 { "" } else { "s" };
    let mut next = format!(
        "{failed} check{s} failed. Run the fix{} above, then `fcx doctor` again",
        if failed == 1 { "" } else { "es" }
    );
    if checks.iter().any(|c| c.fixable && c.status == Status::Fail) {
        next.push_str(" (or `fcx doctor --fix`, which applies the cgroup fixes)");
    }
    println!("{next}.");
    ExitCode::FAILURE
}
