#!/usr/bin/env bash
# Portability smoke tier (not in .ci/run): proves fcx on the hosts its users have.
#  1. builds fcx (release), fcx-testfn and the test images (busybox, docker-save archives);
#  2. builds and caches a Debian 12 guest image (debootstrap, stock 6.1 cloud kernel, systemd,
#     pure cgroup v2; scripts/portability/build-guest.sh), rebuilt when its package list or
#     build files change (their hash names the cache entry);
#  3. runs the smoke suite (scripts/portability/smoke.sh) on this host (whatever its layout);
#  4. boots the guest under qemu (software emulation: -accel tcg) with the binaries and images
#     on a second disk; the guest runs the suite on itself, then inside a crun container with a
#     delegated cgroup v2 subtree and a DaemonSet's capabilities (container.sh), and reports
#     each check on its serial console;
#  5. prints one table: each check on each host, and exits non-zero if any check failed.
# Every wait is bounded; qemu is stopped by its PID, also on failure and Ctrl-C.
#
# Usage: bash scripts/portability.sh [--only host,guest,container] [--rebuild]
#   --only   a comma list of where to run the suite (default: all three)
#   --rebuild   rebuild the guest image even when cached
# Environment: FCX_PORTABILITY_CACHE (default target/portability), FCXP_WAIT (seconds per wait
# inside the suite, default 240 in the guest), FCXP_GUEST_TIMEOUT (whole guest run, default
# 2400 s), FCXP_STALL (seconds without guest output before the guest counts as stalled and
# is booted once more, default 600), FCXP_QEMU_MEM (MB, default 3072), FCX_PORTABILITY_MIRROR
# (Debian archive URL).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'portability: %s\n' "$*" >&2; exit 1; }

only=host,guest,container
rebuild=
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=${2:?--only needs host, guest or container}; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for w in ${only//,/ }; do
  case "$w" in host | guest | container) ;; *) die "--only takes a comma list of host, guest and container, not $w" ;; esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
want_vm() { want guest || want container; }

[ "$(id -u)" = 0 ] || die "run as root: the suite creates namespaces, cgroups and containers (sudo bash $0)"
export PATH="$HOME/.cargo/bin:$PATH"
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v zip >/dev/null || need+=(zip)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

started=$SECONDS
cache=${FCX_PORTABILITY_CACHE:-$repo/target/portability}
guest_timeout=${FCXP_GUEST_TIMEOUT:-2400}
mkdir -p "$cache"
run="$cache/run"
rm -rf "$run"
mkdir -p "$run"
qemu_pid=
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    say "stopping qemu (pid $qemu_pid)"
    kill -TERM "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. binaries and images -------------------------------------------------------------
say "building fcx, fcx-testfn and the test images (release)"
cargo build --release --locked -q -p fcx -p fcx-testfn
cargo build --release --locked -q -p fcx-testkit --example portability_images
payload="$run/payload"
mkdir -p "$payload/bin" "$payload/images"
cp target/release/fcx target/release/fcx-testfn "$payload/bin/"
target/release/examples/portability_images "$payload/images"
(cd "$run" && cp "$payload/bin/fcx-testfn" bootstrap && zip -q -X "$payload/testfn.zip" bootstrap && rm bootstrap)
cp scripts/portability/smoke.sh scripts/portability/guest.sh scripts/portability/container.sh "$payload/"
echo "${FCXP_WAIT:-240}" >"$payload/wait"
echo "$only" >"$payload/only"

# ---- 2. the cached guest image ----------------------------------------------------------
guest_inputs=(scripts/portability/packages.txt scripts/portability/build-guest.sh scripts/portability/fcx-portability.service)
key=$(cat "${guest_inputs[@]}" | sha256sum | cut -c1-16)
guest="$cache/guest-$key"
if want_vm; then
  if [ -n "$rebuild" ] || [ ! -f "$guest/rootfs.img" ]; then
    # Older images (another package list) go: one cached image at a time.
    find "$cache" -maxdepth 1 -name 'guest-*' ! -name "guest-$key" -exec rm -rf {} +
    rm -rf "$guest"
    built=$SECONDS
    say "building the guest image guest-$key (debootstrap; a few minutes)"
    bash scripts/portability/build-guest.sh "$guest"
    say "guest image built in $((SECONDS - built)) s"
  else
    say "guest image cached: $guest ($(du -sh "$guest/rootfs.img" | cut -f1) on disk)"
  fi
fi

# ---- 3. this host -----------------------------------------------------------------------
results="$run/results.txt"
: >"$results"
host_label="host"
if want host; then
  say "smoke suite on this host ($(uname -r))"
  FCXP_WAIT=${FCXP_HOST_WAIT:-60} bash scripts/portability/smoke.sh "$host_label" "$payload" 2>&1 |
    tee "$run/host.log" | grep --line-buffered -E '^FCXP-|^    ' || true
  grep '^FCXP-RESULT' "$run/host.log" >>"$results" || true
fi

# ---- 4. the guest -----------------------------------------------------------------------
if want_vm; then
  size_mb=$(( $(du -sm "$payload" | cut -f1) + 256 ))
  mkfs.ext4 -q -F -L payload -d "$payload" "$run/payload.img" "${size_mb}M"
  serial="$run/serial.log"
  stall=${FCXP_STALL:-600}
  # One guest run; 0 when its suite finished, 1 on the overall timeout, 2 when the guest
  # stalled (no serial output for $stall s: seen once under heavy host load, with qemu idle,
  # i.e. the guest's timers no longer firing).
  boot_guest() {
    : >"$serial"
    say "booting the guest (qemu -accel tcg, $(cat "$guest/kernel-release"); bounded by ${guest_timeout}s, ${stall}s without output)"
    qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m "${FCXP_QEMU_MEM:-3072}" \
      -display none -monitor none -no-reboot -nodefaults \
      -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
      -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 quiet loglevel=3 systemd.show_status=0 panic=-1" \
      -drive "file=$guest/rootfs.img,if=virtio,format=raw,snapshot=on" \
      -drive "file=$run/payload.img,if=virtio,format=raw" \
      -serial "file:$serial" </dev/null >"$run/qemu.log" 2>&1 &
    qemu_pid=$!
    local shown=0 lines progress=$SECONDS deadline=$((SECONDS + guest_timeout)) outcome=0
    while kill -0 "$qemu_pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then
        say "guest timed out after ${guest_timeout}s; last serial lines:"
        outcome=1
        break
      fi
      # Progress: the suite's lines as they arrive.
      lines=$(wc -l <"$serial")
      if [ "$lines" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${lines}p" "$serial" | tr -d '\r' | grep -E '^FCXP-(RESULT|NOTE)|^    ' >&2 || true
        shown=$lines
        progress=$SECONDS
      elif [ $((SECONDS - progress)) -ge "$stall" ]; then
        say "the guest stalled: no output for ${stall}s (qemu used $(ps -o time= -p "$qemu_pid") of CPU); last serial lines:"
        outcome=2
        break
      fi
      sleep 2
    done
    [ $outcome = 0 ] || tail -n 5 "$serial" | tr -d '\r' | cut -c1-200 >&2
    cleanup
    qemu_pid=
    sed -n "$((shown + 1)),\$p" "$serial" | tr -d '\r' | grep -E '^FCXP-(RESULT|NOTE)|^    ' >&2 || true
    return $outcome
  }
  booted=$SECONDS
  outcome=0
  boot_guest || outcome=$?
  if [ $outcome = 2 ]; then
    # A stalled emulator is the host's problem, not fcx's: once more, and say so.
    echo "FCXP-NOTE guest the first guest run stalled after: $(tr -d '\r' <"$serial" | grep '^FCXP-' | tail -n1 | cut -c1-120); booted again" | tee -a "$run/notes.txt" >&2
    cp "$serial" "$run/serial-stalled.log"
    outcome=0
    boot_guest || outcome=$?
  fi
  [ $outcome = 0 ] || echo "FCXP-RESULT guest boot FAIL the guest did not finish ($([ $outcome = 1 ] && echo "overall bound ${guest_timeout}s" || echo "stalled twice, ${stall}s without output"))" >>"$results"
  tr -d '\r' <"$serial" | grep '^FCXP-RESULT' >>"$results" || true
  for l in guest container; do
    tr -d '\r' <"$serial" | sed -n "/^FCXP-MOUNTINFO-$l-BEGIN/,/^FCXP-MOUNTINFO-$l-END/p" | sed '1d;$d' >"$run/$l-mountinfo.txt"
  done
  [ $outcome != 0 ] || grep -q '^FCXP-END' <(tr -d '\r' <"$serial") ||
    echo "FCXP-RESULT guest boot FAIL the guest's suite did not finish (serial log: $serial)" >>"$results"
  say "guest run took $((SECONDS - booted)) s"
fi

# ---- 5. the table -----------------------------------------------------------------------
checks=(doctor process-answers process-cgroup freeze-thaw oci-answers oci-isolation oci-pids-limit
  oci-memory-limit oci-egress systemd-reload kill9-restart non-web-server shutdown-clean)
labels=()
for l in "$host_label" guest container; do grep -q "^FCXP-RESULT $l " "$results" && labels+=("$l"); done
printf '\n%-18s' check
for l in "${labels[@]}"; do printf '%-11s' "$l"; done
printf '\n'
for c in "${checks[@]}" server-start boot; do
  row=$(for l in "${labels[@]}"; do awk -v l="$l" -v c="$c" '$2 == l && $3 == c {s = $4} END {print (s == "" ? "-" : s)}' "$results"; done)
  [ "$c" = server-start ] || [ "$c" = boot ] && ! grep -qE "^FCXP-RESULT [^ ]+ $c " "$results" && continue
  printf '%-18s' "$c"
  for s in $row; do printf '%-11s' "$s"; done
  printf '\n'
done
failed=$(grep -c '^FCXP-RESULT [^ ]* [^ ]* FAIL' "$results" || true)
missing=0
for l in "${labels[@]}"; do
  for c in "${checks[@]}"; do grep -qE "^FCXP-RESULT $l $c " "$results" || missing=$((missing + 1)); done
done
printf '\n(details: %s; wall time %d s)\n' "$results" $((SECONDS - started))
[ "${#labels[@]}" -gt 0 ] || die "no results at all"
if [ "$failed" -gt 0 ] || [ "$missing" -gt 0 ]; then
  die "$failed check(s) failed, $missing missing"
fi
say "all checks passed"
