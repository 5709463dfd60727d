//! Crash safety of the real binary: SIGKILL in the middle of a publish burst, restart on the
//! same data directory, and every event that was answered 2xx is still delivered.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Answer, Receiver, Server};
use serde_json::{Value, json};

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let r = client
        .post(url)
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_survives_sigkill_and_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // Before the crash every attempt fails, so all acknowledged work is pending (first
    // attempts or retries timed in memory) when the process dies.
    let receiver = Receiver::start(vec![Answer::status(503)]).await;

    let env = [
        ("HOOKRELAY_ADMIN_KEY", ADMIN_KEY),
        ("HOOKRELAY_ALLOW_NETS", "127.0.0.1/32"),
        ("HOOKRELAY_DELIVERY_POLL_INTERVAL", "100ms"),
        // On a shared store (PostgreSQL) a restarted instance does not drop the leases of
        // the one that died (another live instance might hold them): it takes them over
        // when they expire. Short leases keep that wait short.
        ("HOOKRELAY_DELIVERY_LEASE", "4s"),
        (
            "HOOKRELAY_DELIVERY_RETRY_SCHEDULE",
            "100ms,1s,2s,2s,2s,2s,2s,2s",
        ),
    ];
    let mut server = Server::start(dir.path(), 0, &env);
    let port = server.addr.port();
    let base = server.base();
    let tenant = post(
        &client,
        format!("{base}/api/v1/tenants"),
        json!({"uid": "crash", "name": "c"}),
    )
    .await;
    let tenant = tenant["id"].as_str().unwrap().to_string();
    post(
        &client,
        format!("{base}/api/v1/event-types"),
        json!({"name": "a.b"}),
    )
    .await;
    post(
        &client,
        format!("{base}/api/v1/tenants/{tenant}/endpoints"),
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;

    // 32 clients publish as fast as they can; each records what was acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..32 {
        let (client, acked, url) = (
            client.clone(),
            acked.clone(),
            format!("{base}/api/v1/tenants/{tenant}/events"),
        );
        clients.push(tokio::spawn(async move {
            for n in 0..10_000 {
                let sent = client
                    .post(&url)
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({"type": "a.b", "payload": {"client": c, "n": n}}))
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if resp.status() != 202 {
                    return;
                }
                let Ok(body) = resp.json::<Value>().await else {
                    return;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(body["id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Let the burst run, then kill the server without warning.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 1500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill(); // SIGKILL
    for c in clients {
        let _ = c.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() >= 1000,
        "only {} events acknowledged before the kill",
        acked.len()
    );
    let attempts_before_restart = receiver.count();
    receiver.answer_from_now(vec![Answer::status(200)]);

    let mut server = Server::start(dir.path(), port, &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let seen: HashSet<String> = receiver.received()[attempts_before_restart..]
            .iter()
            .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
            .collect();
        let missing: Vec<&String> = acked.iter().filter(|id| !seen.contains(*id)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.kill();
    eprintln!(
        "acknowledged {}, failed attempts before the kill {attempts_before_restart}, missing {missing}",
        acked.len()
    );
    assert_eq!(
        missing, 0,
        "{missing} acknowledged events were never delivered"
    );
}
