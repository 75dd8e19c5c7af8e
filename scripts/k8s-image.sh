#!/usr/bin/env bash
# Builds the fcx node image for deploy/kubernetes/ with fcx's own image builder (no Docker):
# the release fcx binary, crun and nft with their library closures, busybox. Writes
# target/fcx-node.tar (an OCI archive: `fcx image import` reads it; push it to the registry
# your cluster pulls from with any OCI tool).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p fcx >&2
cargo run --locked -q -p fcx-testkit --example node_image -- target/release/fcx target/fcx-node.tar "${1:-fcx-node:latest}"
