"""Eclipse Paho (paho-mqtt 2.x) over TLS: server verification against the
test CA, MQTT 3.1.1 and 5 round trips, mTLS with the certificate's CN as
user name, and a refused hostname mismatch. Certificates are made by the
test with the ``openssl`` tool; the broker is spawned with a config file
holding one tls listener. Every wait is bounded.
"""

from __future__ import annotations

import collections
import os
import queue
import ssl
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from test_paho import tern_binary

WAIT = 5.0
STARTUP = 10.0


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """ca.pem, server.pem/key (localhost, 127.0.0.1), alice.pem/key (client)."""
    d = tmp_path
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
            "-subj", "/CN=paho test CA")
    for name, cn, ext in [
        ("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("alice", "alice", "extendedKeyUsage=clientAuth\n"),
    ]:
        (d / f"{name}.ext").write_text(ext)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", f"/CN={cn}")
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))
    return d


def spawn(config: Path):
    proc = subprocess.Popen(
        [str(tern_binary()), "--config", str(config), "--workers", "2", "--no-metrics",
         "--log-level", "debug"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=200)
    ports: queue.Queue[int] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if line.startswith("tern: listening on "):
                ports.put(int(line.rsplit(":", 1)[1]))

    threading.Thread(target=drain, daemon=True).start()
    try:
        port = ports.get(timeout=STARTUP)
    except queue.Empty:
        proc.kill()
        pytest.fail("tern did not start:\n" + "\n".join(tail))
    proc.tail = tail  # type: ignore[attr-defined]
    return proc, port


@pytest.fixture
def tls_broker(pki: Path, request):
    """Port of a tern with one tls listener; `request.param` adds keys."""
    extra = getattr(request, "param", "")
    config = pki / "tern.toml"
    config.write_text(
        "bind = []\n"
        + ("[auth]\nallow_anonymous = false\n" if "cafile" in extra else "")
        + '[[listener]]\nbind = "127.0.0.1:0"\nkind = "tls"\n'
        + f'tls.certfile = "{pki / "server.pem"}"\ntls.keyfile = "{pki / "server.key"}"\n'
        + extra.replace("CA", str(pki / "ca.pem"))
    )
    proc, port = spawn(config)
    request.node.tern_log = proc.tail
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=2)


def client(pki: Path, protocol, cert: bool = False,
           websocket: bool = False) -> tuple[mqtt.Client, queue.Queue, queue.Queue]:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="p" + uuid.uuid4().hex[:20],
                    protocol=protocol, reconnect_on_failure=False,
                    transport="websockets" if websocket else "tcp")
    if websocket:
        c.ws_set_options(path="/mqtt")
    if cert:
        c.tls_set(ca_certs=str(pki / "ca.pem"), certfile=str(pki / "alice.pem"),
                  keyfile=str(pki / "alice.key"))
    else:
        c.tls_set(ca_certs=str(pki / "ca.pem"))
    connacks: queue.Queue = queue.Queue()
    messages: queue.Queue = queue.Queue()
    c.on_connect = lambda cl, u, flags, rc, p: connacks.put(int(rc.value))
    c.on_message = lambda cl, u, msg: messages.put(msg)
    return c, connacks, messages


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_round_trip_over_tls(pki, tls_broker, protocol):
    round_trip(client(pki, protocol), client(pki, protocol), tls_broker, b"over tls")


def round_trip(subscriber, publisher, port: int, payload: bytes) -> None:
    """Subscribes with one client, publishes `payload` at QoS 1 with the
    other, and checks it arrives."""
    sub, sub_acks, messages = subscriber
    pub, pub_acks, _ = publisher
    sub.connect("localhost", port, keepalive=30)
    sub.loop_start()
    try:
        assert sub_acks.get(timeout=WAIT) == 0
        topic = f"tern/paho-tls/{uuid.uuid4().hex}"
        subscribed = threading.Event()
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.subscribe(topic, 1)
        assert subscribed.wait(WAIT)
        pub.connect("localhost", port, keepalive=30)
        pub.loop_start()
        assert pub_acks.get(timeout=WAIT) == 0
        pub.publish(topic, payload, qos=1).wait_for_publish(timeout=WAIT)
        msg = messages.get(timeout=WAIT)
        assert msg.payload == payload and msg.topic == topic
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


@pytest.mark.parametrize(
    "tls_broker",
    ['tls.cafile = "CA"\ntls.require_certificate = true\ntls.use_identity_as_username = true\n'],
    indirect=True,
)
def test_mtls_certificate_is_the_login(pki, tls_broker):
    c, acks, _ = client(pki, mqtt.MQTTv311, cert=True)
    c.connect("localhost", tls_broker, keepalive=30)
    c.loop_start()
    try:
        assert acks.get(timeout=WAIT) == 0, "alice's certificate logs her in without a password"
    finally:
        c.disconnect()
        c.loop_stop()
    # Without a certificate the handshake (or the first read after it) fails.
    c, acks, _ = client(pki, mqtt.MQTTv311)
    failed = False
    try:
        c.connect("localhost", tls_broker, keepalive=30)
        c.loop_start()
        try:
            code = acks.get(timeout=2)
            failed = code != 0
        except queue.Empty:
            failed = True
    except (ssl.SSLError, OSError):
        failed = True
    finally:
        c.loop_stop()
    assert failed, "a client without a certificate is refused"


def test_takeover_hands_the_tls_connection_to_the_sessions_worker(pki, tls_broker, request):
    """Two workers: the first client's session lives on the worker that
    accepted it; a second client with the same id is accepted by the other
    (least loaded) worker, which detaches the TLS stream and hands it to the
    session's worker. It takes the session over and works there."""
    client_id = "p" + uuid.uuid4().hex[:20]
    first, first_acks, _ = client(pki, mqtt.MQTTv311)
    first._client_id = client_id.encode()
    gone = threading.Event()
    first.on_disconnect = lambda *a: gone.set()
    first.connect("localhost", tls_broker, keepalive=30)
    first.loop_start()
    second, second_acks, messages = client(pki, mqtt.MQTTv311)
    second._client_id = client_id.encode()
    try:
        assert first_acks.get(timeout=WAIT) == 0
        second.connect("localhost", tls_broker, keepalive=30)
        second.loop_start()
        try:
            code = second_acks.get(timeout=WAIT)
        except queue.Empty:
            code = None
        assert code == 0, "\n".join(request.node.tern_log)
        assert gone.wait(WAIT), "the first connection was taken over"
        topic = f"tern/paho-tls/{uuid.uuid4().hex}"
        subscribed = threading.Event()
        second.on_subscribe = lambda *a: subscribed.set()
        second.subscribe(topic, 1)
        assert subscribed.wait(WAIT)
        second.publish(topic, b"after the hand-over", qos=1).wait_for_publish(timeout=WAIT)
        assert messages.get(timeout=WAIT).payload == b"after the hand-over"
        log = "\n".join(request.node.tern_log)
        assert "handing connection to the session's worker" in log, log
    finally:
        for c in (first, second):
            c.loop_stop()
            c.disconnect()


@pytest.fixture
def wss_broker(pki: Path, request):
    """Port of a tern with one wss listener (WebSocket over TLS)."""
    config = pki / "tern-wss.toml"
    config.write_text(
        'bind = []\n[[listener]]\nbind = "127.0.0.1:0"\nkind = "wss"\n'
        + f'tls.certfile = "{pki / "server.pem"}"\ntls.keyfile = "{pki / "server.key"}"\n'
        + 'ws = { path = "/mqtt" }\n'
    )
    proc, port = spawn(config)
    request.node.tern_log = proc.tail
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=2)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_round_trip_over_websocket_over_tls(pki, wss_broker, protocol):
    round_trip(client(pki, protocol, websocket=True), client(pki, protocol, websocket=True),
               wss_broker, os.urandom(100_000))
