#!/usr/bin/env bash
# Benchmarks m365tap against no proxy, bare goproxy, Squid and tinyproxy on
# loopback with one load generator (bench/harness), then runs the per-event
# Go benchmarks. Everything listens on 127.0.0.1 only; every load loop is
# bounded in time, and every process started here is killed when it ends.
#
#   bench/run.sh [quick|full|wrk] quick: under 2 minutes; full: under 10 (with the
#                                 SIEM outage run when rsyslogd is installed);
#                                 wrk: about 3 minutes, the plain keep-alive shape
#                                 at 32 and 256 connections from wrk (Debian
#                                 package wrk) and from the harness, same run
#
#   BENCH_REV=<commit>            measure that commit instead of the working tree
#   BENCH_REV_B=<commit>          also measure this commit, as target m365tap-B,
#                                 interleaved with the first (before/after)
#   BENCH_ARGS="-reps 5 -dur 5s"  more harness flags (bench/harness -h)
#
# Squid and tinyproxy come from Debian's packages (installed here when
# missing, which needs root); without them those columns are left out.
# The Markdown report goes to standard output and to $BENCH_OUT (default
# /tmp/m365tap-bench-<mode>.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case "$mode" in quick|full|wrk) ;; *) echo "usage: bench/run.sh [quick|full|wrk]" >&2; exit 2 ;; esac
out=${BENCH_OUT:-/tmp/m365tap-bench-$mode.md}

if ! command -v squid >/dev/null || ! command -v tinyproxy >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq squid tinyproxy >/dev/null || true
  else
    echo "run.sh: squid/tinyproxy missing and not root; measuring without them" >&2
  fi
fi
wrkflag=()
if [ "$mode" = wrk ]; then
  if ! command -v wrk >/dev/null && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || true
  fi
  command -v wrk >/dev/null || { echo "run.sh: mode wrk needs wrk (Debian package wrk)" >&2; exit 1; }
  wrkflag=(-wrk "$(command -v wrk)")
fi

# 10,000 idle tunnels need 20,000 descriptors in the proxy: take the hard limit.
ulimit -n "$(ulimit -Hn)"

# BENCH_REV=<commit> measures that commit (from `git archive`, with this
# bench/ directory copied in) instead of the working tree, which on a shared
# checkout may hold someone's unfinished change.
bin=$(mktemp -d)
src=.
trap 'rm -rf "$bin"' EXIT
# unpack REV DIR: the commit's tree with this bench/ directory copied in.
unpack() {
  mkdir -p "$2"
  git archive "$1" | tar -x -C "$2"
  rm -rf "$2/bench" && cp -r bench "$2/bench"
}
if [ -n "${BENCH_REV:-}" ]; then
  src="$bin/src"
  unpack "$BENCH_REV" "$src"
  built="commit $(git rev-parse --short "$BENCH_REV")"
else
  built="working tree at $(git rev-parse --short HEAD)"
  git diff --quiet HEAD -- . ':(exclude)bench' || built="$built + uncommitted changes"
fi
(cd "$src" && go build -o "$bin/m365tap" .)
bflags=()
if [ -n "${BENCH_REV_B:-}" ]; then
  unpack "$BENCH_REV_B" "$bin/src-b"
  (cd "$bin/src-b" && go build -o "$bin/m365tap-b" .)
  bflags=(-tap-b "$bin/m365tap-b" -tap-b-name m365tap-B)
  built="$built; m365tap-B: commit $(git rev-parse --short "$BENCH_REV_B")"
fi
go build -o "$bin/bareproxy" ./bench/bareproxy
go build -o "$bin/harness" ./bench/harness

echo "== proxies (bench/harness, $mode mode; load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$bin/harness" -mode "$mode" -m365tap "$bin/m365tap" -built "$built" -bareproxy "$bin/bareproxy" -conf bench -out "$out" \
  "${wrkflag[@]}" "${bflags[@]}" ${BENCH_ARGS:-}
[ "$mode" = wrk ] && { echo "report: $out" >&2; exit 0; }

benchtime=200ms
[ "$mode" = full ] && benchtime=1s
{
  echo
  echo "## Per event: Go benchmarks (-benchtime $benchtime; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "bench/encode encodes events the tap emitted for real exchanges; rules' BenchmarkMatch looks up a mix of hosts; in full mode bench/idle counts what 1,000 idle tunnels keep alive in process."
  echo
  echo '```'
  (cd "$src" && go test -run '^$' -bench . -benchmem -benchtime "$benchtime" ./bench/encode/ ./rules/ 2>&1) |
    grep -E '^(Benchmark|ok|FAIL|---)' || true
  if [ "$mode" = full ]; then
    # What one idle tunnel keeps alive in process (heap, stacks, goroutines).
    (cd "$src" && go test -run '^$' -bench IdleTunnels -benchtime 1x ./bench/idle/ 2>&1) |
      grep -E '^(Benchmark|ok|FAIL|---)' || true
  fi
  echo '```'
} | tee -a "$out"

# Full mode: what a syslog outage costs forwarding (bench/siemoutage), when
# rsyslogd is here (Debian package rsyslog; .ci/run installs it).
if [ "$mode" = full ]; then
  if command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ]; then
    {
      echo
      echo "## SIEM outage: forwarding latency with a TCP syslog sink up, down, back and stalled (bench/siemoutage -phase 4s)"
      echo
      echo '```'
      go run ./bench/siemoutage -m365tap "$bin/m365tap" -phase 4s 2>&1 || true
      echo '```'
      if ls /usr/lib/*/rsyslog/imrelp.so >/dev/null 2>&1; then
        echo
        echo "## Receiver crash: events lost over TCP and RELP (bench/siemoutage -crash -phase 8s -queue 50000)"
        echo
        echo '```'
        go run ./bench/siemoutage -m365tap "$bin/m365tap" -crash -phase 8s -queue 50000 2>&1 || true
        echo '```'
      fi
    } | tee -a "$out"
  else
    echo "run.sh: rsyslogd missing; SIEM outage section left out" >&2
  fi
fi
echo "report: $out" >&2
