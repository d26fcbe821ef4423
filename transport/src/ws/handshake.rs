//! The server side of the WebSocket opening handshake (RFC 6455 §4.2),
//! sans-IO: an HTTP/1.1 `GET` upgrade request in, the `101` response (or an
//! HTTP error) out.

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The MQTT subprotocols, by the names clients offer ([MQTT-6.0.0-3]):
/// `mqtt` (3.1.1 and 5.0) and `mqttv3.1` (3.1).
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];
/// The most request headers taken.
const MAX_HEADERS: usize = 32;

/// Why an upgrade request was refused. Each maps to an HTTP status
/// ([`UpgradeError::status`]) and a metrics label ([`UpgradeError::reason`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Not a parseable HTTP/1.1 request.
    #[error("malformed HTTP request: {0}")]
    Malformed(&'static str),
    /// The request line and headers exceed the limit, or too many headers.
    #[error("HTTP request too large")]
    TooLarge,
    /// Not `GET`.
    #[error("method {0} is not GET")]
    Method(String),
    /// A path other than the listener's.
    #[error("path {0:?} is not the WebSocket path")]
    Path(String),
    /// Not a WebSocket upgrade (missing or wrong `Upgrade`, `Connection` or
    /// `Sec-WebSocket-Key`).
    #[error("not a WebSocket upgrade: {0}")]
    NotUpgrade(&'static str),
    /// `Sec-WebSocket-Version` other than 13.
    #[error("unsupported WebSocket version")]
    Version,
    /// Neither `mqtt` nor `mqttv3.1` offered.
    #[error("no MQTT subprotocol offered (mqtt, mqttv3.1)")]
    Subprotocol,
    /// The client closed or the socket failed before the request was whole.
    #[error("connection closed during the upgrade: {0}")]
    Io(#[from] std::io::Error),
}

impl UpgradeError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::NotUpgrade(_) | Self::Subprotocol | Self::Io(_) => {
                "400 Bad Request"
            }
            Self::TooLarge => "431 Request Header Fields Too Large",
            Self::Method(_) => "405 Method Not Allowed",
            Self::Path(_) => "404 Not Found",
            Self::Version => "426 Upgrade Required",
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge => "too_large",
            Self::Method(_) => "method",
            Self::Path(_) => "path",
            Self::NotUpgrade(_) => "not_upgrade",
            Self::Version => "version",
            Self::Subprotocol => "subprotocol",
            Self::Io(_) => "io",
        }
    }

    /// The whole HTTP error response.
    pub(crate) fn response(&self) -> String {
        let extra = if matches!(self, Self::Version) {
            "Sec-WebSocket-Version: 13\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {}\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n",
            self.status()
        )
    }
}

/// An accepted upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Bytes of the buffer the request took; anything after them is
    /// already WebSocket frames.
    pub consumed: usize,
    /// The `101 Switching Protocols` response to send.
    pub response: String,
    /// The subprotocol chosen.
    pub subprotocol: &'static str,
}

/// Parses the upgrade request at the front of `buf`. `Ok(None)`: not all
/// there yet (read more, unless `buf` has reached the size limit, which is
/// the caller's to enforce). `path`: the only path accepted (a query string
/// is ignored).
pub fn parse_request(buf: &[u8], path: &str) -> Result<Option<Accepted>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(UpgradeError::TooLarge),
        Err(_) => return Err(UpgradeError::Malformed("bad request line or header")),
    };
    if req.version != Some(1) {
        return Err(UpgradeError::Malformed("not HTTP/1.1"));
    }
    let method = req.method.unwrap_or_default();
    if method != "GET" {
        return Err(UpgradeError::Method(method.chars().take(16).collect()));
    }
    let target = req.path.unwrap_or_default();
    let asked = target.split_once('?').map_or(target, |(p, _)| p);
    if asked != path {
        return Err(UpgradeError::Path(asked.chars().take(64).collect()));
    }
    let header = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
    };
    let tokens = |name: &'static str| {
        header(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    if !tokens("upgrade").any(|t| t.eq_ignore_ascii_case("websocket")) {
        return Err(UpgradeError::NotUpgrade("no Upgrade: websocket"));
    }
    if !tokens("connection").any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return Err(UpgradeError::NotUpgrade("no Connection: Upgrade"));
    }
    if !header("sec-websocket-version").any(|v| v.trim() == "13") {
        return Err(UpgradeError::Version);
    }
    let Some(key) = header("sec-websocket-key").next().map(str::trim) else {
        return Err(UpgradeError::NotUpgrade("no Sec-WebSocket-Key"));
    };
    // The key is 16 random bytes in base64 (RFC 6455 §4.1).
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.map(|k| k.len()) != Ok(16) {
        return Err(UpgradeError::NotUpgrade("bad Sec-WebSocket-Key"));
    }
    // The first of the client's offers that is an MQTT subprotocol.
    let Some(subprotocol) = tokens("sec-websocket-protocol").find_map(|offer| {
        SUBPROTOCOLS
            .iter()
            .find(|p| p.eq_ignore_ascii_case(offer))
            .copied()
    }) else {
        return Err(UpgradeError::Subprotocol);
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n",
        accept_key(key)
    );
    Ok(Some(Accepted {
        consumed,
        response,
        subprotocol,
    }))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}
