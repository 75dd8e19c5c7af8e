#!/usr/bin/env bash
# CRIU >= 4.2 for fcx's snapshot starts, built from Debian's own source package (sid), cached,
# with its kerndat cache on a tmpfs (/dev/shm: `make RUNDIR=/dev/shm`; on /run, which is not
# a tmpfs on every host, CRIU probes the kernel again on every restore, ~20 ms).
#
#   bash scripts/criu.sh build     # ~45 s on 2 cores after the build deps; prints the binary's path
#   bash scripts/criu.sh install   # build (cached), then install as /usr/local/sbin/criu
#   bash scripts/criu.sh path      # the cached binary's path (exit 1 when not built)
#
# Why not the distribution's package: Debian 12's criu 3.17 fails on kernel 6.x (vDSO), and
# 4.1.x fails every dump of a TCP socket ("Can't get 1:16 opt": kernel 6.18 refuses
# SO_PASSCRED on TCP); 4.2 fixes both. Adapted from the project's shared tools/criu.sh.
# Env: FCX_CRIU_CACHE (default ~/.cache/fcx-criu-shm), CRIU_VERSION (default: sid's).
set -euo pipefail
CACHE=${FCX_CRIU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fcx-criu-shm}
TARGET=/usr/local/sbin/criu
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'criu.sh: %s\n' "$*" >&2; exit 1; }

build() {
  if [ -x "$CACHE/bin/criu" ]; then echo "$CACHE/bin/criu"; return 0; fi
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/bin"
  local deps=(build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
              python3-protobuf libnl-3-dev libnet1-dev libcap-dev libaio-dev libbsd-dev libgnutls28-dev uuid-dev
              libdrm-dev iptables)
  local missing=() d
  for d in "${deps[@]}"; do dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'ok installed' || missing+=("$d"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing CRIU's build dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
      || die "cannot install CRIU's build dependencies (${missing[*]})"
  fi
  local sources uri keyring
  sources=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$sources" ] || die "no deb822 .sources file found for Debian's archive"
  uri=$(awk '/^URIs:/{print $2; exit}' "$sources")
  keyring=$(awk '/^Signed-By:/{print $2; exit}' "$sources")
  [ -n "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb-src [signed-by=$keyring] $uri sid main" > "$CACHE/apt/src.list"
  local O=(-o Dir::Etc::SourceList="$CACHE/apt/src.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$CACHE/apt/lists")
  cd "$CACHE"
  apt-get "${O[@]}" update -qq || die "cannot read Debian's sid source index"
  local want=${CRIU_VERSION:-}
  if [ -z "$want" ]; then
    want=$(apt-cache "${O[@]}" showsrc criu 2>/dev/null | awk '/^Version:/{print $2; exit}')
  fi
  [ -n "$want" ] || die "no criu source package found in sid"
  say "downloading Debian's criu $want source"
  # The orig tarball is all the build needs; the packaging tarball is not used.
  apt-get "${O[@]}" source --download-only "criu=$want" >/dev/null 2>&1 || true
  local orig
  orig=$(ls criu_*.orig.tar.* 2>/dev/null | head -1)
  [ -n "$orig" ] || die "criu orig tarball not downloaded"
  rm -rf src && mkdir src && tar -xf "$orig" -C src --strip-components=1
  say "building criu (nice, -j2, kerndat cache in /dev/shm)"
  (cd src && nice -n 10 make -j2 RUNDIR=/dev/shm criu >"$CACHE/build.log" 2>&1) || die "build failed, see $CACHE/build.log"
  cp src/criu/criu "$CACHE/bin/criu"
  rm -rf src
  "$CACHE/bin/criu" --version >&2
  echo "$CACHE/bin/criu"
}

install_criu() {
  local built
  built=$(build)
  if [ -x "$TARGET" ] && cmp -s "$built" "$TARGET"; then return 0; fi
  say "installing $built as $TARGET"
  command install -m 0755 "$built" "$TARGET"
}

case "${1:-}" in
  build) build ;;
  install) install_criu ;;
  path) [ -x "$CACHE/bin/criu" ] && echo "$CACHE/bin/criu" || exit 1 ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
