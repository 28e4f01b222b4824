#!/bin/bash
# compare.sh: hasp against the lock servers people use instead, in one run.
#
# Starts a haspd, and each peer that is installed (PostgreSQL, Redis, etcd,
# python3-filelock), on a temporary Unix socket or loopback port with its
# data in a temporary directory; runs ROUNDS interleaved rounds of
#   hasp-bench --only baselines,uncontended,handoff,pipelined (P1, P2, the bare
#     round trip; pipelined batches of 64 against a bare libevent echo server)
#   PostgreSQL pg_advisory_lock + pg_advisory_unlock, and its hand-off (libpq)
#   Redis SET key val NX PX 30000 + DEL (hiredis)
#   etcd /v3/lock/lock + /v3/lock/unlock through the JSON gateway, and its hand-off
#   py-filelock and hasp.FileLock (client/python), acquire+release and hand-off
# and prints one table of medians, with ratios to hasp's P1 through libhasp
# and to one bare Unix-socket round trip, each taken within its round, then
# the ratios the issues set targets for (pipelined throughput against the
# echo server, peers' pairs and hand-offs against hasp's).
# A peer that is missing is skipped with a line saying so. Not in meson test.
# Needs a build (meson setup build && ninja -C build); the peers' C clients
# are built there when libpq-dev and libhiredis-dev are installed.
set -Eeuo pipefail

usage() {
	cat <<EOF
Usage: tests/bench/compare.sh [--pin] [--rounds N] [--build DIR]
  --pin         run everything (servers and clients) under taskset -c 0
  --rounds N    interleaved rounds (default 3)
  --build DIR   the meson build directory (default: build, in the source tree)
Environment: PYTHON, the interpreter with py-filelock (default: the first of
python3 and /usr/bin/python3 that has it).
EOF
}

root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 pin=0 build=$root/build
while [ $# -gt 0 ]; do
	case $1 in
	--pin) pin=1 ;;
	--rounds) rounds=${2:?--rounds needs a number}; shift ;;
	--build) build=${2:?--build needs a directory}; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 64 ;;
	esac
	shift
done
case $rounds in ''|*[!0-9]*|0) usage >&2; exit 64 ;; esac
if [ "$pin" = 1 ] && [ -z "${HASP_COMPARE_PINNED:-}" ]; then
	# Every process from here on inherits the one CPU.
	exec env HASP_COMPARE_PINNED=1 taskset -c 0 "$0" --pin --rounds "$rounds" --build "$build"
fi

[ -d "$build" ] || { echo "compare.sh: no build directory $build (meson setup $build)" >&2; exit 1; }
B=$(cd "$build" && pwd)
cd "$root"
bench=$B/tests/bench/hasp-bench peers=$B/tests/bench/peers
for f in "$bench" "$B/daemon/haspd"; do
	[ -x "$f" ] || { echo "compare.sh: no $f: build first (ninja -C $build)" >&2; exit 1; }
done

T=$(mktemp -d /tmp/hasp-compare-XXXXXX)
chmod 711 "$T" # an unprivileged postgres must reach its directory
pids=()     # the servers
client=    # the measuring client running now
skipped=()
results=$T/results rates=$T/rates # latencies in µs; pairs/s
: >"$results"
: >"$rates"

# ---- processes: each server's pid is kept and stopped at the end ----

# Waits up to $1 seconds for pid $2 to exit.
wait_exit() {
	local deadline=$((SECONDS + $1))
	while kill -0 "$2" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do
		sleep 0.05
	done
	! kill -0 "$2" 2>/dev/null
}

cleanup() {
	local pid
	trap - EXIT INT TERM HUP
	[ -z "$client" ] || kill -TERM -- "-$client" 2>/dev/null || true
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || continue
		wait_exit 15 "$pid" || kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "compare.sh: line $LINENO: status $?" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

skip() {
	skipped+=("$1")
	echo "compare.sh: skipped: $1" >&2
}

# Polls "$@" until it succeeds, for at most $1 seconds while pid $2 lives
# (the servers give no other sign of readiness).
wait_ready() {
	local pid=$2 deadline=$((SECONDS + $1))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge "$deadline" ]; then
			return 1
		fi
		sleep 0.05
	done
}

# A loopback TCP port nothing listens on.
free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 100); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Its log's last lines, for a server that did not start.
log_tail() {
	tail -n 5 "$1" 2>/dev/null | sed 's/^/    /' >&2 || true
}

start_haspd() {
	mkfifo "$T/haspd.ready"
	"$B/daemon/haspd" --socket "$T/haspd.sock" --log-level warning --ready-fd 3 \
		3>"$T/haspd.ready" 2>"$T/haspd.log" &
	pids+=($!)
	# haspd writes a line to --ready-fd once it listens (EOF if it dies).
	if ! read -r -t 30 _ <"$T/haspd.ready"; then
		echo "compare.sh: haspd did not start" >&2
		log_tail "$T/haspd.log"
		exit 1
	fi
}

pg_conninfo='' pg_bin=''
start_postgres() {
	local run=()
	pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
		skip "PostgreSQL: not installed (apt-get install postgresql)"; return
	fi
	if [ ! -x "$peers/pg-peer" ]; then
		skip "PostgreSQL: no pg-peer (install libpq-dev, then meson setup --reconfigure $build)"; return
	fi
	if [ "$(id -u)" = 0 ] && ! { id nobody && command -v setpriv; } >/dev/null 2>&1; then
		skip "PostgreSQL: it refuses to run as root, and there is no user nobody or no setpriv"
		return
	fi
	mkdir "$T/pg"
	if [ "$(id -u)" = 0 ]; then
		# PostgreSQL refuses to run as root.
		chown nobody:"$(id -gn nobody)" "$T/pg"
		run=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
	fi
	run+=(env -i PATH=/usr/bin:/bin LC_ALL=C HOME="$T/pg")
	if ! (cd "$T/pg" && "${run[@]}" "$pg_bin/initdb" -D "$T/pg/data" -U bench -A trust -E UTF8 \
		--no-sync --no-instructions) >"$T/pg-initdb.log" 2>&1; then
		skip "PostgreSQL: initdb failed"; log_tail "$T/pg-initdb.log"; return
	fi
	(cd "$T/pg" && exec "${run[@]}" "$pg_bin/postgres" -D "$T/pg/data" -k "$T/pg" -p 5432 \
		-c listen_addresses= ) >"$T/pg.log" 2>&1 &
	pids+=($!)
	pg_conninfo="host=$T/pg port=5432 dbname=postgres user=bench"
	if ! wait_ready 60 $! "$peers/pg-peer" --probe "$pg_conninfo"; then
		skip "PostgreSQL: did not start"; log_tail "$T/pg.log"; pg_conninfo=
	fi
}

redis_socket=
start_redis() {
	if ! command -v redis-server >/dev/null; then
		skip "Redis: not installed (apt-get install redis-server)"; return
	fi
	if [ ! -x "$peers/redis-peer" ]; then
		skip "Redis: no redis-peer (install libhiredis-dev, then meson setup --reconfigure $build)"
		return
	fi
	mkdir "$T/redis"
	redis-server --port 0 --unixsocket "$T/redis/redis.sock" --unixsocketperm 700 \
		--save '' --appendonly no --dir "$T/redis" --daemonize no >"$T/redis.log" 2>&1 &
	pids+=($!)
	redis_socket=$T/redis/redis.sock
	if ! wait_ready 30 $! "$peers/redis-peer" --probe "$redis_socket"; then
		skip "Redis: did not start"; log_tail "$T/redis.log"; redis_socket=
	fi
}

etcd_endpoint=
start_etcd() {
	local cport pport
	if ! command -v etcd >/dev/null; then
		skip "etcd: not installed (apt-get install etcd-server)"; return
	fi
	if ! cport=$(free_port) || ! pport=$(free_port) || [ "$cport" = "$pport" ]; then
		skip "etcd: no free loopback port"; return
	fi
	etcd --name compare --data-dir "$T/etcd" \
		--listen-client-urls "http://127.0.0.1:$cport" \
		--advertise-client-urls "http://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "compare=http://127.0.0.1:$pport" \
		--logger zap --log-level error >"$T/etcd.log" 2>&1 &
	pids+=($!)
	etcd_endpoint=127.0.0.1:$cport
	if ! wait_ready 60 $! "$peers/etcd-peer" --probe "$etcd_endpoint"; then
		skip "etcd: did not start"; log_tail "$T/etcd.log"; etcd_endpoint=
	fi
}

python=
find_python() {
	local p
	for p in ${PYTHON:-python3 /usr/bin/python3}; do
		if "$p" -c 'import filelock' 2>/dev/null; then
			python=$p
			break
		fi
	done
	if [ -z "$python" ]; then
		skip "py-filelock and hasp.FileLock: no python3 with py-filelock (apt-get install python3-filelock)"
		return
	fi
	mkdir "$T/py"
	if ! HASP_SOCKET=$T/haspd.sock "$python" tests/bench/peers/py-peer.py --probe hasp "$T/py" \
		>"$T/py.log" 2>&1; then
		skip "hasp.FileLock: does not lock"; log_tail "$T/py.log"
	fi
}

# ---- one round ----

# Runs "$@" with its output in $T/out and $T/err, in the background so
# that an interrupt is handled at once (a trap waits for a foreground
# command to end), in a process group of its own that cleanup() can end
# with the children it forked.
measure() {
	local r=0
	setsid "$@" >"$T/out" 2>"$T/err" &
	client=$!
	wait "$client" || r=$?
	client=
	return $r
}

# Runs a peer: "$1" names its pair, "$2" its hand-off, then the command.
# Its "result pair|handoff MEDIAN P99 N" lines go to the results.
run_peer() {
	local pair=$1 handoff=$2 what label median p99
	shift 2
	if ! measure "$@"; then
		echo "compare.sh: round $round: failed: $*" >&2
		log_tail "$T/err"
		return 0
	fi
	while read -r what label median p99 _; do
		[ "$what" = result ] || continue
		case $label in
		pair) label=$pair ;;
		handoff) label=$handoff ;;
		esac
		printf '%s\t%s\t%s\t%s\n' "$round" "$label" "$median" "$p99" >>"$results"
	done <"$T/out"
}

# hasp-bench's JSON: the bare round trip and hasp's P1 and P2 lines, by
# the start of their names, to the results; the pipelined rates to the rates.
run_hasp_bench() {
	# its scratch directory in ours, gone with it even if hasp-bench is killed
	if ! TMPDIR=$T measure "$bench" --socket "$T/haspd.sock" \
		--only baselines,uncontended,handoff,pipelined --json; then
		echo "compare.sh: round $round: hasp-bench failed" >&2
		log_tail "$T/err"
		exit 1
	fi
	awk -v round="$round" -v rates="$rates" '
	function num(rec, field) {
		if (!match(rec, "\"" field "\":[-0-9.e+]+"))
			return ""
		return substr(rec, RSTART + length(field) + 3, RLENGTH - length(field) - 3)
	}
	{
		n = split($0, recs, /\},\{/)
		for (i = 1; i <= n; i++) {
			if (!match(recs[i], /"name":"[^"]*"/))
				continue
			name = substr(recs[i], RSTART + 8, RLENGTH - 9)
			if (name ~ /pipelined|in flight/) {
				printf "%s\t%s\t%s\n", round, name, num(recs[i], "ops_per_s") >>rates
				continue
			}
			if (name !~ /^(\(a\)|P1 named|P1 raw|P2 hand-off exclusive->exclusive)/)
				continue
			median = num(recs[i], "median_us")
			if (median == "")
				continue
			if (name !~ /^\(a\)/)
				name = "hasp " name
			printf "%s\t%s\t%s\t%s\n", round, name, median, num(recs[i], "p99_us")
		}
	}' "$T/out" >>"$results"
}

one_round() {
	run_hasp_bench
	if [ -n "$pg_conninfo" ]; then
		run_peer "PostgreSQL advisory lock+unlock" "PostgreSQL advisory hand-off" \
			"$peers/pg-peer" --pairs 5000 --handoffs 300 "$pg_conninfo"
	fi
	if [ -n "$redis_socket" ]; then
		run_peer "Redis SET NX PX + DEL" - "$peers/redis-peer" --pairs 5000 "$redis_socket"
	fi
	if [ -n "$etcd_endpoint" ]; then
		run_peer "etcd lock+unlock (gateway)" "etcd hand-off, new waiter" \
			"$peers/etcd-peer" --pairs 200 --handoffs 20 "$etcd_endpoint"
		run_peer - "etcd hand-off, waiter of 150 ms" \
			"$peers/etcd-peer" --pairs 0 --handoffs 20 --settle-ms 150 "$etcd_endpoint"
	fi
	if [ -n "$python" ]; then
		run_peer "py-filelock acquire+release" "py-filelock hand-off (50 ms poll)" \
			"$python" tests/bench/peers/py-peer.py --pairs 2000 --handoffs 40 filelock "$T/py"
		HASP_SOCKET=$T/haspd.sock run_peer "hasp.FileLock acquire+release" "hasp.FileLock hand-off" \
			"$python" tests/bench/peers/py-peer.py --pairs 2000 --handoffs 40 hasp "$T/py"
	fi
}

# ---- the table: medians over the rounds, ratios taken within each round ----

table() {
	awk -F '\t' -v rounds="$rounds" '
	function median(a, n,    i, j, x) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
				x = a[j]; a[j] = a[j - 1]; a[j - 1] = x
			}
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function us(v) { return v >= 1000 ? sprintf("%.0f", v) : sprintf("%.1f", v) }
	function times(v) { return v == "" ? "-" : v >= 100 ? sprintf("%.0fx", v) : sprintf("%.2fx", v) }
	# The median over the rounds of the label l / the label base (or of l alone).
	function over_rounds(l, base, what,    r, n, v) {
		n = 0
		for (r = 1; r <= rounds; r++) {
			if (!((l, r) in med) || (base != "" && !((base, r) in med)))
				continue
			v = what == "p99" ? p99[l, r] : med[l, r]
			v = base == "" ? v : v / med[base, r]
			vals[++n] = v
		}
		return n ? median(vals, n) : ""
	}
	{
		if (!($2 in seen)) { seen[$2] = 1; order[++nl] = $2 }
		med[$2, $1] = $3; p99[$2, $1] = $4
	}
	END {
		for (i = 1; i <= nl; i++) {
			if (ref == "" && order[i] ~ /^hasp P1 named/) ref = order[i]
			if (rt == "" && order[i] ~ /^\(a\)/) rt = order[i]
		}
		# (µs is two bytes: one more for its columns)
		printf "%-42s %11s %11s %12s %8s  %s\n", "measurement", "median µs", "p99 µs",
			"/ P1 libhasp", "/ (a)", "round medians µs (min-max)"
		for (i = 1; i <= nl; i++) {
			l = order[i]; lo = ""; hi = ""
			for (r = 1; r <= rounds; r++)
				if ((l, r) in med) {
					if (lo == "" || med[l, r] < lo) lo = med[l, r]
					if (hi == "" || med[l, r] > hi) hi = med[l, r]
				}
			printf "%-42s %10s %10s %12s %8s  %s-%s\n", l, us(over_rounds(l, "", "median")),
				us(over_rounds(l, "", "p99")),
				times(ref == "" ? "" : over_rounds(l, ref, "median")),
				times(rt == "" ? "" : over_rounds(l, rt, "median")), us(lo), us(hi)
		}
	}' "$results"
}

# The median over the rounds of one label's figure divided by another's,
# each ratio taken within its round, with the lowest and highest: the
# figures are the third column of file $1; the labels are those that
# begin with $2 and $3; $4 says what the ratio means.
ratio() {
	awk -F '\t' -v num="$2" -v den="$3" -v what="$4" '
	index($2, num) == 1 { a[$1] = $3 }
	index($2, den) == 1 { b[$1] = $3 }
	END {
		n = 0
		for (r in a)
			if ((r in b) && b[r] > 0)
				v[++n] = a[r] / b[r]
		if (n == 0)
			exit
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
				x = v[j]; v[j] = v[j - 1]; v[j - 1] = x
			}
		m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		printf "  %-62s %7.2fx  (%.2f-%.2f, %d rounds)\n", what, m, v[1], v[n], n
	}' "$1"
}

# The ratios the issues set targets for, each a median of per-round ratios.
ratios() {
	local p1="hasp P1 named" rt="(a)"
	echo "ratios (median of the rounds' ratios, lowest-highest):"
	ratio "$results" "$p1" "$rt" "hasp P1 through libhasp / one bare round trip (a)"
	ratio "$results" "PostgreSQL advisory lock+unlock" "$p1" "PostgreSQL advisory lock+unlock / hasp P1"
	ratio "$results" "Redis SET NX PX + DEL" "$p1" "Redis SET NX PX + DEL / hasp P1"
	ratio "$results" "PostgreSQL advisory hand-off" "hasp P2 hand-off exclusive->exclusive" \
		"PostgreSQL hand-off / hasp P2 hand-off"
	ratio "$results" "py-filelock hand-off (50 ms poll)" "hasp.FileLock hand-off" \
		"py-filelock hand-off / hasp.FileLock hand-off"
	ratio "$rates" "P4 pipelined batches of 64" "(d) echo server, pipelined x64" \
		"hasp pipelined x64 pairs/s / echo server's"
	ratio "$rates" "P4 libhasp async, 64 in flight" "(d) echo server, pipelined x64" \
		"libhasp async, 64 in flight, pairs/s / echo server's"
}

versions() {
	echo "hasp: $("$B/daemon/haspd" --version 2>/dev/null | sed -n 1p)"
	[ -z "$pg_conninfo" ] || "$pg_bin/postgres" --version
	[ -z "$redis_socket" ] || redis-server --version
	[ -z "$etcd_endpoint" ] || etcd --version | sed -n 1p
	[ -z "$python" ] || "$python" -c 'import sys, filelock
print("python %s, py-filelock %s" % (sys.version.split()[0], filelock.__version__))'
}

echo "compare.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc --all) CPUs, $(uname -sr)," \
	"$([ "$pin" = 1 ] && echo "pinned to CPU 0 (taskset -c 0)" || echo "not pinned")"
echo "load average at start: $(uptime | sed 's/.*load average: *//')"
start_haspd
start_postgres
start_redis
start_etcd
find_python
versions
for round in $(seq 1 "$rounds"); do
	echo "round $round of $rounds" >&2
	one_round
done
echo "load average at end: $(uptime | sed 's/.*load average: *//')"
echo
table
echo
ratios
for s in "${skipped[@]}"; do
	echo "skipped: $s"
done
