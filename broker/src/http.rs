//! The HTTP endpoints on `metrics_bind`, served by hyper (HTTP/1.1) on a
//! current-thread runtime of their own thread (`tern-http`):
//!
//! * `GET /metrics`: Prometheus text format.
//! * `GET /healthz`: 200 while the process runs.
//! * `GET /readyz`: 200 when every MQTT listener accepts and every worker
//!   ticked within [`HEARTBEAT_DEADLINE`](crate::health::HEARTBEAT_DEADLINE),
//!   else 503 with the reason on one line.
//! * `POST /admin/reload`: reloads the configuration like SIGHUP, when
//!   `admin_endpoint` is on (404 otherwise) and the request carries
//!   `Authorization: Bearer TOKEN` with the configured token (401 with
//!   `WWW-Authenticate: Bearer` without it or with another one; the
//!   configuration refuses `admin_endpoint` without a token): 200 with one
//!   line per changed key, or 500 with why the configuration was rejected.
//!
//! Only the admin endpoint is authenticated: bind `metrics_bind` to
//! loopback or a private address.
//!
//! With `metrics_tls_certfile` and `metrics_tls_keyfile` the listener
//! serves HTTPS only (rustls, ALPN `http/1.1`): each connection's handshake
//! runs in its own task within [`HANDSHAKE_TIMEOUT`], with the certificate
//! in force when it starts; `certs` reloads it like the TLS listeners'.

use crate::admin_token::Unauthorized;
use crate::error::BrokerError;
use crate::reload::Reloader;
use crate::shared::Shared;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_config::Config;
use tern_transport::{TlsFiles, TlsServer, TlsVersion};
use tokio::io::{AsyncRead, AsyncWrite};

/// The longest a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one HTTP connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a TLS handshake may take (a TLS listener's default
/// `handshake_timeout`), so a client that says nothing cannot keep a
/// connection.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The name the metrics listener's certificate goes by in errors and logs.
pub(crate) const TLS_NAME: &str = "metrics_bind";

/// The HTTPS server configuration when metrics are served and
/// `metrics_tls_certfile` / `metrics_tls_keyfile` are set (the
/// configuration checks they come together); `Err` when the files do not
/// load.
pub(crate) fn tls_server(config: &Config) -> Result<Option<Arc<TlsServer>>, BrokerError> {
    let (Some(_), Some(cert), Some(key)) = (
        config.metrics_bind,
        &config.metrics_tls_certfile,
        &config.metrics_tls_keyfile,
    ) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
        require_client_cert: false,
        min_version: TlsVersion::Tls12,
        alpn: vec![b"http/1.1".to_vec()],
    };
    match TlsServer::load(files) {
        Ok(server) => Ok(Some(Arc::new(server))),
        Err(source) => Err(BrokerError::Tls {
            name: TLS_NAME.into(),
            source,
        }),
    }
}

/// What the endpoints read.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) metrics: PrometheusHandle,
    pub(crate) shared: Arc<Shared>,
    pub(crate) reloader: Arc<Reloader>,
}

/// Serves `listener` (over TLS with `tls`) on a thread of its own until
/// the process ends.
pub(crate) fn start(
    listener: std::net::TcpListener,
    tls: Option<Arc<TlsServer>>,
    endpoints: Endpoints,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let endpoints = Arc::new(endpoints);
    std::thread::Builder::new()
        .name("tern-http".into())
        .spawn(move || {
            let Some(rt) = crate::runtime::current_thread_runtime("http") else {
                return;
            };
            rt.block_on(serve(listener, tls, endpoints));
        })?;
    Ok(())
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<TlsServer>>,
    endpoints: Arc<Endpoints>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the HTTP listener");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoints = Arc::clone(&endpoints);
        let Some(tls) = &tls else {
            tokio::spawn(serve_connection(stream, endpoints));
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, endpoints).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
            }
        });
    }
}

/// Serves one connection's requests until it closes or
/// [`CONNECTION_TIMEOUT`].
async fn serve_connection<S>(io: S, endpoints: Arc<Endpoints>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let response = respond(&endpoints, req.method(), req.uri().path(), req.headers());
        async move { Ok::<_, Infallible>(response) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    // A timeout just closes the connection.
    if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
        tracing::debug!(error = %e, "HTTP connection failed");
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// 401 with the challenge of RFC 6750 (`error="invalid_token"` when a
/// token was given).
fn unauthorized(why: Unauthorized) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
    let challenge = match why {
        Unauthorized::Missing => "Bearer realm=\"tern\"",
        Unauthorized::Wrong => "Bearer realm=\"tern\", error=\"invalid_token\"",
    };
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

fn respond(
    endpoints: &Endpoints,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/metrics" if read => {
            let mut body = endpoints.metrics.render();
            crate::prom::render_direct(&endpoints.shared, &mut body);
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" if read => text(StatusCode::OK, "ok\n"),
        "/readyz" if read => match endpoints.shared.health.ready(Instant::now()) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" | "/healthz" | "/readyz" => not_allowed("GET, HEAD"),
        "/admin/reload" if endpoints.shared.live.load().config.admin_endpoint => {
            // Validation refuses the endpoint without a token; a hand-built
            // configuration without one is refused here all the same.
            let authorization = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
            let checked = match &endpoints.shared.live.load().admin_token {
                Some(token) => token.check(authorization),
                None => Err(Unauthorized::Missing),
            };
            if let Err(why) = checked {
                let health = &endpoints.shared.health;
                health
                    .admin_unauthorized
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(?why, "POST /admin/reload without the admin token; 401");
                return unauthorized(why);
            }
            if method != Method::POST {
                return not_allowed("POST");
            }
            match endpoints.reloader.reload("POST /admin/reload") {
                Ok(report) => text(StatusCode::OK, report.to_string()),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
