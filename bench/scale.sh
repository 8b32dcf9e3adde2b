#!/usr/bin/env bash
# Scale: 1000 interfaces in one daemon (create, list, destroy), 8 clients
# issuing 10,000 ifconfig commands at once, and 32 daemons on one bus
# pinging each other. One command; figures to OUT (default
# bench/results/scale.txt).
# Environment: OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init scale
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

export IFNET_SERVER=unix://$W/big.sock
ifnetd -s "$W/big.sock"
daemon=$(daemon_pid "$W/big.sock")
{
echo "# ifnet scale, $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(nproc) cores"

t0=$(now); for i in $(seq 1 1000); do ifconfig "lo$i" create; done; t1=$(now)
echo "create 1000 interfaces (1000 ifconfig runs):  $(secs "$t0" "$t1") s"
t0=$(now); n=$(ifconfig -l | wc -w); t1=$(now)
echo "ifconfig -l with $n interfaces:              $(secs "$t0" "$t1") s"
t0=$(now); lines=$(ifconfig -a | wc -l); t1=$(now)
echo "ifconfig -a ($lines lines):                   $(secs "$t0" "$t1") s"
echo "daemon RSS with 1001 interfaces:               $(rss_kb "$daemon") kB"
t0=$(now); for i in $(seq 1 1000); do ifconfig "lo$i" destroy; done; t1=$(now)
echo "destroy 1000 interfaces:                       $(secs "$t0" "$t1") s"

# 8 clients at once, 1250 commands each (create, address, delete, destroy).
t0=$(now)
for c in $(seq 0 7); do
    (
        for i in $(seq 0 312); do
            u=$((2000 + c * 1000 + i))
            ifconfig "lo$u" create
            ifconfig "lo$u" inet "10.$c.$((i % 250)).1/24" alias
            ifconfig "lo$u" inet "10.$c.$((i % 250)).1" -alias
            ifconfig "lo$u" destroy
        done
    ) &
done
wait
t1=$(now)
left=$(ifconfig -l)
echo "8 clients x 1252 commands at once (10016):      $(secs "$t0" "$t1") s, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", 10016 / (b - a) }') commands/s; left: $left"
echo "daemon RSS after:                              $(rss_kb "$daemon") kB"
ifnetd --stop -s "$W/big.sock"

# 32 daemons on one bus.
t0=$(now)
for n in $(seq 1 32); do
    s=unix://$W/h$n.sock
    IFNET_SERVER=$s ifconfig shmif0 create
    IFNET_SERVER=$s ifconfig shmif0 linkstr "$W/bus"
    IFNET_SERVER=$s ifconfig shmif0 inet "10.77.0.$n/24" up
done
for n in $(seq 1 32); do IFNET_SERVER=unix://$W/h$n.sock ifconfig -w 10; done
t1=$(now)
echo "32 daemons up on one bus, out of DAD:          $(secs "$t0" "$t1") s"
ok=0
t0=$(now)
for n in $(seq 2 32); do
    IFNET_SERVER=unix://$W/h1.sock ifping -c 1 -W 2 "10.77.0.$n" >/dev/null && ok=$((ok + 1))
done
t1=$(now)
echo "ifping from host 1 to the 31 others:           $ok/31 answered in $(secs "$t0" "$t1") s"
ok=0
for n in $(seq 2 32); do
    IFNET_SERVER=unix://$W/h$n.sock ifping -c 1 -W 2 10.77.0.1 >/dev/null && ok=$((ok + 1))
done
echo "ifping from each of the 31 to host 1:          $ok/31 answered"
dup=$(for n in $(seq 1 32); do IFNET_SERVER=unix://$W/h$n.sock ifconfig shmif0; done | grep -c DUPLICATED || true)
echo "addresses flagged DUPLICATED:                  $dup"
for n in $(seq 1 32); do ifnetd --stop -s "$W/h$n.sock"; done

# A bridge with 32 members: shmif0..31 in one daemon, each on its own bus
# where one other daemon is a host; the hosts ping each other across it.
t0=$(now)
export IFNET_SERVER=unix://$W/br.sock
ifconfig bridge0 create
for n in $(seq 0 31); do
    ifconfig "shmif$n" create
    ifconfig "shmif$n" linkstr "$W/bus$n"
    ifconfig "shmif$n" up
    brconfig bridge0 add "shmif$n"
done
brconfig bridge0 up
for n in $(seq 0 31); do
    s=unix://$W/m$n.sock
    IFNET_SERVER=$s ifconfig shmif0 create
    IFNET_SERVER=$s ifconfig shmif0 linkstr "$W/bus$n"
    IFNET_SERVER=$s ifconfig shmif0 inet "10.88.0.$((n + 1))/24" up
done
for n in $(seq 0 31); do IFNET_SERVER=unix://$W/m$n.sock ifconfig -w 10; done
t1=$(now)
echo "bridge with 32 members (32 buses, 32 hosts) up: $(secs "$t0" "$t1") s"
ok=0
t0=$(now)
for n in $(seq 2 32); do
    IFNET_SERVER=unix://$W/m0.sock ifping -c 1 -W 2 "10.88.0.$n" >/dev/null && ok=$((ok + 1))
done
t1=$(now)
echo "ifping across the bridge, host 1 to the 31 others: $ok/31 answered in $(secs "$t0" "$t1") s"
echo "bridge0 address cache entries:                 $(brconfig bridge0 addr | wc -l)"
echo "bridge daemon RSS:                             $(rss_kb "$(daemon_pid "$W/br.sock")") kB"
} | tee "$OUT"
