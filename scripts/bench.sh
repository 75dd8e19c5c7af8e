#!/usr/bin/env bash
# Warm-path benchmark (docs/benchmarks.md): the same echo server measured directly, behind
# nginx (keep-alive reverse proxy), through fcx's InvokeFunction and through an fcx HTTP
# trigger with a warm instance, at 1 and 64 connections, with wrk. Each run lasts
# FCX_BENCH_SECS seconds (default 5); the whole bench takes about 8 x FCX_BENCH_SECS + 20 s
# after the build. FCX_BENCH_ROUNDS=N (default 1)
# repeats the set N times, interleaved, and reports medians (this machine class is noisy).
#
#   bash scripts/bench.sh
#   FCX_BENCH_SECS=10 bash scripts/bench.sh
#   FCX_BENCH_ROUNDS=3 bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  # The nginx package may start its system service (port 80) on install. Remember the nginx
  # processes running before, and stop only those that the install started, by pid.
  before=" $( (pgrep -x nginx || true) | tr '\n' ' ') "
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # nginx-light is gone from newer Debian releases; plain nginx is as small there.
    apt-get install -y -qq --no-install-recommends "${missing[@]/nginx-light/nginx}" >/dev/null
  fi
  started=()
  for pid in $(pgrep -x nginx || true); do
    case "$before" in *" $pid "*) ;; *) started+=("$pid") ;; esac
  done
  if [ ${#started[@]} -gt 0 ]; then
    say "stopping the nginx service the install started (pids ${started[*]})"
    # The master first (it takes its workers along), then whatever is left of them.
    for pid in "${started[@]}"; do
      [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = 1 ] && kill -QUIT "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
      alive=0
      for pid in "${started[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
fi

say "building fcx-testfn (release; the bench runs it directly and as the function)"
cargo build --release --locked -p fcx-testfn
say "cargo bench -p fcx --bench warm_path (FCX_BENCH_SECS=${FCX_BENCH_SECS:-5} FCX_BENCH_ROUNDS=${FCX_BENCH_ROUNDS:-1})"
FCX_BENCH_SECS="${FCX_BENCH_SECS:-5}" cargo bench --locked -p fcx --bench warm_path
