#!/usr/bin/env bash
# Density benchmark (docs/benchmarks.md): N functions deployed, M instances warmed, with and
# without egress, on the process and OCI backends, one fresh server each; prints PSS of fcx,
# of its helpers (pasta, crun) and of the instances, fcx's fds and threads, the time to warm
# all M, and the per-instance platform overhead. Not in CI: at the defaults (N = 1000,
# M = 200) it takes a few minutes and, with pasta, several GB of memory.
#
#   bash scripts/bench-density.sh
#   FCX_DENSITY_FUNCTIONS=100 FCX_DENSITY_WARM=20 bash scripts/bench-density.sh
#   FCX_DENSITY_BACKENDS=process FCX_DENSITY_EGRESS=veth bash scripts/bench-density.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
say "building fcx-testfn (release: the functions run it, as a code package and in an image)"
cargo build --release --locked -p fcx-testfn
say "cargo bench -p fcx --bench density (N=${FCX_DENSITY_FUNCTIONS:-1000} M=${FCX_DENSITY_WARM:-200} backends=${FCX_DENSITY_BACKENDS:-process,oci} egress=${FCX_DENSITY_EGRESS:-veth,pasta})"
cargo bench --locked -p fcx --bench density
