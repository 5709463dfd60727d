//! The in-process receiver: a minimal axum server on 127.0.0.1 that answers 200 at once and
//! records, per (path, webhook-id), when the first copy arrived. Deliveries to
//! [`INBOUND_PATH`] (an inbound source's HTTP destination) are recorded by the `event_id` of
//! their envelope instead: the provider's delivery id the load generator sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Path index used for requests that are not `/ep/{n}` (the ceiling scenario, warm-ups).
pub const OTHER_PATH: u16 = u16::MAX;
/// Where an inbound source's HTTP destination delivers, and its path index.
pub const INBOUND_PATH: &str = "/inbound";
pub const INBOUND_INDEX: u16 = u16::MAX - 1;

#[derive(Default)]
pub struct SinkState {
    /// Every request, whatever its path or headers.
    pub total: AtomicU64,
    /// Distinct (path, webhook-id) pairs seen.
    pub unique: AtomicU64,
    /// Repeats of a (path, webhook-id) pair already seen (at-least-once redeliveries).
    pub duplicates: AtomicU64,
    /// First receive time of each (path index, webhook-id).
    seen: Mutex<HashMap<(u16, Box<str>), Instant>>,
}

impl SinkState {
    /// Forgets everything and makes room for about `capacity` deliveries, so the map does not
    /// rehash (and stall the receiver) in the middle of a measurement.
    pub fn reset(&self, capacity: usize) {
        let mut seen = self.seen.lock().expect("sink map");
        *seen = HashMap::with_capacity(capacity);
        self.total.store(0, Ordering::Relaxed);
        self.unique.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
    }

    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Takes the recorded first-receive times, leaving an empty map.
    pub fn take(&self) -> HashMap<(u16, Box<str>), Instant> {
        std::mem::take(&mut *self.seen.lock().expect("sink map"))
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub state: Arc<SinkState>,
    stop: Option<oneshot::Sender<()>>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SinkState::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Sink {
            addr,
            state,
            stop: Some(stop),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn receive(
    State(state): State<Arc<SinkState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    state.total.fetch_add(1, Ordering::Relaxed);
    let key = if uri.path() == INBOUND_PATH {
        envelope_event_id(&body).map(|id| (INBOUND_INDEX, id))
    } else {
        headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .map(|id| {
                let path = uri
                    .path()
                    .strip_prefix("/ep/")
                    .and_then(|n| n.parse::<u16>().ok())
                    .unwrap_or(OTHER_PATH);
                (path, id)
            })
    };
    if let Some((path, id)) = key {
        let fresh = {
            let mut seen = state.seen.lock().expect("sink map");
            match seen.entry((path, id.into())) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(at);
                    true
                }
            }
        };
        if fresh {
            state.unique.fetch_add(1, Ordering::Relaxed);
        } else {
            state.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::OK
}

/// The `event_id` of an inbound envelope (`{"source":...,"event_id":"...",...}`), without a
/// full JSON parse (it comes before the payload).
fn envelope_event_id(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"event_id\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_envelope_event_id() {
        let body = br#"{"source":"src_1","provider":"github","event_id":"d-1","type":"push"}"#;
        assert_eq!(envelope_event_id(body), Some("d-1"));
        assert_eq!(envelope_event_id(b"{}"), None);
    }
}
