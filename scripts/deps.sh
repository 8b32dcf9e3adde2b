#!/usr/bin/env bash
# Install what the tests, the demo and the benchmarks need (Debian packages).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip       || need+=(iproute2)
have ping     || need+=(iputils-ping)
have tcpdump  || need+=(tcpdump)
have ethtool  || need+=(ethtool)
have mandoc   || need+=(mandoc)
have iperf3   || need+=(iperf3)
have python3  || need+=(python3)
# --libxo json checks (tests/it/libxo.rs) and systemd-socket-activate
# (tests/it/service.rs); no init system is needed.
have jq       || need+=(jq)
have systemd-socket-activate || need+=(systemd)
have qemu-system-x86_64 || need+=(qemu-system-x86)
have vde_switch || need+=(vde-switch)
# The guest of tests/it/vm.rs (scripts/guest.sh): a static busybox.
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "deps: installing ${need[*]}" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
