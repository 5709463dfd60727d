//! Inbound sources: their management (validation, hidden endpoints for HTTP destinations,
//! redaction) and the receive use case behind `POST /in/{source}`: verify, answer
//! handshakes, bound the backlog, then dedupe, log, store and route in one durable write —
//! and only then answer 2xx.
//!
//! Secrets in a source's verification settings never leave this layer except towards the
//! verifier: responses carry redacted settings, logs carry reason codes.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;

use super::events::{matching_endpoints, task_of};
use super::{Result, Service, ServiceError};
use crate::domain::filter::EventTypeFilter;
use crate::domain::secret::{EndpointSecret, SecretSet};
use crate::domain::source::{
    self, BatchSettings, DEFAULT_DEDUP_WINDOW_S, Destination, Envelope, InboundOutcome,
    InboundRequestLog, Source, SourceHealth,
};
use crate::domain::{Endpoint, Event, Invalid, Page, PageRequest, Principal, ids};
use crate::inbound::{
    Handshake, InboundRequest, SourceSettings, Verified, VerifyContext, VerifyError,
};
use crate::store::{
    BatchFlush, DedupCheck, InboundAccept, InboundAccepted, NewBatchItem, NewDelivery, StoreError,
};

/// Settings of the receive path.
/// How long a backlog count is used before it is taken again: the bounds need to hold, not
/// to be exact, and counting on every request would cost.
const BACKLOG_FRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// Backlog counts with the time each was taken: the installation's, and each source's.
#[derive(Default)]
pub struct BacklogCounts {
    total: Option<(std::time::Instant, u64)>,
    by_source: std::collections::HashMap<String, (std::time::Instant, u64)>,
}

impl BacklogCounts {
    fn fresh(&self, source: Option<&str>) -> Option<u64> {
        let (at, n) = match source {
            None => self.total?,
            Some(id) => *self.by_source.get(id)?,
        };
        (at.elapsed() < BACKLOG_FRESH).then_some(n)
    }

    fn record(&mut self, source: Option<&str>, n: u64) {
        let now = std::time::Instant::now();
        match source {
            None => self.total = Some((now, n)),
            Some(id) => {
                // Forget sources not seen for a while, so the map stays as small as the
                // set of sources receiving traffic.
                if self.by_source.len() > 10_000 {
                    self.by_source
                        .retain(|_, (at, _)| at.elapsed() < BACKLOG_FRESH * 10);
                }
                self.by_source.insert(id.to_string(), (now, n));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct InboundPolicy {
    /// External base URL (`HOOKRELAY_PUBLIC_URL`): URL-signing providers sign it.
    pub public_url: Option<String>,
    pub max_pending_per_source: u64,
    /// The bound on all pending work, whatever the source.
    pub max_pending_total: u64,
    pub retry_after: std::time::Duration,
    pub max_logged_body: usize,
    /// Added to the clock verifiers see (tests verify old published vectors with it).
    pub clock_offset: chrono::Duration,
}

impl Default for InboundPolicy {
    fn default() -> Self {
        InboundPolicy {
            public_url: None,
            max_pending_per_source: 10_000,
            max_pending_total: 1_000_000,
            retry_after: std::time::Duration::from_secs(30),
            max_logged_body: 65_536,
            clock_offset: chrono::Duration::zero(),
        }
    }
}

/// A destination as the API takes it.
#[derive(Debug, Clone)]
pub enum DestinationSpec {
    Http {
        url: String,
        forward_headers: bool,
        /// The signing secret (`whsec_...`) for deliveries to `url`; generated when absent.
        secret: Option<String>,
        /// Forward events in batches rather than one by one.
        batch: Option<BatchSettings>,
    },
    Publish {
        event_type: String,
    },
}

#[derive(Debug, Default)]
pub struct NewSource {
    pub name: String,
    /// The top-level `provider`, when given besides the verification document.
    pub provider: Option<String>,
    /// The verification settings document (`{"provider": ..., "secrets": [...]}`).
    pub verification: Option<serde_json::Value>,
    pub allowed_event_types: Option<Vec<String>>,
    pub destinations: Option<Vec<DestinationSpec>>,
    pub enabled: Option<bool>,
    pub dedup_window_s: Option<u64>,
}

#[derive(Debug, Default)]
pub struct SourceChanges {
    pub name: Option<String>,
    pub verification: Option<serde_json::Value>,
    pub allowed_event_types: Option<Vec<String>>,
    pub destinations: Option<Vec<DestinationSpec>>,
    pub enabled: Option<bool>,
    pub dedup_window_s: Option<u64>,
}

/// A source as callers may see it: settings redacted, plus its public URL.
#[derive(Debug, Clone)]
pub struct SourceView {
    pub source: Source,
    pub verification: serde_json::Value,
    pub url: String,
    /// A token the provider sent unsigned (Notion), until the operator configures it.
    pub unconfirmed_token: Option<(String, DateTime<Utc>)>,
}

/// One request to `/in/{source}`, as the handler read it.
#[derive(Debug)]
pub struct ReceivedRequest {
    pub source_id: String,
    pub method: String,
    /// Path and query as requested (`/in/src_...?a=b`).
    pub path_and_query: String,
    pub host: Option<String>,
    pub headers: HeaderMap,
    /// `None` when the body was larger than the server accepts.
    pub body: Option<Bytes>,
    pub body_len_hint: u64,
}

/// What to answer a provider.
#[derive(Debug, Clone)]
pub struct ReceiveReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Why a request to `/in/{source}` was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("no such source")]
    UnknownSource,
    #[error("the source is disabled")]
    Disabled,
    #[error("the request body is larger than this server accepts")]
    TooLarge,
    #[error(transparent)]
    Rejected(#[from] VerifyError),
    #[error("the source's destinations are backlogged")]
    Backlogged { retry_after: std::time::Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

const MAX_DESTINATIONS: usize = 10;

fn check_name(name: String) -> Result<String, Invalid> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.len() > 256 {
        return Err(Invalid::new(
            "invalid_name",
            "name must be 1-256 characters",
        ));
    }
    Ok(trimmed.to_string())
}

fn check_dedup_window(w: u64) -> Result<u64, Invalid> {
    if w > 30 * 86_400 {
        return Err(Invalid::new(
            "invalid_dedup_window",
            "dedup_window_s must be at most 2592000 (30 days)",
        ));
    }
    Ok(w)
}

fn check_allowed(types: Vec<String>) -> Result<Vec<String>, Invalid> {
    // Provider event types are not in the outbound catalogue: only the syntax is checked.
    EventTypeFilter::parse(&types)?;
    Ok(types)
}

/// Parses a verification document. The provider is checked first so that an unknown one
/// says so, rather than failing on its fields.
fn parse_settings(
    provider: Option<&str>,
    verification: Option<serde_json::Value>,
) -> Result<SourceSettings, Invalid> {
    if let Some(v) = &verification
        && v.to_string().contains(source::REDACTED)
    {
        // A document read back from the API: saving it would make `<redacted>` the secret.
        return Err(Invalid::new(
            "redacted_secret",
            "the verification settings contain `<redacted>`: send the real secrets (the API never shows them back)",
        ));
    }
    let mut doc = match verification {
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => {
            return Err(Invalid::new(
                "invalid_verification",
                "verification must be a JSON object such as {\"provider\": \"github\", \"secrets\": [\"...\"]}",
            ));
        }
        None => serde_json::Map::new(),
    };
    let named = match (doc.get("provider"), provider) {
        (Some(serde_json::Value::String(inner)), Some(outer)) if inner != outer => {
            return Err(Invalid::new(
                "provider_mismatch",
                format!("provider `{outer}` differs from verification.provider `{inner}`"),
            ));
        }
        (Some(serde_json::Value::String(inner)), _) => inner.clone(),
        (Some(_), _) => {
            return Err(Invalid::new(
                "invalid_verification",
                "verification.provider must be a string",
            ));
        }
        (None, Some(outer)) => outer.to_string(),
        (None, None) => {
            return Err(Invalid::new(
                "provider_required",
                "name the provider: `provider` or `verification.provider`",
            ));
        }
    };
    if let Err(unknown) = crate::inbound::by_name(&named) {
        return Err(Invalid::new("unknown_provider", unknown.to_string()));
    }
    doc.insert("provider".into(), serde_json::Value::String(named));
    serde_json::from_value(serde_json::Value::Object(doc)).map_err(|e| {
        Invalid::new(
            "invalid_verification",
            format!("the verification settings do not fit the provider: {e}"),
        )
    })
}

fn unconfirmed_shown(source: &Source) -> Option<(String, DateTime<Utc>)> {
    let (token, at) = source.unconfirmed_token.clone()?;
    let token = token.expose().to_string();
    // Once configured, the token is a secret like any other: no longer shown.
    let configured = serde_json::to_string(&source.settings)
        .map(|s| s.contains(&serde_json::to_string(&token).unwrap_or_default()))
        .unwrap_or(true);
    (!configured).then_some((token, at))
}

impl Service {
    fn view(&self, source: Source) -> SourceView {
        let base = self
            .policy
            .inbound
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        SourceView {
            verification: source::redact_settings(&source.settings),
            url: format!("{base}/in/{}", source.id),
            unconfirmed_token: unconfirmed_shown(&source),
            source,
        }
    }

    /// Destinations as stored, with the hidden endpoints to create for new HTTP ones.
    /// HTTP destinations whose URL an existing one already has keep its endpoint.
    fn plan_destinations(
        &self,
        tenant_id: &str,
        source_id: &str,
        specs: Vec<DestinationSpec>,
        existing: &[Destination],
    ) -> Result<(Vec<Destination>, Vec<Endpoint>, Vec<String>)> {
        if specs.len() > MAX_DESTINATIONS {
            return Err(Invalid::new(
                "invalid_destinations",
                format!("at most {MAX_DESTINATIONS} destinations"),
            )
            .into());
        }
        let mut kept_endpoints = Vec::new();
        let mut out = Vec::new();
        let mut create = Vec::new();
        let now = Utc::now();
        for spec in specs {
            match spec {
                DestinationSpec::Publish { event_type } => {
                    let probe = source::mapped_event_type(&event_type, Some("x"));
                    crate::domain::names::parse_event_type_name(&probe).map_err(|_| {
                        Invalid::new(
                            "invalid_destinations",
                            format!(
                                "`{}` is not an event type template such as `github.{{event}}`",
                                crate::domain::names::truncate(&event_type, 64)
                            ),
                        )
                    })?;
                    out.push(Destination::Publish { event_type });
                }
                DestinationSpec::Http {
                    url,
                    forward_headers,
                    secret,
                    batch,
                } => {
                    let url = self.check_url(&url)?;
                    if let Some(b) = &batch
                        && !b.is_valid()
                    {
                        return Err(Invalid::new(
                            "invalid_batch",
                            "batch.max_events must be 2-1000 and batch.window_ms 10-60000",
                        )
                        .into());
                    }
                    let reuse = existing.iter().find_map(|d| match d {
                        Destination::Http {
                            url: u,
                            endpoint_id: Some(id),
                            ..
                        } if *u == url && secret.is_none() && !kept_endpoints.contains(id) => {
                            Some(id.clone())
                        }
                        _ => None,
                    });
                    let endpoint_id = match reuse {
                        Some(id) => {
                            kept_endpoints.push(id.clone());
                            id
                        }
                        None => {
                            let secret = match secret {
                                Some(s) => EndpointSecret::parse(&s)?,
                                None => EndpointSecret::generate(),
                            };
                            let ep = Endpoint {
                                id: ids::new_id(ids::ENDPOINT),
                                tenant_id: tenant_id.to_string(),
                                url: url.clone(),
                                description: format!("destination of source {source_id}"),
                                event_types: vec!["*".into()],
                                channels: Vec::new(),
                                secrets: SecretSet::new(secret),
                                headers: Default::default(),
                                timeout_ms: None,
                                rate_limit_per_s: None,
                                disabled: false,
                                metadata: Default::default(),
                                retry_schedule: None,
                                source_id: Some(source_id.to_string()),
                                created_at: now,
                                updated_at: now,
                                health: Default::default(),
                            };
                            let id = ep.id.clone();
                            create.push(ep);
                            id
                        }
                    };
                    out.push(Destination::Http {
                        url,
                        forward_headers,
                        endpoint_id: Some(endpoint_id),
                        batch,
                    });
                }
            }
        }
        let remove = existing
            .iter()
            .filter_map(|d| match d {
                Destination::Http {
                    endpoint_id: Some(id),
                    ..
                } if !kept_endpoints.contains(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        Ok((out, create, remove))
    }

    pub async fn create_source(
        &self,
        who: &Principal,
        tenant_ref: &str,
        new: NewSource,
    ) -> Result<SourceView> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        let settings = parse_settings(new.provider.as_deref(), new.verification)?;
        let id = ids::new_id(ids::SOURCE);
        let (destinations, endpoints, _) =
            self.plan_destinations(&tenant.id, &id, new.destinations.unwrap_or_default(), &[])?;
        let now = Utc::now();
        let source = Source {
            id,
            tenant_id: tenant.id,
            name: check_name(new.name)?,
            settings,
            allowed_event_types: check_allowed(
                new.allowed_event_types.unwrap_or_else(|| vec!["*".into()]),
            )?,
            destinations,
            enabled: new.enabled.unwrap_or(true),
            dedup_window_s: check_dedup_window(
                new.dedup_window_s.unwrap_or(DEFAULT_DEDUP_WINDOW_S),
            )?,
            unconfirmed_token: None,
            created_at: now,
            updated_at: now,
        };
        self.store.create_source(source.clone(), endpoints).await?;
        Ok(self.view(source))
    }

    async fn source_of(&self, who: &Principal, tenant_ref: &str, id: &str) -> Result<Source> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        self.store
            .get_source(&tenant.id, id)
            .await?
            .ok_or(ServiceError::NotFound("source"))
    }

    pub async fn get_source(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
    ) -> Result<SourceView> {
        Ok(self.view(self.source_of(who, tenant_ref, id).await?))
    }

    pub async fn list_sources(
        &self,
        who: &Principal,
        tenant_ref: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<SourceView>> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Ok(self
            .store
            .list_sources(&tenant.id, page)
            .await?
            .map(|s| self.view(s)))
    }

    pub async fn update_source(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
        changes: SourceChanges,
    ) -> Result<SourceView> {
        let mut source = self.source_of(who, tenant_ref, id).await?;
        if let Some(name) = changes.name {
            source.name = check_name(name)?;
        }
        if let Some(v) = changes.verification {
            source.settings = parse_settings(None, Some(v))?;
        }
        if let Some(t) = changes.allowed_event_types {
            source.allowed_event_types = check_allowed(t)?;
        }
        if let Some(e) = changes.enabled {
            source.enabled = e;
        }
        if let Some(w) = changes.dedup_window_s {
            source.dedup_window_s = check_dedup_window(w)?;
        }
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        if let Some(specs) = changes.destinations {
            let (dests, a, r) =
                self.plan_destinations(&source.tenant_id, &source.id, specs, &source.destinations)?;
            source.destinations = dests;
            (add, remove) = (a, r);
        }
        source.updated_at = Utc::now();
        if !self
            .store
            .update_source(source.clone(), add, remove)
            .await?
        {
            return Err(ServiceError::NotFound("source"));
        }
        Ok(self.view(source))
    }

    pub async fn delete_source(&self, who: &Principal, tenant_ref: &str, id: &str) -> Result<()> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        if !self.store.delete_source(&tenant.id, id).await? {
            return Err(ServiceError::NotFound("source"));
        }
        Ok(())
    }

    pub async fn list_source_requests(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
        outcome: Option<&str>,
        page: PageRequest<'_>,
    ) -> Result<Page<InboundRequestLog>> {
        let outcome = match outcome {
            None | Some("") => None,
            Some(o) => Some(InboundOutcome::parse(o).ok_or_else(|| {
                Invalid::new(
                    "invalid_outcome",
                    "outcome is one of accepted, rejected, duplicate, filtered, handshake",
                )
            })?),
        };
        let source = self.source_of(who, tenant_ref, id).await?;
        Ok(self
            .store
            .list_inbound_requests(&source.tenant_id, &source.id, outcome, page)
            .await?)
    }

    pub async fn source_health(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
    ) -> Result<SourceHealth> {
        let source = self.source_of(who, tenant_ref, id).await?;
        let activity = self
            .store
            .source_activity(&source.tenant_id, &source.id, Utc::now())
            .await?;
        Ok(source::assess_source(&source, activity))
    }

    /// `POST /in/{source}`: the whole receive path. `Ok` means the provider may be answered
    /// with the reply: anything to store is committed.
    pub async fn receive(
        &self,
        req: ReceivedRequest,
    ) -> std::result::Result<ReceiveReply, ReceiveError> {
        let source = self
            .store
            .find_source(&req.source_id)
            .await?
            .ok_or_else(|| {
                // No source, so no source log to put it in: count it, under one label value.
                metrics::counter!(
                    "webhook_inbound_requests_total",
                    "source" => "unknown",
                    "outcome" => "rejected",
                    "reason" => "unknown_source"
                )
                .increment(1);
                ReceiveError::UnknownSource
            })?;
        let received_at = Utc::now();
        let log = |outcome: InboundOutcome, reason: Option<String>, body: Option<&[u8]>| {
            let size = body.map_or(req.body_len_hint, |b| b.len() as u64);
            InboundRequestLog {
                id: ids::new_id(ids::INBOUND_REQUEST),
                source_id: source.id.clone(),
                tenant_id: source.tenant_id.clone(),
                received_at,
                outcome,
                reason,
                provider_event_id: None,
                event_type: None,
                dedup_key: None,
                headers: source::redact_headers(
                    req.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
                ),
                body: body.map(|b| source::body_excerpt(b, self.policy.inbound.max_logged_body)),
                body_bytes: size,
                routed_events: Vec::new(),
                routing_error: None,
            }
        };
        let Some(raw) = req.body.clone() else {
            self.reject(log(
                InboundOutcome::Rejected,
                Some("too_large".into()),
                None,
            ))
            .await;
            return Err(ReceiveError::TooLarge);
        };
        // Signatures are checked on `raw`; what is logged or routed is `body`, with any
        // credential the scheme carries inside the body redacted.
        let body = source.settings.redact_body(&raw).into_owned();
        if !source.enabled {
            self.reject(log(
                InboundOutcome::Rejected,
                Some("disabled".into()),
                Some(&body),
            ))
            .await;
            return Err(ReceiveError::Disabled);
        }
        let url = match &self.policy.inbound.public_url {
            Some(base) => format!("{}{}", base.trim_end_matches('/'), req.path_and_query),
            None => format!(
                "http://{}{}",
                req.host.as_deref().unwrap_or("localhost"),
                req.path_and_query
            ),
        };
        let inbound = InboundRequest {
            method: &req.method,
            url: &url,
            headers: &req.headers,
            body: &raw,
        };
        let ctx = VerifyContext::at(received_at + self.policy.inbound.clock_offset);
        let started = std::time::Instant::now();
        let result = crate::inbound::verify_request(&inbound, &source.settings, &ctx);
        metrics::histogram!(
            "webhook_inbound_verify_duration_seconds",
            "provider" => source.provider()
        )
        .record(started.elapsed().as_secs_f64());
        let verified = match result {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(source = %source.id, reason = e.code(), "inbound request rejected");
                self.reject(log(
                    InboundOutcome::Rejected,
                    Some(e.code().into()),
                    Some(&body),
                ))
                .await;
                return Err(ReceiveError::Rejected(e));
            }
        };
        if let Some(handshake) = &verified.handshake {
            return self
                .answer_handshake(
                    &source,
                    handshake,
                    &verified,
                    log(InboundOutcome::Handshake, None, Some(&body)),
                )
                .await;
        }
        let has_http = source
            .destinations
            .iter()
            .any(|d| matches!(d, Destination::Http { .. }));
        let backlogged = self.total_backlog().await? >= self.policy.inbound.max_pending_total
            || (has_http
                && self
                    .source_backlog(&source.id, self.policy.inbound.max_pending_per_source)
                    .await?
                    >= self.policy.inbound.max_pending_per_source);
        if backlogged {
            self.reject(log(
                InboundOutcome::Rejected,
                Some("rate_limited".into()),
                Some(&body),
            ))
            .await;
            return Err(ReceiveError::Backlogged {
                retry_after: self.policy.inbound.retry_after,
            });
        }
        let mut entry = log(InboundOutcome::Accepted, None, Some(&body));
        let event = &verified.event;
        entry.provider_event_id = event.id.clone();
        entry.event_type = event.event_type.clone();
        let keys = source::dedup_keys(event.id.as_deref(), &verified.batch, &raw);
        entry.dedup_key = Some(keys.join(" "));
        let dedup = (source.dedup_window_s > 0).then(|| DedupCheck {
            keys,
            since: received_at - chrono::Duration::seconds(source.dedup_window_s as i64),
        });
        let allowed = EventTypeFilter::parse(&source.allowed_event_types)
            .is_ok_and(|f| f.matches(event.event_type.as_deref().unwrap_or("")));
        let (events, batch_items) = if allowed {
            self.route(&source, &verified, &body, received_at, &mut entry)
                .await?
        } else {
            entry.outcome = InboundOutcome::Filtered;
            (Vec::new(), Vec::new())
        };
        let outcome = self
            .store
            .accept_inbound(InboundAccept {
                request: entry,
                dedup,
                events,
                batch_items,
            })
            .await?;
        let (request, outcome_name) = match outcome {
            InboundAccepted::Duplicate { request, .. } => (request, "duplicate"),
            InboundAccepted::Stored { request, events } => {
                for (event, deliveries) in events {
                    let payload: Arc<str> = Arc::from(event.payload.as_str());
                    self.queue.enqueue(
                        deliveries
                            .iter()
                            .map(|d| task_of(d, &event.id, &event.event_type, payload.clone()))
                            .collect(),
                    );
                }
                let name = request.outcome.as_str();
                (request, name)
            }
        };
        count(&source, outcome_name);
        if let Some(reply) = verified.reply {
            return Ok(ReceiveReply {
                status: reply.status,
                content_type: reply.content_type,
                body: reply.body,
            });
        }
        Ok(json_reply(serde_json::json!({
            "ok": true,
            "request_id": request.id,
            "outcome": outcome_name,
        })))
    }

    /// Every pending delivery of the installation, re-counted at most every
    /// `BACKLOG_FRESH`.
    async fn total_backlog(&self) -> std::result::Result<u64, StoreError> {
        if let Some(n) = self.backlogs.lock().expect("backlog lock").fresh(None) {
            return Ok(n);
        }
        let n = self.store.queue_stats().await?.pending;
        self.backlogs.lock().expect("backlog lock").record(None, n);
        Ok(n)
    }

    /// A source's pending deliveries and waiting batch items. A count of its backlog on
    /// every request cost the store more than the accept itself once a backlog formed, so
    /// a count below half of `max` is used for `BACKLOG_FRESH`: the requests of that
    /// moment cannot carry it past `max`. Nearer the bound, every request counts again.
    async fn source_backlog(
        &self,
        source_id: &str,
        max: u64,
    ) -> std::result::Result<u64, StoreError> {
        let cached = self
            .backlogs
            .lock()
            .expect("backlog lock")
            .fresh(Some(source_id));
        if let Some(n) = cached
            && n < max / 2
        {
            return Ok(n);
        }
        let n = self.store.source_backlog(source_id).await?;
        self.backlogs
            .lock()
            .expect("backlog lock")
            .record(Some(source_id), n);
        Ok(n)
    }

    /// Logs a request that is refused; a failure to log does not change the answer.
    async fn reject(&self, entry: InboundRequestLog) {
        metrics::counter!(
            "webhook_inbound_requests_total",
            "source" => entry.source_id.clone(),
            "outcome" => "rejected",
            "reason" => entry.reason.clone().unwrap_or_default()
        )
        .increment(1);
        if let Err(e) = self.store.log_inbound(entry).await {
            tracing::warn!(error = %e, "could not log a rejected inbound request");
        }
    }

    async fn answer_handshake(
        &self,
        source: &Source,
        handshake: &Handshake,
        verified: &Verified,
        mut entry: InboundRequestLog,
    ) -> std::result::Result<ReceiveReply, ReceiveError> {
        let kind = match handshake {
            Handshake::Challenge => "challenge",
            Handshake::Ping => "ping",
            Handshake::UnconfirmedToken(token) => {
                // Unauthenticated: kept for an operator to confirm, never adopted, and the
                // body (which carries it) is not logged.
                entry.body = None;
                self.store
                    .store_unconfirmed_token(
                        &source.tenant_id,
                        &source.id,
                        token.expose().to_string(),
                        entry.received_at,
                    )
                    .await?;
                tracing::info!(source = %source.id, "provider sent a verification token; an operator must confirm it");
                "verification_token"
            }
        };
        entry.reason = Some(kind.into());
        entry.event_type = verified.event.event_type.clone();
        if let Err(e) = self.store.log_inbound(entry).await {
            tracing::warn!(error = %e, "could not log an inbound handshake");
        }
        count(source, "handshake");
        Ok(match &verified.reply {
            Some(reply) => ReceiveReply {
                status: reply.status,
                content_type: reply.content_type,
                body: reply.body.clone(),
            },
            None => json_reply(serde_json::json!({"ok": true, "handshake": kind})),
        })
    }

    /// The events an accepted request becomes: one for the HTTP destinations (per
    /// `forward_headers` choice), one per publish destination. Routing problems are noted
    /// on the log entry, never refused to the provider.
    async fn route(
        &self,
        source: &Source,
        verified: &Verified,
        body: &[u8],
        received_at: DateTime<Utc>,
        entry: &mut InboundRequestLog,
    ) -> std::result::Result<(Vec<(Event, Vec<NewDelivery>)>, Vec<NewBatchItem>), ReceiveError>
    {
        let info = &verified.event;
        let provider = source.provider();
        let payload = source::payload_value(body);
        let envelope = |headers| {
            serde_json::to_string(&Envelope {
                source: &source.id,
                provider,
                event_id: info.id.as_deref(),
                event_type: info.event_type.as_deref(),
                occurred_at: info.occurred_at,
                received_at,
                payload: payload.clone(),
                headers,
            })
            .expect("an envelope serialises")
        };
        let lease = self.queue.lease(received_at);
        let new_event = |event_type: String, payload: String| Event {
            id: ids::new_id(ids::EVENT),
            tenant_id: source.tenant_id.clone(),
            event_type,
            payload,
            channels: Vec::new(),
            idempotency_key: None,
            created_at: received_at,
        };
        let delivery = |endpoint_id: String| NewDelivery {
            id: ids::new_id(ids::DELIVERY),
            endpoint_id,
            lease: lease.clone(),
        };
        let inbound_type = format!(
            "{provider}.{}",
            info.event_type.as_deref().unwrap_or("event")
        );
        let mut events = Vec::new();
        let mut batch_items = Vec::new();
        for forward in [false, true] {
            let targets: Vec<(String, Option<BatchSettings>)> = source
                .destinations
                .iter()
                .filter_map(|d| match d {
                    Destination::Http {
                        forward_headers,
                        endpoint_id: Some(id),
                        batch,
                        ..
                    } if *forward_headers == forward => Some((id.clone(), *batch)),
                    _ => None,
                })
                .collect();
            if targets.is_empty() {
                continue;
            }
            let payload = envelope(forward.then_some(&entry.headers));
            let event = new_event(inbound_type.clone(), payload);
            let mut deliveries = Vec::new();
            for (endpoint_id, batch) in targets {
                match batch {
                    // Waits in the store for the flusher, which forwards it with others.
                    Some(b) => batch_items.push(NewBatchItem {
                        tenant_id: source.tenant_id.clone(),
                        endpoint_id,
                        event_id: event.id.clone(),
                        batch_type: source::batch_event_type(provider),
                        max_events: b.max_events,
                        window_ms: b.window_ms,
                        created_at: received_at,
                    }),
                    None => deliveries.push(delivery(endpoint_id)),
                }
            }
            events.push((event, deliveries));
        }
        let mut errors = Vec::new();
        for d in &source.destinations {
            let Destination::Publish { event_type } = d else {
                continue;
            };
            let name = source::mapped_event_type(event_type, info.event_type.as_deref());
            match self.store.get_event_type(&name).await? {
                Some(et) if !et.archived => {}
                Some(_) => {
                    errors.push(format!("event type `{name}` is archived: not published"));
                    continue;
                }
                None => {
                    errors.push(format!(
                        "event type `{}` is not registered: not published",
                        crate::domain::names::truncate(&name, 128)
                    ));
                    continue;
                }
            }
            let event = new_event(name, envelope(None));
            let candidates = self
                .store
                .enabled_endpoints_shared(&source.tenant_id)
                .await?;
            let targets: Vec<NewDelivery> = matching_endpoints(&candidates, &event)
                .into_iter()
                .map(|ep| delivery(ep.id.clone()))
                .collect();
            events.push((event, targets));
        }
        entry.routed_events = events.iter().map(|(e, _)| e.id.clone()).collect();
        if !errors.is_empty() {
            entry.routing_error = Some(errors.join("; "));
        }
        Ok((events, batch_items))
    }

    /// Sends every due batch of batched HTTP destinations: for each, one durable write turns
    /// the waiting events into one combined event and delivery, which is then handed to the
    /// delivery engine like a publish's. Returns how many batches were sent.
    pub async fn flush_batches(&self, now: DateTime<Utc>) -> Result<usize> {
        let due = self.store.due_inbound_batches(now).await?;
        let mut sent = 0;
        for batch in due {
            let flushed = self
                .store
                .flush_inbound_batch(BatchFlush {
                    delivery: NewDelivery {
                        id: ids::new_id(ids::DELIVERY),
                        endpoint_id: batch.endpoint_id.clone(),
                        lease: self.queue.lease(now),
                    },
                    tenant_id: batch.tenant_id,
                    endpoint_id: batch.endpoint_id,
                    event_id: ids::new_id(ids::EVENT),
                    now,
                })
                .await?;
            if let Some((event, delivery)) = flushed {
                let payload: Arc<str> = Arc::from(event.payload.as_str());
                self.queue.enqueue(vec![task_of(
                    &delivery,
                    &event.id,
                    &event.event_type,
                    payload,
                )]);
                sent += 1;
            }
        }
        Ok(sent)
    }
}

fn json_reply(v: serde_json::Value) -> ReceiveReply {
    ReceiveReply {
        status: 200,
        content_type: "application/json",
        body: v.to_string().into_bytes(),
    }
}

fn count(source: &Source, outcome: &str) {
    metrics::counter!(
        "webhook_inbound_requests_total",
        "source" => source.id.clone(),
        "outcome" => outcome.to_string(),
        "reason" => ""
    )
    .increment(1);
}
