#!/usr/bin/env bash
# A tiny Linux guest for QEMU: Debian's cloud kernel and its virtio-net
# modules, and an initramfs of busybox whose init brings eth0 up, pings a
# peer, moves bytes over TCP both ways with checksums, and powers off.
#
#   bash scripts/guest.sh DIR      -> DIR/vmlinuz DIR/initramfs.gz
#
# The downloaded packages are kept in DIR, so a second run is fast. The
# guest is told what to do on the kernel command line (init takes unknown
# `name=value` parameters as its environment; `ip=` is the kernel's own):
#   guest_ip=    eth0's address with its prefix (10.9.0.2/24)
#   guest_peer=  the address to ping and to send to
#   guest_mtu=   eth0's MTU (optional)
#   up_port=     send up_mib MiB of random bytes to guest_peer:up_port
#   down_port=   listen here and checksum what arrives
#   serve=1      then start `iperf3 -s` and stay up (bench/vm.sh)
# GUEST_TOOLS="iperf3 ..." adds those host programs and their libraries.
# Every line the test reads begins with "guest: ".
set -euo pipefail
out=${1:?usage: guest.sh DIR}

# apt-get download PKG into the current directory; on a failure the
# package lists may be stale or missing: refresh them once and retry.
fetch() {
    apt-get download -q "$1" >/dev/null 2>&1 && return
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    apt-get download -q "$1" >/dev/null
}
mkdir -p "$out"
cd "$out"

# In load order: virtio_pci and virtio_net and what they depend on.
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"

# The cloud kernel: the smallest of Debian's, virtio as modules. Only the
# kernel and those modules are kept.
if [ ! -e vmlinuz ]; then
    rm -rf kernel.tmp modules && mkdir -p kernel.tmp modules
    (cd kernel.tmp && fetch linux-image-cloud-amd64 && dpkg-deb -f ./*.deb Depends >depends)
    # The meta-package names the kernel: linux-image-6.1.0-NN-cloud-amd64.
    pkg=$(tr ',' '\n' <kernel.tmp/depends | awk '/linux-image-[0-9]/ { print $1; exit }')
    [ -n "$pkg" ] || { echo "guest: linux-image-cloud-amd64 names no kernel" >&2; exit 1; }
    rm -f kernel.tmp/*.deb
    (cd kernel.tmp && fetch "$pkg" && dpkg-deb -x ./*.deb root)
    for m in $mods; do
        f=$(find kernel.tmp/root/lib/modules -name "$m.ko*" | head -n 1)
        [ -n "$f" ] || { echo "guest: module $m not in $pkg" >&2; exit 1; }
        cp "$f" modules/
    done
    cp kernel.tmp/root/boot/vmlinuz-* vmlinuz.tmp
    rm -rf kernel.tmp
    mv vmlinuz.tmp vmlinuz
fi

# A static busybox: the installed one (busybox-static), or its package.
bb=/bin/busybox
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    if [ ! -e busybox ]; then
        rm -rf bb.tmp && mkdir bb.tmp
        (cd bb.tmp && fetch busybox-static && dpkg-deb -x ./*.deb root)
        cp bb.tmp/root/bin/busybox busybox.tmp && mv busybox.tmp busybox
        rm -rf bb.tmp
    fi
    bb=$PWD/busybox
fi

rm -rf initramfs && mkdir -p initramfs/bin initramfs/lib/modules initramfs/proc initramfs/sys initramfs/dev initramfs/tmp
cp "$bb" initramfs/bin/busybox
cp modules/* initramfs/lib/modules/
for t in ${GUEST_TOOLS:-}; do
    bin=$(command -v "$t") || { echo "guest: no $t on this host" >&2; exit 1; }
    for f in "$bin" $(ldd "$bin" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
        mkdir -p "initramfs$(dirname "$f")"
        cp -L "$f" "initramfs$f"
    done
done
cat > initramfs/init <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $mods; do insmod /lib/modules/\$m.ko* || echo "guest: insmod \$m failed"; done
EOF
cat >> initramfs/init <<'EOF'
ip link set lo up
[ -z "$guest_mtu" ] || ip link set eth0 mtu "$guest_mtu" || echo "guest: mtu $guest_mtu refused"
ip addr add "$guest_ip" dev eth0 && ip link set eth0 up
echo "guest: eth0 $(cat /sys/class/net/eth0/address) mtu $(cat /sys/class/net/eth0/mtu)"
if ping -c 3 -W 5 -w 20 "$guest_peer" >/tmp/ping 2>&1; then
    echo "guest: ping ok"
else
    echo "guest: ping failed"; cat /tmp/ping
fi
if [ -n "$up_port" ]; then
    dd if=/dev/urandom of=/tmp/up bs=1048576 count="${up_mib:-4}" 2>/dev/null
    echo "guest: up sha256 $(sha256sum /tmp/up | cut -d' ' -f1)"
    timeout 60 nc "$guest_peer" "$up_port" </tmp/up >/dev/null && echo "guest: sent ok" || echo "guest: sent failed"
fi
if [ -n "$down_port" ]; then
    echo "guest: down listening"
    sum=$(timeout 60 nc -l -p "$down_port" | sha256sum | cut -d' ' -f1)
    echo "guest: down sha256 $sum"
fi
s=/sys/class/net/eth0/statistics
echo "guest: counters tx $(cat $s/tx_packets) $(cat $s/tx_bytes)"
echo "guest: done"
if [ -n "$serve" ]; then
    iperf3 -s -D && echo "guest: serving" || echo "guest: no iperf3"
    while :; do sleep 3600; done
fi
poweroff -f
EOF
chmod +x initramfs/init
(cd initramfs && find . | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 > initramfs.gz.tmp
mv initramfs.gz.tmp initramfs.gz
rm -rf initramfs
