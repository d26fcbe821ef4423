#!/usr/bin/env python3
"""Writes the seed corpus for the `decode` fuzz target: small valid and
invalid MQTT frames, most of them after a CONNECT so that the server-side
decoder gets past the first packet. Re-run to regenerate corpus/decode/."""
import os

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def frame(byte1, body):
    return bytes([byte1]) + varint(len(body)) + body

def s(text):
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data

def connect(level, name="MQTT", flags=0x02, props=b"", payload=s("client")):
    body = s(name) + bytes([level, flags, 0x00, 0x3C])
    if level == 5:
        body += varint(len(props)) + props
    return frame(0x10, body + payload)

C31, C311, C5 = connect(3, "MQIsdp"), connect(4), connect(5)
user_prop = b"\x26" + s("k") + s("v")
pub_props = b"\x01\x01" + b"\x02\x00\x00\x0e\x10" + b"\x03" + s("text/plain") + b"\x08" + s("re/ply") + b"\x09" + s(b"\x00\x01") + user_prop + b"\x0b\x81\x01" + b"\x23\x00\x05"

seeds = {
    # Valid streams.
    "v31_connect_publish": C31 + frame(0x30, s("a/b") + b"hello"),
    "v311_connect_will_login": connect(4, flags=0xEE, payload=s("c") + s("will/t") + s(b"bye") + s("user") + s(b"pw")),
    "v311_publish_qos1_qos2": C311 + frame(0x32, s("t") + b"\x00\x01x") + frame(0x3D, s("t") + b"\x00\x02y"),
    "v311_subscribe_unsubscribe": C311 + frame(0x82, b"\x00\x01" + s("a/+/#") + b"\x01" + s("$share/g/x") + b"\x02") + frame(0xA2, b"\x00\x02" + s("a/+/#")),
    "v311_acks_ping_disconnect": C311 + frame(0x40, b"\x00\x01") + frame(0x50, b"\x00\x02") + frame(0x62, b"\x00\x02") + frame(0x70, b"\x00\x02") + frame(0xC0, b"") + frame(0xE0, b""),
    "v311_server_packets": frame(0x20, b"\x01\x00") + frame(0x90, b"\x00\x01\x00\x01\x02\x80") + frame(0xB0, b"\x00\x01") + frame(0xD0, b""),
    "v5_connect_props": connect(5, props=b"\x11\x00\x00\x00\x3c\x21\x00\x0a\x27\x00\x00\x04\x00\x22\x00\x05\x19\x01\x17\x00" + user_prop + b"\x15" + s("m") + b"\x16" + s(b"d")),
    "v5_publish_props": C5 + frame(0x32, s("t") + b"\x00\x07" + varint(len(pub_props)) + pub_props + b"payload"),
    "v5_publish_alias_empty_topic": C5 + frame(0x30, s("") + b"\x03\x23\x00\x01" + b"x"),
    "v5_subscribe_options": C5 + frame(0x82, b"\x00\x01\x02\x0b\x07" + s("a/#") + b"\x2e"),
    "v5_acks_short_forms": C5 + frame(0x40, b"\x00\x01") + frame(0x50, b"\x00\x01\x10") + frame(0x62, b"\x00\x01\x92\x00") + frame(0x70, b"\x00\x01\x00\x04\x1f" + s("r")),
    "v5_disconnect_auth": C5 + frame(0xF0, b"\x18" + varint(len(b"\x15" + s("SCRAM"))) + b"\x15" + s("SCRAM")) + frame(0xE0, b"\x04") + frame(0xE0, b""),
    "v5_connack_suback_unsuback": frame(0x20, b"\x00\x00\x02\x24\x01") + frame(0x90, b"\x00\x01\x00\x00\x87") + frame(0xB0, b"\x00\x01\x00\x11"),
    # Invalid frames.
    "bad_first_packet_http": b"GET / HTTP/1.1\r\n\r\n",
    "bad_unsupported_level": connect(6),
    "bad_publish_qos3": C311 + frame(0x36, s("t") + b"\x00\x01"),
    "bad_reserved_flags": C311 + frame(0x41, b"\x00\x01"),
    "bad_remaining_length_5_bytes": C311 + b"\xC0\xFF\xFF\xFF\xFF\x01",
    "bad_remaining_length_non_minimal": C311 + b"\xC0\x80\x00",
    "bad_wildcard_topic": C311 + frame(0x30, s("a/#") + b"x"),
    "bad_v5_duplicate_property": C5 + frame(0x30, s("t") + b"\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02"),
    "bad_v5_property_crosses_length": C5 + frame(0x30, s("t") + b"\x02\x02\x00\x00\x00\x10xy"),
    "bad_truncated_connect": connect(4)[:9],
}

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "decode")
os.makedirs(here, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {here}")
