#!/bin/sh
# NetBSD tests/net style checks of the state-inspection tools, run against
# ifnetd as rump_server: each case creates its kernels, configures them,
# checks with netstat, arp, ndp, sysctl, ifmcstat, ifconfig and ping (the
# NetBSD-named links that `eval "$(ifnetd --env)"` puts on PATH), and
# destroys them. ATF-shaped: atf_test_case/head/body/cleanup, atf_check.

set -u

SOCK1=unix://$PWD/commsock1
SOCK2=unix://$PWD/commsock2
BUS=$PWD/bus1

failed=0
passed=0

atf_fail() { echo "FAIL: $*" >&2; exit 1; }

# atf_check [-s exit:N] [-o empty|ignore|match:RE|not-match:RE|inline:TEXT]
#           [-e empty|ignore|match:RE|inline:TEXT] command...
atf_check() {
	_s=0 _o=empty _e=empty
	while [ $# -gt 0 ]; do
		case $1 in
		-s) _s=${2#exit:}; shift 2 ;;
		-o) _o=$2; shift 2 ;;
		-e) _e=$2; shift 2 ;;
		*) break ;;
		esac
	done
	"$@" >out 2>err
	_rc=$?
	[ "$_rc" = "$_s" ] || atf_fail "$*: exit $_rc, not $_s: $(cat out err)"
	_check out "$_o" "$*"
	_check err "$_e" "$*"
}

_check() {
	case $2 in
	ignore) ;;
	empty) [ ! -s "$1" ] || atf_fail "$3: $1 not empty: $(cat "$1")" ;;
	match:*) grep -q -e "${2#match:}" "$1" || atf_fail "$3: $1 lacks '${2#match:}': $(cat "$1")" ;;
	not-match:*) ! grep -q -e "${2#not-match:}" "$1" || atf_fail "$3: $1 has '${2#not-match:}'" ;;
	inline:*) printf "%b" "${2#inline:}" > expected
		cmp -s expected "$1" || atf_fail "$3: $1 is '$(cat "$1")', not '$(cat expected)'" ;;
	esac
}

# rump_server -lrumpnet_shmif ... $SOCK
start_kernel() {
	atf_check ifnetd -s "$1" -l "$PWD/log" --retrans-timer 50
}

# rump.ifconfig as ifconfig, with RUMP_SERVER as IFNET_SERVER.
setup_shmif() {
	export IFNET_SERVER=$1
	atf_check ifconfig shmif0 create
	atf_check ifconfig shmif0 link "$2" active
	atf_check ifconfig shmif0 linkstr "$BUS"
	atf_check ifconfig shmif0 inet "$3"
	atf_check ifconfig shmif0 inet6 "$4"
	atf_check ifconfig -w 10
}

cleanup() {
	for s in $SOCK1 $SOCK2; do
		ifnetd --stop -s "$s" >/dev/null 2>&1
	done
}

atf_test_case() { cases="${cases:-} $1"; }

atf_test_case netstat_routes
netstat_routes_head() { echo "descr: netstat -nr shows the routes of the addresses"; }
netstat_routes_body() {
	start_kernel $SOCK1
	setup_shmif $SOCK1 b2:a0:00:00:00:01 10.0.0.1/24 fc00::1/64
	atf_check -o match:'^10.0.0/24          link#2             UC          -        -      -  shmif0$' \
	    netstat -nr -f inet
	atf_check -o match:'^10.0.0.1           link#2             UHl         -        -      -  lo0$' \
	    netstat -nr
	atf_check -o match:'^fc00::/64  *link#2  *UC ' netstat -nr -f inet6
	atf_check -o match:'^shmif 1500  10.0.0/24     10.0.0.1 ' netstat -nai
	atf_check ifconfig shmif0 inet 10.0.0.1 delete
	atf_check -o not-match:'10.0.0' netstat -nr -f inet
	atf_check ifconfig shmif0 destroy
	atf_check -o not-match:'shmif0' netstat -ni
}

atf_test_case arp_cache
arp_cache_head() { echo "descr: arp learns by pinging, deletes and flushes"; }
arp_cache_body() {
	start_kernel $SOCK1
	start_kernel $SOCK2
	setup_shmif $SOCK2 b2:a0:00:00:00:02 10.0.0.2/24 fc00::2/64
	setup_shmif $SOCK1 b2:a0:00:00:00:01 10.0.0.1/24 fc00::1/64
	atf_check -o ignore ping -n -c 1 -w 20 10.0.0.2
	atf_check -o inline:'? (10.0.0.2) at b2:a0:00:00:00:02 on shmif0\n' arp -n 10.0.0.2
	atf_check -o match:'10.0.0.2' arp -na
	atf_check -o match:'^10.0.0.2  *b2:a0:00:00:00:02  UHL ' netstat -nr -f inet
	atf_check arp -d 10.0.0.2
	atf_check -s exit:1 -e inline:'arp: 10.0.0.2 (10.0.0.2) -- no entry\n' arp -n 10.0.0.2
	atf_check -o ignore ping -n -c 1 -w 20 10.0.0.2
	atf_check -o inline:'(null) (10.0.0.2) deleted\n' arp -d -a -v
	atf_check -o empty arp -na
	export IFNET_SERVER=$SOCK2
	atf_check -o inline:'? (10.0.0.1) at b2:a0:00:00:00:01 on shmif0\n' arp -na
}

atf_test_case ndp_cache
ndp_cache_head() { echo "descr: ndp learns by pinging, deletes and flushes"; }
ndp_cache_body() {
	start_kernel $SOCK1
	start_kernel $SOCK2
	setup_shmif $SOCK2 b2:a0:00:00:00:02 10.0.0.2/24 fc00::2/64
	setup_shmif $SOCK1 b2:a0:00:00:00:01 10.0.0.1/24 fc00::1/64
	atf_check -o ignore ping -n -c 1 -w 20 fc00::2
	atf_check -o match:'^fc00::2  *b2:a0:00:00:00:02 shmif0 ' ndp -n fc00::2
	atf_check -o match:'^fc00::2 ' ndp -na
	atf_check -o match:' (fc00::2) deleted' ndp -d fc00::2
	atf_check -s exit:1 -o match:'^Neighbor' -e match:'-- no entry' ndp -n fc00::2
	atf_check -o ignore ndp -c
	atf_check -o inline:'Neighbor                                Linklayer Address  Netif Expire    S Fl\n' ndp -na
	atf_check -o match:'group ff02::1:ff00:1%shmif0 refcount' ifmcstat
}

atf_test_case sysctl_knobs
sysctl_knobs_head() { echo "descr: sysctl reads and sets the knobs"; }
sysctl_knobs_body() {
	start_kernel $SOCK1
	export IFNET_SERVER=$SOCK1
	atf_check -o inline:'3\n' sysctl -n net.inet.ip.dad_count
	atf_check -o inline:'net.inet6.ip6.dad_count: 1 -> 2\n' sysctl -w net.inet6.ip6.dad_count=2
	atf_check -o inline:'net.inet.ip.forwarding = 0\n' sysctl net.inet.ip.forwarding
	atf_check -s exit:1 -e inline:"sysctl: third level name 'x' in 'net.inet.x' is invalid\n" \
	    sysctl net.inet.x
	atf_check -o ignore sysctl -w net.inet6.ip6.auto_linklocal=0
	atf_check ifconfig shmif0 create
	atf_check ifconfig shmif0 linkstr "$BUS"
	atf_check ifconfig shmif0 up
	atf_check -o not-match:'fe80' ifconfig shmif0
	atf_check ifconfig shmif0 destroy
}

for c in $cases; do
	mkdir "$c" && cd "$c" || exit 1
	SOCK1=unix://$PWD/commsock1 SOCK2=unix://$PWD/commsock2 BUS=$PWD/bus1
	eval "$(ifnetd --env -s "$SOCK1")"
	if ( "${c}_body" ); then
		passed=$((passed + 1))
		echo "$c: passed ($("${c}_head"))"
	else
		failed=$((failed + 1))
		echo "$c: failed"
	fi
	cleanup
	unset IFNET_SERVER
	cd ..
done
echo "passed: $passed"
[ "$failed" = 0 ]
