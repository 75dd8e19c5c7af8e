#!/usr/bin/env bash
# README command 2: set up everything the tests need, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# The official FC 3.0 Python SDK, unmodified: e2e_auth.rs signs requests with it to prove fcx's
# signature verification against the ground truth. Idempotent.
SDK_VENV=target/sdk-venv
if ! "$SDK_VENV/bin/python" -c 'import alibabacloud_fc20230330' >/dev/null 2>&1; then
  echo "==> installing the official FC 3.0 Python SDK into $SDK_VENV" >&2
  python3 -m venv "$SDK_VENV"
  "$SDK_VENV/bin/pip" install -q --disable-pip-version-check \
    'alibabacloud-fc20230330==4.8.3' 'alibabacloud-tea-openapi==0.4.6'
fi

echo "==> cargo test --workspace" >&2
cargo test --workspace --locked

# The end-to-end targets that exercise the store once more with every server on PostgreSQL:
# one server for the whole pass (scripts/pg-test-server.sh, as user postgres in a temporary
# dir on a free loopback port), one database per server the tests start
# (crates/fcx/tests/support). A representative subset, not every target: the whole e2e suite
# on PostgreSQL adds ~7 min under load and would take CI past its budget (tests/README.md).
PG_DIR=$(mktemp -d /tmp/fcx-test-pg.XXXXXX)
trap 'bash scripts/pg-test-server.sh stop "$PG_DIR"; rm -rf "$PG_DIR"' EXIT
FCX_TEST_PG_URL=$(bash scripts/pg-test-server.sh start "$PG_DIR")
export FCX_TEST_PG_URL
echo "==> cargo test -p fcx (store-dependent e2e targets, every server on PostgreSQL: $FCX_TEST_PG_URL)" >&2
FCX_TEST_STORE=postgres cargo test --locked -p fcx \
  --test e2e_api --test e2e_async --test e2e_auth --test e2e_versions --test e2e_triggers \
  --test e2e_instances --test e2e_scheduler
cargo test --locked -p fcx-store --features postgres --test postgres

# The scheduler's and async layer's unit tests run on the fake backend: check they need no
# privilege by running them once more as nobody.
bash scripts/unprivileged-tests.sh
