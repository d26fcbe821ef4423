//! `--ws`: MQTT over WebSocket for the load generator. The upgrade request
//! goes out right after the TCP connect, with the CONNECT pipelined behind
//! it in its first frame; each flush sends what is queued as one binary
//! frame, masked as RFC 6455 requires of clients (with the all-zero key, so
//! masking costs the generator nothing and the broker still unmasks).
//! Server frames are unwrapped into the connection's MQTT read buffer.

/// Why a WebSocket connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    #[error("WebSocket upgrade refused: {0}")]
    Refused(String),
    #[error("WebSocket close frame from the broker")]
    Closed,
    #[error("unexpected WebSocket frame (opcode {0:#x})")]
    Opcode(u8),
}

/// A client's framing state.
#[derive(Debug)]
pub(crate) struct WsClient {
    upgraded: bool,
    /// Bytes read, not yet unwrapped.
    raw: Vec<u8>,
    /// Bytes to write (request, frames); `opos..` not yet written.
    pub(crate) out: Vec<u8>,
    pub(crate) opos: usize,
    /// Scratch for reads.
    pub(crate) scratch: Vec<u8>,
}

impl WsClient {
    /// Queues the upgrade request for `path`.
    pub(crate) fn new(host: &str, path: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        Self {
            upgraded: false,
            raw: Vec::new(),
            out: request.into_bytes(),
            opos: 0,
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Bytes queued, not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.out.len() - self.opos
    }

    /// Queues `mqtt` as one masked binary frame.
    pub(crate) fn frame(&mut self, mqtt: &[u8]) {
        if self.opos == self.out.len() {
            self.out.clear();
            self.opos = 0;
        }
        let n = mqtt.len();
        self.out.push(0x82);
        if n < 126 {
            self.out.push(0x80 | n as u8);
        } else if let Ok(short) = u16::try_from(n) {
            self.out.push(0x80 | 126);
            self.out.extend_from_slice(&short.to_be_bytes());
        } else {
            self.out.push(0x80 | 127);
            self.out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        // The zero masking key: the payload goes out as it is.
        self.out.extend_from_slice(&[0; 4]);
        self.out.extend_from_slice(mqtt);
    }

    /// Takes `n` bytes just read into `scratch`; hands the payload of every
    /// whole binary frame to `payload`.
    pub(crate) fn receive(
        &mut self,
        n: usize,
        mut payload: impl FnMut(&[u8]),
    ) -> Result<(), WsError> {
        self.raw.extend_from_slice(&self.scratch[..n]);
        let mut at = 0;
        if !self.upgraded {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            if !self.raw.starts_with(b"HTTP/1.1 101 ") {
                let head = String::from_utf8_lossy(&self.raw[..end]);
                return Err(WsError::Refused(head.lines().next().unwrap_or("").into()));
            }
            self.upgraded = true;
            at = end + 4;
        }
        loop {
            let rest = &self.raw[at..];
            let [b0, b1, ..] = *rest else { break };
            let (len, hlen) = match b1 & 0x7f {
                126 if rest.len() >= 4 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
                127 if rest.len() >= 10 => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(&rest[2..10]);
                    (
                        usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX),
                        10,
                    )
                }
                126 | 127 => break,
                short => (usize::from(short), 2),
            };
            if rest.len() - hlen < len {
                break;
            }
            match b0 & 0x0f {
                0x0 | 0x2 => payload(&rest[hlen..hlen + len]),
                0x9 | 0xA => {}
                0x8 => return Err(WsError::Closed),
                op => return Err(WsError::Opcode(op)),
            }
            at += hlen + len;
        }
        self.raw.drain(..at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_out_and_payloads_in() {
        let mut ws = WsClient::new("127.0.0.1", "/mqtt");
        assert!(ws.out.starts_with(b"GET /mqtt HTTP/1.1\r\n"));
        let request = ws.out.len();
        ws.frame(&[0xc0, 0x00]);
        assert_eq!(&ws.out[request..], [0x82, 0x82, 0, 0, 0, 0, 0xc0, 0x00]);
        ws.frame(&[7; 300]);
        assert_eq!(
            &ws.out[request + 8..request + 12],
            [0x82, 0x80 | 126, 1, 44]
        );

        let mut input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        input.extend_from_slice(&[0x82, 0x02, 0x20, 0x02, 0x82, 0x7e, 0x01, 0x00]);
        input.extend_from_slice(&[9; 256]);
        let mut got = Vec::new();
        // In two pieces: the second frame arrives later.
        let cut = input.len() - 100;
        for piece in [&input[..cut], &input[cut..]] {
            ws.scratch[..piece.len()].copy_from_slice(piece);
            ws.receive(piece.len(), |p| got.extend_from_slice(p))
                .unwrap();
        }
        assert_eq!(got.len(), 2 + 256);
        assert_eq!(&got[..2], [0x20, 0x02]);

        let mut refused = WsClient::new("h", "/x");
        let answer = b"HTTP/1.1 404 Not Found\r\n\r\n";
        refused.scratch[..answer.len()].copy_from_slice(answer);
        let err = refused.receive(answer.len(), |_| {}).unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }
}
