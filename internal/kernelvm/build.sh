#!/usr/bin/env bash
# build.sh OUTDIR — prepare a Debian 6.1 kernel and a busybox initramfs that loads
# smc.ko and smc_diag.ko, for booting under QEMU with run.sh.
#
# The image goes to OUTDIR (vmlinuz, initramfs.cpio.gz), not into the cache, so
# that concurrent users never clobber each other; only the downloaded .deb and its
# extracted tree are cached, under a lock.
#
# Environment:
#   SMC_VM_CACHE        cache directory (default /var/cache/smc-kernel-vm when
#                       writable, else ${XDG_CACHE_HOME:-~/.cache}/smc-kernel-vm)
#   SMC_VM_KERNEL_PKG   kernel package (default: the newest linux-image-6.1.0-N-amd64
#                       apt-cache lists)
#   SMC_VM_MODULES      modules /init loads, in order; dependencies are added from
#                       modules.dep (default: smc smc_diag)
#   SMC_VM_NO_APT=1     never run apt-get install (fail when a tool is missing)
#
# Exit codes: 0 built; 1 a step failed; 3 a host requirement is missing (tools
# that cannot be installed, no kernel package, download failed). The last line
# on stderr says what.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT="$1"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

default_cache() {
  if [ -w /var/cache ] || [ -w /var/cache/smc-kernel-vm ]; then
    echo /var/cache/smc-kernel-vm
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/smc-kernel-vm"
  fi
}
CACHE="${SMC_VM_CACHE:-$(default_cache)}"
MODULES="${SMC_VM_MODULES:-smc smc_diag}"

log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] ERROR: %s\n' "$*" >&2; exit 1; }
missing_req() { printf '[build] MISSING: %s\n' "$*" >&2; exit 3; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

install_pkgs() {
  [ "${SMC_VM_NO_APT:-0}" = 1 ] && missing_req "packages $* (SMC_VM_NO_APT=1)"
  log "installing: $*"
  as_root apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || missing_req "packages $* (apt-get install failed; install them as root)"
}

# ---------------------------------------------------------------- host tools
export PATH="$PATH:/usr/sbin:/sbin"
# The host's busybox goes into the amd64 guest.
[ "$(uname -m)" = x86_64 ] || missing_req "an x86_64 host (this one is $(uname -m))"
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' \
  || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
command -v depmod >/dev/null || missing+=(kmod)
command -v gzip >/dev/null || missing+=(gzip)
command -v flock >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then install_pkgs "${missing[@]}"; fi
command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null \
  || missing_req "dpkg-deb and apt-get (a Debian host)"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || missing_req "$BUSYBOX from busybox-static"

mkdir -p "$CACHE/debs" "$CACHE/kernel" || missing_req "a writable cache directory $CACHE"
exec 9>"$CACHE/.lock"
flock 9 # one download/extraction at a time per cache

# ----------------------------------------------------------- kernel package
find_pkg() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
    | awk '{print $1}' | sort -V | tail -n1
}
PKG="${SMC_VM_KERNEL_PKG:-}"
if [ -z "$PKG" ]; then
  PKG="$(find_pkg)"
  if [ -z "$PKG" ]; then
    log "apt-cache knows no linux-image-6.1.0-*-amd64; running apt-get update"
    as_root apt-get update -qq || true
    PKG="$(find_pkg)"
  fi
fi
[ -n "$PKG" ] || missing_req "a linux-image-6.1.0-*-amd64 package in the apt sources (Debian 12)"
KVER="${PKG#linux-image-}"
log "kernel package: $PKG"

DEB="$(ls "$CACHE/debs/${PKG}_"*.deb 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$DEB" ]; then
  log "downloading $PKG into $CACHE/debs"
  ( cd "$CACHE/debs" && apt-get download "$PKG" 2>&1 | grep -v 'unsandboxed' >&2 || true )
  DEB="$(ls "$CACHE/debs/${PKG}_"*.deb 2>/dev/null | sort -V | tail -n1 || true)"
  [ -n "$DEB" ] || missing_req "apt-get download $PKG failed (no network or apt source?)"
fi

KROOT="$CACHE/kernel/$KVER"
if [ ! -f "$KROOT/.extracted" ] || [ "$(cat "$KROOT/.extracted")" != "$(basename "$DEB")" ]; then
  log "extracting $(basename "$DEB")"
  rm -rf "$KROOT"; mkdir -p "$KROOT"
  dpkg-deb -x "$DEB" "$KROOT"
  depmod -b "$KROOT" "$KVER"
  basename "$DEB" > "$KROOT/.extracted"
fi
MODDIR="$KROOT/lib/modules/$KVER"
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "no vmlinuz in $DEB"

# ------------------------------------------- module list (deps first, once)
ORDER=()
declare -A SEEN=()
modpath() { # module name -> path relative to MODDIR, from modules.dep
  awk -F: -v a="/$1.ko" -v b="/${1//_/-}.ko" '
    { k=$1; sub(/\.(xz|zst|gz)$/, "", k) }
    substr(k, length(k)-length(a)+1) == a || substr(k, length(k)-length(b)+1) == b { print $1; exit }' \
    "$MODDIR/modules.dep"
}
add_mod() { # adds the module's dependencies (in load order), then the module
  local rel="$1" deps i
  [ -n "${SEEN[$rel]:-}" ] && return 0
  deps="$(awk -F': *' -v r="$rel" '$1==r { print $2; exit }' "$MODDIR/modules.dep")"
  local arr=($deps)
  # modules.dep lists dependencies so that the last one loads first.
  for ((i=${#arr[@]}-1; i>=0; i--)); do add_mod "${arr[$i]}"; done
  SEEN[$rel]=1
  ORDER+=("$rel")
}
for m in $MODULES; do
  rel="$(modpath "$m")"
  [ -n "$rel" ] || die "module $m not found in $PKG"
  add_mod "$rel"
done
log "modules (load order): ${ORDER[*]##*/}"

# ------------------------------------------------------------ initramfs tree
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/smc-kernelvm-build.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
R="$STAGE/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/smc-vm,proc,sys,dev,tmp,run,root,payload,lib/modules/"$KVER"}
cp "$BUSYBOX" "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r a; do
  [ "$a" = bin/busybox ] || [ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
: > "$R/etc/smc-vm/modules.order"
for rel in "${ORDER[@]}"; do
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"
  case "$rel" in
    *.ko.xz)  xz -dc    "$MODDIR/$rel" > "$R/lib/modules/$KVER/${rel%.xz}";  rel="${rel%.xz}" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" > "$R/lib/modules/$KVER/${rel%.zst}"; rel="${rel%.zst}" ;;
    *.ko.gz)  gzip -dc  "$MODDIR/$rel" > "$R/lib/modules/$KVER/${rel%.gz}";  rel="${rel%.gz}" ;;
    *)        cp "$MODDIR/$rel" "$R/lib/modules/$KVER/$rel" ;;
  esac
  echo "$rel" >> "$R/etc/smc-vm/modules.order"
done
echo "$PKG $(basename "$DEB")" > "$R/etc/smc-vm/package"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf '127.0.0.1 localhost smcvm\n' > "$R/etc/hosts"
install -m 0755 "$HERE/init.sh" "$R/init"

( cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet ) \
  | gzip -6n > "$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
ln -sfn "$VMLINUZ" "$OUT/vmlinuz"
echo "$PKG $(basename "$DEB")" > "$OUT/package"
log "built $OUT: vmlinuz -> $VMLINUZ, initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
