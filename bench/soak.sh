#!/usr/bin/env bash
# Soak: runs the tap for a bounded time at moderate load with faults mixed
# in (plain requests that succeed, go to a closed port or to a name that
# does not exist; tunnels with a TLS exchange or to a server that resets;
# clients that abort uploads, downloads and tunnels), then reports requests
# sent against events written (they must be equal) and the tap's open fds,
# goroutines, threads and RSS at start, middle and end (fds and goroutines
# must return to baseline). Exits 1 when a check fails.
#
#   bench/soak.sh                 5 minutes of load
#   bench/soak.sh -d 30m          longer (any Go duration)
#   bench/soak.sh --short         a 20-second smoke run
#   bench/soak.sh -r 200          at most 200 exchanges per second (default 100)
#
# Everything listens on 127.0.0.1: bench/soak starts the origins, a DNS
# server the tap uses (--dns-server) and the tap itself, and stops them all
# when it ends. After the load it waits up to 5 minutes (15 s with --short)
# for the tap to return to its baseline, and stops waiting as soon as it
# has: the pipes that tunnels borrow for splice(2) stay in Go's pool until
# two garbage collections, which an idle process runs every 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5m
settle=5m
rate=100
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--duration) duration=$2; shift 2 ;;
    -r|--rate) rate=$2; shift 2 ;;
    --short) duration=20s; settle=15s; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/m365tap" .
go build -o "$out/soak" ./bench/soak
# 16 clients and the tap's pooled upstream connections stay far below the
# default descriptor limit; raise it anyway so a leak shows as a count, not
# as refused connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$out/soak" -bin "$out/m365tap" -duration "$duration" -rate "$rate" -settle "$settle" -dir "$out"
