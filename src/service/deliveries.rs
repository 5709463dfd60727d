//! The delivery log and what a subscriber can do with it: retry one, recover many,
//! and see how an endpoint is doing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Result, Service, ServiceError};
use crate::domain::Invalid;
use crate::domain::health::{EndpointHealth, RecentAttempts, assess};
use crate::domain::{Attempt, Delivery, OperationalEvent, Page, PageRequest, Principal};
use crate::store::{AttemptOutcome, DeliveryFilter, RetryOutcome, TimeWindow};

/// Attempts looked at for health and latency figures.
const RECENT_FOR_HEALTH: usize = 100;
const RECENT_FOR_STATS: usize = 1000;
/// The span endpoint statistics count when the caller names none: counting costs as many
/// index entries as deliveries in the span, so the default stays a day.
const STATS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointStats {
    /// The deliveries counted are those made in `[since, until)`.
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub deliveries: DeliveryTotals,
    /// Over the most recent attempts (up to 1000).
    pub recent_attempts: u32,
    /// Share of those attempts that succeeded, 0..1; `null` when there were none.
    pub success_rate: Option<f64>,
    pub latency_ms: LatencySummary,
    pub last_delivery_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryTotals {
    pub total: u64,
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LatencySummary {
    pub avg: Option<f64>,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

pub fn latency_summary(durations: &mut [u64]) -> LatencySummary {
    if durations.is_empty() {
        return LatencySummary::default();
    }
    durations.sort_unstable();
    let at = |q: f64| durations[((durations.len() as f64 - 1.0) * q).round() as usize];
    LatencySummary {
        avg: Some(durations.iter().sum::<u64>() as f64 / durations.len() as f64),
        p50: Some(at(0.5)),
        p90: Some(at(0.9)),
        p99: Some(at(0.99)),
        max: durations.last().copied(),
    }
}

impl Service {
    pub async fn list_deliveries(
        &self,
        who: &Principal,
        tenant_ref: &str,
        filter: DeliveryFilter,
        page: PageRequest<'_>,
    ) -> Result<Page<Delivery>> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Ok(self.store.list_deliveries(&tenant.id, filter, page).await?)
    }

    pub async fn get_delivery(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
    ) -> Result<(Delivery, Vec<Attempt>)> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        let delivery = self
            .store
            .get_delivery(&tenant.id, id)
            .await?
            .ok_or(ServiceError::NotFound("delivery"))?;
        let attempts = self.store.list_attempts(&tenant.id, id).await?;
        Ok((delivery, attempts))
    }

    /// Makes a finished delivery (failed, succeeded or cancelled) pending again, due now.
    pub async fn retry_delivery(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
    ) -> Result<Delivery> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        let now = Utc::now();
        match self
            .store
            .retry_delivery(&tenant.id, id, now, self.queue.lease(now))
            .await?
        {
            RetryOutcome::NotFound => Err(ServiceError::NotFound("delivery")),
            RetryOutcome::InProgress => Err(ServiceError::Conflict {
                code: "delivery_pending",
                message: "the delivery is still pending: it will be attempted on its schedule"
                    .into(),
            }),
            RetryOutcome::Scheduled(d) => {
                self.dispatch_existing(vec![d.id.clone()]).await;
                Ok(d)
            }
        }
    }

    /// Retries every failed delivery of the endpoint created since `since`.
    pub async fn recover(
        &self,
        who: &Principal,
        tenant_ref: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> Result<usize> {
        let endpoint = self.get_endpoint(who, tenant_ref, endpoint_id).await?;
        if endpoint.disabled {
            return Err(ServiceError::Conflict {
                code: "endpoint_disabled",
                message: "the endpoint is disabled: enable it before recovering its deliveries"
                    .into(),
            });
        }
        let now = Utc::now();
        let recovered = self
            .store
            .recover_failed(
                &endpoint.tenant_id,
                &endpoint.id,
                since,
                now,
                self.queue.lease(now),
            )
            .await?;
        let n = recovered.len();
        self.dispatch_existing(recovered.into_iter().map(|d| d.id).collect())
            .await;
        Ok(n)
    }

    async fn dispatch_existing(&self, ids: Vec<String>) {
        let Some(owner) = self.queue.owner() else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        match self.store.load_tasks(owner, ids).await {
            Ok(tasks) => self.queue.enqueue(tasks),
            // Leased but not handed over: the poller takes them once the lease expires.
            Err(e) => tracing::warn!(error = %e, "could not load retried deliveries"),
        }
    }

    pub async fn endpoint_stats(
        &self,
        who: &Principal,
        tenant_ref: &str,
        endpoint_id: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<EndpointStats> {
        let until = until.unwrap_or_else(Utc::now);
        let since = since.unwrap_or(until - STATS_WINDOW);
        if since >= until {
            return Err(Invalid::new("invalid_window", "since must be before until").into());
        }
        let endpoint = self.get_endpoint(who, tenant_ref, endpoint_id).await?;
        let window = TimeWindow { since, until };
        let counts = self
            .store
            .delivery_counts(&endpoint.tenant_id, &endpoint.id, window)
            .await?;
        let recent = self
            .store
            .recent_outcomes(&endpoint.tenant_id, &endpoint.id, RECENT_FOR_STATS)
            .await?;
        let last_delivery_at = recent.first().map(|a| a.started_at);
        let real: Vec<&AttemptOutcome> = recent
            .iter()
            .filter(|a| a.error_kind != Some(crate::domain::AttemptErrorKind::EndpointUnavailable))
            .collect();
        let succeeded = real.iter().filter(|a| a.succeeded).count();
        let mut durations: Vec<u64> = real.iter().map(|a| a.duration_ms).collect();
        Ok(EndpointStats {
            since,
            until,
            deliveries: DeliveryTotals {
                total: counts.pending + counts.succeeded + counts.failed + counts.cancelled,
                pending: counts.pending,
                succeeded: counts.succeeded,
                failed: counts.failed,
                cancelled: counts.cancelled,
            },
            recent_attempts: real.len() as u32,
            success_rate: (!real.is_empty()).then(|| succeeded as f64 / real.len() as f64),
            latency_ms: latency_summary(&mut durations),
            last_delivery_at,
        })
    }

    pub async fn endpoint_health(
        &self,
        who: &Principal,
        tenant_ref: &str,
        endpoint_id: &str,
    ) -> Result<EndpointHealth> {
        let endpoint = self.get_endpoint(who, tenant_ref, endpoint_id).await?;
        let attempts = self
            .store
            .recent_attempts(&endpoint.tenant_id, &endpoint.id, RECENT_FOR_HEALTH)
            .await?;
        let real: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| a.error_kind != Some(crate::domain::AttemptErrorKind::EndpointUnavailable))
            .collect();
        let last_failed = real.iter().find(|a| !a.succeeded);
        let recent = RecentAttempts {
            total: real.len() as u32,
            failed: real.iter().filter(|a| !a.succeeded).count() as u32,
            last_error_kind: last_failed.and_then(|a| a.error_kind),
            last_status: last_failed.and_then(|a| a.response_status),
            timeout_ms: endpoint
                .timeout_ms
                .unwrap_or(self.policy.default_timeout.as_millis() as u64),
        };
        Ok(assess(
            &endpoint,
            &recent,
            self.policy.failing_after_failures,
        ))
    }

    pub async fn list_operational_events(
        &self,
        who: &Principal,
        tenant_ref: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<OperationalEvent>> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Ok(self.store.list_operational_events(&tenant.id, page).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let mut d: Vec<u64> = (1..=100).collect();
        let s = latency_summary(&mut d);
        assert_eq!(s.p50, Some(51));
        assert_eq!(s.p99, Some(99));
        assert_eq!(s.max, Some(100));
        assert_eq!(latency_summary(&mut []).p50, None);
    }
}
