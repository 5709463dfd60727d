//! Several real `hookrelay serve` processes on one PostgreSQL database, and what happens when
//! one of them, or the database, fails: work is shared through leases and a killed instance
//! loses nothing; an API-only and a delivery-only tier work apart (LISTEN/NOTIFY wakes the
//! workers); a PostgreSQL restart is answered with 503s and then survived; the same inbound
//! webhook sent to two instances at once is accepted once.
//!
//! These tests run only in the PostgreSQL pass of `scripts/test`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::{self, Cluster};
use common::{ADMIN_KEY, Answer, Receiver, Server};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn skipped() -> bool {
    if postgres::enabled() {
        return false;
    }
    eprintln!("skipped: runs in the PostgreSQL pass of scripts/test");
    true
}

/// A client whose every request ends (answer or error) within 15 s.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// Starts one instance per entry at the same time (so migrations race, as in a rollout),
/// each with its own data directory, all on `url`, with `extra` settings.
async fn start_instances(url: &str, dirs: &[&Path], extra: &[&[(&str, &str)]]) -> Vec<Server> {
    let mut starting = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut env: Vec<(String, String)> = vec![
            ("HOOKRELAY_ADMIN_KEY".into(), ADMIN_KEY.into()),
            ("HOOKRELAY_ALLOW_NETS".into(), "127.0.0.1/32".into()),
            ("HOOKRELAY_DATABASE_URL".into(), url.into()),
            ("HOOKRELAY_DATABASE_POOL_SIZE".into(), "8".into()),
        ];
        for (k, v) in extra[i.min(extra.len() - 1)] {
            env.push((k.to_string(), v.to_string()));
        }
        let dir: PathBuf = dir.to_path_buf();
        starting.push(tokio::task::spawn_blocking(move || {
            let refs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Server::start(&dir, 0, &refs)
        }));
    }
    let mut servers = Vec::new();
    for s in starting {
        servers.push(s.await.expect("instance starts"));
    }
    servers
}

/// Sends a JSON request with the admin key; `None` when no answer came (connection refused,
/// reset, timeout).
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut req = client.request(method, url).bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let text = resp.text().await.ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    call(client, reqwest::Method::POST, url, Some(body))
        .await
        .unwrap_or_else(|| panic!("no answer from POST {url}"))
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    call(client, reqwest::Method::GET, url, None)
        .await
        .unwrap_or_else(|| panic!("no answer from GET {url}"))
}

/// The instance id a server reports on `/health` (the `lease_owner` of its claims).
async fn instance_id(client: &reqwest::Client, server: &Server) -> String {
    let (s, h) = get(client, &format!("{}/health", server.base())).await;
    assert_eq!(s, 200, "{h}");
    h["instance"]
        .as_str()
        .unwrap_or_else(|| panic!("no instance in /health: {h}"))
        .to_string()
}

/// A tenant `uid`, the event type `a.b` and one endpoint per receiver, created through `base`.
async fn setup_tenant(
    client: &reqwest::Client,
    base: &str,
    uid: &str,
    receivers: &[Receiver],
) -> String {
    let (s, t) = post(
        client,
        &format!("{base}/api/v1/tenants"),
        json!({"uid": uid, "name": uid}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let tenant = t["id"].as_str().unwrap().to_string();
    let (s, b) = post(
        client,
        &format!("{base}/api/v1/event-types"),
        json!({"name": "a.b", "description": "test", "sample": {}}),
    )
    .await;
    assert!(s == 201 || s == 409, "{s} {b}");
    for r in receivers {
        let (s, ep) = post(
            client,
            &format!("{base}/api/v1/tenants/{tenant}/endpoints"),
            json!({"url": r.url(), "event_types": ["*"]}),
        )
        .await;
        assert_eq!(s, 201, "{ep}");
    }
    tenant
}

/// Publishes one event through `base`: `Some(event id)` when acknowledged (2xx).
async fn publish(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
    payload: Value,
) -> Result<String, String> {
    match call(
        client,
        reqwest::Method::POST,
        &format!("{base}/api/v1/tenants/{tenant}/events"),
        Some(json!({"type": "a.b", "payload": payload})),
    )
    .await
    {
        Some((s, b)) if (200..300).contains(&s) => Ok(b["id"].as_str().unwrap().to_string()),
        Some((s, b)) => Err(format!("{s} {b}")),
        None => Err("no answer".into()),
    }
}

/// Every `(webhook-id, receiver index)` received, with how many times.
fn received_by(receivers: &[Receiver]) -> HashMap<(String, usize), usize> {
    let mut seen = HashMap::new();
    for (i, r) in receivers.iter().enumerate() {
        for req in r.received() {
            let id = req.headers["webhook-id"].to_str().unwrap().to_string();
            *seen.entry((id, i)).or_insert(0) += 1;
        }
    }
    seen
}

fn count(url: &str, sql: &str) -> usize {
    postgres::query_strings(url, sql)[0].parse().unwrap()
}

/// `status: count` of every delivery row.
fn statuses(url: &str) -> BTreeMap<String, usize> {
    postgres::query_strings(
        url,
        "SELECT status || ':' || count(*)::text FROM deliveries GROUP BY status",
    )
    .into_iter()
    .map(|row| {
        let (s, n) = row.split_once(':').unwrap();
        (s.to_string(), n.parse().unwrap())
    })
    .collect()
}

/// Waits until every acknowledged event reached every receiver and no delivery is pending;
/// returns the events still missing somewhere (empty on success) and the pending count.
async fn wait_drained(
    url: &str,
    receivers: &[Receiver],
    acked: &HashSet<String>,
    timeout: Duration,
) -> (Vec<(String, usize)>, usize) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = received_by(receivers);
        let missing: Vec<(String, usize)> = acked
            .iter()
            .flat_map(|id| (0..receivers.len()).map(move |i| (id.clone(), i)))
            .filter(|k| !seen.contains_key(k))
            .collect();
        let pending = count(
            url,
            "SELECT count(*)::text FROM deliveries WHERE status = 'pending'",
        );
        if (missing.is_empty() && pending == 0) || Instant::now() > deadline {
            return (missing, pending);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn three_instances_share_the_work_and_a_killed_one_loses_nothing() {
    if skipped() {
        return;
    }
    // One database for the three instances: the schema of a directory none of them uses.
    let db_dir = tempfile::tempdir().unwrap();
    let url = postgres::database_url_for(db_dir.path()).unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let dir_paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let settings: &[(&str, &str)] = &[
        ("HOOKRELAY_DELIVERY_LEASE", "3s"),
        ("HOOKRELAY_DELIVERY_POLL_INTERVAL", "200ms"),
        ("HOOKRELAY_DELIVERY_RETRY_SCHEDULE", "200ms,500ms,1s,1s,1s"),
        ("HOOKRELAY_DELIVERY_RETRY_JITTER", "0"),
    ];
    let mut servers = start_instances(&url, &dir_paths, &[settings]).await;
    let client = client();
    let bases: Vec<String> = servers.iter().map(|s| s.base()).collect();
    let mut ids = Vec::new();
    for s in &servers {
        ids.push(instance_id(&client, s).await);
    }
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        3,
        "instance ids are not distinct: {ids:?}"
    );

    // Receivers answer a little late, so that work is in flight when an instance dies.
    let mut receivers = Vec::new();
    for _ in 0..4 {
        receivers.push(
            Receiver::start(vec![Answer::status(200).delay(Duration::from_millis(40))]).await,
        );
    }
    let tenant = setup_tenant(&client, &bases[0], "cluster", &receivers).await;

    // Who holds pending work, sampled until the kill.
    let owners_seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let killed_flag = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (url, owners_seen, killed_flag) =
            (url.clone(), owners_seen.clone(), killed_flag.clone());
        tokio::spawn(async move {
            while !killed_flag.load(Ordering::SeqCst) {
                let owners = postgres::query_strings(
                    &url,
                    "SELECT DISTINCT lease_owner FROM deliveries
                      WHERE status = 'pending' AND lease_owner IS NOT NULL",
                );
                owners_seen.lock().unwrap().extend(owners);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // 24 clients publish 100 events each, round-robin over the instances; a publish that
    // gets no 2xx is sent to the next instance (up to 3 tries). Only 2xx counts as acked.
    const CLIENTS: usize = 24;
    const PER_CLIENT: usize = 100;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed_tries = Arc::new(AtomicUsize::new(0));
    let per_instance: Arc<Vec<AtomicUsize>> =
        Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, acked, bases, tenant, failed_tries, per_instance) = (
            client.clone(),
            acked.clone(),
            bases.clone(),
            tenant.clone(),
            failed_tries.clone(),
            per_instance.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_CLIENT {
                for t in 0..3 {
                    let i = (c + n + t) % 3;
                    match publish(&client, &bases[i], &tenant, json!({"c": c, "n": n})).await {
                        Ok(id) => {
                            acked.lock().unwrap().push(id);
                            per_instance[i].fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(_) => {
                            failed_tries.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }

    // About a third acknowledged: SIGKILL instance 1.
    let total = CLIENTS * PER_CLIENT;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < total / 3 {
        assert!(
            Instant::now() < deadline,
            "only {} events acknowledged in 30 s",
            acked.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let acked_at_kill = acked.lock().unwrap().len();
    let received_at_kill: usize = receivers.iter().map(|r| r.count()).sum();
    servers[1].kill();
    let killed = ids[1].clone();
    let leased_to_killed = count(
        &url,
        &format!(
            "SELECT count(*)::text FROM deliveries
              WHERE status = 'pending' AND lease_owner = '{killed}'"
        ),
    );
    killed_flag.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let owners_before_kill = owners_seen.lock().unwrap().clone();

    for t in tasks {
        t.await.unwrap();
    }
    let publish_time = started.elapsed();
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let drain_started = Instant::now();
    let (missing, pending) = wait_drained(&url, &receivers, &acked, Duration::from_secs(40)).await;
    let drain_time = drain_started.elapsed();

    let seen = received_by(&receivers);
    let delivered: usize = seen.values().sum();
    let duplicates = delivered - seen.len();
    let statuses = statuses(&url);
    let events_stored = count(&url, "SELECT count(*)::text FROM events");
    let per_instance: Vec<usize> = per_instance
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .collect();
    eprintln!(
        "acked {} (at kill {acked_at_kill}, received at kill {received_at_kill}), \
         per instance {per_instance:?}, failed publish tries {}, events stored {events_stored}, \
         delivered {delivered}, unique (event, endpoint) {}, duplicates {duplicates}, \
         leased to the killed instance at kill {leased_to_killed}, owners seen before the kill {} \
         of 3, publishing took {publish_time:?}, drain {drain_time:?}, deliveries {statuses:?}, \
         missing {}, pending {pending}",
        acked.len(),
        failed_tries.load(Ordering::Relaxed),
        seen.len(),
        owners_before_kill.len(),
        missing.len(),
    );

    assert_eq!(acked.len(), total, "some publishes never got a 2xx");
    assert!(
        missing.is_empty(),
        "{} acknowledged (event, endpoint) pairs were never delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(pending, 0, "deliveries still pending after the drain");
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["succeeded"],
        "every delivery succeeded: {statuses:?}"
    );
    assert_eq!(
        statuses["succeeded"],
        events_stored * receivers.len(),
        "one delivery per event and endpoint"
    );
    assert!(
        duplicates <= leased_to_killed,
        "{duplicates} duplicate deliveries, but only {leased_to_killed} were leased to the \
         killed instance"
    );
    let known: HashSet<String> = ids.iter().cloned().collect();
    assert!(
        owners_before_kill.is_subset(&known),
        "unknown lease owners: {owners_before_kill:?} vs {ids:?}"
    );
    assert!(
        owners_before_kill.len() >= 2,
        "work was not shared before the kill: owners {owners_before_kill:?}"
    );
    // The survivors are fine.
    for i in [0, 2] {
        let (s, b) = get(&client, &format!("{}/ready", bases[i])).await;
        assert_eq!(s, 200, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_and_delivery_tiers_run_apart() {
    if skipped() {
        return;
    }
    // A private server: NOTIFY is per database, so other tests' announcements cannot wake
    // the workers here and make this pass without its own.
    let cluster = tokio::task::spawn_blocking(start_cluster).await.unwrap();
    let (api_dir, worker_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let servers = start_instances(
        &cluster.url,
        &[api_dir.path(), worker_dir.path()],
        &[
            &[("HOOKRELAY_DELIVERY_ENABLED", "false")],
            &[
                ("HOOKRELAY_API_ENABLED", "false"),
                // Only a wake-up can make delivery fast.
                ("HOOKRELAY_DELIVERY_POLL_INTERVAL", "30s"),
            ],
        ],
    )
    .await;
    let (api, worker) = (servers[0].base(), servers[1].base());
    let client = client();

    // The worker tier serves operations only.
    let (s, b) = get(&client, &format!("{worker}/api/v1/tenants")).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = get(&client, &format!("{worker}/health")).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["instance"].as_str().is_some(), "{b}");
    for base in [&api, &worker] {
        let (s, b) = get(&client, &format!("{base}/ready")).await;
        assert_eq!(s, 200, "{base}: {b}");
    }

    let receiver = Receiver::ok().await;
    let tenant = setup_tenant(&client, &api, "tiers", std::slice::from_ref(&receiver)).await;
    // Past the worker's first poll (at start), so only NOTIFY can wake it from now on.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut acked_at = HashMap::new();
    for n in 0..20 {
        let id = publish(&client, &api, &tenant, json!({"n": n}))
            .await
            .unwrap_or_else(|e| panic!("publish {n}: {e}"));
        acked_at.insert(id, Instant::now());
    }
    let got = receiver.wait_for(20, Duration::from_secs(5)).await;
    let mut latencies = Vec::new();
    for r in &got {
        let id = r.headers["webhook-id"].to_str().unwrap();
        let at = acked_at
            .get(id)
            .unwrap_or_else(|| panic!("unexpected webhook-id {id}"));
        latencies.push(r.at.saturating_duration_since(*at));
    }
    let unique: HashSet<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    let max = latencies.iter().max().unwrap();
    eprintln!(
        "tiers: {} received ({} unique) of 20, slowest ack→receipt {max:?}",
        got.len(),
        unique.len()
    );
    assert_eq!(unique.len(), 20);
    assert!(
        *max < Duration::from_secs(3),
        "an event waited {max:?}: the worker was not woken (poll interval 30 s)"
    );

    // The worker attempted them: their attempts are recorded; none was leased by the API.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = statuses(&cluster.url);
        if st.get("succeeded") == Some(&20) && st.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries not recorded: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(servers);
}

/// A private PostgreSQL server. `scripts/pg-cluster` picks a free port below the ephemeral
/// range; should another process take it before the server binds it, the start is tried
/// again on another port.
fn start_cluster() -> Cluster {
    for attempt in 1..=3 {
        match std::panic::catch_unwind(Cluster::start) {
            Ok(cluster) => return cluster,
            Err(panic) => {
                let why = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                eprintln!("PostgreSQL did not start (try {attempt}): {why}");
                // The failed start left its directory: `stop` removes it.
                if let Some(dir) = why.split('"').find(|part| part.contains("hookrelay-pg-")) {
                    let _ = std::process::Command::new(
                        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster"),
                    )
                    .args(["stop", dir])
                    .output();
                }
            }
        }
    }
    panic!("no private PostgreSQL server after 3 tries");
}

/// Starts the stopped server again. Its port may have been taken meanwhile by another
/// process, so this tries a few times, showing the server's log on each failure.
fn restart(cluster: &Cluster) {
    for attempt in 1..=10 {
        let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cluster.up()));
        if up.is_ok() {
            return;
        }
        eprintln!(
            "PostgreSQL did not start again (try {attempt}); its log ends with:\n{}",
            server_log_tail(cluster)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("PostgreSQL did not start again after 10 tries");
}

/// The end of the private server's log, found by its port among this process's clusters.
fn server_log_tail(cluster: &Cluster) -> String {
    let port = cluster
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let prefix = format!("hookrelay-pg-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return String::new();
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let options = std::fs::read_to_string(dir.join("options")).unwrap_or_default();
        if options.starts_with(&format!("-p {port} ")) {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            return lines[lines.len().saturating_sub(15)..].join("\n");
        }
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_is_survived() {
    if skipped() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(start_cluster).await.unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let settings: &[(&str, &str)] = &[
        ("HOOKRELAY_DELIVERY_LEASE", "3s"),
        ("HOOKRELAY_DELIVERY_POLL_INTERVAL", "200ms"),
        (
            "HOOKRELAY_DELIVERY_RETRY_SCHEDULE",
            "200ms,500ms,1s,1s,1s,1s,1s,1s",
        ),
        ("HOOKRELAY_DELIVERY_RETRY_JITTER", "0"),
    ];
    let servers =
        start_instances(&cluster.url, &[dirs[0].path(), dirs[1].path()], &[settings]).await;
    let bases: Vec<String> = servers.iter().map(|s| s.base()).collect();
    let client = client();
    // Slow answers: attempts are in flight when the database goes away.
    let receiver =
        Receiver::start(vec![Answer::status(200).delay(Duration::from_millis(300))]).await;
    let tenant = setup_tenant(
        &client,
        &bases[0],
        "restart",
        std::slice::from_ref(&receiver),
    )
    .await;

    let mut acked = HashSet::new();
    for n in 0..40 {
        let id = publish(&client, &bases[n % 2], &tenant, json!({"before": n}))
            .await
            .unwrap_or_else(|e| panic!("publish {n}: {e}"));
        acked.insert(id);
    }

    // Whatever is pending now may be attempted twice: an attempt in flight whose outcome
    // cannot be recorded is made again once its lease expires.
    let pending_at_down = count(
        &cluster.url,
        "SELECT count(*)::text FROM deliveries WHERE status = 'pending'",
    );
    tokio::task::block_in_place(|| cluster.down());
    let down_at = Instant::now();
    // Publishing is refused with 503 store_unavailable, within the pool's acquire timeout.
    for (i, base) in bases.iter().enumerate() {
        let t = Instant::now();
        let answer = call(
            &client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/tenants/{tenant}/events"),
            Some(json!({"type": "a.b", "payload": {"during": i}})),
        )
        .await;
        let took = t.elapsed();
        let (s, b) = answer.unwrap_or_else(|| panic!("instance {i}: no answer while down"));
        eprintln!("instance {i}: publish while down answered {s} in {took:?}: {b}");
        assert_eq!(s, 503, "instance {i}: {b}");
        assert_eq!(b["error"]["code"], "store_unavailable", "instance {i}: {b}");
        assert!(
            took < Duration::from_secs(10),
            "instance {i}: took {took:?}"
        );
        let (s, b) = get(&client, &format!("{base}/ready")).await;
        assert_eq!(s, 503, "instance {i}: {b}");
        let (s, b) = get(&client, &format!("{base}/health")).await;
        assert_eq!(
            s, 200,
            "instance {i}: liveness does not need the store: {b}"
        );
    }
    let down_for = down_at.elapsed();

    tokio::task::block_in_place(|| restart(&cluster));
    let up_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, base) in bases.iter().enumerate() {
        loop {
            let ready = call(
                &client,
                reqwest::Method::GET,
                &format!("{base}/ready"),
                None,
            )
            .await;
            if matches!(ready, Some((200, _))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "instance {i} not ready 20 s after the restart: {ready:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let ready_after = up_at.elapsed();

    for n in 0..40 {
        let id = publish(&client, &bases[n % 2], &tenant, json!({"after": n}))
            .await
            .unwrap_or_else(|e| panic!("publish {n} after the restart: {e}"));
        acked.insert(id);
    }

    let receivers = [receiver];
    let (missing, pending) =
        wait_drained(&cluster.url, &receivers, &acked, Duration::from_secs(40)).await;
    let seen = received_by(&receivers);
    let delivered: usize = seen.values().sum();
    let statuses = statuses(&cluster.url);
    let duplicates = delivered - seen.len();
    eprintln!(
        "restart: acked {}, delivered {delivered}, duplicates {duplicates}, pending at down \
         {pending_at_down}, missing {}, pending {pending}, down for {down_for:?}, ready \
         {ready_after:?} after the restart, deliveries {statuses:?}",
        acked.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged events never delivered",
        missing.len()
    );
    assert_eq!(pending, 0);
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["succeeded"],
        "{statuses:?}"
    );
    assert!(
        duplicates <= pending_at_down,
        "{duplicates} duplicates, but only {pending_at_down} deliveries were pending at the stop"
    );
    drop(servers);
}

const GH_SECRET: &str = "gh-cluster-secret";

fn github_signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GH_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Sends a signed GitHub push to `/in/{source}` on `base`: the status and the `outcome`.
async fn github_push(
    client: &reqwest::Client,
    base: &str,
    source: &str,
    delivery: &str,
    body: &str,
) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/in/{source}"))
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", github_signature(body))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer from {base}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_same_webhook_on_two_instances_is_accepted_once() {
    if skipped() {
        return;
    }
    let db_dir = tempfile::tempdir().unwrap();
    let url = postgres::database_url_for(db_dir.path()).unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let servers = start_instances(
        &url,
        &[dirs[0].path(), dirs[1].path()],
        &[&[("HOOKRELAY_DELIVERY_POLL_INTERVAL", "200ms")]],
    )
    .await;
    let bases: Vec<String> = servers.iter().map(|s| s.base()).collect();
    let client = client();
    let receiver = Receiver::ok().await;
    let (s, t) = post(
        &client,
        &format!("{}/api/v1/tenants", bases[0]),
        json!({"uid": "gh", "name": "gh"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let tenant = t["id"].as_str().unwrap().to_string();
    let (s, src) = post(
        &client,
        &format!("{}/api/v1/tenants/{tenant}/sources", bases[0]),
        json!({"name": "github", "provider": "github",
               "verification": {"secrets": [GH_SECRET]},
               "destinations": [{"type": "http", "url": receiver.url()}]}),
    )
    .await;
    assert_eq!(s, 201, "{src}");
    let source = src["id"].as_str().unwrap().to_string();

    // 50 pairs, all at once: each pair is the same signed request to both instances.
    const PAIRS: usize = 50;
    let mut pairs = Vec::new();
    for n in 0..PAIRS {
        let (client, bases, source) = (client.clone(), bases.clone(), source.clone());
        pairs.push(tokio::spawn(async move {
            let delivery = format!("cluster-delivery-{n}");
            let body = format!(r#"{{"ref":"refs/heads/main","n":{n}}}"#);
            let (a, b) = tokio::join!(
                github_push(&client, &bases[0], &source, &delivery, &body),
                github_push(&client, &bases[1], &source, &delivery, &body),
            );
            (n, a, b)
        }));
    }
    let mut wrong = Vec::new();
    for p in pairs {
        let (n, a, b) = p.await.unwrap();
        let mut outcomes = [
            a.1["outcome"].as_str().unwrap_or("?").to_string(),
            b.1["outcome"].as_str().unwrap_or("?").to_string(),
        ];
        outcomes.sort();
        if a.0 != 200 || b.0 != 200 || outcomes != ["accepted", "duplicate"] {
            wrong.push(format!("pair {n}: {} {} / {} {}", a.0, a.1, b.0, b.1));
        }
    }
    let logged = postgres::query_strings(
        &url,
        "SELECT outcome || ':' || count(*)::text FROM inbound_requests GROUP BY outcome
          ORDER BY outcome",
    );
    // Each accepted request is forwarded once (and nothing more comes a little later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.count() < PAIRS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.received();
    let got_after = got.len();
    let unique: HashSet<String> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
        .collect();
    eprintln!(
        "inbound pairs {PAIRS}: wrong {}, request log {logged:?}, forwarded {got_after} \
         ({} unique so far)",
        wrong.len(),
        unique.len()
    );
    assert!(
        wrong.is_empty(),
        "{} pairs not accepted exactly once:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        logged,
        [format!("accepted:{PAIRS}"), format!("duplicate:{PAIRS}")]
    );
    assert_eq!(got_after, PAIRS, "each accepted webhook is forwarded once");
    drop(servers);
}

#[tokio::test]
async fn a_cluster_job_is_held_by_one_instance_at_a_time() {
    use hookrelay::store::Store;
    use hookrelay::store::postgres::PgStore;
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = postgres::database_url_for(dir.path()).unwrap();
    let a = PgStore::connect(&url, 2).await.unwrap();
    let b = PgStore::connect(&url, 2).await.unwrap();
    let t0 = chrono::Utc::now();
    let secs = chrono::Duration::seconds;
    assert!(
        a.hold_job("retention", "inst_a", t0, t0 + secs(10))
            .await
            .unwrap()
    );
    assert!(
        !b.hold_job("retention", "inst_b", t0, t0 + secs(10))
            .await
            .unwrap()
    );
    // The holder renews; another job is independent.
    assert!(
        a.hold_job("retention", "inst_a", t0 + secs(5), t0 + secs(15))
            .await
            .unwrap()
    );
    assert!(
        b.hold_job("inbound_batches", "inst_b", t0, t0 + secs(10))
            .await
            .unwrap()
    );
    assert!(
        !b.hold_job("retention", "inst_b", t0 + secs(14), t0 + secs(24))
            .await
            .unwrap()
    );
    // Once the holder stops renewing and its lease runs out, the other takes over.
    assert!(
        b.hold_job("retention", "inst_b", t0 + secs(16), t0 + secs(26))
            .await
            .unwrap()
    );
    assert!(
        !a.hold_job("retention", "inst_a", t0 + secs(17), t0 + secs(27))
            .await
            .unwrap()
    );
}
