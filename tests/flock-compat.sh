#!/bin/bash
# util-linux's own flock(1) test cases, run against any flock-like command:
#
#   tests/flock-compat.sh                                # util-linux's flock
#   FLOCK="build/client/hasp lock" HASPD=build/daemon/haspd tests/flock-compat.sh
#
# The cases are those of util-linux's tests/ts/flock/{flock,unlock,close,
# range-lock} with their expected output (tests/expected/flock/*), as of
# util-linux commit 39465c780eed, rewritten here (not copied) to run
# standalone: one line per case, PASS, FAIL (with why), SKIP (with why),
# XFAIL/XPASS (see FLOCK_COMPAT_XFAIL), and a non-zero exit if any case
# failed. As util-linux's harness does, a case also fails if the command
# writes anything to stderr that the expected output does not list.
#
# Environment:
#   FLOCK              the command to test, split at spaces (default: flock)
#   HASPD              if set, a haspd to start on a socket in the temporary
#                      directory (HASP_SOCKET is set to it) and stop at exit
#   HASP_SOCKET        otherwise, the socket of a running haspd, for hasp
#   FLOCK_COMPAT_NO_FD=1
#                      skip the cases that use the file descriptor form
#                      (FLOCK [options] FD, --fd FD), saying so
#   FLOCK_COMPAT_XFAIL="case ..."
#                      cases known to fail: reported XFAIL and not counted;
#                      one of them that passes is reported XPASS and fails
#                      the run, so that the list only shrinks
#
# The cases that use --fcntl (POSIX record locks; util-linux runs every case
# of ts/flock/flock a second time with it, and range-lock needs it and
# lslocks) are listed as SKIP: hasp offers flock(2) locks only.
#
# Timing: util-linux's shared holder sleeps 3 s and the other cases run
# while it holds. Here the holder says on a FIFO when it holds the lock and
# lets go when told on another, so nothing waits for a guess except the
# "timeout" case: a waiter that must not get in while the holder holds can
# only be shown to wait by watching it for a while (HOLD_MS, 1 s) -- that
# is the one deliberate sleep. Every other wait is for an event, bounded
# (timeout(1), BOUND seconds). The whole run takes about 2 s.
set -u

HOLD_MS=1000
BOUND=5

read -r -a flock_cmd <<<"${FLOCK:-flock}"
# Some cases run in another directory: a relative path to the command must
# still name it there.
case ${flock_cmd[0]} in
*/*) flock_cmd[0]=$(realpath -- "${flock_cmd[0]}") || exit 2 ;;
esac
xfail=" ${FLOCK_COMPAT_XFAIL:-} "
no_fd=${FLOCK_COMPAT_NO_FD:-0}

T=$(mktemp -d "${TMPDIR:-/tmp}/flock-compat.XXXXXX") || exit 2
haspd_pid=
holder_pid=

cleanup()
{
	if [ -n "$holder_pid" ] && kill -0 "$holder_pid" 2>/dev/null; then
		timeout 1 sh -c 'echo >"$1"' _ "$T/release" 2>/dev/null
		kill "$holder_pid" 2>/dev/null
		wait "$holder_pid" 2>/dev/null
	fi
	if [ -n "$haspd_pid" ]; then
		kill -TERM "$haspd_pid" 2>/dev/null
		timeout "$BOUND" tail --pid="$haspd_pid" -f /dev/null
		wait "$haspd_pid" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

now_ms() { date +%s%3N; }

npass=0 nfail=0 nskip=0 nxfail=0
why=

# The verdict on the current case from what note() collected.
verdict()
{
	local name=$1 known=0

	case $xfail in *" $name "*) known=1 ;; esac
	if [ -z "$why" ] && [ "$known" = 0 ]; then
		echo "PASS $name"
		npass=$((npass + 1))
	elif [ -z "$why" ]; then
		echo "XPASS $name: passes now; take it out of FLOCK_COMPAT_XFAIL"
		nfail=$((nfail + 1))
	elif [ "$known" = 1 ]; then
		echo "XFAIL $name: $why"
		nxfail=$((nxfail + 1))
	else
		echo "FAIL $name: $why"
		nfail=$((nfail + 1))
	fi
	why=
}

skip() { echo "SKIP $1: ${*:2}"; nskip=$((nskip + 1)); }
note() { why="${why:+$why; }$*"; }
shown() { head -c 300 "$1" | tr '\n' '|'; }

check_rc() { [ "$1" = "$2" ] || note "exit status $1, want $2"; }

# The file's text against want, after util-linux's own clean-up of the
# --verbose lines (the time taken, and here the program's name too: hasp
# is not called flock).
check_out()
{
	local got

	got=$(sed -E -e 's/^[^ :]+: getting lock took [0-9]+\.[0-9]+ seconds$/NAME: getting lock took <n> seconds/' \
		-e 's/^[^ :]+: executing /NAME: executing /' "$1")
	[ "$got" = "$2" ] || note "stdout '$(shown <(printf %s "$got"))', want '$(printf %s "$2" | tr '\n' '|')'"
}

check_quiet() { [ -s "$1" ] && note "stderr '$(shown "$1")', want nothing"; }

# run OUT ERR ARGS...: FLOCK ARGS, bounded; its status in rc.
run()
{
	local out=$1 err=$2

	shift 2
	timeout "$BOUND" "${flock_cmd[@]}" "$@" >"$out" 2>"$err"
	rc=$?
	[ "$rc" = 124 ] && note "still running after ${BOUND} s (killed)"
}

# util-linux's do_lock: FLOCK OPTS lockfile echo MESG; want status and stdout.
do_lock()
{
	local name=$1 want_rc=$2 want_out=$3 mesg=$4

	shift 4
	run "$T/$name.out" "$T/$name.err" "$@" "$T/lockfile" echo "$mesg"
	check_rc "$rc" "$want_rc"
	check_out "$T/$name.out" "$want_out"
	check_quiet "$T/$name.err"
	verdict "$name"
}

# ---- a haspd of our own, if asked ----

if [ -n "${HASPD:-}" ]; then
	export HASP_SOCKET="$T/haspd.sock"
	"$HASPD" --socket "$HASP_SOCKET" --log-level warning 2>"$T/haspd.log" &
	haspd_pid=$!
	# Polling, with a deadline: a starting daemon signals nothing else.
	end=$(($(now_ms) + 10000))
	until "${flock_cmd[@]}" -n "$T/probe" true >/dev/null 2>&1; do
		if ! kill -0 "$haspd_pid" 2>/dev/null || [ "$(now_ms)" -gt "$end" ]; then
			echo "FAIL setup: '${flock_cmd[*]} -n FILE true' does not work against $HASPD" \
				"on $HASP_SOCKET (haspd's log: $(shown "$T/haspd.log"))"
			exit 1
		fi
		sleep 0.01
	done
fi

# ---- ts/flock/flock, with flock(2) ----

# The general lock: a shared holder in the background, whose output is
# checked at the end (expected/flock/flock).
mkfifo "$T/ready" "$T/release" || exit 2
"${flock_cmd[@]}" --shared "$T/lockfile" \
	bash -c 'echo "API: flock(2)"; echo Locking; echo >"$1"; read -r _ <"$2"; echo Unlocking' \
	_ "$T/ready" "$T/release" >"$T/general.out" 2>&1 &
holder_pid=$!
if ! timeout "$BOUND" cat "$T/ready" >/dev/null; then
	echo "FAIL general: the shared holder did not get its lock within ${BOUND} s" \
		"(its output: $(shown "$T/general.out"))"
	echo "(the other cases need it; not run)"
	exit 1
fi

do_lock non-block 123 "" "You will never see this!" \
	--nonblocking --conflict-exit-code 123
do_lock no-fork 123 "" "You will never see this!" \
	--no-fork --nonblocking --conflict-exit-code 123
do_lock shared 0 "Have shared lock" "Have shared lock" --shared
# The same as non-block, with --exclusive spelled out.
do_lock exclusive 123 "" "You will never see this!" \
	--nb --exclusive --conflict-exit-code 123

# fd: the number names a descriptor the shell opened on the file, never a
# file called "4".
if [ "$no_fd" = 1 ]; then
	skip fd "the descriptor form (FLOCK -n -x -E 123 4), skipped by FLOCK_COMPAT_NO_FD=1"
else
	(
		cd "$T" || exit 2
		exec 4<>"$T/lockfile"
		timeout "$BOUND" "${flock_cmd[@]}" --nonblocking --exclusive --conflict-exit-code 123 4 \
			>"$T/fd.out" 2>"$T/fd.err"
	)
	rc=$?
	check_rc "$rc" 123
	check_out "$T/fd.out" ""
	check_quiet "$T/fd.err"
	[ -e "$T/4" ] && note "created a file named 4"
	verdict fd
fi

# timeout: waits for the holder, which lets go after HOLD_MS, well within
# the 5 s timeout. time-check: util-linux wants the general lock's start to
# this case's end to take 3 to 5 s with its 3 s holder, i.e. that the
# waiter waited for the holder and no longer than the timeout; here, that
# it waited from its start until the holder let go (at least HOLD_MS) and
# was let in then, before its 5 s were up.
t0=$(now_ms)
(
	timeout 10 "${flock_cmd[@]}" --timeout 5 --conflict-exit-code 5 "$T/lockfile" \
		echo "After timeout." >"$T/timeout.out" 2>"$T/timeout.err"
	st=$?
	now_ms >"$T/timeout.end"
	exit $st
) &
waiter=$!
sleep "$(printf '%d.%03d' $((HOLD_MS / 1000)) $((HOLD_MS % 1000)))" # the holder holds: see the top
kill -0 "$waiter" 2>/dev/null || note "did not wait for the shared holder"
timeout "$BOUND" sh -c 'echo >"$1"' _ "$T/release" || note "could not tell the holder to let go"
wait "$waiter"
rc=$?
t1=$(cat "$T/timeout.end")
check_rc "$rc" 0
check_out "$T/timeout.out" "After timeout."
check_quiet "$T/timeout.err"
verdict timeout

if [ $((t1 - t0)) -lt "$HOLD_MS" ]; then
	note "took $((t1 - t0)) ms, less than the $HOLD_MS ms the holder held"
elif [ $((t1 - t0)) -ge 5000 ]; then
	note "took $((t1 - t0)) ms, not less than the 5 s timeout"
fi
verdict time-check

# The holder's own output, now that it let go.
timeout "$BOUND" tail --pid="$holder_pid" -f /dev/null
wait "$holder_pid"
rc=$?
holder_pid=
check_rc "$rc" 0
check_out "$T/general.out" "API: flock(2)
Locking
Unlocking"
verdict general

# ---- ts/flock/flock again with --fcntl, and ts/flock/range-lock ----

for c in non-block no-fork shared exclusive fd vs-flock timeout time-check; do
	skip "fcntl-$c" "uses --fcntl (POSIX record locks); hasp takes flock(2) locks only"
done
skip range-lock "uses --fcntl --start --length and lslocks; hasp takes flock(2) locks only"

# ---- ts/flock/unlock ----

# The third of its commands alone: --wait 0 means try once, and --verbose
# says how long getting the lock took and what it runs, on stdout.
run "$T/wait-0.out" "$T/wait-0.err" --exclusive --wait 0 --verbose "$T/lock0" true
check_rc "$rc" 0
check_out "$T/wait-0.out" "NAME: getting lock took <n> seconds
NAME: executing true"
check_quiet "$T/wait-0.err"
verdict wait-0

# All three: lock the shell's descriptor 10, unlock it, then lock the file
# from another process (which fails unless the unlock worked).
if [ "$no_fd" = 1 ]; then
	skip unlock "the descriptor form (FLOCK -x -n --verbose 10, FLOCK -u 10), skipped by FLOCK_COMPAT_NO_FD=1"
else
	(
		cd "$T" || exit 8
		exec 10<>"$T/lock"
		st=0
		timeout "$BOUND" "${flock_cmd[@]}" --exclusive --nonblock --verbose 10 || st=1
		timeout "$BOUND" "${flock_cmd[@]}" --unlock 10 || st=$((st + 2))
		timeout "$BOUND" "${flock_cmd[@]}" --exclusive --wait 0 --verbose "$T/lock" true || st=$((st + 4))
		exit $st
	) >"$T/unlock.out" 2>"$T/unlock.err"
	rc=$?
	[ $((rc & 1)) = 0 ] || note "locking descriptor 10 failed"
	[ $((rc & 2)) = 0 ] || note "--unlock 10 failed"
	[ $((rc & 4)) = 0 ] || note "locking the file after --unlock failed"
	[ $((rc & 8)) = 0 ] || note "cannot cd to $T"
	[ -e "$T/10" ] && note "created a file named 10"
	check_out "$T/unlock.out" "NAME: getting lock took <n> seconds
NAME: getting lock took <n> seconds
NAME: executing true"
	check_quiet "$T/unlock.err"
	verdict unlock
fi

# ---- ts/flock/close ----

# --close with --fd: the command must not inherit the locked descriptor,
# so a second FLOCK on it in the command finds no descriptor 10 (EBADF:
# status 65, EX_DATAERR, and one line on stderr); without --close it
# inherits it, and locking the same open file again succeeds.
if [ "$no_fd" = 1 ]; then
	skip close "the descriptor form (--fd 10), skipped by FLOCK_COMPAT_NO_FD=1"
else
	inner="${flock_cmd[*]} --exclusive --nonblock --fd 10 true"
	(
		cd "$T" || exit 2
		exec 10<>"$T/lock"
		timeout "$BOUND" "${flock_cmd[@]}" --exclusive --close --fd 10 --command "$inner"
	) >"$T/close1.out" 2>"$T/close1.err"
	rc=$?
	if [ "$rc" = 64 ] && grep -q -- "--fd" "$T/close1.err"; then
		skip close "${flock_cmd[*]} has no --fd option (util-linux's flock has it since" \
			"commit 5052bddf2, after 2.38): $(shown "$T/close1.err")"
	else
		check_rc "$rc" 65
		check_out "$T/close1.out" ""
		if [ "$(wc -l <"$T/close1.err")" != 1 ] ||
			! grep -Eq '^[^ :]+: 10: Bad file descriptor$' "$T/close1.err"; then
			note "stderr '$(shown "$T/close1.err")', want 'NAME: 10: Bad file descriptor'"
		fi
		(
			cd "$T" || exit 2
			exec 10<>"$T/lock"
			timeout "$BOUND" "${flock_cmd[@]}" --exclusive --fd 10 --command "$inner"
		) >"$T/close2.out" 2>"$T/close2.err"
		rc=$?
		[ "$rc" = 0 ] || note "without --close: exit status $rc, want 0"
		check_out "$T/close2.out" ""
		check_quiet "$T/close2.err"
		verdict close
	fi
fi

echo "$npass passed, $nfail failed, $nskip skipped, $nxfail known to fail (${flock_cmd[*]})"
[ "$nfail" = 0 ]
