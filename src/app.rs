//! Wiring: builds the store, the delivery engine, the service and the HTTP server from
//! `Settings`, and runs them until shutdown. `build` binds the port (port 0 in tests), so a
//! caller knows the address before `run`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::delivery::client::HttpSender;
use crate::delivery::ssrf::AddressPolicy;
use crate::delivery::worker::AttemptPolicy;
use crate::delivery::{self, DeliveryQueue, EngineSettings};
use crate::domain::ids;
use crate::domain::retry::RetrySchedule;
use crate::service::{self, Policy, Service};
use crate::store::Store;
use crate::store::cached::CachedStore;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::telemetry;

/// How long a cached tenant, key, event type or endpoint may be served without a re-read.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// How long shutdown waits for in-flight attempts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    store: Arc<dyn Store>,
    engine: Option<tokio::task::JoinHandle<()>>,
    /// Sends due batches of batched inbound destinations; stops with the engine.
    flusher: tokio::task::JoinHandle<()>,
    /// Deletes history past `retention.max_age`; stops with the engine.
    retention: Option<tokio::task::JoinHandle<()>>,
    stop_engine: CancellationToken,
    workers_running: Arc<AtomicBool>,
    /// Held while running on the embedded store: one process per data directory.
    _lock: Option<std::fs::File>,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let (store, lock) = open_store(&settings).await?;
        let instance = ids::new_id("inst");
        let admin_key_hash = admin_key_hash(&*store, settings.admin_key.as_deref()).await?;

        let addresses = AddressPolicy::new(settings.allow_nets.clone());
        let stop_engine = CancellationToken::new();
        let workers_running = Arc::new(AtomicBool::new(false));
        let (queue, engine) = if settings.delivery_enabled {
            let policy = AttemptPolicy {
                schedule: RetrySchedule::new(
                    settings.retry_schedule.clone(),
                    settings.retry_jitter,
                ),
                jitter: settings.retry_jitter,
                retry_after_max: settings.retry_after_max,
                default_timeout: settings.default_timeout,
                max_response_body: settings.max_response_body_bytes,
                https_only: settings.https_only,
                lease: settings.lease,
                owner: instance.clone(),
            };
            let engine_settings = EngineSettings {
                concurrency: settings.concurrency,
                poll_interval: settings.poll_interval,
                auto_disable_after: settings.auto_disable_after,
                sender: HttpSender::new(addresses.clone(), settings.concurrency.min(1024)),
                policy,
            };
            let (queue, handle) = delivery::start(
                store.clone(),
                engine_settings,
                stop_engine.clone(),
                SHUTDOWN_GRACE,
            );
            workers_running.store(true, Ordering::Relaxed);
            (queue, Some(handle))
        } else {
            // Without workers here, readiness does not depend on them.
            workers_running.store(true, Ordering::Relaxed);
            (DeliveryQueue::disabled(), None)
        };

        let service = Service::new(
            store.clone(),
            queue,
            Policy {
                https_only: settings.https_only,
                addresses,
                rotation_grace: settings.rotation_grace,
                failing_after_failures: settings.failing_after_failures,
                default_timeout: settings.default_timeout,
                inbound: service::InboundPolicy {
                    public_url: settings.public_url.clone(),
                    max_pending_per_source: settings.inbound_max_pending,
                    max_pending_total: settings.inbound_max_pending_total,
                    retry_after: settings.inbound_retry_after,
                    max_logged_body: settings.inbound_max_logged_body,
                    clock_offset: settings.inbound_clock_offset,
                },
            },
            admin_key_hash,
        );
        let flusher = spawn_batch_flusher(
            service.clone(),
            store.clone(),
            instance.clone(),
            stop_engine.clone(),
        );
        let retention = settings.retention_max_age.map(|max_age| {
            spawn_retention(
                store.clone(),
                instance.clone(),
                max_age,
                settings.retention_interval,
                stop_engine.clone(),
            )
        });
        let state = AppState {
            service,
            metrics: telemetry::metrics_handle(),
            workers_running: workers_running.clone(),
            instance: Arc::from(instance.as_str()),
            max_body_bytes: settings.max_body_bytes,
        };
        let router = api::router(state, settings.max_body_bytes, settings.api_enabled);
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(App {
            listener,
            router,
            store,
            engine,
            flusher,
            retention,
            stop_engine,
            workers_running,
            _lock: lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves; then stops taking requests, lets in-flight requests
    /// and attempts finish (releasing what does not), and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "hookrelay listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed")?;
        tracing::info!("HTTP server stopped; stopping delivery workers");
        self.stop_engine.cancel();
        self.workers_running.store(false, Ordering::Relaxed);
        let _ = self.flusher.await;
        if let Some(retention) = self.retention {
            let _ = retention.await;
        }
        if let Some(engine) = self.engine {
            let _ = engine.await;
        }
        drop(self.store);
        tracing::info!("hookrelay stopped");
        Ok(())
    }
}

/// Opens the configured store: PostgreSQL when a database URL is set (shared with other
/// instances), else the embedded SQLite store in the data directory (this process only).
async fn open_store(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Store>, Option<std::fs::File>)> {
    if let Some(url) = &settings.database_url {
        let store = PgStore::connect(url, settings.database_pool_size)
            .await
            .context("connecting to PostgreSQL")?;
        return Ok((Arc::new(CachedStore::new(store, CACHE_TTL)), None));
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    // One process per embedded store: a second one would deliver everything twice.
    let lock = std::fs::File::create(settings.data_dir.join("hookrelay.lock"))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another hookrelay process is using {}; run one process per data directory (or use PostgreSQL)",
            settings.data_dir.display()
        )
    })?;
    let store: Arc<dyn Store> = Arc::new(CachedStore::new(
        SqliteStore::open(&settings.data_dir)?,
        CACHE_TTL,
    ));
    // Nobody else can hold a lease on a store only this process opens.
    store.release_all_leases().await?;
    Ok((store, Some(lock)))
}

/// How often the batch flusher looks for due batches.
const BATCH_FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// How long the flusher's cluster-wide lease lasts; it is renewed every fifth of that.
const FLUSHER_LEASE: Duration = Duration::from_secs(10);

/// Every `BATCH_FLUSH_INTERVAL`, sends the batches that are due, until `stop`, on one
/// instance of the cluster at a time (the holder of the `inbound_batches` job). Items it
/// does not reach stay in the store and are sent after a restart or by the next holder.
fn spawn_batch_flusher(
    service: Service,
    store: Arc<dyn Store>,
    instance: String,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BATCH_FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut job = ClusterJob::new("inbound_batches", instance, FLUSHER_LEASE);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !job.held(&*store).await {
                continue;
            }
            if let Err(e) = service.flush_batches(chrono::Utc::now()).await {
                tracing::warn!(error = %e, "could not send inbound batches");
            }
        }
    })
}

/// Rows deleted per retention transaction: short enough not to hold up other writes.
const RETENTION_BATCH: usize = 1000;
/// Most batches per run; what is left waits for the next run.
const RETENTION_MAX_BATCHES: usize = 100;

/// Every `interval`, deletes history older than `max_age` on one instance of the cluster
/// (the holder of the `retention` job), in small batches until `stop`.
fn spawn_retention(
    store: Arc<dyn Store>,
    instance: String,
    max_age: Duration,
    interval: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Held across runs while this instance lives, so the job runs once per interval.
        let mut job = ClusterJob::new("retention", instance, interval * 3);
        let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !job.held(&*store).await {
                continue;
            }
            let Some(before) = chrono::Utc::now().checked_sub_signed(max_age) else {
                continue;
            };
            for _ in 0..RETENTION_MAX_BATCHES {
                if stop.is_cancelled() {
                    break;
                }
                match store.purge_before(before, RETENTION_BATCH).await {
                    Ok(purged) => {
                        let total =
                            purged.events + purged.inbound_requests + purged.operational_events;
                        metrics::counter!("hookrelay_retention_purged_total").increment(total);
                        if total > 0 {
                            tracing::debug!(?purged, "retention purged old history");
                        }
                        if !purged.full(RETENTION_BATCH) {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "retention could not purge old history");
                        break;
                    }
                }
            }
        }
    })
}

/// A periodic job that runs on one instance of the cluster at a time: its holder renews a
/// lease in the store; when the holder dies, another instance takes over once it expires.
struct ClusterJob {
    name: &'static str,
    instance: String,
    lease: Duration,
    /// Until when this instance may act without asking the store again.
    held_until: Option<tokio::time::Instant>,
    next_check: tokio::time::Instant,
}

impl ClusterJob {
    fn new(name: &'static str, instance: String, lease: Duration) -> ClusterJob {
        ClusterJob {
            name,
            instance,
            lease,
            held_until: None,
            next_check: tokio::time::Instant::now(),
        }
    }

    async fn held(&mut self, store: &dyn Store) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.next_check {
            self.next_check = now + self.lease / 5;
            let wall = chrono::Utc::now();
            let until = wall + chrono::Duration::from_std(self.lease).unwrap_or_default();
            self.held_until = match store.hold_job(self.name, &self.instance, wall, until).await {
                // Act a little less long than the lease: clocks of instances differ.
                Ok(true) => Some(now + self.lease / 2),
                Ok(false) => None,
                Err(e) => {
                    tracing::warn!(error = %e, job = self.name, "cannot renew a cluster job lease");
                    self.held_until
                }
            };
        }
        self.held_until.is_some_and(|until| now < until)
    }
}

/// The admin key's hash: from the configured key, else the stored one, else a new key that
/// is printed once and stored only as its hash.
async fn admin_key_hash(store: &dyn Store, configured: Option<&str>) -> anyhow::Result<String> {
    if let Some(key) = configured {
        return Ok(service::hash_key(key));
    }
    if let Some(hash) = store.admin_key_hash().await? {
        return Ok(hash);
    }
    let key = service::generate_key();
    store.set_admin_key_hash(service::hash_key(&key)).await?;
    println!(
        "hookrelay: no admin key was configured, so one was generated. It is shown this once \
         and stored only as a hash:\n\n    {key}\n\nUse it as `Authorization: Bearer {key}`, \
         or set HOOKRELAY_ADMIN_KEY to choose your own."
    );
    Ok(service::hash_key(&key))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
