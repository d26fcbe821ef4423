"""Shared subscriptions with Eclipse Paho (paho-mqtt 2.x, MQTT 5.0) on a
two-worker Tern broker (the ``broker`` fixture of test_paho.py)."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt

from test_paho import WAIT, broker, unique_id, unique_topic  # noqa: F401 (fixture)

QUIET = 0.5  # seconds without a message before a member counts as drained


class V5Peer:
    """A paho MQTT 5.0 client with its network loop on a thread."""

    def __init__(self, broker):  # noqa: F811 (the fixture's value)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=unique_id(), protocol=mqtt.MQTTv5
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[int] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda c, u, flags, rc, p: self.connacks.put(int(rc.value))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(
            [int(code.value) for code in codes]
        )
        self.client.connect(broker[0], broker[1], keepalive=30, clean_start=True)
        self.client.loop_start()
        assert self.connacks.get(timeout=WAIT) == 0

    def subscribe(self, topic: str, qos: int) -> None:
        result, _ = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self.subacks.get(timeout=WAIT) == [qos]

    def drain(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.messages.get(timeout=QUIET).payload)
            except queue.Empty:
                return got

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# MQTT 5.0 section 4.8.2 [MQTT5-4.8.2-1] [MQTT5-4.8.2-2] [MQTT5-4.8.2-3]:
# two members of one group on a two-worker broker; each QoS 1 message
# reaches exactly one of them, and both take turns.
def test_shared_subscription_delivers_each_message_once(broker):  # noqa: F811
    topic = unique_topic("shared")
    members = [V5Peer(broker), V5Peer(broker)]
    for m in members:
        m.subscribe(f"$share/paho/{topic}", 1)
    pub = V5Peer(broker)
    infos = [pub.client.publish(topic, f"m{i}".encode(), qos=1) for i in range(100)]
    for info in infos:
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()
    got = [m.drain() for m in members]
    everything = got[0] + got[1]
    assert sorted(everything) == sorted(f"m{i}".encode() for i in range(100))
    assert got[0] and got[1], f"one member got nothing: {len(got[0])} / {len(got[1])}"
    for peer in (*members, pub):
        peer.disconnect()
