#!/usr/bin/env bash
# Compares one Go benchmark of the proxy package at two commits by CPU time
# per operation (user + system of the whole test process, divided by the
# operations run), in interleaved rounds. On a machine shared with other
# work, wall-clock ns/op swings with the load; CPU time per operation
# swings much less, so it is the figure to compare there.
#
#   bench/cpuab.sh OLD_REV NEW_REV BENCHMARK OPS [ROUNDS]
#   bench/cpuab.sh d44ed01 HEAD PlainSmallParent 3000 5
#
# Each round runs the old binary, then the new one, with -benchtime OPSx.
# A benchmark file missing at OLD_REV is copied from NEW_REV's tree, so a
# workload added with a change can measure the code before it. Prints one
# line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 bench=$3 ops=$4 rounds=${5:-5}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; git worktree remove --force "$tmp/new" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
for v in old new; do
  rev=${!v}
  git worktree add -f --detach "$tmp/$v" "$rev" >/dev/null 2>&1
  for f in proxy/bench_test.go proxy/bench_parent_test.go; do
    [ -f "$tmp/$v/$f" ] || cp "$f" "$tmp/$v/$f" 2>/dev/null || true
  done
  (cd "$tmp/$v" && go test -c -o "$tmp/$v.test" ./proxy)
done
for i in $(seq "$rounds"); do
  for v in old new; do
    (cd proxy && /usr/bin/time -f "%U %S" -o "$tmp/time" "$tmp/$v.test" -test.run '^$' \
      -test.bench "^Benchmark$bench\$" -test.benchtime "${ops}x" -test.benchmem >"$tmp/out" 2>&1)
    read -r u s <"$tmp/time"
    cpu=$(awk -v u="$u" -v s="$s" -v n="$ops" 'BEGIN { printf "%.1f", (u + s) * 1e6 / n }')
    wall=$(awk '/ns\/op/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") print $i }' "$tmp/out" | head -1)
    allocs=$(awk '/allocs\/op/ { for (i = 1; i <= NF; i++) if ($(i+1) == "allocs/op") print $i }' "$tmp/out" | head -1)
    echo "$bench $v cpu_us_per_op=$cpu wall_ns_per_op=$wall allocs_per_op=$allocs"
    echo "$v $cpu" >>"$tmp/all"
  done
done
for v in old new; do
  awk -v v="$v" '$1 == v { print $2 }' "$tmp/all" | sort -n | awk -v v="$v" -v b="$bench" \
    '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s %s median cpu_us_per_op=%.1f\n", b, v, m }'
done
