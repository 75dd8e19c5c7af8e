#!/usr/bin/env bash
# Long fuzzing runs of every parser fcx owns (not part of CI, whose `cargo test` runs each
# target with a small seeded budget). Each target runs FCX_FUZZ_CASES cases (default 1 M),
# stopping earlier at FCX_FUZZ_SECONDS (default 600) per target; FCX_FUZZ_SEED picks the
# seed. Built with the `fuzz` profile (optimised, overflow checks on). Prints one line per
# target: `fuzz <target>: <cases> cases in <s>s (seed <seed>)`, and fails if any target
# found a failing case (proptest prints it shrunk, with the seed of its batch).
#
#   bash scripts/fuzz.sh                       # 1 M cases per target, 10 min cap each
#   FCX_FUZZ_CASES=100000 bash scripts/fuzz.sh
#   FCX_FUZZ_SEED=7 bash scripts/fuzz.sh       # another part of the input space
#
# Targets (add new parsers here: a test calling `fcx_fuzz::run` in the crate that parses them):
#   fcx-model     function JSON (CreateFunction / UpdateFunction bodies)
#   fcx-model     timer schedules (cron with seconds, CRON_TZ, @every) and timer configs
#   fcx           the s.yaml loader (cli/project.rs)
#   fcx-protocol  FC headers, the x-fc-status mapping, error bodies, log tails
#   fcx-sign      signature canonicalization (query, headers, dates)
#   fcx-runtime   code packages: zip bytes, hostile entry paths and links
#   fcx-image     layer unpacking: hostile tar paths, links, whiteouts
#   fcx-gateway   request body limits
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export FCX_FUZZ_CASES="${FCX_FUZZ_CASES:-1000000}"
export FCX_FUZZ_SECONDS="${FCX_FUZZ_SECONDS:-600}"

targets=(
  "-p fcx-model --test fuzz"
  "-p fcx-model --test fuzz_cron"
  "-p fcx --bin fcx cli::project::fuzz"
  "-p fcx-protocol --test fuzz"
  "-p fcx-sign --test fuzz"
  "-p fcx-runtime --test fuzz_code"
  "-p fcx-image --lib unpack::fuzz"
  "-p fcx-gateway --lib body::fuzz"
)

echo "==> building the fuzz targets (profile fuzz)"
for t in "${targets[@]}"; do
  # shellcheck disable=SC2086
  cargo test --locked --profile fuzz --no-run ${t%% cli::*} >/dev/null 2>&1 || cargo test --locked --profile fuzz --no-run ${t%% cli::*}
done

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
for t in "${targets[@]}"; do
  echo "==> $t"
  # shellcheck disable=SC2086
  if ! cargo test --locked --profile fuzz $t -- --nocapture --test-threads 1 2>&1 | tee -a "$log" | grep -E '^fuzz |panicked|FAILED|minimal failing'; then
    :
  fi
  if grep -q "FAILED\|panicked" "$log"; then
    status=1
  fi
done
echo "==> summary"
grep '^fuzz ' "$log" || true
exit "$status"
