"""Eclipse Paho (paho-mqtt 2.x) against Tern over WebSocket
(``transport="websockets"``): a ``ws`` listener next to a tcp one, from a
config file. MQTT 3.1.1 and 5.0 at every QoS, a message larger than one
frame, ws <-> tcp, and a wrong path refused.

The broker binary is found as in test_paho.py (``TERN_BIN``, else
``$CARGO_TARGET_DIR/debug/tern``, else ``<repo>/target/debug/tern``).
Every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from test_paho import STARTUP, WAIT, tern_binary, unique_id, unique_topic

VERSIONS = [
    pytest.param(mqtt.MQTTv311, id="v311"),
    pytest.param(mqtt.MQTTv5, id="v5"),
]


@pytest.fixture(scope="module")
def tern():
    """{"tcp": (host, port), "ws": (host, port)} of a broker with both."""
    binary = tern_binary()
    if not binary.exists():
        pytest.fail(f"{binary} does not exist: run `cargo build -p tern-broker` or set TERN_BIN")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "tern.toml"
        config.write_text(
            'sys_interval = 0\n[[listener]]\nbind = "127.0.0.1:0"\n'
            '[[listener]]\nbind = "127.0.0.1:0"\nkind = "ws"\n'
        )
        proc = subprocess.Popen(
            [str(binary), "--config", str(config), "--workers", "2", "--no-metrics", "--log-level", "warn"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        addresses: queue.Queue[tuple[str, int]] = queue.Queue()

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("tern: listening on "):
                    host, port = line.split("tern: listening on ", 1)[1].strip().rsplit(":", 1)
                    addresses.put((host, int(port)))

        threading.Thread(target=drain, daemon=True).start()
        try:
            try:
                tcp = addresses.get(timeout=STARTUP)
                ws = addresses.get(timeout=STARTUP)
            except queue.Empty:
                pytest.fail("tern did not print its two listeners")
            yield {"tcp": tcp, "ws": ws}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2)


class Peer:
    """A paho client over tcp or websockets with its network loop on a thread."""

    def __init__(self, address, protocol=mqtt.MQTTv311, websockets=False, path="/mqtt"):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=unique_id(),
            protocol=protocol,
            transport="websockets" if websockets else "tcp",
            reconnect_on_failure=False,
        )
        if websockets:
            self.client.ws_set_options(path=path)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[int] = queue.Queue()
        self.subacks: queue.Queue[int] = queue.Queue()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda c, u, flags, rc, p: self.connacks.put(int(rc.value))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(mid)
        self.client.connect(address[0], address[1], keepalive=30)
        self.client.loop_start()
        assert self.connacks.get(timeout=WAIT) == 0

    def subscribe(self, topic: str, qos: int) -> None:
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self.subacks.get(timeout=WAIT) == mid

    def publish(self, topic: str, payload, qos: int) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()

    def message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# [MQTT-6.0.0-1] [MQTT-6.0.0-2] binary frames, packets not aligned to frames.
@pytest.mark.parametrize("protocol", VERSIONS)
def test_qos_round_trip_over_websocket(tern, protocol):
    topic = unique_topic("ws-qos")
    sub = Peer(tern["ws"], protocol, websockets=True)
    pub = Peer(tern["ws"], protocol, websockets=True)
    try:
        sub.subscribe(topic, 2)
        for qos in (0, 1, 2):
            pub.publish(topic, f"qos{qos}".encode(), qos)
            msg = sub.message()
            assert (msg.topic, msg.payload, msg.qos) == (topic, f"qos{qos}".encode(), qos)
    finally:
        pub.disconnect()
        sub.disconnect()


def test_large_message_between_websocket_and_tcp(tern):
    topic = unique_topic("ws-big")
    payload = os.urandom(200 * 1024)
    ws = Peer(tern["ws"], websockets=True)
    tcp = Peer(tern["tcp"])
    try:
        ws.subscribe(topic + "/to-ws", 1)
        tcp.subscribe(topic + "/to-tcp", 1)
        tcp.publish(topic + "/to-ws", payload, 1)
        assert ws.message().payload == payload
        ws.publish(topic + "/to-tcp", payload, 1)
        assert tcp.message().payload == payload
    finally:
        ws.disconnect()
        tcp.disconnect()


def test_wrong_path_is_refused(tern):
    with pytest.raises(mqtt.WebsocketConnectionError, match="not upgraded"):
        Peer(tern["ws"], websockets=True, path="/not-mqtt")
    # The listener still serves the right path.
    Peer(tern["ws"], websockets=True).disconnect()
