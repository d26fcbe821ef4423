//! HTTPS on the metrics listener (`metrics_tls_certfile` /
//! `metrics_tls_keyfile`), scraped by `curl --cacert`: the generated CA
//! verifies it, plain HTTP is refused on that port, a silent client is
//! closed after the handshake timeout, the admin endpoint works over it,
//! and the certificate is reloaded like the TLS listeners' (SIGHUP, a
//! change on disk, `POST /admin/reload`; bad files keep the one in force).

use crate::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `curl` for `url` with `args`: `Some((status, body))` when it got a
/// response, `None` when it failed (refused, handshake or verification
/// failure). Bounded by `--max-time`.
fn curl(url: &str, args: &[&str]) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", url])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl (apt-get install curl)");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_string()))
}

/// The value of one series scraped over HTTPS (`None`: no scrape; 0 when
/// absent).
fn series(url: &str, cafile: &str, name: &str) -> Option<f64> {
    let (_, body) = curl(url, &["--cacert", cafile])?;
    Some(
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0),
    )
}

#[test]
fn metrics_over_https_with_certificate_reload() {
    let dir = Dir::new("metrics");
    let ca = make_ca("metrics");
    let cafile = dir.write("ca.pem", &ca.pem);
    let other = make_ca("other");
    let otherfile = dir.write("other.pem", &other.pem);
    let (cert, key) = ca.leaf(
        "localhost",
        &["localhost", "127.0.0.1"],
        KeyType::Ecdsa,
        false,
    );
    let certfile = dir.write("http.pem", &cert);
    let keyfile = dir.write("http.key", &key);
    let config = format!(
        "bind = [\"127.0.0.1:0\"]\nmetrics_bind = \"127.0.0.1:0\"\n\
         metrics_tls_certfile = \"{certfile}\"\nmetrics_tls_keyfile = \"{keyfile}\"\n\
         admin_endpoint = true\nadmin_token = \"metrics-tls-token\"\n"
    );
    let tern = Tern::start(&dir, &config);
    let http = tern.http.expect("metrics_bind set");
    let started = Instant::now();
    let mut silent = TcpStream::connect(http).unwrap();

    let https = format!("https://127.0.0.1:{}/metrics", http.port());
    let by_name = format!("https://localhost:{}/healthz", http.port());
    let (status, body) = curl(&https, &["--cacert", &cafile]).expect("HTTPS scrape");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("tern_tls_certificate_reloads_total"),
        "Prometheus text: {body}"
    );
    assert_eq!(
        curl(&by_name, &["--cacert", &cafile]),
        Some((200, "ok\n".to_string()))
    );
    // HTTP/1.1 over ALPN (curl offers h2 and http/1.1).
    let (status, _) = curl(&https, &["--cacert", &cafile, "--http1.1"]).unwrap();
    assert_eq!(status, 200);
    // The certificate is verified: another CA, or none, fails.
    assert_eq!(curl(&https, &["--cacert", &otherfile]), None);
    assert_eq!(curl(&https, &[]), None);

    // Plain HTTP on the HTTPS port gets no HTTP response.
    let plain = format!("http://127.0.0.1:{}/metrics", http.port());
    assert_eq!(curl(&plain, &[]), None, "curl over plain HTTP");
    let mut raw = TcpStream::connect(http).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&got)
    );

    // SIGHUP puts a certificate from another CA in force for new
    // connections.
    let (cert2, key2) = other.leaf("localhost", &["127.0.0.1"], KeyType::Ed25519, false);
    dir.write("http.pem", &cert2);
    dir.write("http.key", &key2);
    tern.sighup();
    wait_for(WAIT, "the new certificate in force", || {
        curl(&https, &["--cacert", &otherfile]).map(|_| ())
    });
    assert_eq!(curl(&https, &["--cacert", &cafile]), None);

    // SIGHUP reloads whether or not the poll got there first.
    wait_for(WAIT, "the SIGHUP reload logged", || {
        tern.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("TLS certificate reloaded (SIGHUP)") && l.contains("metrics_bind"))
            .then_some(())
    });

    // A certificate that does not load is refused (counted); the one in
    // force stays.
    dir.write(
        "http.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    tern.sighup();
    let rejected = "tern_tls_certificate_reloads_total{result=\"rejected\"}";
    wait_for(WAIT, "the rejected reload counted", || {
        (series(&https, &otherfile, rejected)? >= 1.0).then_some(())
    });
    let (status, _) = curl(&https, &["--cacert", &otherfile]).expect("the old certificate");
    assert_eq!(status, 200);

    // Files changed on disk are picked up without a signal.
    dir.write("http.pem", &cert);
    dir.write("http.key", &key);
    wait_for(Duration::from_secs(10), "the file change picked up", || {
        curl(&https, &["--cacert", &cafile]).map(|_| ())
    });
    let ok = "tern_tls_certificate_reloads_total{result=\"ok\"}";
    wait_for(WAIT, "the reloads counted", || {
        (series(&https, &cafile, ok)? >= 2.0).then_some(())
    });

    // POST /admin/reload over HTTPS: the token is checked, and the reload
    // reads the certificate again.
    let admin = format!("https://127.0.0.1:{}/admin/reload", http.port());
    let (status, _) = curl(&admin, &["--cacert", &cafile, "-X", "POST"]).unwrap();
    assert_eq!(status, 401, "no token");
    let bearer = "Authorization: Bearer metrics-tls-token";
    let (status, body) = curl(&admin, &["--cacert", &cafile, "-X", "POST", "-H", bearer]).unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for(WAIT, "the admin reload logged", || {
        tern.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| {
                l.contains("TLS certificate reloaded (POST /admin/reload)")
                    && l.contains("metrics_bind")
            })
            .then_some(())
    });

    // The silent client was closed by the handshake timeout (10 s).
    let left = (started + Duration::from_secs(20)).saturating_duration_since(Instant::now());
    silent
        .set_read_timeout(Some(left.max(Duration::from_millis(100))))
        .unwrap();
    let mut buf = [0u8; 16];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes to a client that sent nothing"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "still open after {:?}: {e}",
            started.elapsed()
        ),
    }
}
