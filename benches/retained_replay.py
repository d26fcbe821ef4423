#!/usr/bin/env python3
"""Helpers for benches/retained_replay.sh.

  retained_replay.py publish PORT N        N retained QoS 1 messages on ret/<i/1000>/<i>
  retained_replay.py idle PORT COUNT QOS SECS
                                           COUNT raw clients with a 4 KiB receive buffer
                                           subscribe to '#' at QOS and never read
"""
import socket
import sys
import time

import paho.mqtt.client as mqtt


def publish(port, n):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retained-replay-pub")
    c.max_inflight_messages_set(500)
    c.connect("127.0.0.1", port)
    c.loop_start()
    batch = []
    for i in range(n):
        batch.append(c.publish(f"ret/{i // 1000}/{i}", b"x" * 100, qos=1, retain=True))
        if len(batch) >= 500:
            for b in batch:
                b.wait_for_publish(60)
            batch = []
    for b in batch:
        b.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()


def idle(port, count, qos, secs):
    socks = []
    for k in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        cid = f"retained-replay-idle{k}".encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
        s.sendall(bytes([0x10, len(body)]) + body)
        sub = b"\x00\x01\x00\x01#" + bytes([qos])
        s.sendall(bytes([0x82, len(sub)]) + sub)
        socks.append(s)
    time.sleep(secs)


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(int(sys.argv[2]), int(sys.argv[3]))
    else:
        idle(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
