#!/usr/bin/env bash
# fjall vs redb on Tern's durable-session write pattern (issue 12).
# Usage: benches/store-bench.sh [reps] [max_secs]   (defaults 3 and 5)
# Env: STORE_BENCH (binary, default target/release/store-bench),
#      DATA (scratch dir on the disk under test, default ./tmp-store-bench; removed at the end),
#      OUT (result lines, default store-bench-results.txt), RECOVERY_MESSAGES (default 1000000).
# Every case runs in its own process; the reps go round-robin over all cases and both
# engines so that machine noise spreads over them. benches/store_bench_report.py OUT
# prints the medians as markdown.
set -euo pipefail
reps=${1:-3}
secs=${2:-5}
bin=${STORE_BENCH:-target/release/store-bench}
data=${DATA:-./tmp-store-bench}
out=${OUT:-store-bench-results.txt}
recovery_messages=${RECOVERY_MESSAGES:-1000000}
rm -rf "$data"
mkdir -p "$data"
: >"$out"

cases=()
for w in 1 2; do
  for fo in 1 10; do
    for b in 16 128; do cases+=("--workers $w --fanout $fo --batch $b --mode sync"); done
    cases+=("--workers $w --fanout $fo --batch 128 --mode interval")
  done
done
for fo in 1 10; do
  cases+=("--workers 1 --fanout $fo --batch 1 --mode sync")
  cases+=("--workers 1 --fanout $fo --batch 1 --mode interval")
done

for ((r = 1; r <= reps; r++)); do
  for c in "${cases[@]}"; do
    for e in fjall redb; do
      # shellcheck disable=SC2086 # $c is a list of flags
      "$bin" run --engine "$e" --dir "$data/run" $c --max-secs "$secs" | tee -a "$out"
      rm -rf "$data/run"
    done
  done
done

# Recovery: fill without acks, leave the store as a kill -9 after the last sync
# would, then open and scan it three times (the first open recovers from the crash,
# the later ones open a cleanly closed store).
if [ "$recovery_messages" -gt 0 ]; then
  for e in fjall redb; do
    "$bin" fill --engine "$e" --dir "$data/rec" --fanout 10 --messages "$recovery_messages" \
      --sessions 100000 --crash | tee -a "$out"
    for r in 1 2 3; do
      "$bin" recover --engine "$e" --dir "$data/rec" --sessions 100000 | sed "s/^RECOVER/RECOVER open=$r/" | tee -a "$out"
    done
    rm -rf "$data/rec"
  done
fi
rm -rf "$data"
