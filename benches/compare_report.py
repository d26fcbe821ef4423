#!/usr/bin/env python3
"""Markdown report for benches/compare.sh.

    python3 benches/compare_report.py OUT_DIR     # re-print a finished run
    python3 benches/compare_report.py --self-test

Reads compare.sh's records in OUT_DIR (run.tsv: runs, seconds, versions;
scenarios.tsv: order, brokers, tern-bench command; brokers.tsv: broker
command lines) and one tern-bench JSON line per
(scenario, broker, run) in OUT_DIR/<scenario>.<broker>.<run>.json. A run that
produced no JSON (broker missing, did not start, tern-bench failed) counts as
"n/a". Prints one table per scenario with medians over runs, sums of lost and
duplicate deliveries, and a ratio column: Tern ÷ the best peer on the
scenario's target metric (scaling: --workers 2 ÷ --workers 1).
"""
import json
import os
import statistics
import sys

# scenario -> (target metric key, "max" or "min" is better, label)
DEFAULT_TARGET = ("deliveries_per_broker_cpu_s", "max", "deliveries / broker CPU-s")
TARGETS = {
    "latency-fanin": ("lat_p99_us", "min", "p99 latency"),
    "latency-fanout": ("lat_p99_us", "min", "p99 latency"),
    "flood": ("broker_peak_rss_kb", "min", "peak RSS"),
    "conns": ("rss_per_conn_kib", "min", "KiB per idle connection"),
    "scaling": ("delivery_rate", "max", "deliveries/s"),
}
PEERS = ("mosquitto", "rumqttd", "flashmq")


def target(scenario):
    return TARGETS.get(scenario, DEFAULT_TARGET)


def load_run(path):
    """The last JSON line of a run file, or a dict with status n/a."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        d = json.loads(lines[-1])
    except (OSError, IndexError, ValueError):
        return {"status": "n/a"}
    if not isinstance(d, dict):
        return {"status": "n/a"}
    b = d.get("broker_rss_per_conn_bytes")
    if isinstance(b, (int, float)):
        d["rss_per_conn_kib"] = b / 1024
    return d


def median(runs, key):
    v = [d[key] for d in runs if isinstance(d.get(key), (int, float)) and not isinstance(d.get(key), bool)]
    return statistics.median(v) if v else None


def total(runs, key):
    v = [d[key] for d in runs if isinstance(d.get(key), int) and not isinstance(d.get(key), bool)]
    return sum(v) if v else None


def ratio(scenario, by_broker):
    """Tern ÷ best peer on the target metric (scaling: w2 ÷ w1), or None."""
    key, better, _ = target(scenario)
    if scenario == "scaling":
        w1 = median(by_broker.get("tern-w1", []), key)
        w2 = median(by_broker.get("tern-w2", []), key)
        return w2 / w1 if w1 and w2 is not None else None
    tern = median(by_broker.get("tern", []), key)
    peers = [median(by_broker.get(p, []), key) for p in PEERS]
    peers = [p for p in peers if p is not None]
    if tern is None or not peers:
        return None
    best = max(peers) if better == "max" else min(peers)
    return tern / best if best else None


def fmt(v, scale=1.0, nd=0):
    return "n/a" if v is None else f"{v / scale:,.{nd}f}"


def status(runs):
    return ",".join(sorted({str(d.get("status")) for d in runs})) or "n/a"


def table(scenario, brokers, by_broker):
    key, better, label = target(scenario)
    r = ratio(scenario, by_broker)
    if scenario == "scaling":
        rlabel = f"workers 2 ÷ 1 ({label})"
    else:
        rlabel = f"Tern ÷ best peer ({label}, {'higher' if better == 'max' else 'lower'} is better)"
    out = []
    if scenario == "conns":
        out.append("| broker | connects/s | KiB / idle conn | RSS connected MiB | peak RSS MiB | connect CPU-s | failed | dropped | status | " + rlabel + " |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    else:
        out.append("| broker | deliveries / broker CPU-s | deliveries/s | p50 ms | p99 ms | lost (sum) | dups (sum) | peak RSS MiB | status | " + rlabel + " |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for b in brokers:
        runs = by_broker.get(b, [])
        rcell = fmt(r, 1, 2) if b in ("tern", "tern-w2") else ""
        if scenario == "conns":
            out.append(
                f"| {b} | {fmt(median(runs, 'connect_rate'))} | {fmt(median(runs, 'rss_per_conn_kib'), 1, 1)} "
                f"| {fmt(median(runs, 'broker_rss_connected_kb'), 1024, 1)} | {fmt(median(runs, 'broker_peak_rss_kb'), 1024, 1)} "
                f"| {fmt(median(runs, 'broker_connect_cpu_s'), 1, 2)} | {fmt(total(runs, 'conn_failures'))} "
                f"| {fmt(total(runs, 'conns_lost'))} | {status(runs)} | {rcell} |"
            )
        else:
            out.append(
                f"| {b} | {fmt(median(runs, 'deliveries_per_broker_cpu_s'))} | {fmt(median(runs, 'delivery_rate'))} "
                f"| {fmt(median(runs, 'lat_p50_us'), 1000, 2)} | {fmt(median(runs, 'lat_p99_us'), 1000, 2)} "
                f"| {fmt(total(runs, 'lost'))} | {fmt(total(runs, 'duplicates'))} "
                f"| {fmt(median(runs, 'broker_peak_rss_kb'), 1024, 1)} | {status(runs)} | {rcell} |"
            )
    return out


def read_meta(out_dir):
    """compare.sh's tab-separated records: run.tsv (key, value), scenarios.tsv
    (name, brokers, tern-bench command) and brokers.tsv (scenario, broker,
    command)."""
    def rows(name):
        with open(os.path.join(out_dir, name), encoding="utf-8") as f:
            return [l.rstrip("\n").split("\t") for l in f if l.strip()]
    meta = {"versions": [], "scenarios": []}
    for k, v in rows("run.tsv"):
        if k == "version":
            meta["versions"].append(v)
        else:
            meta[k] = int(v) if k == "runs" else v
    cmds = {}
    for sc, b, cmd in rows("brokers.tsv"):
        cmds.setdefault(sc, {})[b] = cmd
    for name, brokers, bench in rows("scenarios.tsv"):
        meta["scenarios"].append({"name": name, "brokers": brokers.split(), "bench": bench, "broker_cmds": cmds.get(name, {})})
    return meta


def report(out_dir):
    meta = read_meta(out_dir)
    runs, secs = meta["runs"], meta["secs"]
    lines = [
        f"Run {meta.get('date', '')}, {runs} run(s) × {secs} s per scenario and broker, medians; "
        f"`{meta.get('invocation', 'benches/compare.sh')}`",
        "",
    ]
    for v in meta["versions"]:
        lines.append(f"* {v}")
    lines.append("")
    for sc in meta["scenarios"]:
        name, brokers = sc["name"], sc["brokers"]
        by_broker = {b: [load_run(os.path.join(out_dir, f"{name}.{b}.{i}.json")) for i in range(1, runs + 1)] for b in brokers}
        lines.append(f"### {name}")
        lines.append("")
        lines.append(f"`{sc['bench']}`")
        lines.append("")
        lines.extend(table(name, brokers, by_broker))
        lines.append("")
        for b in brokers:
            lines.append(f"* {b}: `{sc['broker_cmds'].get(b, 'n/a')}`")
        lines.append("")
    return "\n".join(lines)


def self_test():
    ok = lambda d: dict(d, status="ok")  # noqa: E731
    na = {"status": "n/a"}
    runs = {
        "tern": [ok({"deliveries_per_broker_cpu_s": v, "lost": 0}) for v in (10.0, 30.0, 20.0)],
        "mosquitto": [ok({"deliveries_per_broker_cpu_s": 8.0, "lost": 1}), na, na],
        "rumqttd": [na, na, na],
    }
    assert median(runs["tern"], "deliveries_per_broker_cpu_s") == 20.0
    assert median(runs["rumqttd"], "deliveries_per_broker_cpu_s") is None
    assert total(runs["mosquitto"], "lost") == 1 and total(runs["rumqttd"], "lost") is None
    assert ratio("fanin-q1", runs) == 20.0 / 8.0  # rumqttd n/a is skipped
    runs["rumqttd"] = [ok({"deliveries_per_broker_cpu_s": 16.0})]
    assert ratio("fanin-q1", runs) == 20.0 / 16.0  # best peer = highest
    runs["flashmq"] = [ok({"deliveries_per_broker_cpu_s": 40.0})]
    assert ratio("fanin-q1", runs) == 20.0 / 40.0  # flashmq is a peer too
    lat = {"tern": [ok({"lat_p99_us": 500})], "mosquitto": [ok({"lat_p99_us": 800})], "rumqttd": [ok({"lat_p99_us": 400})]}
    assert ratio("latency-fanin", lat) == 500 / 400  # best peer = lowest
    assert ratio("latency-fanin", {"tern": lat["tern"]}) is None
    sc = {"tern-w1": [ok({"delivery_rate": 100.0})], "tern-w2": [ok({"delivery_rate": 150.0})]}
    assert ratio("scaling", sc) == 1.5
    assert median([{"x": True}, {"x": 2}], "x") == 2  # booleans are not numbers
    assert status([ok({}), na]) == "n/a,ok" and status([]) == "n/a"
    t = table("conns", ["mosquitto", "tern"], {"tern": [ok({"rss_per_conn_kib": 4.0, "connect_rate": 9000.0})], "mosquitto": [ok({"rss_per_conn_kib": 2.0})]})
    assert t[3].startswith("| tern | 9,000 | 4.0 |") and t[3].endswith("| ok | 2.00 |"), t
    assert t[2].startswith("| mosquitto | n/a | 2.0 |") and t[2].endswith("| ok |  |"), t
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.json")
        with open(p, "w", encoding="utf-8") as f:
            f.write('progress\n{"status":"ok","broker_rss_per_conn_bytes":2048}\n')
        assert load_run(p)["rss_per_conn_kib"] == 2.0
        with open(p, "w", encoding="utf-8") as f:
            f.write("")
        assert load_run(p) == na
        assert load_run(os.path.join(d, "missing.json")) == na
        # A whole report from compare.sh's records; rumqttd never ran.
        for name, text in {
            "run.tsv": "runs\t2\nsecs\t5\nversion\tmosquitto version 2\n",
            "scenarios.tsv": "fanin-q1\ttern mosquitto rumqttd\ttern-bench fanin --qos 1\n",
            "brokers.tsv": "fanin-q1\ttern\ttern --bind x\nfanin-q1\tmosquitto\tmosquitto -c y\n",
            "fanin-q1.tern.1.json": '{"status":"ok","deliveries_per_broker_cpu_s":300.0,"lost":0}',
            "fanin-q1.tern.2.json": '{"status":"ok","deliveries_per_broker_cpu_s":100.0,"lost":0}',
            "fanin-q1.mosquitto.1.json": '{"status":"ok","deliveries_per_broker_cpu_s":100.0,"lost":2}',
            "fanin-q1.mosquitto.2.json": '{"status":"lost","deliveries_per_broker_cpu_s":100.0,"lost":3}',
        }.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        rep = report(d).splitlines()
        assert "* mosquitto version 2" in rep and "`tern-bench fanin --qos 1`" in rep, rep
        assert any(l.startswith("| tern | 200 |") and l.endswith("| ok | 2.00 |") for l in rep), rep
        assert any(l.startswith("| mosquitto | 100 |") and "| 5 | n/a |" in l and "| lost,ok |" in l for l in rep), rep
        assert any(l.startswith("| rumqttd | n/a |") and "| n/a |" in l for l in rep), rep
        assert "* rumqttd: `n/a`" in rep and "* tern: `tern --bind x`" in rep, rep
    print("compare_report self-test: ok")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        self_test()
    elif len(sys.argv) == 2:
        print(report(sys.argv[1]))
    else:
        sys.exit(__doc__)
