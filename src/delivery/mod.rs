//! The delivery engine: takes due deliveries, makes attempts under a concurrency cap, and
//! records the outcomes in batches.
//!
//! Work reaches it two ways. Deliveries created here (publish, retry, recover) are leased to
//! this instance at creation and handed over in memory, so the first attempt needs no store
//! read. Everything else — retries due later, work of a crashed instance, overflow — waits in
//! the store, and the poller claims it when due. A lease that is never completed simply
//! expires, so a crash loses no delivery (at-least-once).
//!
//! Tasks: `dispatch` (caps concurrency with a semaphore), `record` (batches outcomes into one
//! store write and schedules near retries), `poll` (claims due work from the store).

pub mod client;
pub mod rate_limit;
pub mod ssrf;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use self::client::HttpSender;
use self::rate_limit::RateLimiter;
use self::worker::{AttemptPolicy, deliver_once};
use crate::store::{AttemptRecord, DeliveryTask, Lease, NextStep, Store};

/// Tasks waiting for a worker in memory; beyond this they wait in the store instead.
const QUEUE: usize = 8192;
/// Most outcomes written in one store call.
const RECORD_BATCH: usize = 1024;
/// Most deliveries claimed by one poll.
const CLAIM_BATCH: usize = 512;

pub struct EngineSettings {
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub auto_disable_after: Duration,
    pub policy: AttemptPolicy,
    pub sender: HttpSender,
}

/// The handle the rest of the program uses to give the engine work.
#[derive(Clone)]
pub struct DeliveryQueue {
    inner: Option<Arc<QueueInner>>,
}

struct QueueInner {
    tx: mpsc::Sender<DeliveryTask>,
    owner: String,
    lease: Duration,
    store: Arc<dyn Store>,
}

impl DeliveryQueue {
    /// A queue for an instance that runs no workers: everything waits in the store.
    pub fn disabled() -> DeliveryQueue {
        DeliveryQueue { inner: None }
    }

    /// The lease new deliveries get when this instance will attempt them itself.
    pub fn lease(&self, now: DateTime<Utc>) -> Option<Lease> {
        let inner = self.inner.as_ref()?;
        Some(Lease {
            owner: inner.owner.clone(),
            until: now + chrono::Duration::from_std(inner.lease).unwrap_or_default(),
        })
    }

    /// The instance id that leases carry.
    pub fn owner(&self) -> Option<&str> {
        self.inner.as_ref().map(|i| i.owner.as_str())
    }

    /// Hands leased tasks to the workers; those that do not fit are released to the store.
    pub fn enqueue(&self, tasks: Vec<DeliveryTask>) {
        let Some(inner) = &self.inner else { return };
        let mut overflow = Vec::new();
        for task in tasks {
            if let Err(e) = inner.tx.try_send(task) {
                let task = match e {
                    mpsc::error::TrySendError::Full(t) | mpsc::error::TrySendError::Closed(t) => t,
                };
                overflow.push(task.delivery_id);
            }
        }
        if !overflow.is_empty() {
            let inner = inner.clone();
            tokio::spawn(async move {
                if let Err(e) = inner
                    .store
                    .release_leases(&inner.owner, Some(overflow))
                    .await
                {
                    // The leases expire on their own; the deliveries are only late.
                    tracing::warn!(error = %e, "could not release overflowed deliveries");
                }
            });
        }
    }
}

/// Starts the engine; it stops when `shutdown` is cancelled, after finishing in-flight
/// attempts (or giving up on them after `grace`) and releasing its leases.
pub fn start(
    store: Arc<dyn Store>,
    settings: EngineSettings,
    shutdown: CancellationToken,
    grace: Duration,
) -> (DeliveryQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let owner = settings.policy.owner.clone();
    let queue = DeliveryQueue {
        inner: Some(Arc::new(QueueInner {
            tx: tx.clone(),
            owner: owner.clone(),
            lease: settings.policy.lease,
            store: store.clone(),
        })),
    };
    let engine = Engine {
        store,
        sender: settings.sender,
        policy: Arc::new(settings.policy),
        limiter: Arc::new(RateLimiter::default()),
        permits: Arc::new(Semaphore::new(settings.concurrency)),
        concurrency: settings.concurrency,
        auto_disable_after: chrono::Duration::from_std(settings.auto_disable_after)
            .unwrap_or(chrono::Duration::MAX),
        tx,
    };
    let handle = tokio::spawn(engine.run(rx, settings.poll_interval, shutdown, grace));
    (queue, handle)
}

struct Engine {
    store: Arc<dyn Store>,
    sender: HttpSender,
    policy: Arc<AttemptPolicy>,
    limiter: Arc<RateLimiter>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    auto_disable_after: chrono::Duration,
    tx: mpsc::Sender<DeliveryTask>,
}

struct Outcome {
    task: DeliveryTask,
    record: AttemptRecord,
}

impl Engine {
    async fn run(
        self,
        rx: mpsc::Receiver<DeliveryTask>,
        poll_interval: Duration,
        shutdown: CancellationToken,
        grace: Duration,
    ) {
        let (results_tx, results_rx) = mpsc::channel::<Outcome>(QUEUE);
        let stop_timers = CancellationToken::new();
        let recorder = tokio::spawn(record(
            self.store.clone(),
            results_rx,
            self.tx.clone(),
            self.auto_disable_after,
            stop_timers.clone(),
        ));
        let poller = tokio::spawn(poll(
            self.store.clone(),
            self.tx.clone(),
            self.policy.owner.clone(),
            self.policy.lease,
            poll_interval,
            shutdown.clone(),
        ));
        self.dispatch(rx, results_tx, &shutdown, &stop_timers).await;
        poller.abort();

        // In-flight attempts finish (or the grace runs out); then the recorder drains.
        let drained =
            tokio::time::timeout(grace, self.permits.acquire_many(self.concurrency as u32)).await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown grace over with attempts still in flight; their leases are released"
            );
        }
        stop_timers.cancel();
        let _ = tokio::time::timeout(grace, recorder).await;
        if let Err(e) = self.store.release_leases(&self.policy.owner, None).await {
            tracing::warn!(error = %e, "could not release leases at shutdown; they will expire");
        }
    }

    async fn dispatch(
        &self,
        mut rx: mpsc::Receiver<DeliveryTask>,
        results: mpsc::Sender<Outcome>,
        shutdown: &CancellationToken,
        stop_timers: &CancellationToken,
    ) {
        loop {
            let task = tokio::select! {
                _ = shutdown.cancelled() => return,
                task = rx.recv() => match task { Some(t) => t, None => return },
            };
            let wait = (task.due_at - Utc::now()).to_std().unwrap_or_default();
            if wait > Duration::from_millis(2) {
                schedule(self.tx.clone(), task, wait, stop_timers.clone());
                continue;
            }
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = self.permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let store = self.store.clone();
            let sender = self.sender.clone();
            let policy = self.policy.clone();
            let limiter = self.limiter.clone();
            let permits = self.permits.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let mut permit = permit;
                // A retry timed in memory may have been overtaken (endpoint disabled, delivery
                // dead-lettered or retried by hand): attempt it only if still pending, as stored.
                let task = if task.attempts_made > 0 {
                    match store
                        .load_tasks(&policy.owner, vec![task.delivery_id.clone()])
                        .await
                    {
                        Ok(mut fresh) if !fresh.is_empty() => fresh.swap_remove(0),
                        Ok(_) => return,
                        Err(e) => {
                            tracing::error!(error = %e, delivery = %task.delivery_id, "cannot reload delivery");
                            return;
                        }
                    }
                } else {
                    task
                };
                let endpoint = match store
                    .endpoint_for_delivery(&task.tenant_id, &task.endpoint_id)
                    .await
                {
                    Ok(e) => e,
                    Err(e) => {
                        // Leave the delivery leased: it is retried when the lease expires.
                        tracing::error!(error = %e, delivery = %task.delivery_id, "cannot load endpoint");
                        return;
                    }
                };
                if let Some(rate) = endpoint.as_ref().and_then(|e| e.rate_limit_per_s) {
                    let wait =
                        limiter.reserve(&task.endpoint_id, rate, tokio::time::Instant::now());
                    if !wait.is_zero() {
                        // Wait without holding a worker slot.
                        drop(permit);
                        tokio::time::sleep(wait).await;
                        permit = permits.acquire_owned().await.expect("semaphore open");
                    }
                }
                let record = deliver_once(&task, endpoint.as_ref(), &sender, &policy).await;
                let _ = results.send(Outcome { task, record }).await;
                drop(permit);
            });
        }
    }
}

/// Puts `task` back on the queue after `wait`, unless the engine stops first.
fn schedule(
    tx: mpsc::Sender<DeliveryTask>,
    task: DeliveryTask,
    wait: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(wait) => { let _ = tx.send(task).await; }
        }
    });
}

async fn record(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Outcome>,
    tx: mpsc::Sender<DeliveryTask>,
    auto_disable_after: chrono::Duration,
    stop_timers: CancellationToken,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let (tasks, records): (Vec<DeliveryTask>, Vec<AttemptRecord>) =
            batch.drain(..).map(|o| (o.task, o.record)).unzip();
        let records: Arc<[AttemptRecord]> = records.into();
        let mut backoff = Duration::from_millis(50);
        let disabled = loop {
            match store
                .record_attempts(records.clone(), Utc::now(), auto_disable_after)
                .await
            {
                Ok(d) => break d,
                Err(e) => {
                    // Outcomes are kept until the store takes them: losing them would only
                    // cause duplicate attempts, but there is no reason to.
                    tracing::error!(error = %e, outcomes = records.len(), "cannot record attempts; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        for endpoint in disabled {
            tracing::warn!(
                tenant = %endpoint.tenant_id,
                endpoint = %endpoint.endpoint_id,
                failing_since = %endpoint.failing_since,
                "endpoint disabled automatically after failing continuously"
            );
            metrics::counter!("hookrelay_endpoints_disabled_total").increment(1);
        }
        for (mut task, record) in tasks.into_iter().zip(records.iter()) {
            match &record.next {
                NextStep::Succeeded => {
                    metrics::counter!("webhook_deliveries_total", "status" => "succeeded")
                        .increment(1)
                }
                NextStep::Failed => {
                    metrics::counter!("webhook_deliveries_total", "status" => "failed").increment(1)
                }
                NextStep::Cancelled => {
                    metrics::counter!("webhook_deliveries_total", "status" => "cancelled")
                        .increment(1)
                }
                NextStep::Retry { at, lease } => {
                    metrics::counter!("webhook_retries_total").increment(1);
                    if lease.is_some() {
                        task.attempts_made = record.attempt.attempt;
                        task.due_at = *at;
                        let wait = (*at - Utc::now()).to_std().unwrap_or_default();
                        schedule(tx.clone(), task, wait, stop_timers.clone());
                    }
                }
            }
        }
    }
}

async fn announced(due: Option<&tokio::sync::Notify>) {
    match due {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

async fn poll(
    store: Arc<dyn Store>,
    tx: mpsc::Sender<DeliveryTask>,
    owner: String,
    lease: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A shared store announces work that other instances created: claim it at once.
    let due = store.due_signal();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            _ = announced(due.as_deref()) => {}
        }
        loop {
            let now = Utc::now();
            let lease = Lease {
                owner: owner.clone(),
                until: now + chrono::Duration::from_std(lease).unwrap_or_default(),
            };
            let claimed = match store.claim_due(now, lease, CLAIM_BATCH).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due deliveries failed");
                    break;
                }
            };
            let full = claimed.len() == CLAIM_BATCH;
            for task in claimed {
                if tx.send(task).await.is_err() {
                    return;
                }
            }
            if !full {
                break;
            }
        }
    }
}
