#!/usr/bin/env bash
# One PostgreSQL 15 server for a test run (the PostgreSQL pass of scripts/test.sh):
#   pg-test-server.sh start DIR   # initdb + postmaster as user postgres in DIR, on a free
#                                 # 127.0.0.1 port; prints the admin URL
#   pg-test-server.sh stop DIR    # stops that postmaster by its PID
# Trust authentication on loopback only; fsync off (tests kill fcx, never PostgreSQL).
# Never touches a preinstalled cluster.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=${1:-}; dir=${2:-}
[ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
case "$cmd" in
  start)
    [ -x "$BIN/postgres" ] || { echo "pg-test-server: $BIN/postgres missing (scripts/setup.sh installs postgresql-15)" >&2; exit 1; }
    mkdir -p "$dir/data"; chown -R postgres:postgres "$dir"
    setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
      "$BIN/initdb" --auth=trust --username=postgres --encoding=UTF8 --no-sync -D "$dir/data" >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
      "$BIN/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
      -c max_connections=600 -c shared_buffers=64MB -c fsync=off -c full_page_writes=off \
      >"$dir/server.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 1 300); do
      if "$BIN/psql" -X -q -d "postgres://postgres@127.0.0.1:$port/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
        echo "postgres://postgres@127.0.0.1:$port/postgres"; exit 0
      fi
      sleep 0.1
    done
    echo "pg-test-server: PostgreSQL did not start:" >&2; cat "$dir/server.log" >&2; exit 1
    ;;
  stop)
    [ -f "$dir/pid" ] || exit 0
    pid=$(cat "$dir/pid")
    kill -INT "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
