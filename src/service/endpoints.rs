//! Endpoints: validation of what a subscriber registers, secrets and their rotation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Result, Service, ServiceError};
use crate::delivery::worker::is_reserved_header;
use crate::domain::duration::parse_duration_list;
use crate::domain::filter::EventTypeFilter;
use crate::domain::names::parse_event_type_name;
use crate::domain::secret::{EndpointSecret, SecretSet};
use crate::domain::url::EndpointUrl;
use crate::domain::{Endpoint, Invalid, Page, PageRequest, Principal, ids};

/// What a subscriber sends to create an endpoint.
#[derive(Debug, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub channels: Option<Vec<String>>,
    pub secret: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_s: Option<u32>,
    pub disabled: Option<bool>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub retry_schedule: Option<Vec<String>>,
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears an optional one.
#[derive(Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub channels: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<Option<u64>>,
    pub rate_limit_per_s: Option<Option<u32>>,
    pub disabled: Option<bool>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub retry_schedule: Option<Option<Vec<String>>>,
}

const MAX_TIMEOUT_MS: u64 = 120_000;

fn check_timeout(t: Option<u64>) -> Result<Option<u64>, Invalid> {
    match t {
        Some(ms) if !(100..=MAX_TIMEOUT_MS).contains(&ms) => Err(Invalid::new(
            "invalid_timeout",
            format!("timeout_ms must be between 100 and {MAX_TIMEOUT_MS}"),
        )),
        t => Ok(t),
    }
}

fn check_rate(r: Option<u32>) -> Result<Option<u32>, Invalid> {
    match r {
        Some(0) => Err(Invalid::new(
            "invalid_rate_limit",
            "rate_limit_per_s must be at least 1 (omit it for no limit)",
        )),
        r => Ok(r),
    }
}

fn check_channels(channels: Vec<String>) -> Result<Vec<String>, Invalid> {
    if channels.len() > 10 {
        return Err(Invalid::new("invalid_channels", "at most 10 channels"));
    }
    for c in &channels {
        parse_event_type_name(c).map_err(|_| {
            Invalid::new(
                "invalid_channels",
                "channels are 1-128 letters, digits, `_`, `-` or `.`",
            )
        })?;
    }
    Ok(channels)
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Invalid> {
    if headers.len() > 20 {
        return Err(Invalid::new("invalid_header", "at most 20 custom headers"));
    }
    for (name, value) in &headers {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Invalid::new(
                "invalid_header",
                format!("`{name}` is not a valid header name"),
            ));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return Err(Invalid::new(
                "invalid_header",
                format!("the value of `{name}` is not a valid header value"),
            ));
        }
        if is_reserved_header(name) {
            return Err(Invalid::new(
                "invalid_header",
                format!("`{name}` is set by hookrelay and cannot be overridden"),
            ));
        }
    }
    Ok(headers)
}

fn check_retry_schedule(s: Option<Vec<String>>) -> Result<Option<Vec<String>>, Invalid> {
    let Some(s) = s else { return Ok(None) };
    if s.len() > 20 {
        return Err(Invalid::new("invalid_retry_schedule", "at most 20 retries"));
    }
    let parsed = parse_duration_list(&s).map_err(|e| Invalid::new("invalid_retry_schedule", e))?;
    if parsed.iter().any(|d| d.as_secs() > 7 * 86_400) {
        return Err(Invalid::new(
            "invalid_retry_schedule",
            "each retry delay must be at most 7d",
        ));
    }
    Ok(Some(s))
}

fn check_text(field: &'static str, s: String, max: usize) -> Result<String, Invalid> {
    if s.len() > max {
        return Err(Invalid::new(
            "invalid_description",
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(s)
}

/// The endpoint of a source's HTTP destination changes only with its source (its secret may
/// still be read and rotated here).
fn managed_by_source(ep: &Endpoint) -> Result<()> {
    match &ep.source_id {
        Some(source) => Err(ServiceError::Conflict {
            code: "managed_by_source",
            message: format!(
                "this endpoint delivers for source {source}: change the source's destinations instead"
            ),
        }),
        None => Ok(()),
    }
}

impl Service {
    pub(super) fn check_url(&self, url: &str) -> Result<String, Invalid> {
        let url = EndpointUrl::parse(url, self.policy.https_only)?;
        if let Some(ip) = url.ip_literal()
            && !self.policy.addresses.allows(ip)
        {
            return Err(Invalid::new(
                "url_blocked",
                format!(
                    "{ip} is a private, loopback or otherwise special address; deliveries may not reach it"
                ),
            ));
        }
        Ok(url.as_str().to_string())
    }

    /// Exact names in a filter must be registered, so that a typo does not silently match nothing.
    async fn check_filter(&self, event_types: &[String]) -> Result<Vec<String>> {
        let filter = EventTypeFilter::parse(event_types)?;
        for name in filter.exact_names() {
            match self.store.get_event_type(name).await? {
                Some(_) => {}
                None => {
                    return Err(Invalid::new(
                        "unknown_event_type",
                        format!("event type `{name}` is not registered"),
                    )
                    .into());
                }
            }
        }
        Ok(event_types.to_vec())
    }

    pub async fn create_endpoint(
        &self,
        who: &Principal,
        tenant_ref: &str,
        new: NewEndpoint,
    ) -> Result<Endpoint> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        let secret = match new.secret {
            Some(s) => EndpointSecret::parse(&s)?,
            None => EndpointSecret::generate(),
        };
        let now = Utc::now();
        let endpoint = Endpoint {
            id: ids::new_id(ids::ENDPOINT),
            tenant_id: tenant.id,
            url: self.check_url(&new.url)?,
            description: check_text("description", new.description.unwrap_or_default(), 4096)?,
            event_types: self.check_filter(&new.event_types).await?,
            channels: check_channels(new.channels.unwrap_or_default())?,
            secrets: SecretSet::new(secret),
            headers: check_headers(new.headers.unwrap_or_default())?,
            timeout_ms: check_timeout(new.timeout_ms)?,
            rate_limit_per_s: check_rate(new.rate_limit_per_s)?,
            disabled: new.disabled.unwrap_or(false),
            metadata: new.metadata.unwrap_or_default(),
            retry_schedule: check_retry_schedule(new.retry_schedule)?,
            source_id: None,
            created_at: now,
            updated_at: now,
            health: Default::default(),
        };
        self.store.create_endpoint(endpoint.clone()).await?;
        Ok(endpoint)
    }

    pub async fn get_endpoint(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
    ) -> Result<Endpoint> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        self.store
            .get_endpoint(&tenant.id, id)
            .await?
            .ok_or(ServiceError::NotFound("endpoint"))
    }

    pub async fn list_endpoints(
        &self,
        who: &Principal,
        tenant_ref: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Endpoint>> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Ok(self.store.list_endpoints(&tenant.id, page).await?)
    }

    pub async fn update_endpoint(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
        changes: EndpointChanges,
    ) -> Result<Endpoint> {
        let mut ep = self.get_endpoint(who, tenant_ref, id).await?;
        managed_by_source(&ep)?;
        if let Some(url) = changes.url {
            ep.url = self.check_url(&url)?;
        }
        if let Some(types) = changes.event_types {
            ep.event_types = self.check_filter(&types).await?;
        }
        if let Some(d) = changes.description {
            ep.description = check_text("description", d, 4096)?;
        }
        if let Some(c) = changes.channels {
            ep.channels = check_channels(c)?;
        }
        if let Some(h) = changes.headers {
            ep.headers = check_headers(h)?;
        }
        if let Some(t) = changes.timeout_ms {
            ep.timeout_ms = check_timeout(t)?;
        }
        if let Some(r) = changes.rate_limit_per_s {
            ep.rate_limit_per_s = check_rate(r)?;
        }
        if let Some(d) = changes.disabled {
            ep.disabled = d;
            if !d {
                ep.health.disabled_reason = None;
                ep.health.disabled_at = None;
            }
        }
        if let Some(m) = changes.metadata {
            ep.metadata = m;
        }
        if let Some(s) = changes.retry_schedule {
            ep.retry_schedule = check_retry_schedule(s)?;
        }
        ep.updated_at = Utc::now();
        if !self.store.update_endpoint(ep.clone()).await? {
            return Err(ServiceError::NotFound("endpoint"));
        }
        // Re-read: the store owns the health counters (re-enabling resets them).
        self.get_endpoint(who, tenant_ref, id).await
    }

    pub async fn delete_endpoint(&self, who: &Principal, tenant_ref: &str, id: &str) -> Result<()> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        if let Some(ep) = self.store.get_endpoint(&tenant.id, id).await? {
            managed_by_source(&ep)?;
        }
        if !self.store.delete_endpoint(&tenant.id, id).await? {
            return Err(ServiceError::NotFound("endpoint"));
        }
        Ok(())
    }

    /// Makes a new secret current; the old one keeps signing until the grace ends.
    /// Returns when the grace ends.
    pub async fn rotate_secret(
        &self,
        who: &Principal,
        tenant_ref: &str,
        id: &str,
        grace_s: Option<u64>,
        next: Option<String>,
    ) -> Result<DateTime<Utc>> {
        let mut ep = self.get_endpoint(who, tenant_ref, id).await?;
        let next = match next {
            Some(s) => EndpointSecret::parse(&s)?,
            None => EndpointSecret::generate(),
        };
        let grace = match grace_s {
            Some(s) if s > 7 * 86_400 => {
                return Err(Invalid::new(
                    "invalid_grace",
                    "grace_s must be at most 604800 (7 days)",
                )
                .into());
            }
            Some(s) => chrono::Duration::seconds(s as i64),
            None => chrono::Duration::from_std(self.policy.rotation_grace).unwrap_or_default(),
        };
        let now = Utc::now();
        ep.secrets.rotate(next, now, grace);
        ep.updated_at = now;
        if !self.store.update_endpoint(ep).await? {
            return Err(ServiceError::NotFound("endpoint"));
        }
        Ok(now + grace)
    }
}
