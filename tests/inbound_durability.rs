//! Crash safety of inbound acceptance with the real binary: SIGKILL during a burst of signed
//! provider requests, restart on the same data directory, and every request that was
//! answered 2xx is still forwarded to its destination.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Answer, Receiver, Server};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "crash-test-github-secret";

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

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_inbound_request_survives_sigkill_and_is_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // Before the crash the destination fails, so acknowledged work is pending when it dies.
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
        json!({"uid": "crash-in", "name": "c"}),
    )
    .await;
    let tenant = tenant["id"].as_str().unwrap().to_string();
    let source = post(
        &client,
        format!("{base}/api/v1/tenants/{tenant}/sources"),
        json!({"name": "gh", "provider": "github", "verification": {"secrets": [SECRET]},
               "destinations": [{"type": "http", "url": receiver.url()}]}),
    )
    .await;
    let url = format!("{base}/in/{}", source["id"].as_str().unwrap());

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..16 {
        let (client, acked, url) = (client.clone(), acked.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..10_000 {
                let delivery = format!("d-{c}-{n}");
                let body = json!({"ref": "main", "client": c, "n": n}).to_string();
                let sent = client
                    .post(&url)
                    .header("x-github-event", "push")
                    .header("x-github-delivery", &delivery)
                    .header("x-hub-signature-256", sign(body.as_bytes()))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if resp.status() != 200 {
                    return;
                }
                acked.lock().unwrap().push(delivery);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 600 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill(); // SIGKILL
    for c in clients {
        let _ = c.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() >= 300,
        "only {} requests acknowledged before the kill",
        acked.len()
    );
    let attempts_before_restart = receiver.count();
    receiver.answer_from_now(vec![Answer::status(200)]);

    let mut server = Server::start(dir.path(), port, &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let seen: HashSet<String> = receiver.received()[attempts_before_restart..]
            .iter()
            .filter_map(|r| {
                let v: Value = serde_json::from_slice(&r.body).ok()?;
                Some(v["event_id"].as_str()?.to_string())
            })
            .collect();
        let missing = acked.iter().filter(|id| !seen.contains(*id)).count();
        if missing == 0 || Instant::now() > deadline {
            break missing;
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
        "{missing} acknowledged inbound requests were never forwarded"
    );
}
