#!/usr/bin/env bash
# Shows that CONNECT tunnels stay on the kernel's zero-copy path: runs the
# tap under `strace -c`, pushes bytes through tunnels with bench/tunnelbulk,
# and prints the tap's own syscall counts. With splice, the tap makes a few
# splice(2) calls per 64 KiB and almost no read/write calls on the data path.
# Usage: bench/splice.sh [MiB per tunnel] [tunnels] [down|up]   (needs strace)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-256}
n=${2:-4}
dir=${3:-down}
upflag=
[ "$dir" = up ] && upflag=-up
port=${PORT:-18089}
out=$(mktemp -d)
trap 'kill "$tap" 2>/dev/null || true; rm -rf "$out"' EXIT
go build -o "$out/m365tap" .
go build -o "$out/tunnelbulk" ./bench/tunnelbulk
M365TAP_ACCESS_PORTS=18090 M365TAP_LOG_STDOUT=false M365TAP_LOG_FILE="$out/events.json" \
  strace -f -c -e trace=splice,read,write,recvfrom,sendto -o "$out/strace.txt" \
  "$out/m365tap" --listen "127.0.0.1:$port" 2>"$out/stderr" &
tap=$!
for _ in $(seq 50); do grep -q listening "$out/stderr" 2>/dev/null && break; sleep 0.1; done
"$out/tunnelbulk" -proxy "127.0.0.1:$port" -bytes $((mib << 20)) -n "$n" $upflag
# Stop the tap itself (strace passes no signal on), then let strace report.
pkill -INT -P "$tap" m365tap || true
wait "$tap" || true
echo "tap syscalls for $n tunnel(s) of $mib MiB ($dir):"
cat "$out/strace.txt"
echo "events: $(grep -c '"msg":"exchange"' "$out/events.json")"
