#!/bin/busybox sh
# /init of the kernel VM (build.sh copies it into the initramfs).
#
# It mounts proc, sysfs, devtmpfs, tmpfs, cgroup2 (/sys/fs/cgroup) and bpffs
# (/sys/fs/bpf), brings lo up, loads the modules build.sh listed, runs
# /payload/run.sh, prints SMC-VM-EXIT-CODE=<rc> and the end marker, and powers off.
# Kernel command line: smcvm.quiet=0 keeps printk on the console while the payload
# runs.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "smcvm: cgroup2 mount failed"
mount -t bpf bpf /sys/fs/bpf || echo "smcvm: bpffs mount failed"
hostname smcvm

QUIET=1
for a in $(cat /proc/cmdline); do
  [ "$a" = smcvm.quiet=0 ] && QUIET=0
done

ip link set lo up || echo "smcvm: lo up failed"

KVER="$(uname -r)"
while read -r rel; do
  [ -n "$rel" ] || continue
  insmod "/lib/modules/$KVER/$rel" || echo "smcvm: insmod $rel failed"
done < /etc/smc-vm/modules.order
echo "smcvm: kernel $KVER ($(cat /etc/smc-vm/package)); modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
echo "smcvm: uptime at payload start: $(cut -d' ' -f1 /proc/uptime)s"
[ "$QUIET" = 1 ] && dmesg -n 1

RC=0
if [ -f /payload/run.sh ]; then
  echo "===== SMC-VM-PAYLOAD-BEGIN ====="
  cd /payload
  sh /payload/run.sh
  RC=$?
  cd /
  echo "===== SMC-VM-PAYLOAD-END ====="
else
  echo "smcvm: no /payload/run.sh"
fi
echo "SMC-VM-EXIT-CODE=$RC"
echo "===== SMC-VM-END ====="
sync
poweroff -f
# Not reached; should poweroff fail, init exits, the kernel panics, and QEMU
# (-no-reboot) exits.
sleep 2
exit "$RC"
