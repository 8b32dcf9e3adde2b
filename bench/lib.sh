# The set-up every bench/*.sh shares. Source it, then call bench_init:
#   . "$(dirname "$0")/lib.sh"
#   bench_init NAME [--root]
# Environment: BIN (a directory of prebuilt binaries, e.g. for before/after
# comparisons; default: build target/release), OUT (the results file,
# default bench/results/NAME.txt; a relative path is from the project root).
# Puts the binaries first on PATH and sets W (a work directory), R ($W/raw,
# for raw figures) and OUT; on exit, for any reason, everything is cleaned up.

BENCH_NETNS=() BENCH_ON_EXIT=()

# Prepare a run: the project root as working directory, binaries, W, R, OUT.
bench_init() { # NAME [--root]
    BENCH=$1
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    if [ "${2:-}" = --root ] && [ "$(id -u)" -ne 0 ]; then
        echo "$BENCH bench: run as root (network namespaces)" >&2
        exit 1
    fi
    bash scripts/deps.sh
    if [ -n "${BIN:-}" ]; then
        PATH="$(realpath -e "$BIN"):$PATH"
    else
        cargo build --release --quiet --bins
        PATH="$PWD/target/release:$PATH"
    fi
    OUT=${OUT:-bench/results/$BENCH.txt}
    mkdir -p "$(dirname "$OUT")"
    W=$(mktemp -d "/tmp/ifnet-$BENCH.XXXXXX")
    R=$W/raw
    mkdir "$R"
    trap bench_cleanup EXIT
    # Through exit, so that the EXIT trap cleans up after ^C too.
    trap 'exit 130' INT TERM
}

# Create network namespaces with lo up; they are deleted on exit.
netns() { # NAME...
    local ns
    for ns in "$@"; do
        BENCH_NETNS+=("$ns")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
}

# Run a command at exit, before the namespaces go (links, bus files, ...).
on_exit() { # 'COMMAND'
    BENCH_ON_EXIT+=("$1")
}

# Undo everything; each step is tried even if an earlier one failed.
bench_cleanup() {
    set +e
    local f
    for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    for f in "$W"/*.sock; do [ -S "$f" ] && ifnetd --stop -s "$f" >/dev/null 2>&1; done
    for f in "${BENCH_ON_EXIT[@]}"; do eval "$f"; done
    for f in "${BENCH_NETNS[@]}"; do ip netns del "$f" 2>/dev/null; done
    rm -rf "$W"
}

# Address a device in a namespace and bring it up; GW: default route.
host() { # NS DEV ADDR/LEN [GW]
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set "$2" up
    if [ -n "${4:-}" ]; then ip -n "$1" route add default via "$4"; fi
}

# A Linux namespace router between two hosts, as the ifnet router is
# measured against: veth pairs, NET.1.0/24 to A and NET.2.0/24 to B, the
# router .1 and each host .2 with the router as its default route.
linux_router() { # NS_ROUTER NS_A NS_B NET
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$1" link add ra type veth peer name ea netns "$2"
    ip -n "$1" link add rb type veth peer name eb netns "$3"
    host "$1" ra "$4.1.1/24"
    host "$1" rb "$4.2.1/24"
    host "$2" ea "$4.1.2/24" "$4.1.1"
    host "$3" eb "$4.2.2/24" "$4.2.1"
}

# Wait until NS gets an echo reply from DST (50 tries), else fail. One ping
# per try: ping -w would stop at the first "host unreachable" of ARP.
wait_ping() { # NS DST WHAT
    for _ in $(seq 50); do
        ip netns exec "$1" ping -c 1 -W 1 -q "$2" >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "$BENCH bench: $3 does not ping" >&2
    exit 1
}

# The pid of the ifnetd listening on SOCK (in this network namespace).
daemon_pid() { # SOCK
    ss -xlpn | awk -v s="$1" '$5 == s' | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}
