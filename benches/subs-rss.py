#!/usr/bin/env python3
"""RSS per subscription of an MQTT broker on this host.

    benches/subs-rss.py --pid PID --port PORT --clients C --subs-per-client K

Connects C MQTT 3.1.1 clients to 127.0.0.1:PORT (clean session), reads the
broker's VmRSS (/proc/PID/status) with the clients connected and idle, then
has client c subscribe at QoS 0 to the K distinct filters
`<prefix>/<c>/<i>` (i = 0..K-1, 100 filters per SUBSCRIBE, every SUBACK
awaited and checked), waits --settle seconds and reads VmRSS again. Prints
one JSON line: the two RSS figures, the subscriptions made and
`bytes_per_sub` = (RSS subscribed - RSS connected) / subscriptions. The
clients stay connected until the second reading. A raw socket client: no
library between the script and the broker.
"""
import argparse
import json
import socket
import struct
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def read_packet(sock, buf):
    """(first byte, body), reading more into buf as needed."""
    while True:
        if len(buf) >= 2:
            mult, n, i = 1, 0, 1
            while i < len(buf):
                b = buf[i]
                n += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            else:
                i = None
            if i is not None and len(buf) >= i + n:
                first, body = buf[0], bytes(buf[i:i + n])
                del buf[:i + n]
                return first, body
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed by the broker")
        buf.extend(chunk)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--subs-per-client", type=int, default=100000)
    ap.add_argument("--prefix", default="sub")
    ap.add_argument("--settle", type=float, default=2.0)
    a = ap.parse_args()
    run = int(time.time() * 1000) % 100000
    socks = []
    for c in range(a.clients):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 600) + string(f"sr{run}-{c}")
        s.sendall(packet(0x10, body))
        buf = bytearray()
        first, body = read_packet(s, buf)
        if first != 0x20 or body[1] != 0:
            raise RuntimeError(f"CONNACK refused: {body!r}")
        socks.append((s, buf))
    time.sleep(a.settle)
    connected = rss_kb(a.pid)
    t0 = time.time()
    per_packet = 100
    total = 0
    for c, (s, buf) in enumerate(socks):
        pid = 0
        pending = 0
        i = 0
        while i < a.subs_per_client:
            pid = pid % 65535 + 1
            n = min(per_packet, a.subs_per_client - i)
            body = struct.pack(">H", pid) + b"".join(
                string(f"{a.prefix}/{c}/{j}") + b"\x00" for j in range(i, i + n))
            s.sendall(packet(0x82, body))
            i += n
            pending += 1
            # Keep at most 8 SUBSCRIBEs outstanding per client.
            while pending >= 8 or (i >= a.subs_per_client and pending):
                first, body = read_packet(s, buf)
                if first != 0x90:
                    continue
                codes = body[2:]
                if any(code > 2 for code in codes):
                    raise RuntimeError(f"SUBACK refused a filter: {codes[:8]!r}")
                total += len(codes)
                pending -= 1
    subscribe_s = time.time() - t0
    time.sleep(a.settle)
    subscribed = rss_kb(a.pid)
    print(json.dumps({
        "clients": a.clients,
        "subscriptions": total,
        "rss_connected_kb": connected,
        "rss_subscribed_kb": subscribed,
        "bytes_per_sub": round((subscribed - connected) * 1024 / max(total, 1), 1),
        "subscribe_s": round(subscribe_s, 2),
    }))
    for s, _ in socks:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
