//! Unit tests of the WebSocket layer: hand-written client frames in, server
//! frames out, over an in-memory inner stream.

use super::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(5);

/// A masked client frame.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

fn binary(payload: &[u8]) -> Vec<u8> {
    client_frame(true, 0x2, payload, [0x37, 0xfa, 0x21, 0x3d])
}

/// Server frames parsed from bytes: (fin, opcode, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let fin = bytes[0] & 0x80 != 0;
        let opcode = bytes[0] & 0x0f;
        assert_eq!(bytes[1] & 0x80, 0, "server frames are unmasked");
        let (len, at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        frames.push((fin, opcode, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    frames
}

/// A WsStream over one end of an in-memory pipe, and the client's end.
fn pair(max_frame: u64) -> (WsStream<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
    let (server, client) = tokio::io::duplex(1 << 20);
    (
        WsStream::with_buffered(server, max_frame, BytesMut::new()),
        client,
    )
}

async fn read_exact(ws: &mut WsStream<tokio::io::DuplexStream>, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(LIMIT, ws.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

/// Everything the server wrote, once it has shut down its side.
async fn written(client: &mut tokio::io::DuplexStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, client.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[test]
fn accept_key_matches_rfc_example() {
    // RFC 6455 §1.3.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

fn request(path: &str, protocols: Option<&str>, version: &str) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n"
    );
    if let Some(p) = protocols {
        r.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    r.push_str("\r\n");
    r
}

#[test]
fn upgrade_request_is_answered_with_the_chosen_subprotocol() {
    let req = request("/mqtt?client=1", Some("mqttv3.1, mqtt"), "13");
    let mut bytes = req.clone().into_bytes();
    bytes.extend_from_slice(b"frames");
    let a = parse_request(&bytes, "/mqtt").unwrap().unwrap();
    assert_eq!(a.consumed, req.len());
    // The client's first MQTT offer wins: `mqttv3.1` for a 3.1 client here,
    // `mqtt` below ([MQTT-6.0.0-4]).
    assert_eq!(a.subprotocol, "mqttv3.1");
    assert!(a
        .response
        .starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(a
        .response
        .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(a.response.contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
    assert!(a.response.ends_with("\r\n\r\n"));

    let a = parse_request(request("/mqtt", Some("x, mqtt"), "13").as_bytes(), "/mqtt")
        .unwrap()
        .unwrap();
    assert_eq!(a.subprotocol, "mqtt");
    // Not all there yet.
    assert!(parse_request(&req.as_bytes()[..req.len() - 2], "/mqtt")
        .unwrap()
        .is_none());
}

#[test]
fn bad_upgrade_requests_are_refused_with_their_status() {
    let refuse = |req: &str| parse_request(req.as_bytes(), "/mqtt").unwrap_err();
    let e = refuse(&request("/other", Some("mqtt"), "13"));
    assert!(matches!(e, UpgradeError::Path(_)), "{e:?}");
    assert!(e.response().starts_with("HTTP/1.1 404 "));
    let e = refuse(&request("/mqtt", None, "13"));
    assert!(matches!(e, UpgradeError::Subprotocol), "{e:?}");
    assert_eq!(e.status(), "400 Bad Request");
    let e = refuse(&request("/mqtt", Some("wamp, chat"), "13"));
    assert!(matches!(e, UpgradeError::Subprotocol), "{e:?}");
    let e = refuse(&request("/mqtt", Some("mqtt"), "8"));
    assert!(matches!(e, UpgradeError::Version), "{e:?}");
    assert!(e.response().contains("Sec-WebSocket-Version: 13\r\n"));
    let e = refuse("POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(e.reason(), "method");
    let e = refuse("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(e.reason(), "not_upgrade");
    let e = refuse("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00");
    assert_eq!(e.reason(), "malformed");
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let e = refuse(&format!("GET /mqtt HTTP/1.1\r\n{many}\r\n"));
    assert_eq!(e.reason(), "too_large");
}

#[tokio::test]
async fn accept_answers_and_keeps_pipelined_frames() {
    let (server, mut client) = tokio::io::duplex(1 << 16);
    let mut bytes = request("/mqtt", Some("mqtt"), "13").into_bytes();
    bytes.extend(binary(b"\x10\x02hi"));
    client.write_all(&bytes).await.unwrap();
    let mut ws = accept(server, &WsSettings::default()).await.unwrap();
    assert_eq!(read_exact(&mut ws, 4).await, b"\x10\x02hi");
    let mut head = vec![0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
}

#[tokio::test]
async fn accept_refuses_with_http_error_and_size_limit() {
    let (server, mut client) = tokio::io::duplex(1 << 16);
    client
        .write_all(request("/nope", Some("mqtt"), "13").as_bytes())
        .await
        .unwrap();
    let err = accept(server, &WsSettings::default()).await.unwrap_err();
    assert_eq!(err.reason(), "path");
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");

    // Headers that never end stop at the limit.
    let (server, mut client) = tokio::io::duplex(1 << 16);
    let settings = WsSettings {
        max_request_size: 256,
        ..WsSettings::default()
    };
    let task = tokio::spawn(async move { accept(server, &settings).await.map(drop) });
    let mut junk = b"GET /mqtt HTTP/1.1\r\n".to_vec();
    junk.extend(std::iter::repeat_n(b'a', 1000));
    let _ = client.write_all(&junk).await;
    let err = tokio::time::timeout(LIMIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.reason(), "too_large");
}

#[tokio::test]
async fn a_packet_split_over_frames_and_packets_sharing_a_frame() {
    let (mut ws, mut client) = pair(1024);
    // One PUBLISH over three frames (the middle one empty), then two
    // PINGREQs in one frame.
    let publish = b"\x30\x07\x00\x03a/bxyz";
    client.write_all(&binary(&publish[..3])).await.unwrap();
    client
        .write_all(&client_frame(true, 0x2, b"", [1, 2, 3, 4]))
        .await
        .unwrap();
    client.write_all(&binary(&publish[3..])).await.unwrap();
    client
        .write_all(&binary(b"\xc0\x00\xc0\x00"))
        .await
        .unwrap();
    assert_eq!(read_exact(&mut ws, publish.len()).await, publish);
    assert_eq!(read_exact(&mut ws, 4).await, b"\xc0\x00\xc0\x00");
    // Waiting for more with nothing buffered, it holds no read buffer (an
    // idle, parked connection costs no more than over plain TCP).
    let mut buf = [0u8; 8];
    assert!(futures_poll_once(Box::pin(ws.read(&mut buf)))
        .await
        .is_none());
    assert_eq!(ws.raw.capacity(), 0);
    assert_eq!(ws.control.capacity(), 0);
}

#[tokio::test]
async fn a_frame_read_byte_by_byte_keeps_its_mask_position() {
    let (mut ws, mut client) = pair(1024);
    let payload: Vec<u8> = (0..=255u8).collect();
    let frame = client_frame(true, 0x2, &payload, [9, 8, 7, 6]);
    for b in frame {
        client.write_all(&[b]).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < payload.len() {
        // Odd-sized reads cross the mask's 4-byte period.
        let mut buf = [0u8; 3];
        let n = tokio::time::timeout(LIMIT, ws.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, payload);
}

#[tokio::test]
async fn fragmented_message_with_a_ping_in_between_gets_a_pong() {
    let (mut ws, mut client) = pair(1024);
    client
        .write_all(&client_frame(false, 0x2, b"\x10\x03", [5, 5, 5, 5]))
        .await
        .unwrap();
    client
        .write_all(&client_frame(true, 0x9, b"are you there", [1, 0, 1, 0]))
        .await
        .unwrap();
    client
        .write_all(&client_frame(true, 0x0, b"abc", [7, 7, 7, 7]))
        .await
        .unwrap();
    assert_eq!(read_exact(&mut ws, 5).await, b"\x10\x03abc");
    ws.shutdown().await.unwrap();
    let frames = server_frames(&written(&mut client).await);
    assert_eq!(
        frames,
        [
            (true, 0xA, b"are you there".to_vec()),
            (true, 0x8, 1000u16.to_be_bytes().to_vec()),
        ]
    );
}

#[tokio::test]
async fn close_is_echoed_and_ends_the_stream() {
    let (mut ws, mut client) = pair(1024);
    client.write_all(&binary(b"\xe0\x00")).await.unwrap();
    client
        .write_all(&client_frame(
            true,
            0x8,
            &1001u16.to_be_bytes(),
            [3, 1, 4, 1],
        ))
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(LIMIT, ws.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"\xe0\x00");
    // Writing after the close handshake fails; shutting down sends no
    // second close.
    assert!(ws.write_all(b"x").await.is_err());
    ws.shutdown().await.unwrap();
    let frames = server_frames(&written(&mut client).await);
    assert_eq!(frames, [(true, 0x8, 1001u16.to_be_bytes().to_vec())]);
}

/// Reads until the stream fails; returns the error and the close frame the
/// server sent.
async fn fails_with(frame: Vec<u8>, max_frame: u64) -> (io::Error, u16) {
    let (mut ws, mut client) = pair(max_frame);
    client.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 64];
    let err = loop {
        match tokio::time::timeout(LIMIT, ws.read(&mut buf))
            .await
            .unwrap()
        {
            Ok(0) => panic!("end of stream instead of an error"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    // Every later read fails too.
    assert!(ws.read(&mut buf).await.is_err());
    ws.shutdown().await.unwrap();
    let frames = server_frames(&written(&mut client).await);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].1, 0x8);
    (err, u16::from_be_bytes([frames[0].2[0], frames[0].2[1]]))
}

#[tokio::test]
async fn protocol_errors_close_with_their_status() {
    // [MQTT-6.0.0-1] a text frame.
    let (e, code) = fails_with(client_frame(true, 0x1, b"hello", [1, 2, 3, 4]), 1024).await;
    assert_eq!(code, 1003, "{e}");
    // An unmasked client frame.
    let (_, code) = fails_with(vec![0x82, 0x02, 0xc0, 0x00], 1024).await;
    assert_eq!(code, 1002);
    // A frame over the limit, refused from its header alone.
    let mut big = vec![0x82, 0x80 | 127];
    big.extend_from_slice(&(1u64 << 40).to_be_bytes());
    big.extend_from_slice(&[0; 4]);
    let (e, code) = fails_with(big, 1024).await;
    assert_eq!(code, 1009, "{e}");
    let (_, code) = fails_with(binary(&[0; 1025]), 1024).await;
    assert_eq!(code, 1009);
    // A continuation with no message, a fragmented ping, reserved bits, an
    // unknown opcode.
    let (_, code) = fails_with(client_frame(true, 0x0, b"x", [0; 4]), 1024).await;
    assert_eq!(code, 1002);
    let (_, code) = fails_with(client_frame(false, 0x9, b"x", [0; 4]), 1024).await;
    assert_eq!(code, 1002);
    let (_, code) = fails_with(client_frame(true, 0x42, b"x", [0; 4]), 1024).await;
    assert_eq!(code, 1002);
    let (_, code) = fails_with(client_frame(true, 0x3, b"x", [0; 4]), 1024).await;
    assert_eq!(code, 1002);
    // A new binary frame inside a fragmented message.
    let mut two = client_frame(false, 0x2, b"a", [0; 4]);
    two.extend(binary(b"b"));
    let (_, code) = fails_with(two, 1024).await;
    assert_eq!(code, 1002);
}

#[tokio::test]
async fn end_of_stream_inside_a_frame_is_an_error() {
    let (mut ws, mut client) = pair(1024);
    let frame = binary(b"\x30\x05a");
    client.write_all(&frame[..frame.len() - 1]).await.unwrap();
    drop(client);
    let mut got = Vec::new();
    let err = ws.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

/// The (address, length) of each slice a write was given.
type Slices = Vec<(usize, usize)>;

/// An inner stream that takes at most `max` bytes per write, returns
/// `Pending` on every other call, and records the slices it is given.
#[derive(Default)]
struct Chunky {
    max: usize,
    /// What reads return, as much as fits each time.
    input: Vec<u8>,
    out: Vec<u8>,
    pending_next: bool,
    calls: Arc<Mutex<Vec<Slices>>>,
}

impl AsyncRead for Chunky {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.input.is_empty() {
            return Poll::Pending;
        }
        let n = this.input.len().min(buf.remaining());
        buf.put_slice(&this.input[..n]);
        this.input.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Chunky {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.calls.lock().unwrap().push(
            bufs.iter()
                .map(|b| (b.as_ptr() as usize, b.len()))
                .collect(),
        );
        this.pending_next = !this.pending_next;
        if !this.pending_next {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(this.max - n);
            this.out.extend_from_slice(&b[..take]);
            n += take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn the_frame_header_is_one_more_slice_and_payloads_are_not_copied() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let inner = Chunky {
        max: usize::MAX,
        pending_next: false,
        calls: Arc::clone(&calls),
        ..Chunky::default()
    };
    let mut ws = WsStream::with_buffered(inner, 1024, BytesMut::new());
    let header = [0x30u8, 0x0b, 0x00, 0x03, b'a', b'/', b'b'];
    let payload = vec![7u8; 300];
    let slices = [IoSlice::new(&header), IoSlice::new(&payload)];
    let n = ws.write_vectored(&slices).await.unwrap();
    assert_eq!(n, header.len() + payload.len());
    let calls = calls.lock().unwrap().clone();
    let last = calls.last().unwrap();
    // The frame header, then the caller's own memory.
    assert_eq!(last.len(), 3, "{last:?}");
    assert_eq!(last[0].1, 4, "a 300-byte frame has a 4-byte header");
    assert_eq!(last[1], (header.as_ptr() as usize, header.len()));
    assert_eq!(last[2], (payload.as_ptr() as usize, payload.len()));
    let frames = server_frames(&ws.get_ref().out);
    assert_eq!(frames, [(true, 0x2, [&header[..], &payload[..]].concat())]);
}

#[tokio::test]
async fn partial_writes_finish_a_frame_before_the_next_and_before_a_pong() {
    // Three bytes per write, `Pending` on every other call: the header of
    // each frame goes out in pieces, then its payload, then the next frame.
    let inner = Chunky {
        max: 3,
        ..Chunky::default()
    };
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&client_frame(true, 0x9, b"p", [1, 1, 1, 1]));
    let mut ws = WsStream::with_buffered(inner, 1024, raw);
    let first: Vec<u8> = (0..200u8).collect();
    let second = b"\xd0\x00".to_vec();
    let mut sent = 0;
    while sent < first.len() {
        let slices = [IoSlice::new(&first[sent..])];
        let n = ws.write_vectored(&slices).await.unwrap();
        assert!(n > 0 && n <= 3);
        if sent == 0 {
            // The ping arrives mid-frame: its pong must wait.
            let mut buf = [0u8; 8];
            let read = ws.read(&mut buf);
            assert!(
                futures_poll_once(Box::pin(read)).await.is_none(),
                "nothing to read but a ping"
            );
        }
        sent += n;
    }
    ws.write_all(&second).await.unwrap();
    ws.flush().await.unwrap();
    let frames = server_frames(&ws.get_ref().out);
    assert_eq!(
        frames,
        [
            (true, 0x2, first.clone()),
            (true, 0xA, b"p".to_vec()),
            (true, 0x2, second.clone())
        ]
    );
}

/// Polls a future once; `None` when it is pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match std::future::Future::poll(Pin::new(&mut f), cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test]
async fn a_ping_flood_is_bounded_and_yields() {
    // 100 kB of pings, then a PINGREQ, through a pipe of 256 bytes each
    // way that nobody reads from the server's side: the pong queue stays
    // bounded, and read calls return (Pending with a wake-up) after a few
    // reads of control frames only, until the PINGREQ arrives.
    let (server, mut client) = tokio::io::duplex(256);
    let mut ws = WsStream::with_buffered(server, 1024, BytesMut::new());
    let mut flood = Vec::new();
    for _ in 0..5000 {
        flood.extend(client_frame(true, 0x9, b"0123456789abcdef", [1, 2, 3, 4]));
    }
    flood.extend(binary(b"\xc0\x00"));
    let writer = tokio::spawn(async move {
        client.write_all(&flood).await.unwrap();
        client
    });
    let mut polls = 0;
    let mut buf = [0u8; 2];
    loop {
        polls += 1;
        assert!(polls < 100_000, "no PINGREQ");
        let read = Box::pin(ws.read(&mut buf));
        match futures_poll_once(read).await {
            Some(n) => {
                assert_eq!(n.unwrap(), 2);
                break;
            }
            None => {
                assert!(ws.control.len() <= 1024 + 127, "{}", ws.control.len());
                tokio::task::yield_now().await;
            }
        }
    }
    assert_eq!(&buf, b"\xc0\x00");
    assert!(polls > 1, "the flood was read in one call");
    assert!(ws.control.len() >= 1024, "the pipe took every pong");
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_read_of_control_frames_only_yields() {
    // All there at once: 1 MB of pings, then a PINGREQ. One read call gives
    // up after a few reads of pings only (instead of working through the
    // whole megabyte while other connections wait); later calls get on.
    let mut input = Vec::new();
    for _ in 0..50_000 {
        input.extend(client_frame(true, 0x9, b"0123456789abcdef", [1, 2, 3, 4]));
    }
    input.extend(binary(b"\xc0\x00"));
    let inner = Chunky {
        max: usize::MAX,
        input,
        pending_next: true,
        ..Chunky::default()
    };
    let mut ws = WsStream::with_buffered(inner, 1024, BytesMut::new());
    let mut buf = [0u8; 2];
    assert!(futures_poll_once(Box::pin(ws.read(&mut buf)))
        .await
        .is_none());
    assert!(ws.get_ref().input.len() > 900_000);
    assert_eq!(read_exact_from(&mut ws, 2).await, b"\xc0\x00");
}

async fn read_exact_from<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WsStream<S>,
    n: usize,
) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(LIMIT, ws.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}
