//! TLS streams end to end over loopback, with a rustls client: mTLS and
//! the client's subject, ALPN, buffered plaintext reported as readable,
//! a stream moved to another runtime mid-stream, vectored writes, a bad
//! certificate file refused on reload with the old one kept.

use super::*;
use crate::{bind, Establish, Listener, ListenerKind, ListenerSpec, Stream};
use rustls::pki_types::ServerName;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Ipv4Addr;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio_rustls::client::TlsStream as ClientStream;

const LIMIT: Duration = Duration::from_secs(5);

struct Pki {
    dir: PathBuf,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tern-transport-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Self {
            dir,
            ca_der: cert.der().clone(),
            ca: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes `name.pem` and `name.key` for `cn`.
    fn leaf(&self, name: &str, cn: &str, sans: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn files(&self, client_ca: bool) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
            client_ca: client_ca.then(|| self.dir.join("ca.pem")),
            require_client_cert: client_ca,
            min_version: TlsVersion::Tls12,
            alpn: vec![b"mqtt".to_vec()],
        }
    }

    fn client(
        &self,
        identity: Option<(&rcgen::Certificate, &rcgen::KeyPair)>,
    ) -> tokio_rustls::TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"mqtt".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS listener with `server`, a client connected through `connector`:
/// the established server stream and the client stream.
async fn tls_pair(
    server: Arc<TlsServer>,
    connector: tokio_rustls::TlsConnector,
) -> (Stream, ClientStream<tokio::net::TcpStream>) {
    let spec = ListenerSpec {
        kind: ListenerKind::Tls,
        establish: Establish {
            tls: Some(server),
            ..Establish::default()
        },
        ..ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into())
    };
    let listener = Listener::from_spec(bind(&spec).unwrap(), &spec).unwrap();
    let addr = listener.local_addr();
    let client = async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    };
    let server = async {
        let accepted = listener.accept().await;
        let (how, peer) = (accepted.establish.clone(), accepted.peer);
        let stream = Stream::from_accepted(accepted).unwrap();
        stream.establish(&how, peer).await.unwrap()
    };
    let (client, established) = tokio::time::timeout(LIMIT, async { tokio::join!(client, server) })
        .await
        .unwrap();
    assert!(!established.proxied);
    (established.stream, client)
}

#[tokio::test]
async fn mtls_subject_alpn_and_vectored_writes() {
    let pki = Pki::new("mtls");
    pki.leaf("server", "localhost", &["localhost"]);
    let (cert, key) = pki.leaf("alice", "alice", &[]);
    let server = Arc::new(TlsServer::load(pki.files(true)).unwrap());
    let (mut stream, mut client) = tls_pair(server, pki.client(Some((&cert, &key)))).await;
    assert_eq!(stream.kind(), ListenerKind::Tls);
    assert_eq!(stream.alpn_protocol(), Some(&b"mqtt"[..]));
    let subject = stream.peer_certificate().unwrap();
    assert_eq!(subject.common_name.as_deref(), Some("alice"));
    assert_eq!(subject.subject, "CN=alice");
    assert!(stream.peer_addr().is_some() && stream.local_addr().is_some());

    assert!(stream.is_write_vectored());
    let parts: [&[u8]; 3] = [b"head", b"er+", b"payload"];
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = stream.write_vectored(slices).await.unwrap();
        IoSlice::advance_slices(&mut slices, n);
    }
    stream.flush().await.unwrap();
    let mut got = [0u8; 14];
    tokio::time::timeout(LIMIT, client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"header+payload");
}

/// Reads what rustls has decrypted only partly, so the rest waits in
/// rustls while the socket has nothing: the stream must still say it is
/// readable (a parked connection would otherwise never wake for it).
#[tokio::test]
async fn buffered_plaintext_is_read_ready() {
    let pki = Pki::new("ready");
    pki.leaf("server", "localhost", &["localhost"]);
    let server = Arc::new(TlsServer::load(pki.files(false)).unwrap());
    let (mut stream, mut client) = tls_pair(server, pki.client(None)).await;
    assert_eq!(stream.peer_certificate(), None);
    client.write_all(&[7u8; 100]).await.unwrap();
    client.flush().await.unwrap();
    let mut first = [0u8; 10];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();

    // The socket has nothing more: clear its cached readiness.
    let tcp = stream.tcp().unwrap();
    let _ = tcp.try_io(Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
    let socket_ready = poll_fn(|cx| Poll::Ready(tcp.poll_read_ready(cx).is_ready())).await;
    assert!(!socket_ready, "the socket itself has nothing to read");
    let ready = poll_fn(|cx| Poll::Ready(stream.poll_read_ready(cx).is_ready())).await;
    assert!(ready, "90 decrypted bytes wait in rustls");

    let mut rest = [0u8; 90];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, [7u8; 90]);
    let tcp = stream.tcp().unwrap();
    let _ = tcp.try_io(Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
    let ready = poll_fn(|cx| Poll::Ready(stream.poll_read_ready(cx).is_ready())).await;
    assert!(!ready, "nothing buffered, nothing on the socket");
}

/// A TLS stream with decrypted bytes still buffered is detached, moved to
/// another thread's runtime, attached there and goes on: the buffered
/// bytes first, then new records both ways.
#[test]
fn tls_stream_moves_between_runtimes_with_its_buffered_plaintext() {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
    let pki = Pki::new("move");
    pki.leaf("server", "localhost", &["localhost"]);
    let server = Arc::new(TlsServer::load(pki.files(false)).unwrap());
    let connector = pki.client(None);
    let rt = runtime();
    let (detached, client) = rt.block_on(async {
        let (mut stream, mut client) = tls_pair(server, connector).await;
        client.write_all(b"0123456789").await.unwrap();
        client.flush().await.unwrap();
        let mut first = [0u8; 4];
        tokio::time::timeout(LIMIT, stream.read_exact(&mut first))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&first, b"0123");
        let detached = stream.detach().unwrap();
        assert_eq!(detached.kind(), ListenerKind::Tls);
        // The client's socket moves to this test thread's next runtime too.
        let (tcp, conn) = client.into_inner();
        (detached, (tcp.into_std().unwrap(), conn))
    });
    drop(rt);
    let worker = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut stream = Stream::attach(detached).unwrap();
            let mut rest = [0u8; 6];
            tokio::time::timeout(LIMIT, stream.read_exact(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&rest, b"456789");
            stream.write_all(b"moved").await.unwrap();
            stream.flush().await.unwrap();
            let mut more = [0u8; 4];
            tokio::time::timeout(LIMIT, stream.read_exact(&mut more))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&more, b"more");
        });
    });
    runtime().block_on(async move {
        let (tcp, conn) = client;
        tcp.set_nonblocking(true).unwrap();
        let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
        // Rebuild the client around its socket: `TlsConnector` cannot, so
        // drive the rustls client connection by hand.
        let mut conn = conn;
        let mut tcp = tcp;
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + LIMIT;
        while got.len() < 5 {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "server closed");
            conn.read_tls(&mut &buf[..n]).unwrap();
            conn.process_new_packets().unwrap();
            let mut plain = [0u8; 64];
            while let Ok(k) = io::Read::read(&mut conn.reader(), &mut plain) {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&plain[..k]);
            }
        }
        assert_eq!(got, b"moved");
        io::Write::write_all(&mut conn.writer(), b"more").unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        tcp.write_all(&out).await.unwrap();
    });
    worker.join().unwrap();
}

#[test]
fn a_bad_certificate_is_refused_and_the_old_one_stays() {
    let pki = Pki::new("reload");
    pki.leaf("server", "localhost", &["localhost"]);
    let server = TlsServer::load(pki.files(false)).unwrap();
    let before = server.config();
    assert!(!server.reload_if_changed().unwrap(), "nothing changed");
    std::fs::write(pki.dir.join("server.pem"), "not a certificate\n").unwrap();
    let err = server.reload().unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    assert!(
        Arc::ptr_eq(&before, &server.config()),
        "the old configuration stays"
    );
    // Reported once: the same bad files are not tried at every poll.
    assert!(!server.reload_if_changed().unwrap());
    pki.leaf("server", "localhost", &["localhost"]);
    server.reload().unwrap();
    assert!(!Arc::ptr_eq(&before, &server.config()));

    let missing = TlsFiles {
        key: pki.dir.join("nope.key"),
        ..pki.files(false)
    };
    let err = TlsServer::load(missing).unwrap_err();
    assert!(err.to_string().contains("nope.key"), "{err}");
    let mut no_ca = pki.files(true);
    no_ca.client_ca = Some(pki.dir.join("server.key"));
    assert!(
        TlsServer::load(no_ca).is_err(),
        "a key file is no CA bundle"
    );
}
