#!/usr/bin/env bash
# Runs the unit-test binaries of fcx-scheduler and fcx-async (they run on the recording fake
# backend) once more as the unprivileged user `nobody`, to check that they need no privilege.
# Called by scripts/test.sh after the whole suite; the binaries are the ones it just built.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

bins=$(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m.get("profile", {}).get("test") and t.get("kind") == ["lib"]
            and t.get("name") in ("fcx_scheduler", "fcx_async")):
        print(m["executable"])
')
if [ "$(echo "$bins" | grep -c .)" != 2 ]; then
  echo "expected the unit-test binaries of fcx-scheduler and fcx-async, found: ${bins:-none}" >&2
  exit 1
fi
# A directory nobody owns: the binaries are copied there (the checkout may not be readable
# by nobody) and it is their TMPDIR.
tmp=$(mktemp -d /tmp/fcx-nobody.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for b in $bins; do
  cp "$b" "$tmp/"
done
chown -R nobody:nogroup "$tmp"
for b in $bins; do
  name=$(basename "$b")
  echo "==> $name as nobody" >&2
  ( cd "$tmp" && TMPDIR="$tmp" HOME="$tmp" \
      setpriv --reuid=nobody --regid=nogroup --clear-groups "./$name" -q )
done
