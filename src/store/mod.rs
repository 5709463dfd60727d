//! Durable state behind one trait, so that SQLite (embedded, the default) and PostgreSQL
//! (scale-out: many processes on one database) are interchangeable. Every method that takes a `tenant_id` filters
//! by it: the store never returns a row of another tenant to a tenant-scoped call.
//!
//! A write returns only after it is committed and synced: callers may answer 2xx on `Ok`.
//! The exceptions are the delivery engine's bookkeeping (`claim_due`, `record_attempts`,
//! `release_leases`), which a backend may commit without waiting for the disk: losing them
//! in a power cut repeats attempts, and never loses a delivery.

pub mod cached;
pub mod columns;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::source::{InboundOutcome, InboundRequestLog, Source, SourceActivity};
use crate::domain::{
    ApiKey, Attempt, AttemptErrorKind, Delivery, DeliveryStatus, Endpoint, Event, EventType,
    OperationalEvent, Page, PageRequest, Tenant, ids,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (a tenant uid, an event type name).
    #[error("{0} already exists")]
    Conflict(String),
    /// The store cannot take the request now (shutting down, disk full, ...).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Backend(Arc<dyn std::error::Error + Send + Sync>),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A delivery to create with its event; `lease` set means the creating instance will
/// attempt it itself (from memory) and other instances must not claim it before it expires.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum PublishOutcome {
    Created {
        event: Event,
        deliveries: Vec<Delivery>,
    },
    /// The idempotency key was used before: the first event, nothing created.
    Existing(Event),
}

/// What a worker needs to make an attempt, without another read.
#[derive(Debug, Clone)]
pub struct DeliveryTask {
    pub delivery_id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: Arc<str>,
    pub attempts_made: u32,
    pub due_at: DateTime<Utc>,
}

/// The outcome of one attempt and what it does to its delivery.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub tenant_id: String,
    pub attempt: Attempt,
    pub next: NextStep,
    /// Whether the attempt says something about the receiver (a disabled endpoint does not).
    pub counts_for_health: bool,
}

#[derive(Debug, Clone)]
pub enum NextStep {
    Succeeded,
    /// Try again at `at`; `lease` kept when this instance keeps it scheduled in memory.
    Retry {
        at: DateTime<Utc>,
        lease: Option<Lease>,
    },
    /// The schedule is spent (or the endpoint is gone): the dead-letter state.
    Failed,
    Cancelled,
}

/// An endpoint that `record_attempts` disabled because it kept failing.
#[derive(Debug, Clone)]
pub struct DisabledEndpoint {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub failing_since: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<String>,
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// What statistics read of an attempt (not its headers or body).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub started_at: DateTime<Utc>,
    pub succeeded: bool,
    pub duration_ms: u64,
    pub error_kind: Option<AttemptErrorKind>,
}

impl DeliveryCounts {
    pub fn of_mut(&mut self, status: DeliveryStatus) -> &mut u64 {
        match status {
            DeliveryStatus::Pending => &mut self.pending,
            DeliveryStatus::Succeeded => &mut self.succeeded,
            DeliveryStatus::Failed => &mut self.failed,
            DeliveryStatus::Cancelled => &mut self.cancelled,
        }
    }
}

/// The half-open span of creation times `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl TimeWindow {
    /// The id range `[first, end)` of the ids of kind `prefix` made within the window (ids
    /// are ULIDs, ordered by creation time).
    pub fn id_range(&self, prefix: &str) -> (String, String) {
        (
            ids::first_id_at(prefix, self.since),
            ids::first_id_at(prefix, self.until),
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub events: u64,
    pub inbound_requests: u64,
    pub operational_events: u64,
}

impl PurgeCounts {
    /// Whether some kind reached the batch limit, so that more may be left.
    pub fn full(&self, limit: usize) -> bool {
        let limit = limit as u64;
        self.events >= limit || self.inbound_requests >= limit || self.operational_events >= limit
    }
}

#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub pending: u64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub enum RetryOutcome {
    NotFound,
    /// Still pending: a retry would only duplicate it.
    InProgress,
    Scheduled(Delivery),
}

/// An inbound request to store with everything it produces, in one durable write.
#[derive(Debug, Clone)]
pub struct InboundAccept {
    /// The log row, with outcome `accepted` or `filtered`.
    pub request: InboundRequestLog,
    /// When set, a request is a duplicate when every one of its keys was recorded for the
    /// same source at or after `since`: then only its log row is written.
    pub dedup: Option<DedupCheck>,
    /// The events to create, each with its deliveries.
    pub events: Vec<(Event, Vec<NewDelivery>)>,
    /// Events (among `events`) to forward later in a batch, instead of a delivery.
    pub batch_items: Vec<NewBatchItem>,
}

/// An accepted event waiting for a batched HTTP destination.
#[derive(Debug, Clone)]
pub struct NewBatchItem {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    /// The type of the combined event (`{provider}.batch`).
    pub batch_type: String,
    pub max_events: u32,
    pub window_ms: u64,
    pub created_at: DateTime<Utc>,
}

/// An endpoint whose waiting batch items are due: at least `max_events` of them, or the
/// oldest at least `window_ms` old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBatch {
    pub tenant_id: String,
    pub endpoint_id: String,
}

/// One batch to send: the ids of what it becomes. The store takes the items (oldest first,
/// up to the oldest item's `max_events`), deletes them and creates the combined event and
/// its delivery, in one durable write.
#[derive(Debug, Clone)]
pub struct BatchFlush {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub delivery: NewDelivery,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DedupCheck {
    /// One key per event the request carries (a batch has several).
    pub keys: Vec<String>,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum InboundAccepted {
    Stored {
        request: InboundRequestLog,
        events: Vec<(Event, Vec<Delivery>)>,
    },
    /// Seen within the dedup window: logged as `duplicate` of `first_request_id`, nothing else.
    Duplicate {
        request: InboundRequestLog,
        first_request_id: String,
    },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> Result<()>;

    // Keys. Only hashes are stored.
    async fn admin_key_hash(&self) -> Result<Option<String>>;
    async fn set_admin_key_hash(&self, hash: String) -> Result<()>;
    async fn create_api_key(&self, key: ApiKey, hash: String) -> Result<()>;
    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>>;

    // Tenants.
    async fn create_tenant(&self, tenant: Tenant) -> Result<()>;
    /// By id or by uid.
    async fn get_tenant(&self, id_or_uid: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self, page: PageRequest<'_>) -> Result<Page<Tenant>>;
    async fn update_tenant(&self, tenant: Tenant) -> Result<()>;
    /// Removes the tenant and everything it owns.
    async fn delete_tenant(&self, id: &str) -> Result<bool>;

    // Event types (one catalogue for the installation).
    async fn create_event_type(&self, event_type: EventType) -> Result<()>;
    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>>;
    async fn list_event_types(
        &self,
        page: PageRequest<'_>,
        include_archived: bool,
    ) -> Result<Page<EventType>>;
    async fn update_event_type(&self, event_type: EventType) -> Result<()>;
    async fn delete_event_type(&self, name: &str) -> Result<bool>;

    // Endpoints.
    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<()>;
    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> Result<Option<Endpoint>>;
    async fn list_endpoints(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Endpoint>>;
    /// Every enabled endpoint of the tenant: the candidates of a fan-out.
    async fn enabled_endpoints(&self, tenant_id: &str) -> Result<Vec<Endpoint>>;
    /// The same, shared: a cache can hand out one list to every publish.
    async fn enabled_endpoints_shared(&self, tenant_id: &str) -> Result<Arc<Vec<Endpoint>>> {
        Ok(Arc::new(self.enabled_endpoints(tenant_id).await?))
    }
    /// The endpoint an attempt goes to. May be a little stale (a cache), but never after a
    /// write made through the same store; health counters are not to be read from it.
    async fn endpoint_for_delivery(&self, tenant_id: &str, id: &str) -> Result<Option<Endpoint>> {
        self.get_endpoint(tenant_id, id).await
    }
    /// Writes the user-editable fields and secrets; health counters are the store's own.
    async fn update_endpoint(&self, endpoint: Endpoint) -> Result<bool>;
    /// Removes the endpoint and cancels its pending deliveries.
    async fn delete_endpoint(&self, tenant_id: &str, id: &str) -> Result<bool>;

    // Events.
    async fn publish(&self, event: Event, deliveries: Vec<NewDelivery>) -> Result<PublishOutcome>;
    async fn get_event(&self, tenant_id: &str, id: &str) -> Result<Option<Event>>;
    async fn list_events(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Event>>;

    // Deliveries and attempts.
    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: DeliveryFilter,
        page: PageRequest<'_>,
    ) -> Result<Page<Delivery>>;
    async fn get_delivery(&self, tenant_id: &str, id: &str) -> Result<Option<Delivery>>;
    async fn list_attempts(&self, tenant_id: &str, delivery_id: &str) -> Result<Vec<Attempt>>;
    /// New deliveries of an existing event (resend, test).
    async fn add_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<Delivery>>;
    /// Makes a finished delivery pending again, due now.
    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<RetryOutcome>;
    /// Makes every failed delivery of the endpoint created since `since` pending again.
    async fn recover_failed(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<Vec<Delivery>>;

    // The delivery engine.
    /// Leases up to `limit` due, unleased pending deliveries to `lease.owner`.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Lease,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>>;
    /// The tasks of those deliveries that are still pending and leased to `owner`, as the
    /// store has them now: work another instance has taken over is not returned.
    async fn load_tasks(&self, owner: &str, delivery_ids: Vec<String>)
    -> Result<Vec<DeliveryTask>>;
    /// Records attempts and moves their deliveries on, in one transaction (shared, so that a
    /// caller retrying after a failure keeps them without copying); disables endpoints
    /// that have failed without a success since before `now - auto_disable_after`.
    async fn record_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        now: DateTime<Utc>,
        auto_disable_after: chrono::Duration,
    ) -> Result<Vec<DisabledEndpoint>>;
    /// Gives up leases: all of `owner`'s when `ids` is `None`.
    async fn release_leases(&self, owner: &str, ids: Option<Vec<String>>) -> Result<()>;
    /// Drops every lease: for a single-process store at start, when no other owner can exist.
    async fn release_all_leases(&self) -> Result<()>;
    async fn queue_stats(&self) -> Result<QueueStats>;
    /// Signalled when another process may have made deliveries due (PostgreSQL's
    /// LISTEN/NOTIFY), so that workers claim them without waiting for the next poll. `None`
    /// for a store that only this process writes.
    fn due_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
    /// Takes or renews the cluster-wide lease on periodic job `job` for `owner` until
    /// `until`; true when `owner` holds it, so a job runs once per cluster. A store that
    /// only this process opens always answers true.
    async fn hold_job(
        &self,
        _job: &str,
        _owner: &str,
        _now: DateTime<Utc>,
        _until: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(true)
    }

    /// Retention: deletes up to `limit` finished events created before `before` (with their
    /// deliveries and attempts; an event with a delivery still pending or waiting for a
    /// batch is kept), and up to `limit` inbound request-log rows and operational events
    /// from before it. Returns how many rows of each kind went, so a caller repeats while a
    /// kind reaches `limit`. May be relaxed: a purge lost in a crash is redone.
    async fn purge_before(&self, before: DateTime<Utc>, limit: usize) -> Result<PurgeCounts>;

    // Health and statistics.
    async fn recent_attempts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>>;
    /// The outcomes of an endpoint's last `limit` attempts, newest first.
    async fn recent_outcomes(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<AttemptOutcome>>;
    /// An endpoint's deliveries made within `window`, by status. Reads index entries only,
    /// as many as deliveries in the window.
    async fn delivery_counts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        window: TimeWindow,
    ) -> Result<DeliveryCounts>;
    async fn list_operational_events(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<OperationalEvent>>;

    // Inbound sources.
    /// Creates the source with the hidden endpoints of its HTTP destinations.
    async fn create_source(&self, source: Source, endpoints: Vec<Endpoint>) -> Result<()>;
    async fn get_source(&self, tenant_id: &str, id: &str) -> Result<Option<Source>>;
    /// By id alone: for the public receive URL, which names no tenant.
    async fn find_source(&self, id: &str) -> Result<Option<Source>>;
    async fn list_sources(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Source>>;
    /// Writes the source, creates `add` hidden endpoints and deletes `remove` ones
    /// (cancelling their pending deliveries), in one transaction.
    async fn update_source(
        &self,
        source: Source,
        add: Vec<Endpoint>,
        remove: Vec<String>,
    ) -> Result<bool>;
    /// Removes the source, its log, and its hidden endpoints (pending deliveries cancelled).
    async fn delete_source(&self, tenant_id: &str, id: &str) -> Result<bool>;
    /// Keeps an unauthenticated set-up token for an operator to confirm.
    async fn store_unconfirmed_token(
        &self,
        tenant_id: &str,
        source_id: &str,
        token: String,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Dedup check, log row, events and deliveries: one durable write.
    async fn accept_inbound(&self, accept: InboundAccept) -> Result<InboundAccepted>;
    /// Logs a request that stores nothing else (a rejection, a handshake); may be relaxed.
    async fn log_inbound(&self, request: InboundRequestLog) -> Result<()>;
    async fn list_inbound_requests(
        &self,
        tenant_id: &str,
        source_id: &str,
        outcome: Option<InboundOutcome>,
        page: PageRequest<'_>,
    ) -> Result<Page<InboundRequestLog>>;
    /// Pending deliveries to the source's hidden endpoints, and events waiting for a batch:
    /// its backlog.
    async fn source_backlog(&self, source_id: &str) -> Result<u64>;
    /// Endpoints whose waiting batch items are due at `now`.
    async fn due_inbound_batches(&self, now: DateTime<Utc>) -> Result<Vec<DueBatch>>;
    /// Turns an endpoint's due batch items into one event (a JSON array of their payloads,
    /// in acceptance order) and its delivery, deleting them: one durable write. `None` when
    /// nothing was due any more.
    async fn flush_inbound_batch(&self, flush: BatchFlush) -> Result<Option<(Event, Delivery)>>;
    async fn source_activity(
        &self,
        tenant_id: &str,
        source_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceActivity>;
}
