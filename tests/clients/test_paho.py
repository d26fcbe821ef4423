"""Interoperability of the Tern broker with Eclipse Paho (paho-mqtt 2.x).

The fixture spawns the broker binary (``TERN_BIN``, else
``$CARGO_TARGET_DIR/debug/tern``, else ``<repo>/target/debug/tern``) on
``127.0.0.1:0`` and reads the port from its ``tern: listening on ADDR`` line,
or uses the broker named by ``TERN_TEST_BROKER=host:port``. Every wait is
bounded; topics and client ids are unique per test.
"""

from __future__ import annotations

import collections
import os
import queue
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

WAIT = 5.0  # seconds, the longest single wait
QUIET = 0.4  # seconds to be reasonably sure nothing arrives
STARTUP = 10.0
REPO = Path(__file__).resolve().parents[2]
VERSIONS = [
    pytest.param(mqtt.MQTTv31, id="v31"),
    pytest.param(mqtt.MQTTv311, id="v311"),
]


def tern_binary() -> Path:
    if os.environ.get("TERN_BIN"):
        return Path(os.environ["TERN_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "tern"


@pytest.fixture
def broker():
    """(host, port) of the broker under test."""
    external = os.environ.get("TERN_TEST_BROKER", "").strip()
    if external:
        host, port = external.rsplit(":", 1)
        yield host, int(port)
        return
    binary = tern_binary()
    if not binary.exists():
        pytest.fail(f"{binary} does not exist: run `cargo build -p tern-broker` or set TERN_BIN")
    proc = subprocess.Popen(
        [str(binary), "--bind", "127.0.0.1:0", "--workers", "2", "--no-metrics", "--log-level", "debug"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=200)
    addresses: queue.Queue[tuple[str, int]] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if line.startswith("tern: listening on "):
                host, port = line.split("tern: listening on ", 1)[1].strip().rsplit(":", 1)
                addresses.put((host, int(port)))

    threading.Thread(target=drain, daemon=True).start()
    try:
        try:
            address = addresses.get(timeout=STARTUP)
        except queue.Empty:
            pytest.fail("tern printed no `tern: listening on` line:\n" + "\n".join(tail))
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=2)


def unique_id() -> str:
    """A client id valid in MQTT 3.1 too (at most 23 bytes)."""
    return "p" + uuid.uuid4().hex[:20]


def unique_topic(tag: str) -> str:
    return f"tern/paho/{tag}/{uuid.uuid4().hex}"


class Peer:
    """A paho client running its network loop on a thread, with queues of
    received messages, CONNACKs, SUBACKs and disconnects."""

    def __init__(self, broker, protocol=mqtt.MQTTv311, client_id=None, clean_session=True,
                 will=None, reconnect=True, keepalive=30):
        self.client_id = client_id or unique_id()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
            protocol=protocol,
            reconnect_on_failure=reconnect,
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[tuple[bool, int]] = queue.Queue()
        self.subacks: queue.Queue[int] = queue.Queue()
        self.disconnects: queue.Queue[int] = queue.Queue()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda c, u, flags, rc, p: self.connacks.put(
            (bool(flags.session_present), int(rc.value))
        )
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(mid)
        self.client.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.put(int(rc.value))
        if will is not None:
            self.client.will_set(*will)
        self.client.connect(broker[0], broker[1], keepalive=keepalive)
        self.client.loop_start()
        present, code = self.connacks.get(timeout=WAIT)
        assert code == 0, f"CONNACK refused: {code}"
        self.session_present = present

    def subscribe(self, topic: str, qos: int) -> None:
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self.subacks.get(timeout=WAIT) == mid

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), f"publish to {topic} not completed in {WAIT}s"

    def message(self) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"{self.client_id}: no message within {WAIT}s")

    def expect_no_message(self) -> None:
        try:
            msg = self.messages.get(timeout=QUIET)
        except queue.Empty:
            return
        pytest.fail(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def abort(self) -> None:
        """Closes the socket without DISCONNECT (an abnormal close)."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


# [MQTT-7.0.0-2] [MQTT-7.1.1-1] [MQTT-3.3.4-1] [MQTT-4.3.1-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2]
@pytest.mark.parametrize("protocol", VERSIONS)
def test_qos_round_trip(broker, protocol):
    topic = unique_topic("qos")
    sub = Peer(broker, protocol)
    sub.subscribe(topic, 2)
    pub = Peer(broker, protocol)
    try:
        for qos in (0, 1, 2):
            pub.publish(topic, f"qos{qos}".encode(), qos=qos)
            msg = sub.message()
            assert (msg.topic, msg.payload, msg.qos, msg.retain) == (topic, f"qos{qos}".encode(), qos, False)
    finally:
        pub.disconnect()
        sub.disconnect()


# [MQTT-3.3.1-5] [MQTT-3.3.1-8] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
@pytest.mark.parametrize("protocol", VERSIONS)
def test_retained_message(broker, protocol):
    topic = unique_topic("retain")
    pub = Peer(broker, protocol)
    pub.publish(topic, b"kept", qos=1, retain=True)
    sub = Peer(broker, protocol)
    sub.subscribe(topic, 1)
    msg = sub.message()
    assert (msg.payload, msg.qos, msg.retain) == (b"kept", 1, True)
    pub.publish(topic, b"", qos=1, retain=True)  # delete
    live = sub.message()
    assert (live.payload, live.retain) == (b"", False)
    late = Peer(broker, protocol)
    late.subscribe(topic, 1)
    late.expect_no_message()
    for peer in (pub, sub, late):
        peer.disconnect()


# [MQTT-3.1.2-8] [MQTT-3.1.2-16]
@pytest.mark.parametrize("protocol", VERSIONS)
def test_will_on_abnormal_disconnect(broker, protocol):
    topic = unique_topic("will")
    watcher = Peer(broker, protocol)
    watcher.subscribe(topic, 1)
    victim = Peer(broker, protocol, will=(topic, b"gone", 1, False), reconnect=False)
    victim.abort()
    msg = watcher.message()
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (topic, b"gone", 1, False)
    watcher.disconnect()


# [MQTT-3.1.2-10] [MQTT-3.14.4-3]
def test_no_will_after_disconnect(broker):
    topic = unique_topic("no-will")
    watcher = Peer(broker)
    watcher.subscribe(topic, 1)
    polite = Peer(broker, will=(topic, b"never", 1, False))
    polite.disconnect()
    watcher.expect_no_message()
    watcher.disconnect()


# [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-4.6.0-6]
@pytest.mark.parametrize("protocol", VERSIONS)
def test_persistent_session_resumes_with_queued_qos1(broker, protocol):
    topic = unique_topic("persist")
    client_id = unique_id()
    first = Peer(broker, protocol, client_id=client_id, clean_session=False)
    first.subscribe(topic, 1)
    first.disconnect()
    pub = Peer(broker, protocol)
    for i in range(5):
        pub.publish(topic, f"queued-{i}".encode(), qos=1)
    again = Peer(broker, protocol, client_id=client_id, clean_session=False)
    if protocol != mqtt.MQTTv31:  # MQTT 3.1 has no Session Present flag
        assert again.session_present
    for i in range(5):
        msg = again.message()
        assert (msg.payload, msg.qos) == (f"queued-{i}".encode(), 1)
    again.disconnect()
    Peer(broker, protocol, client_id=client_id, clean_session=True).disconnect()
    pub.disconnect()


# [MQTT-3.1.4-2] [MQTT-3.1.4-3] [MQTT-3.2.2-2]
def test_takeover_moves_the_session(broker):
    topic = unique_topic("takeover")
    client_id = unique_id()
    first = Peer(broker, client_id=client_id, clean_session=False, reconnect=False)
    first.subscribe(topic, 1)
    second = Peer(broker, client_id=client_id, clean_session=False)
    first.disconnects.get(timeout=WAIT)  # the broker closed the first connection
    first.client.loop_stop()
    assert second.session_present
    pub = Peer(broker)
    pub.publish(topic, b"to-second", qos=1)
    msg = second.message()
    assert (msg.payload, msg.qos) == (b"to-second", 1)
    second.disconnect()
    Peer(broker, client_id=client_id, clean_session=True).disconnect()
    pub.disconnect()


# [MQTT-4.6.0-5] [MQTT-4.6.0-6]
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_hundred_messages_keep_their_order(broker, qos):
    topic = unique_topic("order")
    sub = Peer(broker)
    sub.subscribe(topic, 2)
    pub = Peer(broker)
    infos = [pub.client.publish(topic, str(i).encode(), qos=qos) for i in range(100)]
    for info in infos:
        info.wait_for_publish(timeout=WAIT)
    got = [sub.message().payload for _ in range(100)]
    assert got == [str(i).encode() for i in range(100)]
    pub.disconnect()
    sub.disconnect()
