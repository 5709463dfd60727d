//! Endpoint health: a status a person can act on, from the counters kept on the endpoint and
//! its recent attempts, with recommendations in plain language.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AttemptErrorKind, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Failing,
    Disabled,
}

/// What the recent attempts of an endpoint looked like.
#[derive(Debug, Clone, Default)]
pub struct RecentAttempts {
    pub total: u32,
    pub failed: u32,
    /// The error of the most recent failed attempt.
    pub last_error_kind: Option<AttemptErrorKind>,
    pub last_status: Option<u16>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointHealth {
    pub status: HealthStatus,
    pub consecutive_failures: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub recent_attempts: u32,
    pub recent_failures: u32,
    pub disabled_reason: Option<String>,
    pub recommendations: Vec<String>,
}

/// Share of recent attempts that may fail before an endpoint counts as degraded.
const DEGRADED_FAILURE_RATE: f64 = 0.05;

pub fn assess(endpoint: &Endpoint, recent: &RecentAttempts, failing_after: u32) -> EndpointHealth {
    let h = &endpoint.health;
    let rate = if recent.total == 0 {
        0.0
    } else {
        f64::from(recent.failed) / f64::from(recent.total)
    };
    let status = if endpoint.disabled {
        HealthStatus::Disabled
    } else if h.consecutive_failures >= failing_after {
        HealthStatus::Failing
    } else if h.consecutive_failures > 0 || rate > DEGRADED_FAILURE_RATE {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    let mut recommendations = Vec::new();
    if endpoint.disabled {
        match (&h.disabled_reason, h.failing_since) {
            (Some(reason), Some(since)) => recommendations.push(format!(
                "Disabled automatically: {reason}. Fix the receiver, re-enable the endpoint \
                 (PATCH {{\"disabled\": false}}), then recover failed deliveries since {}.",
                since.to_rfc3339()
            )),
            _ => recommendations.push(
                "The endpoint is disabled: no new deliveries are made to it until it is re-enabled."
                    .into(),
            ),
        }
    }
    if status != HealthStatus::Healthy
        && recent.failed > 0
        && let Some(advice) = advice_for(recent)
    {
        recommendations.push(advice);
    }
    if status == HealthStatus::Failing
        && let Some(since) = h.failing_since
    {
        recommendations.push(format!(
            "Every attempt has failed since {}: deliveries are retried on the schedule and \
             the endpoint will be disabled if it keeps failing.",
            since.to_rfc3339()
        ));
    }
    EndpointHealth {
        status,
        consecutive_failures: h.consecutive_failures,
        failing_since: h.failing_since,
        last_success_at: h.last_success_at,
        last_failure_at: h.last_failure_at,
        recent_attempts: recent.total,
        recent_failures: recent.failed,
        disabled_reason: h.disabled_reason.clone(),
        recommendations,
    }
}

fn advice_for(recent: &RecentAttempts) -> Option<String> {
    use AttemptErrorKind::*;
    Some(match recent.last_error_kind? {
        Timeout => format!(
            "Requests time out after {} ms: answer 2xx quickly and do the work in the \
             background, or raise timeout_ms.",
            recent.timeout_ms
        ),
        Connect => "The receiver refuses connections: check that it is running and that the \
                    URL's host and port are right."
            .into(),
        Dns => "The host name does not resolve: check the URL for typos or a lapsed domain.".into(),
        Tls => "The TLS handshake fails: check that the certificate is valid, unexpired and \
                issued for this host name."
            .into(),
        Blocked => "The URL resolves to a private, loopback or link-local address, which \
                    deliveries may not reach: use a public address, or ask the operator to \
                    allow-list the network (HOOKRELAY_ALLOW_NETS)."
            .into(),
        EndpointUnavailable => return None,
        Other => {
            "Attempts fail before an answer arrives: see the attempt log for the error.".into()
        }
        HttpStatus => match recent.last_status.unwrap_or(0) {
            300..=399 => "The receiver answers with a redirect, which is not followed: set the \
                          endpoint URL to the final location."
                .into(),
            401 | 403 => "The receiver rejects the requests as unauthorised: check that it \
                          verifies signatures with the endpoint's current secret (was it \
                          rotated?) and accepts the webhook-* headers."
                .into(),
            404 | 405 | 410 => {
                "The receiver answers that the URL does not exist: check the path.".into()
            }
            413 => "The receiver refuses the payload size: raise its body limit.".into(),
            429 => "The receiver is rate limiting: set rate_limit_per_s on the endpoint below \
                    what it accepts."
                .into(),
            500..=599 => "The receiver answers with server errors: check its logs.".into(),
            s => format!("The receiver answers {s}: any 2xx counts as success."),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::{EndpointSecret, SecretSet};

    fn endpoint() -> Endpoint {
        Endpoint {
            id: "ep_1".into(),
            tenant_id: "tn_1".into(),
            url: "https://example.com".into(),
            description: String::new(),
            event_types: vec!["*".into()],
            channels: vec![],
            secrets: SecretSet::new(EndpointSecret::generate()),
            headers: Default::default(),
            timeout_ms: None,
            rate_limit_per_s: None,
            disabled: false,
            metadata: Default::default(),
            retry_schedule: None,
            source_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            health: Default::default(),
        }
    }

    #[test]
    fn healthy_without_failures() {
        let h = assess(&endpoint(), &RecentAttempts::default(), 5);
        assert_eq!(h.status, HealthStatus::Healthy);
        assert!(h.recommendations.is_empty());
    }

    #[test]
    fn failing_after_the_threshold_with_advice() {
        let mut ep = endpoint();
        ep.health.consecutive_failures = 5;
        ep.health.failing_since = Some(Utc::now());
        let recent = RecentAttempts {
            total: 5,
            failed: 5,
            last_error_kind: Some(AttemptErrorKind::HttpStatus),
            last_status: Some(401),
            timeout_ms: 15000,
        };
        let h = assess(&ep, &recent, 5);
        assert_eq!(h.status, HealthStatus::Failing);
        assert!(
            h.recommendations[0].contains("secret"),
            "{:?}",
            h.recommendations
        );
    }

    #[test]
    fn degraded_on_a_high_recent_failure_rate() {
        let recent = RecentAttempts {
            total: 10,
            failed: 2,
            last_error_kind: Some(AttemptErrorKind::Timeout),
            last_status: None,
            timeout_ms: 1000,
        };
        let h = assess(&endpoint(), &recent, 5);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert!(h.recommendations[0].contains("1000 ms"));
    }

    #[test]
    fn disabled_wins() {
        let mut ep = endpoint();
        ep.disabled = true;
        assert_eq!(
            assess(&ep, &RecentAttempts::default(), 5).status,
            HealthStatus::Disabled
        );
    }
}
