#!/usr/bin/env bash
# run.sh VMDIR PAYLOADDIR [timeout-seconds]
#
# Boots the kernel that build.sh prepared in VMDIR under QEMU, with PAYLOADDIR
# copied into the guest as /payload (it must hold run.sh; put static binaries next
# to it), prints the serial console on stdout, and exits with the exit code of
# /payload/run.sh.
#
# Exit codes: the payload's; 124 on timeout (default 120 s); 125 when the VM ended
# without the exit marker (crash, panic); 2 on usage errors.
#
# Environment:
#   SMC_VM_CACHE    where the KVM verdict is cached (see build.sh)
#   SMC_VM_ACCEL    kvm | tcg | auto (default auto: KVM when a test boot works, else TCG)
#   SMC_VM_MEM      guest RAM (default 512M)
#   SMC_VM_SMP      guest CPUs (default 2)
#   SMC_VM_APPEND   extra kernel command line (e.g. "smcvm.quiet=0")
set -uo pipefail

usage() { echo "usage: $0 VMDIR PAYLOADDIR [timeout-seconds]" >&2; exit 2; }
[ $# -ge 2 ] || usage
VMDIR="$1"; DIR="$2"; TIMEOUT="${3:-120}"
KERNEL="$VMDIR/vmlinuz"; BASE="$VMDIR/initramfs.cpio.gz"
[ -e "$KERNEL" ] && [ -f "$BASE" ] || { echo "run.sh: $VMDIR holds no image; run build.sh $VMDIR first" >&2; exit 2; }
[ -d "$DIR" ] || { echo "run.sh: $DIR is not a directory" >&2; exit 2; }
if [ -w /var/cache ] || [ -w /var/cache/smc-kernel-vm ]; then
  CACHE="${SMC_VM_CACHE:-/var/cache/smc-kernel-vm}"
else
  CACHE="${SMC_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smc-kernel-vm}"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/smc-kernelvm-run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The per-run initramfs: the base archive, then a second one holding /payload.
mkdir -p "$WORK/root/payload"
cp -a "$DIR/." "$WORK/root/payload/"
( cd "$WORK/root" && find payload -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc -R 0:0 --quiet ) | gzip -1n > "$WORK/payload.cpio.gz"
cat "$BASE" "$WORK/payload.cpio.gz" > "$WORK/initrd.img"

# KVM only when the CPU has vmx/svm, /dev/kvm is usable and a test boot reaches the
# end marker; the verdict is cached per host kernel and QEMU version. Where
# /dev/kvm exists without vmx/svm (nested, e.g. Firecracker), QEMU aborts or hangs
# right after "Booting from ROM", so TCG it is.
kvm_works() {
  grep -qE '^flags.*\b(vmx|svm)\b' /proc/cpuinfo || return 1
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  local key out
  key="$(uname -r)-$(qemu-system-x86_64 --version | head -n1 | tr -cd 'A-Za-z0-9.')"
  if [ -f "$CACHE/accel.$key" ]; then
    [ "$(cat "$CACHE/accel.$key")" = kvm ]; return
  fi
  out="$(timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 256M -nodefaults \
        -display none -serial stdio -no-reboot -kernel "$KERNEL" -initrd "$BASE" \
        -append "console=ttyS0 panic=-1 quiet" </dev/null 2>&1)"
  mkdir -p "$CACHE" 2>/dev/null
  if printf '%s' "$out" | grep -q 'SMC-VM-END'; then
    echo kvm > "$CACHE/accel.$key" 2>/dev/null; return 0
  fi
  echo tcg > "$CACHE/accel.$key" 2>/dev/null; return 1
}
ACCEL="${SMC_VM_ACCEL:-auto}"
if [ "$ACCEL" = auto ]; then
  if kvm_works; then ACCEL=kvm; else ACCEL=tcg; fi
fi
case "$ACCEL" in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
  tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
  *) echo "run.sh: SMC_VM_ACCEL must be kvm, tcg or auto" >&2; exit 2 ;;
esac

# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check
# can fail and panic ("IO-APIC + timer doesn't work"); the check proves nothing here.
APPEND="console=ttyS0,115200 panic=-1 oops=panic loglevel=4 quiet no_timer_check ${SMC_VM_APPEND:-}"
echo "[run] accel=$ACCEL timeout=${TIMEOUT}s kernel=$(readlink -f "$KERNEL" | xargs basename)" >&2
START=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 "${ACCEL_ARGS[@]}" \
  -m "${SMC_VM_MEM:-512M}" -smp "${SMC_VM_SMP:-2}" \
  -nographic -no-reboot -nodefaults -serial mon:stdio \
  -kernel "$KERNEL" -initrd "$WORK/initrd.img" -append "$APPEND" \
  </dev/null 2>&1 | tee "$WORK/console.log"
QRC=${PIPESTATUS[0]}
ELAPSED=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')

if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
  echo "[run] TIMEOUT after ${TIMEOUT}s (accel=$ACCEL)" >&2
  exit 124
fi
CODE="$(tr -d '\r' < "$WORK/console.log" | sed -n 's/^.*SMC-VM-EXIT-CODE=\([0-9][0-9]*\).*$/\1/p' | tail -n1)"
if [ -z "$CODE" ] || ! tr -d '\r' < "$WORK/console.log" | grep -q 'SMC-VM-END'; then
  echo "[run] VM exited (qemu rc=$QRC) without the end marker after ${ELAPSED}s" >&2
  exit 125
fi
echo "[run] payload exit code $CODE; wall ${ELAPSED}s (accel=$ACCEL)" >&2
exit "$CODE"
