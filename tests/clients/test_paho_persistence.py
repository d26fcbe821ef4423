"""Durable sessions with Eclipse Paho (paho-mqtt 2.x): a Clean Session 0
(MQTT 3.1.1) and a Clean Start 0 + Session Expiry (MQTT 5) session, with
QoS 1 and QoS 2 messages queued while offline, survive a SIGKILL of a broker
started with ``--persistence on``; after the restart on the same data dir
each session is present and gets every message. Every wait is bounded.
"""

from __future__ import annotations

import collections
import queue
import shutil
import subprocess
import tempfile
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from test_paho import STARTUP, WAIT, tern_binary, unique_id, unique_topic


class Tern:
    """A ``tern --persistence on`` process this test started (stopped by PID)."""

    def __init__(self, data_dir: str):
        self.proc = subprocess.Popen(
            [str(tern_binary()), "--bind", "127.0.0.1:0", "--workers", "2", "--no-metrics",
             "--persistence", "on", "--data-dir", data_dir, "--durability", "sync"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        addresses: queue.Queue[tuple[str, int]] = queue.Queue()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.tail.append(line.rstrip("\n"))
                if line.startswith("tern: listening on "):
                    host, port = line.split("tern: listening on ", 1)[1].strip().rsplit(":", 1)
                    addresses.put((host, int(port)))

        threading.Thread(target=drain, daemon=True).start()
        try:
            self.address = addresses.get(timeout=STARTUP)
        except queue.Empty:
            self.proc.kill()
            pytest.fail("tern printed no `tern: listening on` line:\n" + "\n".join(self.tail))

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="tern-paho-store-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def connect(address, client_id: str, v5: bool):
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    kwargs = {} if v5 else {"clean_session": False}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                    reconnect_on_failure=False, **kwargs)
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connacks: queue.Queue[tuple[bool, int]] = queue.Queue()
    c.on_message = lambda cl, u, m: messages.put(m)
    c.on_connect = lambda cl, u, flags, rc, p: connacks.put((bool(flags.session_present), int(rc.value)))
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect(address[0], address[1], keepalive=30, clean_start=False, properties=props)
    else:
        c.connect(address[0], address[1], keepalive=30)
    c.loop_start()
    present, code = connacks.get(timeout=WAIT)
    assert code == 0, f"CONNACK refused: {code}"
    return c, messages, present


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_persistent_session_survives_a_sigkill(data_dir, v5):
    topic = unique_topic("durable")
    cid = unique_id()
    broker = Tern(data_dir)
    try:
        sub, _, present = connect(broker.address, cid, v5)
        assert not present
        done = threading.Event()
        sub.on_subscribe = lambda *a: done.set()
        sub.subscribe(topic + "/#", qos=2)
        assert done.wait(WAIT), "no SUBACK"
        sub.disconnect()
        sub.loop_stop()

        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique_id())
        pub.connect(*broker.address)
        pub.loop_start()
        sent = []
        for i in range(20):
            qos = 1 + i % 2
            info = pub.publish(f"{topic}/{qos}", f"m{i}".encode(), qos=qos)
            # Acknowledged once on disk: an fsync on a loaded CI disk may be slow.
            info.wait_for_publish(timeout=4 * WAIT)
            assert info.is_published(), f"m{i} not acknowledged; broker log:\n" + "\n".join(broker.tail)
            sent.append(f"m{i}")
        pub.loop_stop()
        broker.kill9()

        broker = Tern(data_dir)
        sub, messages, present = connect(broker.address, cid, v5)
        assert present, "the session was kept across the restart"
        got = []
        while len(got) < len(sent):
            try:
                got.append(messages.get(timeout=WAIT).payload.decode())
            except queue.Empty:
                break
        # Paho hands a QoS 2 message to the application at PUBREL, so the
        # two QoS interleave differently; within each QoS, the order holds.
        for qos in (1, 2):
            want = [m for i, m in enumerate(sent) if 1 + i % 2 == qos]
            assert [m for m in got if m in want] == want, f"QoS {qos}: {got}"
        assert sorted(got) == sorted(sent)
        sub.disconnect()
        sub.loop_stop()
    finally:
        broker.stop()
