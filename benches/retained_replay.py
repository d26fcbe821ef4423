#!/usr/bin/env python3
"""Helpers for benches/retained_replay.sh (raw MQTT 3.1.1 over 127.0.0.1).

  retained_replay.py publish PORT N        N retained QoS 1 messages (100-byte payloads)
                                           on ret/<i/1000>/<i>, up to 500 unacknowledged;
                                           returns when every PUBACK has arrived
  retained_replay.py replay PORT QOS N [IDLE]
                                           one client subscribes to 'ret/#' at QOS, acks
                                           every QoS 1 delivery, and reads until it has N
                                           distinct topics or nothing arrived for IDLE
                                           seconds (default 5); prints one key=value line:
                                           delivered (distinct topics), packets, first_to_last_s,
                                           msgs_per_s (delivered / first_to_last_s),
                                           subscribe_to_last_s, client_cpu_s
  retained_replay.py idle PORT COUNT QOS SECS
                                           COUNT raw clients with a 4 KiB receive buffer
                                           subscribe to '#' at QOS and never read
  retained_replay.py summary RAW.tsv       the median table of retained_replay.sh --rate
"""
import resource
import select
import socket
import statistics
import sys
import time

WINDOW = 500


def connect(port, cid, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect(("127.0.0.1", port))
    cid = cid.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    s.sendall(bytes([0x10, len(body)]) + body)
    return s


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        out += chunk
    return out


def expect_connack(s):
    ack = read_exact(s, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"CONNACK refused: {ack.hex()}")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(port, n):
    s = connect(port, "retained-replay-pub")
    expect_connack(s)
    payload = b"x" * 100
    sent = acked = 0
    buf = b""
    while acked < n:
        if sent < n and sent - acked < WINDOW:
            frames = []
            while sent < n and sent - acked < WINDOW:
                topic = f"ret/{sent // 1000}/{sent}".encode()
                pid = sent % 65535 + 1
                body = len(topic).to_bytes(2, "big") + topic + pid.to_bytes(2, "big") + payload
                frames.append(b"\x33" + varint(len(body)) + body)
                sent += 1
            s.sendall(b"".join(frames))
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("broker closed the connection while publishing")
        buf += chunk
        # PUBACKs are 4 bytes: 0x40 0x02 id id.
        whole = len(buf) // 4 * 4
        for i in range(0, whole, 4):
            if buf[i] != 0x40:
                raise ConnectionError(f"unexpected packet 0x{buf[i]:02x} while publishing")
        acked += whole // 4
        buf = buf[whole:]
    s.sendall(b"\xe0\x00")
    s.close()


def replay(port, qos, n, idle_secs):
    s = connect(port, "retained-replay-sub", rcvbuf=None)
    expect_connack(s)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t_sub = time.monotonic()
    s.sendall(b"\x82\x0a\x00\x01\x00\x05ret/#" + bytes([qos]))
    s.setblocking(False)
    seen = set()
    packets = 0
    first = last = None
    buf = bytearray()
    pos = 0
    while len(seen) < n:
        r, _, _ = select.select([s], [], [], idle_secs)
        if not r:
            break
        try:
            chunk = s.recv(1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            break
        now = time.monotonic()
        del buf[:pos]
        buf += chunk
        pos = 0
        end = len(buf)
        acks = []
        got = False
        while pos + 2 <= end:
            h = buf[pos]
            # Remaining length (variable byte integer).
            rl = 0
            mul = 1
            i = pos + 1
            while True:
                if i >= end:
                    rl = -1
                    break
                b = buf[i]
                rl += (b & 0x7F) * mul
                i += 1
                if b < 0x80:
                    break
                mul <<= 7
            if rl < 0 or i + rl > end:
                break
            if h & 0xF0 == 0x30:
                tl = (buf[i] << 8) | buf[i + 1]
                seen.add(bytes(buf[i + 2:i + 2 + tl]))
                packets += 1
                got = True
                if h & 0x06:
                    p = i + 2 + tl
                    acks.append(b"\x40\x02" + bytes(buf[p:p + 2]))
            pos = i + rl
        if got:
            if first is None:
                first = now
            last = now
        if acks:
            s.setblocking(True)
            s.sendall(b"".join(acks))
            s.setblocking(False)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    s.close()
    span = (last - first) if first is not None else 0.0
    rate = len(seen) / span if span > 0 else 0.0
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(
        f"delivered={len(seen)} packets={packets} first_to_last_s={span:.3f} "
        f"msgs_per_s={rate:.0f} subscribe_to_last_s={(last or t_sub) - t_sub:.3f} "
        f"client_cpu_s={cpu:.2f}"
    )


def idle(port, count, qos, secs):
    socks = []
    for k in range(count):
        s = connect(port, f"retained-replay-idle{k}", rcvbuf=4096)
        sub = b"\x00\x01\x00\x01#" + bytes([qos])
        s.sendall(bytes([0x82, len(sub)]) + sub)
        socks.append(s)
    time.sleep(secs)


def summary(path):
    """RAW.tsv rows: n, broker, run, qos, key=value replay line, RSS holding N (KiB),
    peak RSS during the replay (KiB), broker CPU-s during the replay, publish seconds."""
    groups = {}
    order = []
    with open(path) as f:
        for line in f:
            n, broker, _run, qos, kv, stored, hwm, cpu, pub = line.rstrip("\n").split("\t")
            d = dict(x.split("=", 1) for x in kv.split())
            key = (int(n), broker, int(qos))
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append({
                "delivered": int(d.get("delivered", 0)),
                "rate": float(d.get("msgs_per_s", 0)),
                "client_cpu": float(d.get("client_cpu_s", 0)),
                "stored": int(stored) / 1024,
                "peak": int(hwm) / 1024,
                "cpu": float(cpu),
                "pub": float(pub),
            })

    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    def delivered(rows):
        vals = sorted(r["delivered"] for r in rows)
        m = f"{statistics.median(vals):,.0f}"
        return m if vals[0] == vals[-1] else f"{m} ({vals[0]:,}–{vals[-1]:,})"

    for n in sorted({k[0] for k in order}):
        print(f"### {n:,} retained topics (medians of {max(len(v) for k, v in groups.items() if k[0] == n)} runs)")
        print()
        print("| broker | QoS | delivered | msgs/s | broker peak RSS in replay (MiB) "
              "| RSS holding them (MiB) | broker CPU-s | msgs per broker CPU-s | subscriber CPU-s | publish s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in sorted((k for k in order if k[0] == n), key=lambda k: (k[2], order.index(k))):
            rows = groups[key]
            cpu = med(rows, "cpu")
            per_cpu = statistics.median(r["delivered"] / r["cpu"] if r["cpu"] > 0 else 0 for r in rows)
            print(f"| {key[1]} | {key[2]} | {delivered(rows)} | {med(rows, 'rate'):,.0f} "
                  f"| {med(rows, 'peak'):.1f} | {med(rows, 'stored'):.1f} | {cpu:.2f} "
                  f"| {per_cpu:,.0f} | {med(rows, 'client_cpu'):.2f} | {med(rows, 'pub'):.1f} |")
        print()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "publish":
        publish(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "replay":
        replay(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
               float(sys.argv[5]) if len(sys.argv) > 5 else 5.0)
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        idle(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
