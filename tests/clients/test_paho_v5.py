"""MQTT 5.0 interoperability of the Tern broker with Eclipse Paho (paho-mqtt
2.x, ``protocol=MQTTv5``): request/response, topic aliases sent by the
client, message expiry, subscription identifiers, No Local, Retain As
Published, Retain Handling and user properties.

Uses the ``broker`` fixture of ``test_paho.py`` (a spawned ``tern``, or
``TERN_TEST_BROKER=host:port``). Every wait is bounded; topics and client
ids are unique per test. Tags are ``[MQTT5-x.y.z-n]``.
"""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from test_paho import QUIET, WAIT, broker, unique_id, unique_topic  # noqa: F401 (fixture)


def publish_props(**values) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


class Peer5:
    """A paho MQTT 5.0 client running its network loop on a thread."""

    def __init__(self, broker, client_id=None, clean_start=True, session_expiry=None,
                 receive_maximum=None):
        self.client_id = unique_id() if client_id is None else client_id
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda c, u, flags, rc, props: self.connacks.put(
            (bool(flags.session_present), int(rc.value), props)
        )
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(
            (mid, [int(code.value) for code in codes])
        )
        connect_props = Properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            connect_props.SessionExpiryInterval = session_expiry
        if receive_maximum is not None:
            connect_props.ReceiveMaximum = receive_maximum
        self.client.connect(broker[0], broker[1], keepalive=30, clean_start=clean_start,
                            properties=connect_props)
        self.client.loop_start()
        present, code, props = self.connacks.get(timeout=WAIT)
        assert code == 0, f"CONNACK refused: {code:#x}"
        self.session_present = present
        self.connack_properties = props

    def subscribe(self, topic: str, qos: int = 1, sub_id: int | None = None, **options) -> list[int]:
        props = None
        if sub_id is not None:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        result, mid = self.client.subscribe(topic, options=SubscribeOptions(qos=qos, **options),
                                            properties=props)
        assert result == mqtt.MQTT_ERR_SUCCESS
        got_mid, codes = self.subacks.get(timeout=WAIT)
        assert got_mid == mid
        return codes

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False, properties=None) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), f"publish to {topic!r} not completed in {WAIT}s"

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

    def disconnect(self, session_expiry: int | None = None) -> None:
        props = None
        if session_expiry is not None:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = session_expiry
        self.client.disconnect(properties=props)
        self.client.loop_stop()


# [MQTT5-3.1.3-6] [MQTT5-3.1.3-7] [MQTT5-3.2.2-16] [MQTT5-3.2.2-17]: paho reads
# the CONNACK properties: an assigned client id for an empty one, Receive
# Maximum, Topic Alias Maximum.
def test_connack_properties_and_assigned_client_id(broker):
    peer = Peer5(broker, client_id="")
    props = peer.connack_properties
    assert props.AssignedClientIdentifier
    assert props.ReceiveMaximum >= 1
    assert props.TopicAliasMaximum >= 1
    peer.disconnect()


# [MQTT5-3.3.2-15] [MQTT5-3.3.2-16] 4.10: request/response: the responder
# answers on the Response Topic with the request's Correlation Data.
def test_request_response_with_correlation_data(broker):
    requests = unique_topic("requests")
    replies = unique_topic("replies")
    responder = Peer5(broker)
    responder.subscribe(requests, 1)

    def answer(client, userdata, msg):
        props = publish_props(CorrelationData=msg.properties.CorrelationData)
        client.publish(msg.properties.ResponseTopic, b"re: " + msg.payload, qos=1, properties=props)

    responder.client.on_message = answer
    requester = Peer5(broker)
    requester.subscribe(replies, 1)
    for i in range(3):
        correlation = f"call-{i}".encode() + b"\x00\xff"
        requester.publish(requests, f"q{i}".encode(), qos=1,
                          properties=publish_props(ResponseTopic=replies, CorrelationData=correlation))
        reply = requester.message()
        assert (reply.topic, reply.payload) == (replies, f"re: q{i}".encode())
        assert reply.properties.CorrelationData == correlation
    requester.disconnect()
    responder.disconnect()


# [MQTT5-3.3.2-12] [MQTT5-3.2.2-17]: a topic alias set by paho (topic + alias)
# and then used alone (empty topic) reaches the subscriber under the full
# topic name.
def test_topic_alias_sent_by_the_client(broker):
    base = unique_topic("alias")
    sub = Peer5(broker)
    sub.subscribe(f"{base}/#", 1)
    pub = Peer5(broker)
    maximum = pub.connack_properties.TopicAliasMaximum
    for alias, topic in ((1, f"{base}/a"), (maximum, f"{base}/b")):
        pub.publish(topic, b"set", qos=1, properties=publish_props(TopicAlias=alias))
        pub.publish("", b"used", qos=1, properties=publish_props(TopicAlias=alias))
        for payload in (b"set", b"used"):
            msg = sub.message()
            assert (msg.topic, msg.payload) == (topic, payload)
    pub.disconnect()
    sub.disconnect()


# [MQTT5-3.3.2-5] [MQTT5-3.3.2-6]: the Message Expiry Interval reaches a live
# subscriber (minus the time waited); a queued message that expires while
# its persistent session is offline is not delivered.
def test_message_expiry(broker):
    topic = unique_topic("expiry")
    live = Peer5(broker)
    live.subscribe(topic, 1)
    client_id = unique_id()
    away = Peer5(broker, client_id=client_id, session_expiry=60)
    away.subscribe(topic, 1)
    away.disconnect()
    pub = Peer5(broker)
    pub.publish(topic, b"short", qos=1, properties=publish_props(MessageExpiryInterval=1))
    pub.publish(topic, b"long", qos=1, properties=publish_props(MessageExpiryInterval=300))
    first, second = live.message(), live.message()
    assert first.payload == b"short" and first.properties.MessageExpiryInterval <= 1
    assert second.payload == b"long" and 298 <= second.properties.MessageExpiryInterval <= 300
    time.sleep(2.2)
    back = Peer5(broker, client_id=client_id, clean_start=False, session_expiry=60)
    assert back.session_present
    msg = back.message()
    assert msg.payload == b"long" and msg.properties.MessageExpiryInterval <= 298
    back.expect_no_message()
    back.disconnect(session_expiry=0)
    for peer in (live, pub):
        peer.disconnect()


# [MQTT5-3.3.4-3] [MQTT5-3.3.4-4]: overlapping subscriptions with
# Subscription Identifiers: one message carrying both identifiers.
def test_subscription_identifiers(broker):
    base = unique_topic("subid")
    sub = Peer5(broker)
    sub.subscribe(f"{base}/#", 1, sub_id=11)
    sub.subscribe(f"{base}/+/leaf", 1, sub_id=22)
    pub = Peer5(broker)
    pub.publish(f"{base}/x/leaf", b"both", qos=1)
    msg = sub.message()
    assert sorted(msg.properties.SubscriptionIdentifier) == [11, 22]
    sub.expect_no_message()
    pub.publish(f"{base}/other", b"one", qos=1)
    assert sub.message().properties.SubscriptionIdentifier == [11]
    pub.disconnect()
    sub.disconnect()


# [MQTT5-3.8.3-3]: No Local: a client's own messages are not sent back to it.
def test_no_local(broker):
    topic = unique_topic("nolocal")
    peer = Peer5(broker)
    peer.subscribe(topic, 1, noLocal=True)
    peer.publish(topic, b"mine", qos=1)
    other = Peer5(broker)
    other.publish(topic, b"theirs", qos=1)
    assert peer.message().payload == b"theirs"
    peer.expect_no_message()
    other.disconnect()
    peer.disconnect()


# [MQTT5-3.3.1-9] [MQTT5-3.3.1-10] [MQTT5-3.3.1-11] [MQTT5-3.3.1-12]
# [MQTT5-3.3.1-13]: Retain Handling 0 / 1 / 2 on a first and a repeated
# SUBSCRIBE, and Retain As Published on a live retained message.
def test_retain_handling_and_retain_as_published(broker):
    topic = unique_topic("retain")
    pub = Peer5(broker)
    pub.publish(topic, b"kept", qos=1, retain=True)
    for handling, first, again in (
        (SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE, True, True),
        (SubscribeOptions.RETAIN_SEND_IF_NEW_SUB, True, False),
        (SubscribeOptions.RETAIN_DO_NOT_SEND, False, False),
    ):
        peer = Peer5(broker)
        for expected in (first, again):
            peer.subscribe(topic, 1, retainHandling=handling)
            if expected:
                msg = peer.message()
                assert (msg.payload, msg.retain) == (b"kept", True)
            peer.expect_no_message()
        peer.disconnect()
    plain, rap = Peer5(broker), Peer5(broker)
    plain.subscribe(topic, 1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
    rap.subscribe(topic, 1, retainAsPublished=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
    pub.publish(topic, b"", qos=1, retain=True)  # deletes the retained message, still forwarded
    assert plain.message().retain is False
    assert rap.message().retain is True
    for peer in (pub, plain, rap):
        peer.disconnect()


# [MQTT5-3.3.2-17] [MQTT5-3.3.2-18] [MQTT5-3.3.2-20] [MQTT5-3.3.2-4]: user
# properties arrive unaltered and in order (a repeated name included), with
# Content Type and Payload Format Indicator.
def test_user_properties_in_order(broker):
    topic = unique_topic("user-props")
    sub = Peer5(broker)
    sub.subscribe(topic, 2)
    pub = Peer5(broker)
    pairs = [("b", "1"), ("a", "2"), ("b", "3"), ("ünï", "cødé")]
    props = publish_props(UserProperty=pairs, ContentType="text/plain", PayloadFormatIndicator=1)
    pub.publish(topic, "hello".encode(), qos=2, properties=props)
    msg = sub.message()
    assert msg.properties.UserProperty == pairs
    assert (msg.properties.ContentType, msg.properties.PayloadFormatIndicator) == ("text/plain", 1)
    pub.disconnect()
    sub.disconnect()
