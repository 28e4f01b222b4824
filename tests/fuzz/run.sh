#!/bin/sh
# Runs a libFuzzer target on a copy of its corpus, never in the source tree.
#
#   run.sh FUZZER SECONDS ARTIFACT_DIR DIR...
#       fuzzes for SECONDS on a temporary copy of every DIR (corpus and
#       regressions); crashes, leaks and sanitizer reports fail the run and
#       leave their input in ARTIFACT_DIR. $FUZZ_FLAGS adds libFuzzer flags.
#   run.sh --replay FUZZER DIR...
#       runs every file of every DIR once.
set -eu

sanitizer_options() {
	# A UBSan report is a failure, not a message.
	UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
	export UBSAN_OPTIONS ASAN_OPTIONS
}

if [ "${1-}" = --replay ]; then
	fuzzer=$2
	shift 2
	sanitizer_options
	for dir; do
		find "$dir" -type f ! -name '.*' -exec "$fuzzer" -runs=1 {} +
	done
	exit 0
fi

[ $# -ge 4 ] || { echo "usage: run.sh FUZZER SECONDS ARTIFACT_DIR DIR..." >&2; exit 2; }
fuzzer=$1 seconds=$2 artifacts=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/hasp-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
for dir; do
	find "$dir" -type f ! -name '.*' -exec cp {} "$work/corpus/" \;
done
sanitizer_options
# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_FLAGS-} "$work/corpus"
