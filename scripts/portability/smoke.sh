#!/bin/bash
# The portability smoke suite: one fcx server on loopback, a few functions, each check
# printed as one line `FCXP-RESULT <label> <check> PASS|FAIL|SKIP <detail>`, in this order:
#   doctor            `fcx doctor` passes, or says what to fix (then `fcx doctor --fix`)
#   process-answers   a process-backend function (fcx-testfn) answers
#   process-cgroup    its instance is in its own cgroup v2 group
#   freeze-thaw       the idle instance is frozen (cgroup.freeze), and thawed by a request
#   oci-answers       a container from an imported image (busybox) answers
#   oci-isolation     ps in the container shows only its own processes
#   oci-pids-limit    the container's pids.max is the server's --pids-limit
#   oci-memory-limit  its group has the memorySize limit, and a memory hog is OOM-killed
#   oci-egress        internetAccess reaches a target in a veth netns this script made
#   systemd-reload    (systemd hosts) `systemctl daemon-reload` leaves fcx's groups and the
#                     controllers they use alone, and the container answers after it
#   kill9-restart     kill -9 of fcx, restart: every old instance process, group and mount
#                     is gone, and the function answers again
#   non-web-server    a non-web-server container function (webServerMode false) runs
#   shutdown-clean    SIGTERM: the server exits and leaves no groups behind
# Runs on this host (hybrid cgroups), in the guest (pure v2) and in a container in the guest.
# Usage: smoke.sh LABEL PAYLOAD_DIR   (root; PAYLOAD_DIR has bin/fcx, testfn.zip, images/)
# Every wait is bounded by FCXP_WAIT seconds (default 180: the guest is emulated).
set -u
label=${1:?usage: smoke.sh LABEL PAYLOAD_DIR}
payload=${2:?usage: smoke.sh LABEL PAYLOAD_DIR}
fcx=$payload/bin/fcx
wait_s=${FCXP_WAIT:-180}
work=${FCXP_WORK:-/var/tmp/fcxp-$label}
data=$work/data
tmp=$work/tmp
target_ns=fcxp-target-$$
target_if=fcxp$$
target_ip=198.51.100.2 # TEST-NET-2: documentation range, lives in target_ns only
server_pid=
httpd_pid=
added_default=
failed=0

result() { # check status detail...
  local check=$1 status=$2
  shift 2
  [ "$status" = FAIL ] && failed=$((failed + 1))
  # One line per check, whatever the detail holds.
  printf 'FCXP-RESULT %s %s %s %s\n' "$label" "$check" "$status" "$(printf '%s' "$*" | tr '\n\t' '  ' | cut -c1-400)"
}
note() { printf 'FCXP-NOTE %s %s\n' "$label" "$*"; }

cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "$httpd_pid" ] && kill "$httpd_pid" 2>/dev/null && wait "$httpd_pid" 2>/dev/null
  [ -n "$added_default" ] && ip route del default via "$target_ip" dev "${target_if}h" 2>/dev/null
  ip link del "${target_if}h" 2>/dev/null
  ip netns del "$target_ns" 2>/dev/null
  # A killed server's leftovers go with one more start and stop (what the suite checks);
  # whatever remains is only in $work.
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$work"
mkdir -p "$data" "$tmp"

# ---- helpers ---------------------------------------------------------------------------

# until SECONDS CMD...: runs CMD every 0.2 s until it succeeds (0) or SECONDS pass (1).
until_ok() {
  local deadline=$((SECONDS + $1))
  shift
  while ! "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

addr=
start_server() {
  : >"$work/server.log"
  FCX_LOG=${FCX_LOG:-info} "$fcx" server --listen 127.0.0.1:0 --data-dir "$data" --auth none \
    --freeze-idle-after 2 --pids-limit 64 --start-timeout "$wait_s" \
    >>"$work/server.log" 2>&1 </dev/null &
  server_pid=$!
  listening() { grep -q 'listening on http://' "$work/server.log" || ! kill -0 "$server_pid" 2>/dev/null; }
  until_ok "$wait_s" listening
  addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/server.log" | tail -n1)
  [ -n "$addr" ] && kill -0 "$server_pid" 2>/dev/null
}
server_tail() { tail -n 15 "$work/server.log" | sed 's/^/    server: /'; }

# api METHOD PATH [BODY_FILE] -> status code on stdout, body in $tmp/body, headers in $tmp/headers
api() {
  local args=(-sS --max-time "$wait_s" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$1")
  [ $# -ge 3 ] && args+=(-H 'content-type: application/json' --data-binary "@$3")
  curl "${args[@]}" "http://$addr$2" 2>"$tmp/curl.err" || echo 000
}
# invoke NAME PAYLOAD -> status; answer in $tmp/body
invoke() {
  printf '%s' "$2" >"$tmp/payload"
  api POST "/2023-03-30/functions/$1/invocations" "$tmp/payload"
}
header() { sed -n "s/^$1: *\\(.*\\)\\r\$/\\1/Ip" "$tmp/headers" | tail -n1; }
body() { cat "$tmp/body" 2>/dev/null; }
create() { # NAME JSON
  printf '%s' "$2" >"$tmp/create.json"
  local code
  code=$(api POST /2023-03-30/functions "$tmp/create.json")
  [ "$code" = 200 ] || { note "CreateFunction $1: HTTP $code $(body)"; return 1; }
}
# The cgroup v2 directory of instance ID (fcx names groups by instance id).
cgroup2=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup2") print $5; break }}' /proc/self/mountinfo | head -n1)
group_of() { find "$cgroup2" -maxdepth 8 -type d -name "$1" 2>/dev/null | head -n1; }
# Every cgroup directory named ID, in every hierarchy (v1 ones too).
groups_named() { find /sys/fs/cgroup -maxdepth 9 -type d -name "$1" 2>/dev/null; }

# ---- the egress target: a TCP server in a netns of its own, joined by a veth ----------
setup_target() {
  ip netns add "$target_ns" &&
    ip link add "${target_if}h" type veth peer name "${target_if}t" &&
    ip link set "${target_if}t" netns "$target_ns" &&
    ip addr add 198.51.100.1/30 dev "${target_if}h" && ip link set "${target_if}h" up &&
    ip -n "$target_ns" addr add "$target_ip/30" dev "${target_if}t" &&
    ip -n "$target_ns" link set "${target_if}t" up && ip -n "$target_ns" link set lo up ||
    return 1
  # pasta copies the host's default route into instances: a guest without a network gets
  # one through the target (which then stands for the internet).
  if ! ip route show default | grep -q .; then
    ip route add default via "$target_ip" dev "${target_if}h" && added_default=1
  fi
  # A greeting server (busybox-static's wget and httpd crash on Debian 12: static NSS).
  ip netns exec "$target_ns" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b"egress-ok\n"); c.close()' "$target_ip" &
  httpd_pid=$!
  up() { timeout 5 bash -c "exec 3<>/dev/tcp/$target_ip/8080 && head -n1 <&3" 2>/dev/null | grep -q egress-ok; }
  until_ok 60 up
}

# ---- the checks ---------------------------------------------------------------------------
note "kernel $(uname -r); $(grep -c . /proc/self/mountinfo) mounts; cgroup2 at ${cgroup2:-none}; in cgroup $(grep '^0::' /proc/self/cgroup | cut -d: -f3)"

if [ -n "${FCXP_DUMP_MOUNTINFO:-}" ]; then
  # For the native suite's fixtures (crates/fcx-runtime/tests/fixtures/).
  echo "FCXP-MOUNTINFO-$label-BEGIN"
  cat /proc/self/mountinfo
  echo "FCXP-MOUNTINFO-$label-END"
fi

# doctor
"$fcx" doctor --data-dir "$data" >"$work/doctor.txt" 2>&1
doctor_rc=$?
if [ $doctor_rc = 0 ]; then
  result doctor PASS "$(tail -n1 "$work/doctor.txt")"
else
  said=$(grep -E '^  (FAIL|WARN)|fix:' "$work/doctor.txt")
  sed 's/^/    doctor: /' "$work/doctor.txt"
  "$fcx" doctor --fix --data-dir "$data" >"$work/doctor-fix.txt" 2>&1
  if [ $? = 0 ]; then
    result doctor PASS "after --fix ($(grep -- '^--fix:' "$work/doctor-fix.txt" | tr '\n' ' ')); before, it said: $said"
  else
    sed 's/^/    doctor --fix: /' "$work/doctor-fix.txt"
    result doctor FAIL "$said"
  fi
fi

setup_target || note "egress target setup failed"

if ! start_server; then
  server_tail
  if kill -0 "$server_pid" 2>/dev/null; then
    result server-start FAIL "no listening line within ${wait_s}s"
  else
    result server-start FAIL "the server exited: $(grep -vE '^[0-9T:.-]+Z ' "$work/server.log" | head -n 4)"
  fi
  exit 1
fi
note "server at $addr (pid $server_pid)"

# process-backend function: fcx-testfn
testfn_zip=$(base64 -w0 "$payload/testfn.zip")
create proc "{\"functionName\":\"proc\",\"runtime\":\"custom.debian12\",\"handler\":\"index.handler\",
  \"timeout\":60,\"code\":{\"zipFile\":\"$testfn_zip\"},
  \"customRuntimeConfig\":{\"command\":[\"./bootstrap\"],\"port\":9000}}"
code=$(invoke proc 'echo:hello-process')
proc_id=$(header x-fc-instance-id)
if [ "$code" = 200 ] && [ "$(body)" = hello-process ]; then
  result process-answers PASS "instance $proc_id"
else
  server_tail
  result process-answers FAIL "HTTP $code: $(body)"
fi

proc_group=$(group_of "$proc_id")
proc_pids=
proc_pids=$([ -n "$proc_group" ] && tr '\n' ' ' <"$proc_group/cgroup.procs")
if [ -n "$proc_id" ] && [ -n "$proc_group" ] && [ -n "${proc_pids// /}" ]; then
  result process-cgroup PASS "${proc_group#"$cgroup2"} holds pids $proc_pids"
else
  result process-cgroup FAIL "no populated group named '$proc_id' under ${cgroup2:-the cgroup2 mount}"
fi

frozen() { grep -qx 'frozen 1' "$proc_group/cgroup.events" 2>/dev/null; }
if [ -z "$proc_group" ]; then
  result freeze-thaw SKIP "no group"
elif ! until_ok "$wait_s" frozen; then
  result freeze-thaw FAIL "not frozen ${wait_s}s after its request (--freeze-idle-after 2)"
else
  code=$(invoke proc 'echo:thawed')
  if [ "$code" = 200 ] && [ "$(body)" = thawed ] && [ "$(header x-fc-instance-id)" = "$proc_id" ]; then
    result freeze-thaw PASS "frozen while idle, the same instance answered after thawing"
  else
    result freeze-thaw FAIL "after freezing: HTTP $code $(body) from $(header x-fc-instance-id)"
  fi
fi

# OCI functions from imported images
imported=1
for img in busybox-web busybox-event; do
  if ! "$fcx" image import "$payload/images/$img.tar" --data-dir "$data" >"$tmp/import" 2>&1; then
    note "image import $img: $(cat "$tmp/import")"
    imported=
  fi
done
create web "{\"functionName\":\"web\",\"runtime\":\"custom-container\",\"handler\":\"h\",
  \"timeout\":60,\"memorySize\":128,\"internetAccess\":true,
  \"customContainerConfig\":{\"image\":\"portability/busybox-web:v1\",\"port\":9000}}"
code=$(invoke web 'echo oci-ok')
web_id=$(header x-fc-instance-id)
if [ "$code" = 200 ] && [ "$(body)" = oci-ok ]; then
  result oci-answers PASS "instance $web_id"
  oci=1
else
  server_tail
  result oci-answers FAIL "${imported:+}HTTP $code: $(body | cut -c1-300)"
  oci=
fi

if [ -n "$oci" ]; then
  invoke web 'ps -o pid,comm' >/dev/null
  procs=$(body | awk 'NR > 1 {print $2}' | sort | tr '\n' ' ')
  foreign=$(body | awk 'NR > 1 {print $2}' | grep -vxE 'sh|fcx-serve|fcx-handle|ps|nc|cat|httpd|sleep|busybox' | tr '\n' ' ')
  if body | awk 'NR > 1 && $1 == 1' | grep -q . && [ -z "$foreign" ] && [ "$(body | wc -l)" -le 12 ]; then
    result oci-isolation PASS "processes: $procs"
  else
    result oci-isolation FAIL "ps shows: $(body)"
  fi

  invoke web 'cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max' >/dev/null
  if [ "$(body)" = 64 ]; then
    result oci-pids-limit PASS "pids.max 64 inside the container"
  else
    result oci-pids-limit FAIL "pids.max reads '$(body)' (want 64)"
  fi

  # The limit sits on fcx's group of the instance (the container's group is below it).
  limit=
  for g in $(groups_named "$web_id"); do
    for f in memory.max memory.limit_in_bytes; do
      [ -f "$g/$f" ] && limit="$limit $(cat "$g/$f")@${g#/sys/fs/cgroup}/$f"
    done
  done
  code=$(invoke web 'x=aaaaaaaa; while true; do x="$x$x"; done')
  hog_code=$code
  code=$(invoke web 'echo alive')
  alive=$(body)
  if [[ "$limit" == *134217728@* ]] && [ "$hog_code" != 000 ] && [ "$alive" = alive ]; then
    result oci-memory-limit PASS "limit$limit; the hog request ended (HTTP $hog_code), the instance answers after"
  else
    server_tail
    result oci-memory-limit FAIL "limit '${limit:-none found}'; hog HTTP $hog_code; then '$alive'"
  fi

  invoke web "timeout 30 nc $target_ip 8080 </dev/null 2>&1 | head -n1" >/dev/null
  if [ "$(body)" = egress-ok ]; then
    result oci-egress PASS "reached $target_ip:8080 in the netns $target_ns"
  else
    result oci-egress FAIL "nc $target_ip 8080: $(body)"
  fi

  # fcx's groups live in its own top-level tree (/fcx), outside systemd's units, as
  # Docker's cgroupfs driver does: a reload must not take controllers away from it.
  if [ "$(cat /proc/1/comm)" = systemd ] && command -v systemctl >/dev/null; then
    before=$(cat "$cgroup2/cgroup.subtree_control")
    group=$(group_of "$web_id")
    given=$(cat "$group/cgroup.subtree_control" 2>/dev/null)
    systemctl daemon-reload
    after=$(cat "$cgroup2/cgroup.subtree_control")
    code=$(invoke web 'cat /sys/fs/cgroup/pids.max')
    if [ "$code" = 200 ] && [ "$(body)" = 64 ] && [ "$(cat "$group/cgroup.subtree_control" 2>/dev/null)" = "$given" ] &&
      [[ " $after " == *" memory "* && " $after " == *" pids "* ]]; then
      result systemd-reload PASS "root hands on '$after' (was '$before'); ${group#"$cgroup2"} keeps '$given'"
    else
      result systemd-reload FAIL "root '$before' -> '$after'; group '$given' -> '$(cat "$group/cgroup.subtree_control" 2>/dev/null)'; HTTP $code $(body)"
    fi
  else
    result systemd-reload SKIP "init is $(cat /proc/1/comm), not systemd"
  fi
else
  for c in oci-isolation oci-pids-limit oci-memory-limit oci-egress systemd-reload; do
    result "$c" SKIP "no OCI instance"
  done
fi

# kill -9, then restart
old_pids="$proc_pids"
old_groups=""
for id in $proc_id $web_id; do
  for g in $(groups_named "$id"); do
    old_groups="$old_groups $g"
    [ -f "$g/cgroup.procs" ] && old_pids="$old_pids $(cat "$g/cgroup.procs" | tr '\n' ' ')"
    [ -f "$g/ctr/cgroup.procs" ] && old_pids="$old_pids $(cat "$g/ctr/cgroup.procs" | tr '\n' ' ')"
  done
done
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=
sleep 1
survivors=0
for p in $(printf '%s\n' $old_pids | sort -u); do
  [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && survivors=$((survivors + 1))
done
note "1 s after kill -9 of fcx: $survivors of $(printf '%s\n' $old_pids | sort -u | wc -w) instance processes still run (the restart must reap them)"
if start_server; then
  code=$(invoke proc 'echo:again')
  again=$(body)
  # Exited processes may linger as zombies until the pid namespace's init reaps them.
  running() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
  old_pids=$(printf '%s\n' $old_pids | sort -u)
  still() {
    alive_pids=""
    for p in $old_pids; do
      running "$p" && alive_pids="$alive_pids $p($(cat "/proc/$p/comm" 2>/dev/null))"
    done
    [ -z "$alive_pids" ]
  }
  until_ok 10 still
  left_groups=""
  for g in $old_groups; do [ -d "$g" ] && left_groups="$left_groups ${g#/sys/fs/cgroup}"; done
  left_mounts=$(grep -cE "${web_id:-no-such-instance}" /proc/self/mountinfo)
  if [ -z "$alive_pids" ] && [ -z "$left_groups" ] && [ "$left_mounts" = 0 ] && [ "$again" = again ]; then
    result kill9-restart PASS "$(echo $old_pids | wc -w) old processes and $(echo $old_groups | wc -w) groups gone; the function answers again"
  else
    server_tail
    result kill9-restart FAIL "alive:${alive_pids:- none}; groups:${left_groups:- none}; mounts: $left_mounts; then HTTP $code '$again'"
  fi
else
  server_tail
  result kill9-restart FAIL "the server did not start again"
fi

# non-web-server container function
if [ -n "$server_pid" ]; then
  create event "{\"functionName\":\"event\",\"runtime\":\"custom-container\",\"handler\":\"h\",
    \"timeout\":60,\"memorySize\":128,\"internetAccess\":false,
    \"customContainerConfig\":{\"image\":\"portability/busybox-event:v1\",\"webServerMode\":false}}"
  code=$(invoke event '{"k":"v"}')
  if [ "$code" = 200 ] && [ "$(body)" = '{"k":"v"}' ]; then
    result non-web-server PASS "the event came back from the container"
  else
    server_tail
    result non-web-server FAIL "HTTP $code: $(body | cut -c1-300)"
  fi
fi

# clean shutdown
if [ -n "$server_pid" ]; then
  prefix=$(sed -n 's/.*run dir [^ ]*\/\(fcx-[0-9a-f]*\)).*/\1/p' "$work/server.log" | tail -n1)
  kill -TERM "$server_pid"
  gone() { ! kill -0 "$server_pid" 2>/dev/null; }
  if until_ok "$wait_s" gone; then
    wait "$server_pid" 2>/dev/null
    server_pid=
    left=$(find /sys/fs/cgroup -maxdepth 6 -type d -name "${prefix:-no-prefix}" 2>/dev/null | tr '\n' ' ')
    if [ -n "$prefix" ] && [ -z "$left" ]; then
      result shutdown-clean PASS "no group $prefix left"
    else
      result shutdown-clean FAIL "prefix '${prefix}'; left: ${left:-none}"
    fi
  else
    result shutdown-clean FAIL "still running ${wait_s}s after SIGTERM"
  fi
fi

note "done: $failed failed"
[ $failed = 0 ]
