//! A read-through cache in front of any `Store`, for the lookups every publish and every
//! attempt makes: API keys, tenants, event types, a tenant's enabled endpoints, and the
//! endpoint an attempt is for.
//!
//! Writes that go through this decorator invalidate what they touch, so one process always
//! reads its own writes. Entries also expire after `ttl`, which bounds how long a change made
//! by another instance (on a shared database) can go unseen. Endpoint health counters are
//! not served from here: the API reads endpoints straight from the store.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::domain::{ApiKey, Delivery, Endpoint, Event, EventType, Page, PageRequest, Tenant};

/// Entries per map before it is cleared wholesale (a crude but bounded policy).
const MAX_ENTRIES: usize = 50_000;

struct Map<K, V> {
    entries: RwLock<HashMap<K, (Instant, V)>>,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn new(ttl: Duration) -> Self {
        Map {
            entries: RwLock::new(HashMap::new()),
            ttl,
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.read().expect("cache lock");
        let (at, v) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.write().expect("cache lock");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.write().expect("cache lock").remove(key);
    }

    fn clear(&self) {
        self.entries.write().expect("cache lock").clear();
    }
}

pub struct CachedStore<S> {
    inner: S,
    api_keys: Map<String, Option<ApiKey>>,
    tenants: Map<String, Tenant>,
    event_types: Map<String, EventType>,
    enabled_endpoints: Map<String, Arc<Vec<Endpoint>>>,
    /// (tenant id, endpoint id) → the endpoint, or `None` when it does not exist.
    endpoints: Map<(String, String), Option<Endpoint>>,
    /// Source id → the source, for the receive path (which names no tenant).
    sources: Map<String, Option<Source>>,
}

impl<S: Store> CachedStore<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        CachedStore {
            inner,
            api_keys: Map::new(ttl),
            tenants: Map::new(ttl),
            event_types: Map::new(ttl),
            enabled_endpoints: Map::new(ttl),
            endpoints: Map::new(ttl),
            sources: Map::new(ttl),
        }
    }

    /// A source changed: its cached copy and every endpoint entry (its hidden ones) go.
    fn forget_source(&self, id: &str) {
        self.sources.remove(id);
        self.endpoints.clear();
    }

    fn forget_endpoint(&self, tenant_id: &str, id: &str) {
        self.enabled_endpoints.remove(tenant_id);
        self.endpoints
            .remove(&(tenant_id.to_string(), id.to_string()));
    }
}

#[async_trait]
impl<S: Store> Store for CachedStore<S> {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn admin_key_hash(&self) -> Result<Option<String>> {
        self.inner.admin_key_hash().await
    }

    async fn set_admin_key_hash(&self, hash: String) -> Result<()> {
        self.inner.set_admin_key_hash(hash).await
    }

    async fn create_api_key(&self, key: ApiKey, hash: String) -> Result<()> {
        self.api_keys.remove(&hash);
        self.inner.create_api_key(key, hash).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        if let Some(k) = self.api_keys.get(hash) {
            return Ok(k);
        }
        let found = self.inner.find_api_key(hash).await?;
        self.api_keys.put(hash.to_string(), found.clone());
        Ok(found)
    }

    async fn create_tenant(&self, tenant: Tenant) -> Result<()> {
        self.tenants.clear();
        self.inner.create_tenant(tenant).await
    }

    async fn get_tenant(&self, id_or_uid: &str) -> Result<Option<Tenant>> {
        if let Some(t) = self.tenants.get(id_or_uid) {
            return Ok(Some(t));
        }
        let found = self.inner.get_tenant(id_or_uid).await?;
        if let Some(t) = &found {
            self.tenants.put(id_or_uid.to_string(), t.clone());
        }
        Ok(found)
    }

    async fn list_tenants(&self, page: PageRequest<'_>) -> Result<Page<Tenant>> {
        self.inner.list_tenants(page).await
    }

    async fn update_tenant(&self, tenant: Tenant) -> Result<()> {
        let r = self.inner.update_tenant(tenant).await;
        self.tenants.clear();
        r
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool> {
        let r = self.inner.delete_tenant(id).await;
        // Its keys, endpoints and the tenant itself are gone.
        self.tenants.clear();
        self.api_keys.clear();
        self.enabled_endpoints.clear();
        self.endpoints.clear();
        self.sources.clear();
        r
    }

    async fn create_event_type(&self, event_type: EventType) -> Result<()> {
        self.event_types.remove(&event_type.name);
        self.inner.create_event_type(event_type).await
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>> {
        if let Some(et) = self.event_types.get(name) {
            return Ok(Some(et));
        }
        let found = self.inner.get_event_type(name).await?;
        if let Some(et) = &found {
            self.event_types.put(name.to_string(), et.clone());
        }
        Ok(found)
    }

    async fn list_event_types(
        &self,
        page: PageRequest<'_>,
        include_archived: bool,
    ) -> Result<Page<EventType>> {
        self.inner.list_event_types(page, include_archived).await
    }

    async fn update_event_type(&self, event_type: EventType) -> Result<()> {
        let name = event_type.name.clone();
        let r = self.inner.update_event_type(event_type).await;
        self.event_types.remove(&name);
        r
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool> {
        let r = self.inner.delete_event_type(name).await;
        self.event_types.remove(name);
        r
    }

    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<()> {
        let (tenant, id) = (endpoint.tenant_id.clone(), endpoint.id.clone());
        let r = self.inner.create_endpoint(endpoint).await;
        self.forget_endpoint(&tenant, &id);
        r
    }

    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> Result<Option<Endpoint>> {
        self.inner.get_endpoint(tenant_id, id).await
    }

    async fn endpoint_for_delivery(&self, tenant_id: &str, id: &str) -> Result<Option<Endpoint>> {
        let key = (tenant_id.to_string(), id.to_string());
        if let Some(e) = self.endpoints.get(&key) {
            return Ok(e);
        }
        let found = self.inner.get_endpoint(tenant_id, id).await?;
        self.endpoints.put(key, found.clone());
        Ok(found)
    }

    async fn list_endpoints(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Endpoint>> {
        self.inner.list_endpoints(tenant_id, page).await
    }

    async fn enabled_endpoints(&self, tenant_id: &str) -> Result<Vec<Endpoint>> {
        Ok(self.enabled_endpoints_shared(tenant_id).await?.to_vec())
    }

    async fn enabled_endpoints_shared(&self, tenant_id: &str) -> Result<Arc<Vec<Endpoint>>> {
        if let Some(list) = self.enabled_endpoints.get(tenant_id) {
            return Ok(list);
        }
        let list = Arc::new(self.inner.enabled_endpoints(tenant_id).await?);
        self.enabled_endpoints
            .put(tenant_id.to_string(), list.clone());
        Ok(list)
    }

    async fn update_endpoint(&self, endpoint: Endpoint) -> Result<bool> {
        let (tenant, id) = (endpoint.tenant_id.clone(), endpoint.id.clone());
        let r = self.inner.update_endpoint(endpoint).await;
        self.forget_endpoint(&tenant, &id);
        r
    }

    async fn delete_endpoint(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let r = self.inner.delete_endpoint(tenant_id, id).await;
        self.forget_endpoint(tenant_id, id);
        r
    }

    async fn publish(&self, event: Event, deliveries: Vec<NewDelivery>) -> Result<PublishOutcome> {
        self.inner.publish(event, deliveries).await
    }

    async fn get_event(&self, tenant_id: &str, id: &str) -> Result<Option<Event>> {
        self.inner.get_event(tenant_id, id).await
    }

    async fn list_events(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Event>> {
        self.inner.list_events(tenant_id, page).await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: DeliveryFilter,
        page: PageRequest<'_>,
    ) -> Result<Page<Delivery>> {
        self.inner.list_deliveries(tenant_id, filter, page).await
    }

    async fn get_delivery(&self, tenant_id: &str, id: &str) -> Result<Option<Delivery>> {
        self.inner.get_delivery(tenant_id, id).await
    }

    async fn list_attempts(&self, tenant_id: &str, delivery_id: &str) -> Result<Vec<Attempt>> {
        self.inner.list_attempts(tenant_id, delivery_id).await
    }

    async fn add_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .add_deliveries(tenant_id, event_id, deliveries)
            .await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<RetryOutcome> {
        self.inner.retry_delivery(tenant_id, id, now, lease).await
    }

    async fn recover_failed(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .recover_failed(tenant_id, endpoint_id, since, now, lease)
            .await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Lease,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>> {
        self.inner.claim_due(now, lease, limit).await
    }

    async fn load_tasks(
        &self,
        owner: &str,
        delivery_ids: Vec<String>,
    ) -> Result<Vec<DeliveryTask>> {
        self.inner.load_tasks(owner, delivery_ids).await
    }

    async fn purge_before(&self, before: DateTime<Utc>, limit: usize) -> Result<PurgeCounts> {
        self.inner.purge_before(before, limit).await
    }

    fn due_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.due_signal()
    }

    async fn hold_job(
        &self,
        job: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.inner.hold_job(job, owner, now, until).await
    }

    async fn record_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        now: DateTime<Utc>,
        auto_disable_after: chrono::Duration,
    ) -> Result<Vec<DisabledEndpoint>> {
        let disabled = self
            .inner
            .record_attempts(records, now, auto_disable_after)
            .await?;
        for d in &disabled {
            self.forget_endpoint(&d.tenant_id, &d.endpoint_id);
        }
        Ok(disabled)
    }

    async fn release_leases(&self, owner: &str, ids: Option<Vec<String>>) -> Result<()> {
        self.inner.release_leases(owner, ids).await
    }

    async fn release_all_leases(&self) -> Result<()> {
        self.inner.release_all_leases().await
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        self.inner.queue_stats().await
    }

    async fn recent_attempts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>> {
        self.inner
            .recent_attempts(tenant_id, endpoint_id, limit)
            .await
    }

    async fn recent_outcomes(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<AttemptOutcome>> {
        self.inner
            .recent_outcomes(tenant_id, endpoint_id, limit)
            .await
    }

    async fn delivery_counts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        window: TimeWindow,
    ) -> Result<DeliveryCounts> {
        self.inner
            .delivery_counts(tenant_id, endpoint_id, window)
            .await
    }

    async fn list_operational_events(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<OperationalEvent>> {
        self.inner.list_operational_events(tenant_id, page).await
    }

    async fn create_source(&self, source: Source, endpoints: Vec<Endpoint>) -> Result<()> {
        let id = source.id.clone();
        let r = self.inner.create_source(source, endpoints).await;
        self.forget_source(&id);
        r
    }

    async fn get_source(&self, tenant_id: &str, id: &str) -> Result<Option<Source>> {
        self.inner.get_source(tenant_id, id).await
    }

    async fn find_source(&self, id: &str) -> Result<Option<Source>> {
        if let Some(s) = self.sources.get(id) {
            return Ok(s);
        }
        let found = self.inner.find_source(id).await?;
        self.sources.put(id.to_string(), found.clone());
        Ok(found)
    }

    async fn list_sources(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Source>> {
        self.inner.list_sources(tenant_id, page).await
    }

    async fn update_source(
        &self,
        source: Source,
        add: Vec<Endpoint>,
        remove: Vec<String>,
    ) -> Result<bool> {
        let id = source.id.clone();
        let r = self.inner.update_source(source, add, remove).await;
        self.forget_source(&id);
        r
    }

    async fn delete_source(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let r = self.inner.delete_source(tenant_id, id).await;
        self.forget_source(id);
        r
    }

    async fn store_unconfirmed_token(
        &self,
        tenant_id: &str,
        source_id: &str,
        token: String,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let r = self
            .inner
            .store_unconfirmed_token(tenant_id, source_id, token, at)
            .await;
        self.sources.remove(source_id);
        r
    }

    async fn accept_inbound(&self, accept: InboundAccept) -> Result<InboundAccepted> {
        self.inner.accept_inbound(accept).await
    }

    async fn log_inbound(&self, request: InboundRequestLog) -> Result<()> {
        self.inner.log_inbound(request).await
    }

    async fn list_inbound_requests(
        &self,
        tenant_id: &str,
        source_id: &str,
        outcome: Option<InboundOutcome>,
        page: PageRequest<'_>,
    ) -> Result<Page<InboundRequestLog>> {
        self.inner
            .list_inbound_requests(tenant_id, source_id, outcome, page)
            .await
    }

    async fn source_backlog(&self, source_id: &str) -> Result<u64> {
        self.inner.source_backlog(source_id).await
    }

    async fn source_activity(
        &self,
        tenant_id: &str,
        source_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceActivity> {
        self.inner.source_activity(tenant_id, source_id, now).await
    }

    async fn due_inbound_batches(&self, now: DateTime<Utc>) -> Result<Vec<DueBatch>> {
        self.inner.due_inbound_batches(now).await
    }

    async fn flush_inbound_batch(&self, flush: BatchFlush) -> Result<Option<(Event, Delivery)>> {
        self.inner.flush_inbound_batch(flush).await
    }
}
