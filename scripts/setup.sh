#!/usr/bin/env bash
# Installs what fcx needs to build, run its examples and pass its tests on Debian 12:
# system packages (only those missing, including the OCI backend's crun, nftables and pasta
# for outbound networking, and its tests' registry, busybox and htpasswd; chromium for the
# browser test), the hybrid-cgroup fix crun needs, the Rust toolchain check, and the Express
# examples' npm dependencies. Idempotent, and silent when nothing is
# needed: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }
warn() { printf 'setup: warning: %s\n' "$*" >&2; }
changed=0

[ "$(id -u)" = 0 ] || die "run as root: fcx creates network namespaces and installs packages (try: sudo $0)"

# command -> Debian package providing it
declare -A wanted=(
  [node]=nodejs [npm]=npm [python3]=python3 [zip]=zip [curl]=curl
  [cc]=gcc [make]=make [pkg-config]=pkg-config [ip]=iproute2
  # The OCI backend: its runtime; egress of internetAccess instances: nft (veth egress, the
  # default, and pasta's guard) and pasta (--egress pasta); the tests run a local registry
  # with htpasswd auth and build images around a static busybox.
  [crun]=crun [nft]=nftables [pasta]=passt [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  # Observability tests: a real Prometheus scrapes fcx (promtool checks its output), and a
  # headless Chromium screenshots the status page.
  [prometheus]=prometheus [promtool]=prometheus [chromium]=chromium
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
[ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
# Test images copy /bin/busybox into themselves: only the static build runs there alone.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
  || missing+=(busybox-static)
# `python3 -m venv` (the official FC SDK the signed-request tests run) needs ensurepip.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# Packages whose install may start a system service (prometheus listens on :9090): the
# processes of that name running before are remembered, and only those the install started
# are stopped afterwards, by pid.
services=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
  declare -A before=()
  for name in "${services[@]}"; do before[$name]=" $( (pgrep -x "$name" || true) | tr '\n' ' ') "; done
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # `sort -u`: prometheus provides two commands.
  mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt-get install -y -qq --no-install-recommends "${unique[@]}" ca-certificates >/dev/null
  for name in "${services[@]}"; do
    for pid in $(pgrep -x "$name" || true); do
      case "${before[$name]}" in *" $pid "*) continue ;; esac
      say "stopping the $name service the install started (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  changed=1
fi

# crun refuses every container on a hybrid host (v1 controllers plus a cgroup2 mount) while
# the cgroup2 mount still owns a controller ("cgroups in hybrid mode not supported, drop all
# controllers from cgroupv2"). Mounting each such controller as its own v1 hierarchy moves it
# off cgroup2. Lasts until reboot; `fcx doctor --fix` does the same.
# PostgreSQL 15 for the tests of the shared store (they run their own servers in temporary
# directories as the unprivileged `postgres` user). The package must not leave a cluster
# running: createcluster.conf stops it from making one; a cluster the install still started
# is stopped by its PID and set to manual start. Clusters that existed before are not touched.
if [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
  say "installing PostgreSQL 15 (for the shared-store tests; no cluster is created or started)"
  mkdir -p /etc/postgresql-common
  [ -e /etc/postgresql-common/createcluster.conf ] \
    || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  before=$(ls /etc/postgresql/15 2>/dev/null || true)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
    postgresql-15 postgresql-client-15 >/dev/null
  for cluster in $(ls /etc/postgresql/15 2>/dev/null || true); do
    grep -qx "$cluster" <<<"$before" && continue
    pidfile=/var/lib/postgresql/15/$cluster/postmaster.pid
    [ -f "$pidfile" ] && kill -INT "$(head -1 "$pidfile")" 2>/dev/null || true
    echo manual > "/etc/postgresql/15/$cluster/start.conf"
    warn "the postgresql-15 package made cluster 15/$cluster: stopped it and set it to manual start"
  done
  changed=1
fi

fix_hybrid_cgroups() {
  # mountinfo: field 5 is the mount point, 6 its options, and the fs type follows the "-".
  local mounts unified parent controllers c dir err
  mounts=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { print $(i+1), $5, $6; break }}' /proc/self/mountinfo)
  unified=$(awk '$1 == "cgroup2" {print $2; exit}' <<<"$mounts")
  parent=$(awk '$1 == "cgroup" {print $2; exit}' <<<"$mounts")
  [ -n "$unified" ] && [ -n "$parent" ] || return 0   # pure v2 or pure v1: nothing to do
  controllers=$(cat "$unified/cgroup.controllers" 2>/dev/null || true)
  [ -n "$controllers" ] || return 0
  parent=$(dirname "$parent")
  local why="crun refuses containers until cgroup2 at $unified owns no controllers ($controllers);"
  local instead="or boot with systemd.unified_cgroup_hierarchy=1 (pure cgroup v2)"
  local parent_opts
  parent_opts=$(awk -v p="$parent" '$1 == "tmpfs" && $2 == p {print $3; exit}' <<<"$mounts")
  if [ -z "$parent_opts" ]; then
    warn "$why $parent is not a tmpfs where v1 hierarchies could be mounted; $instead"
    return 0
  fi
  for c in $controllers; do
    dir="$parent/$c"
    say "hybrid cgroups: moving the $c controller off cgroup2: mkdir -p $dir && mount -t cgroup -o $c cgroup $dir"
    if [ ! -d "$dir" ]; then
      if [[ ",$parent_opts," == *,ro,* ]]; then
        # systemd mounts the cgroup tmpfs read-only on hybrid hosts: open it for the mkdir only.
        mount -o remount,rw "$parent" && mkdir -p "$dir" || true
        mount -o remount,ro "$parent" || true
      else
        mkdir -p "$dir" || true
      fi
    fi
    if [ ! -d "$dir" ]; then
      warn "$why cannot create $dir; $instead"
      return 0
    fi
    if ! err=$(mount -t cgroup -o "$c" cgroup "$dir" 2>&1); then
      warn "$why mount -t cgroup -o $c cgroup $dir failed: $err (is $c enabled in a cgroup2 subtree_control?); $instead"
      return 0
    fi
    changed=1
  done
}
fix_hybrid_cgroups

# Debian 12's own rustc (1.63) is too old; fcx needs a rustup toolchain.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found. Install Rust with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \$HOME/.cargo/env
(Debian's rustc 1.63 is too old for fcx; it needs Rust 1.80 or newer.)"
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
[ "${rust_minor:-0}" -ge 80 ] || die "rustc $(rustc --version) is too old: fcx needs 1.80 or newer (rustup update stable)"

# Snapshot starts need CRIU 4.2+ (Debian 12's 3.17 fails on this kernel): built once from
# Debian's source package and cached (scripts/criu.sh). Without it fcx still runs, snapshot-
# enabled functions start cold, and the snapshot tests say they were skipped and why.
criu_ok() {
  local v
  v=$(criu --version 2>/dev/null | awk '/^Version:/{print $2}') || return 1
  [ -n "$v" ] && [ "$(printf '%s\n4.2\n' "$v" | sort -V | head -1)" = 4.2 ]
}
if ! criu_ok; then
  say "building CRIU 4.2 for snapshot starts (scripts/criu.sh install; cached after the first time)"
  if bash scripts/criu.sh install; then
    changed=1
  else
    warn "CRIU could not be built (see above): snapshot starts are off on this host, and their tests skip"
  fi
fi

for app in express-event express-http; do
  if [ ! -d "examples/$app/node_modules/express" ]; then
    say "installing the $app example's dependencies (npm ci)"
    (cd "examples/$app" && npm ci --no-audit --no-fund --loglevel=error)
    changed=1
  fi
done

# Headless Chromium: the HTTP-trigger test loads a page in a real browser.
if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium (headless browser for the HTTP-trigger tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    changed=1
  else
    warn "chromium could not be installed: the browser test will be skipped"
  fi
fi
[ "$changed" = 0 ] || say "setup complete"
