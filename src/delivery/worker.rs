//! One attempt of one delivery: build the signed request, send it, and decide what follows.
//! `deliver_once` is a step function with no loop and no sleep, so tests can drive it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::client::{HttpSender, Outgoing, SendError};
use crate::domain::retry::{RetrySchedule, parse_retry_after};
use crate::domain::{Attempt, AttemptErrorKind, Endpoint, ids};
use crate::signing;
use crate::store::{AttemptRecord, DeliveryTask, Lease, NextStep};

/// Headers a custom header may not replace.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    signing::HEADER_ID,
    signing::HEADER_TIMESTAMP,
    signing::HEADER_SIGNATURE,
];

pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// What every attempt shares.
pub struct AttemptPolicy {
    pub schedule: RetrySchedule,
    /// Applied to per-endpoint schedules too.
    pub jitter: f64,
    pub retry_after_max: Duration,
    pub default_timeout: Duration,
    pub max_response_body: usize,
    pub https_only: bool,
    /// Retries due within this window stay leased and scheduled in memory.
    pub lease: Duration,
    pub owner: String,
}

impl AttemptPolicy {
    fn schedule_for(&self, endpoint: &Endpoint) -> RetrySchedule {
        endpoint
            .retry_schedule
            .as_ref()
            .and_then(|s| crate::domain::duration::parse_duration_list(s).ok())
            .map(|d| RetrySchedule::new(d, self.jitter))
            .unwrap_or_else(|| self.schedule.clone())
    }
}

/// Makes one attempt of `task` to `endpoint` (`None` when it was deleted).
pub async fn deliver_once(
    task: &DeliveryTask,
    endpoint: Option<&Endpoint>,
    sender: &HttpSender,
    policy: &AttemptPolicy,
) -> AttemptRecord {
    let started_at = Utc::now();
    let number = task.attempts_made + 1;
    let Some(endpoint) = endpoint else {
        return unavailable(
            task,
            number,
            started_at,
            "",
            NextStep::Cancelled,
            "endpoint deleted",
        );
    };
    if endpoint.disabled {
        // Dead-lettered, not dropped: `recover` brings these back once it is enabled.
        return unavailable(
            task,
            number,
            started_at,
            &endpoint.url,
            NextStep::Failed,
            "endpoint disabled",
        );
    }

    let timestamp = started_at.timestamp();
    let signature = signing::signature_header(
        &endpoint.secrets.signing(started_at),
        &task.event_id,
        timestamp,
        task.payload.as_bytes(),
    );
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        (
            "user-agent".into(),
            concat!("hookrelay/", env!("CARGO_PKG_VERSION")).into(),
        ),
        (signing::HEADER_ID.into(), task.event_id.clone()),
        (signing::HEADER_TIMESTAMP.into(), timestamp.to_string()),
        (signing::HEADER_SIGNATURE.into(), signature),
    ];
    headers.extend(
        endpoint
            .headers
            .iter()
            .filter(|(k, _)| !is_reserved_header(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let timeout = endpoint
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(policy.default_timeout);
    let clock = std::time::Instant::now();
    let result = if policy.https_only && !endpoint.url.starts_with("https://") {
        Err(SendError::Blocked(
            "https is required for deliveries".into(),
        ))
    } else {
        sender
            .send(Outgoing {
                url: endpoint.url.clone(),
                headers: headers.clone(),
                body: Bytes::copy_from_slice(task.payload.as_bytes()),
                timeout,
                max_response_body: policy.max_response_body,
            })
            .await
    };
    let duration = clock.elapsed();
    metrics::histogram!("webhook_delivery_duration_seconds").record(duration.as_secs_f64());

    let mut attempt = Attempt {
        id: ids::new_id(ids::ATTEMPT),
        delivery_id: task.delivery_id.clone(),
        endpoint_id: endpoint.id.clone(),
        attempt: number,
        url: endpoint.url.clone(),
        started_at,
        duration_ms: duration.as_millis() as u64,
        succeeded: false,
        request_headers: redact(headers),
        response_status: None,
        response_headers: BTreeMap::new(),
        response_body: None,
        error_kind: None,
        error: None,
    };
    let mut retry_after = None;
    match result {
        Ok(answer) => {
            metrics::counter!("webhook_delivery_http_status", "code" => answer.status.to_string())
                .increment(1);
            attempt.succeeded = (200..300).contains(&answer.status);
            if !attempt.succeeded {
                attempt.error_kind = Some(AttemptErrorKind::HttpStatus);
                attempt.error = Some(format!("the receiver answered {}", answer.status));
                if matches!(answer.status, 429 | 503) {
                    retry_after = answer
                        .headers
                        .get("retry-after")
                        .and_then(|v| parse_retry_after(v, Utc::now()));
                }
            }
            attempt.response_status = Some(answer.status);
            attempt.response_headers = answer.headers;
            attempt.response_body = Some(answer.body);
        }
        Err(e) => {
            attempt.error_kind = Some(match &e {
                SendError::Timeout(_) => AttemptErrorKind::Timeout,
                SendError::Blocked(_) => AttemptErrorKind::Blocked,
                SendError::Dns(_) => AttemptErrorKind::Dns,
                SendError::Tls(_) => AttemptErrorKind::Tls,
                SendError::Connect(_) => AttemptErrorKind::Connect,
                SendError::Other(_) => AttemptErrorKind::Other,
            });
            attempt.error = Some(e.to_string());
        }
    }
    let next = if attempt.succeeded {
        NextStep::Succeeded
    } else {
        next_after_failure(
            policy,
            &policy.schedule_for(endpoint),
            number,
            retry_after,
            Utc::now(),
        )
    };
    AttemptRecord {
        tenant_id: task.tenant_id.clone(),
        attempt,
        next,
        counts_for_health: true,
    }
}

fn next_after_failure(
    policy: &AttemptPolicy,
    schedule: &RetrySchedule,
    attempts_made: u32,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> NextStep {
    let Some(delay) = schedule.next_delay(
        attempts_made,
        retry_after,
        policy.retry_after_max,
        rand::random(),
    ) else {
        return NextStep::Failed;
    };
    let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    // Soon-due retries stay with this instance, timed in memory; later ones go back to the
    // store, where any instance's poller claims them when due.
    let lease = (delay <= policy.lease / 2).then(|| Lease {
        owner: policy.owner.clone(),
        until: at + chrono::Duration::from_std(policy.lease).unwrap_or_default(),
    });
    NextStep::Retry { at, lease }
}

fn unavailable(
    task: &DeliveryTask,
    number: u32,
    started_at: DateTime<Utc>,
    url: &str,
    next: NextStep,
    why: &str,
) -> AttemptRecord {
    AttemptRecord {
        tenant_id: task.tenant_id.clone(),
        attempt: Attempt {
            id: ids::new_id(ids::ATTEMPT),
            delivery_id: task.delivery_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            attempt: number,
            url: url.to_string(),
            started_at,
            duration_ms: 0,
            succeeded: false,
            request_headers: BTreeMap::new(),
            response_status: None,
            response_headers: BTreeMap::new(),
            response_body: None,
            error_kind: Some(AttemptErrorKind::EndpointUnavailable),
            error: Some(why.to_string()),
        },
        next,
        counts_for_health: false,
    }
}

/// Custom headers may carry credentials for the receiver: the log keeps their names only.
fn redact(headers: Vec<(String, String)>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(k, v)| {
            let keep = RESERVED_HEADERS.contains(&k.as_str());
            (k, if keep { v } else { "<redacted>".into() })
        })
        .collect()
}
