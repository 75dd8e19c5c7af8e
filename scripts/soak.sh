#!/usr/bin/env bash
# Soak test (not in CI): one fcx server under mixed load for SOAK_SECS (default 600) —
# sync invokes, async invokes, cold starts (functions with a short idle timeout), deploys and
# deletes — then a stop. It reports errors, p50/p99 latency per kind, the server's RSS and
# open fds every SOAK_SAMPLE seconds (they should stay flat), and what is left after it ends:
# processes, mounts, network namespaces and cgroups (should be zero).
#
#   bash scripts/soak.sh                 # 10 minutes
#   SOAK_SECS=60 bash scripts/soak.sh    # a short run
#
# Needs root (the process backend's namespaces and cgroups) and a built fcx
# (`cargo build -p fcx -p fcx-testfn`; FCX_BIN / TESTFN_BIN pick other builds).
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-600}
SOAK_SAMPLE=${SOAK_SAMPLE:-30}
FCX_BIN=${FCX_BIN:-target/debug/fcx}
TESTFN_BIN=${TESTFN_BIN:-target/debug/fcx-testfn}
for b in "$FCX_BIN" "$TESTFN_BIN"; do
  [[ -x $b ]] || { echo "soak: $b is missing: cargo build -p fcx -p fcx-testfn" >&2; exit 1; }
done
work=$(mktemp -d /tmp/fcx-soak-XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$FCX_BIN" server --listen 127.0.0.1:0 --data-dir "$work/data" --auth none \
  --oci-runtime none --idle-timeout 5 >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
line=$(head -1 "$work/stdout")
addr=$(sed -E 's|.*http://([^ ]+).*|\1|' <<<"$line")
run_dir=$(sed -E 's|.*run dir ([^)]+)\).*|\1|' <<<"$line")
echo "soak: server $server_pid on $addr, run dir $run_dir, ${SOAK_SECS}s" >&2

set +e
python3 - "$addr" "$TESTFN_BIN" "$SOAK_SECS" "$SOAK_SAMPLE" "$server_pid" <<'PY'
import base64, http.client, io, json, os, random, sys, threading, time, zipfile
addr, testfn, secs, sample, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
host, port = addr.rsplit(":", 1)
rng = random.Random(13)  # seeded: the same mix every run
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo("bootstrap"); info.external_attr = 0o755 << 16
    z.writestr(info, open(testfn, "rb").read())
code = base64.b64encode(buf.getvalue()).decode()

def fn(name, idle=None):
    f = {"functionName": name, "runtime": "custom.debian12", "handler": "index.handler",
         "timeout": 10, "code": {"zipFile": code},
         "customRuntimeConfig": {"command": ["./bootstrap"], "port": 9000}}
    if idle: f["idleTimeout"] = idle
    return f

def call(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    t = time.monotonic()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse(); data = r.read()
        return r.status, data, time.monotonic() - t
    except Exception as e:
        return 0, str(e).encode(), time.monotonic() - t
    finally:
        c.close()

F = "/2023-03-30/functions"
for name in ("warm", "cold"):
    s, d, _ = call("POST", F, json.dumps(fn(name, 1 if name == "cold" else None)).encode())
    assert s == 200, d
lat, errors, lock = {}, {}, threading.Lock()
def record(kind, ok_statuses, status, data, dt):
    with lock:
        lat.setdefault(kind, []).append(dt)
        if status not in ok_statuses:
            errors.setdefault(kind, []).append((status, data[:200]))

end = time.monotonic() + secs
def sync_loop():
    while time.monotonic() < end:
        record("sync", (200,), *call("POST", f"{F}/warm/invocations", b"echo:soak"))
def async_loop():
    while time.monotonic() < end:
        record("async", (202,), *call("POST", f"{F}/warm/invocations", b"echo:a",
                                     {"x-fc-invocation-type": "Async"}))
        time.sleep(0.05)
def cold_loop():
    while time.monotonic() < end:
        record("cold", (200,), *call("POST", f"{F}/cold/invocations", b"echo:cold"))
        time.sleep(rng.uniform(1.5, 3))  # past the idle timeout: often a cold start
def deploy_loop():
    i = 0
    while time.monotonic() < end:
        name = f"churn-{i}"; i += 1
        record("deploy", (200,), *call("POST", F, json.dumps(fn(name)).encode()))
        record("deploy-invoke", (200,), *call("POST", f"{F}/{name}/invocations", b"echo:x"))
        record("delete", (204,), *call("DELETE", f"{F}/{name}"))
def sampler():
    start = time.monotonic()
    while time.monotonic() < end:
        try:
            rss = next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1]
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            rss, fds = "?", "?"
        with lock:
            n = sum(len(v) for v in lat.values()); e = sum(len(v) for v in errors.values())
        print(f"t={time.monotonic()-start:6.0f}s rss={rss} kB fds={fds} requests={n} errors={e}", flush=True)
        time.sleep(sample)
threads = [threading.Thread(target=t) for t in (sync_loop, sync_loop, async_loop, cold_loop, deploy_loop, sampler)]
for t in threads: t.start()
for t in threads: t.join()
print("kind           count   p50 ms   p99 ms   errors")
for kind, v in sorted(lat.items()):
    v.sort()
    p = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1000
    print(f"{kind:12} {len(v):7} {p(.5):8.1f} {p(.99):8.1f} {len(errors.get(kind, [])):8}")
for kind, errs in errors.items():
    for s, d in errs[:5]:
        print(f"error {kind}: {s} {d!r}")
sys.exit(1 if errors else 0)
PY
load_rc=$?
set -e

kill -TERM "$server_pid"
for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
server_pid=
procs=0
for p in /proc/[0-9]*; do
  [[ $(readlink "$p/cwd" 2>/dev/null) == "$run_dir"* ]] && procs=$((procs + 1))
done
mounts=$(grep -c -- "$run_dir" /proc/self/mountinfo || true)
# Network namespaces the server made are bind-mounted (nsfs) under its run dir.
netns=$(grep -- "$run_dir" /proc/self/mountinfo | grep -c nsfs || true)
cgroups=$(find /sys/fs/cgroup -type d -path "*fcx*" -name "*$(basename "$run_dir")*" 2>/dev/null | wc -l)
echo "leaked after stop: processes=$procs mounts=$mounts netns=$netns cgroups=$cgroups"
[[ $load_rc -eq 0 && $procs -eq 0 && $mounts -eq 0 && $netns -eq 0 && $cgroups -eq 0 ]]
