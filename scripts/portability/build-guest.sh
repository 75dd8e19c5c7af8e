#!/usr/bin/env bash
# Builds the portability guest: a Debian 12 (bookworm) root filesystem made by debootstrap
# from the archive this machine's apt uses, with the packages of packages.txt, systemd as
# init (pure cgroup v2) and one unit, fcx-portability.service, that mounts the payload disk
# (/dev/vdb) and runs its guest.sh, then powers the guest off. Output, in OUT_DIR:
#   rootfs.img   ext4 image of the root filesystem (sparse; made by mkfs.ext4 -d, no loop mount)
#   vmlinuz, initrd.img   the guest's own 6.1 kernel and initramfs, for qemu -kernel/-initrd
# Usage: build-guest.sh OUT_DIR   (root; takes a few minutes; scripts/portability.sh caches it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-guest.sh OUT_DIR}
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'build-guest: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing: apt-get install -y e2fsprogs"

# The archive this machine reaches: the first Debian URI of apt's active sources (deb822
# `URIs:` lines of *.sources, `deb` lines of *.list), deb.debian.org when none is found.
apt_uris() {
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" {print $2}' || true
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" {print $2}' || true
}
mirror=${FCX_PORTABILITY_MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -n1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
packages=$(grep -vE '^\s*(#|$)' "$here/packages.txt" | tr '\n' ',' | sed 's/,$//')

work="$out.work"
rm -rf "$work"
mkdir -p "$work" "$out"
root="$work/rootfs"
cleanup() {
  # debootstrap may leave /proc and /sys mounted in the chroot when it fails.
  for m in proc sys dev/pts dev; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
  done
}
trap cleanup EXIT

say "debootstrap bookworm from $mirror (minbase + $(tr ',' ' ' <<<"$packages" | wc -w) packages)"
if ! debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed (full log: $work/debootstrap.log)"
fi

say "configuring the guest"
echo fcx-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 fcx-guest\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
# No network: the guest has no NIC; DNS servers are only read by fcx for containers.
printf 'nameserver 198.51.100.53\n' >"$root/etc/resolv.conf"
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
# Nothing but the smoke suite: no logins, no timers, no waiting for a network.
for unit in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer \
    apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
    systemd-networkd-wait-online.service systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
install -m 0644 "$here/fcx-portability.service" "$root/etc/systemd/system/fcx-portability.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/payload"
ln -sf /etc/systemd/system/fcx-portability.service \
  "$root/etc/systemd/system/multi-user.target.wants/fcx-portability.service"
# Modules the smoke suite needs, loaded at boot (veth for its egress target, overlay for
# container rootfs, tun for pasta).
printf 'overlay\nveth\ntun\n' >"$root/etc/modules-load.d/fcx.conf"

say "trimming (docs, locales, apt caches)"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel/initrd in $root/boot"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
basename "$kernel" | sed 's/^vmlinuz-//' >"$work/kernel-release"

cleanup
size_mb=$(( $(du -sm "$root" | cut -f1) + 768 ))
say "making rootfs.img (ext4, ${size_mb} MB, sparse)"
mkfs.ext4 -q -F -L fcx-guest -d "$root" "$work/rootfs.img" "${size_mb}M"
rm -rf "$root"
mv "$work/rootfs.img" "$work/vmlinuz" "$work/initrd.img" "$work/kernel-release" "$out/"
rm -rf "$work"
say "guest image ready: $out ($(du -sh --apparent-size "$out/rootfs.img" | cut -f1) apparent, $(du -sh "$out/rootfs.img" | cut -f1) on disk)"
