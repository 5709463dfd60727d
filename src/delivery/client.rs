//! The outbound HTTP client: pooled keep-alive hyper connections, rustls for HTTPS, no
//! redirect following, and the SSRF check on every address it connects to — the literal in
//! the URL or each address a name resolves to.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower::Service;

use super::ssrf::AddressPolicy;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("address not allowed: {0}")]
    Blocked(String),
    #[error("DNS resolution failed: {0}")]
    Dns(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// Errors raised inside the connector; found again in the error chain to classify.
#[derive(Debug, thiserror::Error)]
enum GuardError {
    #[error("{0} is a private, loopback or otherwise special address")]
    Blocked(IpAddr),
    #[error("{0}")]
    Dns(String),
}

pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub timeout: Duration,
    pub max_response_body: usize,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

#[derive(Clone)]
pub struct HttpSender {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
}

impl HttpSender {
    pub fn new(policy: AddressPolicy, idle_per_host: usize) -> HttpSender {
        let policy = Arc::new(policy);
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            policy: policy.clone(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let guarded = GuardedConnector {
            inner: http,
            policy,
        };
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring supports the default TLS versions")
            .https_or_http()
            .enable_http1()
            .wrap_connector(guarded);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(idle_per_host)
            .build(tls);
        HttpSender { client }
    }

    pub async fn send(&self, out: Outgoing) -> Result<Answer, SendError> {
        let timeout = out.timeout;
        match tokio::time::timeout(timeout, self.exchange(out)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }

    async fn exchange(&self, out: Outgoing) -> Result<Answer, SendError> {
        let uri: Uri = out
            .url
            .parse()
            .map_err(|e| SendError::Other(format!("invalid URL: {e}")))?;
        let mut req = hyper::Request::post(uri);
        for (name, value) in &out.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req
            .body(Full::new(out.body))
            .map_err(|e| SendError::Other(format!("invalid request: {e}")))?;
        let resp = self.client.request(req).await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = read_prefix(resp.into_body(), out.max_response_body).await;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// Up to `max` bytes of the body; the rest is drained so the connection can be reused
/// when it is short, or dropped when it is long.
async fn read_prefix(body: hyper::body::Incoming, max: usize) -> String {
    let mut limited = Limited::new(body, max.max(1) * 16);
    let mut kept = Vec::new();
    while let Some(frame) = limited.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data()
            && kept.len() < max
        {
            let room = max - kept.len();
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn classify(err: hyper_util::client::legacy::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(guard) = e.downcast_ref::<GuardError>() {
            return match guard {
                GuardError::Blocked(_) => SendError::Blocked(guard.to_string()),
                GuardError::Dns(msg) => SendError::Dns(msg.clone()),
            };
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return SendError::Tls(e.to_string());
        }
        // Handshake failures arrive as io::Errors wrapping io::Errors wrapping the rustls
        // error, and an io::Error's `source()` skips what it wraps: unwrap them by hand.
        let mut wrapped = e.downcast_ref::<std::io::Error>();
        while let Some(inner) = wrapped.and_then(|io| io.get_ref()) {
            if inner.downcast_ref::<rustls::Error>().is_some() {
                return SendError::Tls(inner.to_string());
            }
            wrapped = inner.downcast_ref::<std::io::Error>();
        }
        source = e.source();
    }
    let chain = error_chain(&err);
    if err.is_connect() {
        SendError::Connect(chain)
    } else {
        SendError::Other(chain)
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// Resolves names and keeps only the addresses the policy allows.
#[derive(Clone)]
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| GuardError::Dns(format!("{host}: {e}")))?
                .collect();
            if addrs.is_empty() {
                return Err(GuardError::Dns(format!("{host}: no addresses")).into());
            }
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(GuardError::Blocked(addrs[0].ip()).into());
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Refuses URLs whose host is a literal address the policy does not allow (hyper's
/// connector does not ask the resolver about literals).
#[derive(Clone)]
struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: Arc<AddressPolicy>,
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if let Some(ip) = literal
            && !self.policy.allows(ip)
        {
            return Box::pin(async move { Err(GuardError::Blocked(ip).into()) });
        }
        let fut = self.inner.call(uri);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
