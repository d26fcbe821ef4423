#!/usr/bin/env python3
"""Medians of benches/store-bench.sh result lines as markdown tables."""
import statistics
import sys
from collections import defaultdict


def parse(line):
    kind, _, rest = line.partition(" ")
    return kind, dict(kv.split("=", 1) for kv in rest.split())


def med(rows, key):
    return statistics.median(float(r[key]) for r in rows)


def main(path):
    runs = defaultdict(list)
    recover = defaultdict(list)
    fills = []
    with open(path) as f:
        for line in f:
            kind, d = parse(line.strip())
            if kind == "RESULT":
                key = (d["mode"], int(d["batch"]), int(d["fanout"]), int(d["workers"]))
                runs[(key, d["engine"])].append(d)
            elif kind == "RECOVER":
                recover[(d["engine"], d["open"])].append(d)
            elif kind == "FILL":
                fills.append(d)
    keys = sorted({k for k, _ in runs}, key=lambda k: (k[0] != "sync", -k[1], k[2], k[3]))
    print("| mode | batch | fan-out | workers | engine | runs | msgs/s | commit p50 ms | commit p99 ms "
          "| bytes written/msg | disk at end MiB | peak RSS MiB |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        for e in ("fjall", "redb"):
            rows = runs.get((k, e))
            if not rows:
                continue
            print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {e} | {len(rows)} "
                  f"| {med(rows, 'msgs_per_s'):,.0f} | {med(rows, 'commit_p50_us') / 1000:.2f} "
                  f"| {med(rows, 'commit_p99_us') / 1000:.2f} | {med(rows, 'bytes_per_msg'):,.0f} "
                  f"| {med(rows, 'disk_kib') / 1024:.1f} | {med(rows, 'rss_kib') / 1024:.0f} |")
    print()
    print("| mode | batch | fan-out | workers | redb ÷ fjall msgs/s |")
    print("|---|---:|---:|---:|---:|")
    for k in keys:
        f, r = runs.get((k, "fjall")), runs.get((k, "redb"))
        if f and r:
            print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {med(r, 'msgs_per_s') / med(f, 'msgs_per_s'):.2f} |")
    if fills or recover:
        print()
        for d in fills:
            print(f"- fill {d['engine']}: {d['messages']} messages × {d['fanout']} queue entries over "
                  f"{d['sessions']} sessions in {d['secs']} s, {int(d['disk_kib']) / 1024:.0f} MiB on disk")
        print()
        print("| engine | open | open s | scan s | messages | queue entries | peak RSS MiB | disk MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for (e, o), rows in sorted(recover.items()):
            for d in rows:
                label = "after crash" if o == "1" else "after clean close"
                print(f"| {e} | {o} ({label}) | {d['open_s']} | {d['scan_s']} | {d['messages']} "
                      f"| {d['queue_entries']} | {int(d['rss_kib']) / 1024:.0f} | {int(d['disk_kib']) / 1024:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "store-bench-results.txt")
