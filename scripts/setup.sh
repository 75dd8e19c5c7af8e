#!/usr/bin/env bash
# Installs what fcx needs to build, run its examples and pass its tests on Debian 12:
# system packages (only those missing), the Rust toolchain check, and the Express example's
# npm dependencies. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: fcx creates network namespaces and installs packages (try: sudo $0)"

# command -> Debian package providing it
declare -A wanted=(
  [node]=nodejs [npm]=npm [python3]=python3 [zip]=zip [curl]=curl
  [cc]=gcc [make]=make [pkg-config]=pkg-config [ip]=iproute2
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
[ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
# `python3 -m venv` (the official FC SDK the signed-request tests run) needs ensurepip.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
fi

# Debian 12's own rustc (1.63) is too old; fcx needs a rustup toolchain.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found. Install Rust with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \$HOME/.cargo/env
(Debian's rustc 1.63 is too old for fcx; it needs Rust 1.80 or newer.)"
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
[ "${rust_minor:-0}" -ge 80 ] || die "rustc $(rustc --version) is too old: fcx needs 1.80 or newer (rustup update stable)"

if [ ! -d examples/express-event/node_modules/express ]; then
  say "installing the Express example's dependencies (npm ci)"
  (cd examples/express-event && npm ci --no-audit --no-fund --loglevel=error)
fi
say "setup complete"
