#!/usr/bin/env bash
# README command 2: set up everything the tests need, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
echo "==> cargo test --workspace" >&2
cargo test --workspace --locked
