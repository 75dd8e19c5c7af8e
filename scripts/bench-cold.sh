#!/usr/bin/env bash
# Cold-start benchmark (docs/benchmarks.md): in one run, raw `crun run -d` of the bundle fcx
# generates (same kind of network namespace and overlay rootfs) until its server answers,
# fcx's first invocation of a function with no instance (image cached) with and without a
# pre-created sandbox, with egress, and a warm invocation. FCX_COLD_ROUNDS (default 30) cold
# starts per row; about 2 s per round after the build.
#
#   bash scripts/bench-cold.sh
#   FCX_COLD_ROUNDS=50 bash scripts/bench-cold.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
printf '\033[1m==> %s\033[0m\n' "building fcx-testfn (release; the benchmark image holds it)" >&2
cargo build --release --locked -p fcx-testfn
printf '\033[1m==> %s\033[0m\n' "cargo bench -p fcx --bench cold_start (FCX_COLD_ROUNDS=${FCX_COLD_ROUNDS:-30})" >&2
cargo bench --locked -p fcx --bench cold_start
