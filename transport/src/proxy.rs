//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy
//! specifies it: a load balancer in front of the broker opens each
//! connection with a header naming the client's address.
//!
//! [`parse`] is pure (no IO, no allocation): it reads one header from the
//! start of a buffer and says how long it is, so the bytes after it (a TLS
//! ClientHello, a CONNECT) stay where they are. [`read_header`] peeks at
//! the socket, parses, and consumes exactly the header.
//!
//! Written here rather than taken from a crate: the parse must tell the
//! exact header length (to leave what follows unread in the socket), reject
//! anything over a small bound before reading it, allocate nothing, and be
//! the entry point of a fuzz target; that is some 150 lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The 12-byte signature that starts a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest version 1 header, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;
/// Longest version 2 header accepted: the 16-byte fixed part and up to
/// 1,008 bytes of addresses and TLVs (the specification allows 65,535;
/// proxies send well under this).
pub const V2_MAX: usize = 1024;

/// A parsed PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// How many bytes the header takes, from the start of the buffer.
    pub len: usize,
    /// The client's address as the proxy reports it, and the address the
    /// client connected to. `None` for `UNKNOWN` (v1), the `LOCAL` command
    /// (v2: the proxy's own health check) and address families other than
    /// TCP over IPv4/IPv6: the socket's own peer stands.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

/// Why a PROXY header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The connection does not start with a PROXY signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// A version 1 header that does not follow the grammar.
    #[error("malformed PROXY v1 header")]
    BadV1,
    /// A version 2 header with a bad version, command, family or length.
    #[error("malformed PROXY v2 header")]
    BadV2,
    /// Longer than [`V1_MAX`] / [`V2_MAX`].
    #[error("PROXY header too long")]
    TooLong,
}

/// Parses the PROXY header at the start of `buf`: `Ok(None)` when more
/// bytes are needed (nothing is consumed), `Err` when `buf` cannot start
/// with a valid header.
pub fn parse(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return if n < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(ProxyError::Missing)
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or `PROXY UNKNOWN …\r\n`.
fn parse_v1(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::TooLong)
        } else {
            Ok(None)
        };
    };
    let len = lf + 1;
    let line = window[..lf].strip_suffix(b"\r").ok_or(ProxyError::BadV1)?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::BadV1)?;
    let mut parts = line.split(' ');
    let _proxy = parts.next();
    let family = parts.next().ok_or(ProxyError::BadV1)?;
    if family == "UNKNOWN" {
        return Ok(Some(ProxyHeader { len, addrs: None }));
    }
    let mut field = || parts.next().ok_or(ProxyError::BadV1);
    let (src, dst, sport, dport) = (field()?, field()?, field()?, field()?);
    if parts.next().is_some() {
        return Err(ProxyError::BadV1);
    }
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        match family {
            "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => s.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => return Err(ProxyError::BadV1),
        }
        .map_err(|_| ProxyError::BadV1)
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        // Decimal without a sign or leading zeros ("0" itself allowed).
        if s.is_empty()
            || (s.len() > 1 && s.starts_with('0'))
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ProxyError::BadV1);
        }
        s.parse().map_err(|_| ProxyError::BadV1)
    };
    let source = SocketAddr::new(ip(src)?, port(sport)?);
    let destination = SocketAddr::new(ip(dst)?, port(dport)?);
    Ok(Some(ProxyHeader {
        len,
        addrs: Some((source, destination)),
    }))
}

/// Signature, version/command, family/protocol, length, addresses, TLVs.
fn parse_v2(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    if version != 2 || command > 1 {
        return Err(ProxyError::BadV2);
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Err(ProxyError::TooLong);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[16..len];
    // LOCAL: the proxy speaks for itself; the address block is ignored.
    if command == 0 {
        return Ok(Some(ProxyHeader { len, addrs: None }));
    }
    let addrs = match buf[13] {
        // TCP over IPv4.
        0x11 => {
            let a = body.get(..12).ok_or(ProxyError::BadV2)?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        // TCP over IPv6.
        0x21 => {
            let a = body.get(..36).ok_or(ProxyError::BadV2)?;
            let ip = |i: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        // UNSPEC, UDP, UNIX: nothing the broker can use; the socket's peer stands.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => None,
        _ => return Err(ProxyError::BadV2),
    };
    Ok(Some(ProxyHeader { len, addrs }))
}

/// Why [`read_header`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("connection closed before the PROXY header ended")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY header a connection starts with, consuming exactly its
/// bytes. Waits for more only while the header is incomplete (the caller
/// bounds the wait with the handshake timeout).
pub(crate) async fn read_header(
    stream: &mut tokio::net::TcpStream,
) -> Result<ProxyHeader, ReadError> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; V2_MAX];
    let mut last = usize::MAX;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        if let Some(header) = parse(&buf[..n])? {
            stream.read_exact(&mut buf[..header.len]).await?;
            return Ok(header);
        }
        // Incomplete: the socket stays readable with the same bytes, so
        // wait a little before peeking again (a header nearly always comes
        // in one segment). The same count twice means nothing new arrived.
        if n == last {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        last = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 1883\r\n\x10rest";
        let got = parse(h).unwrap().unwrap();
        assert_eq!(got.len, h.len() - 5);
        assert_eq!(
            got.addrs,
            Some((addr("203.0.113.7:51000"), addr("192.0.2.1:1883")))
        );
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 8883\r\n";
        let got = parse(h).unwrap().unwrap();
        assert_eq!(got.len, h.len());
        assert_eq!(
            got.addrs,
            Some((addr("[2001:db8::1]:4000"), addr("[2001:db8::2]:8883")))
        );
        let got = parse(b"PROXY UNKNOWN ffff::1 whatever\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(got.addrs, None);
    }

    #[test]
    fn v1_partial_and_malformed() {
        let full = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 1883\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        for bad in [
            &b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 1883\n"[..],
            b"PROXY TCP4 203.0.113.7 192.0.2.1 51000\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 1883 9\r\n",
            b"PROXY TCP4 2001:db8::1 192.0.2.1 51000 1883\r\n",
            b"PROXY TCP6 203.0.113.7 192.0.2.1 51000 1883\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 1883\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 +1 1883\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 01 1883\r\n",
            b"PROXY UDP4 203.0.113.7 192.0.2.1 1 1883\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProxyError::BadV1),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        assert_eq!(parse(b"\x10\x0c\x00\x04MQTT"), Err(ProxyError::Missing));
        assert_eq!(parse(b"PROXX"), Err(ProxyError::Missing));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v2_families_and_commands() {
        let body = [203, 0, 113, 7, 192, 0, 2, 1, 0xc7, 0x38, 0x07, 0x5b];
        let h = v2(1, 0x11, &body);
        let got = parse(&h).unwrap().unwrap();
        assert_eq!(got.len, 28);
        assert_eq!(
            got.addrs,
            Some((addr("203.0.113.7:51000"), addr("192.0.2.1:1883")))
        );
        // A TLV after the addresses counts in the length.
        let mut with_tlv = body.to_vec();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xaa]);
        assert_eq!(parse(&v2(1, 0x11, &with_tlv)).unwrap().unwrap().len, 32);

        let mut b6 = Vec::new();
        b6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b6.extend_from_slice(&[0x0f, 0xa0, 0x22, 0xb3]);
        let got = parse(&v2(1, 0x21, &b6)).unwrap().unwrap();
        assert_eq!(
            got.addrs,
            Some((addr("[2001:db8::1]:4000"), addr("[2001:db8::2]:8883")))
        );
        // LOCAL ignores the addresses; UNIX carries none the broker can use.
        assert_eq!(parse(&v2(0, 0x11, &body)).unwrap().unwrap().addrs, None);
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().addrs, None);
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn v2_malformed() {
        let body = [0u8; 12];
        let mut bad_version = v2(1, 0x11, &body);
        bad_version[12] = 0x11;
        assert_eq!(parse(&bad_version), Err(ProxyError::BadV2));
        let mut bad_command = v2(1, 0x11, &body);
        bad_command[12] = 0x22;
        assert_eq!(parse(&bad_command), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x11, &[0; 8])), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x21, &[0; 12])), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x41, &body)), Err(ProxyError::BadV2));
        let mut huge = v2(1, 0x11, &body);
        huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(parse(&huge), Err(ProxyError::TooLong));
    }
}
