//! Publishing: an event is stored with one delivery per matching endpoint in a single
//! commit, then handed to the delivery engine. The caller hears back only after the commit.

use std::sync::Arc;

use chrono::Utc;

use super::{Result, Service, ServiceError};
use crate::domain::filter::{EventTypeFilter, channels_match};
use crate::domain::names::parse_event_type_name;
use crate::domain::{Delivery, Endpoint, Event, Invalid, Page, PageRequest, Principal, ids};
use crate::store::{DeliveryTask, NewDelivery, PublishOutcome};

pub struct NewEvent {
    pub event_type: String,
    /// The payload's JSON text exactly as received.
    pub payload: String,
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
}

pub struct Published {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
    /// True when an earlier publish with the same idempotency key is returned instead.
    pub replayed: bool,
}

fn check_payload(payload: &str) -> Result<(), Invalid> {
    if !payload.trim_start().starts_with('{') {
        return Err(Invalid::new(
            "invalid_payload",
            "payload must be a JSON object",
        ));
    }
    Ok(())
}

fn check_idempotency_key(key: &Option<String>) -> Result<(), Invalid> {
    match key {
        Some(k) if k.is_empty() || k.len() > 255 || k.chars().any(|c| c.is_control()) => {
            Err(Invalid::new(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 printable characters",
            ))
        }
        _ => Ok(()),
    }
}

fn check_channels(channels: &[String]) -> Result<(), Invalid> {
    if channels.len() > 10 || channels.iter().any(|c| parse_event_type_name(c).is_err()) {
        return Err(Invalid::new(
            "invalid_channels",
            "at most 10 channels of 1-128 letters, digits, `_`, `-` or `.`",
        ));
    }
    Ok(())
}

/// The endpoints of `candidates` that want an event of this type on these channels.
pub fn matching_endpoints<'a>(candidates: &'a [Endpoint], event: &Event) -> Vec<&'a Endpoint> {
    candidates
        .iter()
        .filter(|ep| !ep.disabled)
        .filter(|ep| {
            EventTypeFilter::parse(&ep.event_types).is_ok_and(|f| f.matches(&event.event_type))
        })
        .filter(|ep| channels_match(&ep.channels, &event.channels))
        .collect()
}

impl Service {
    pub async fn publish(
        &self,
        who: &Principal,
        tenant_ref: &str,
        new: NewEvent,
    ) -> Result<Published> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        check_payload(&new.payload)?;
        check_idempotency_key(&new.idempotency_key)?;
        check_channels(&new.channels)?;
        match self.store.get_event_type(&new.event_type).await? {
            None => {
                return Err(Invalid::new(
                    "unknown_event_type",
                    format!(
                        "event type `{}` is not registered",
                        crate::domain::names::truncate(&new.event_type, 128)
                    ),
                )
                .into());
            }
            Some(et) if et.archived => {
                return Err(Invalid::new(
                    "event_type_archived",
                    format!("event type `{}` is archived", et.name),
                )
                .into());
            }
            Some(_) => {}
        }
        let event = Event {
            id: ids::new_id(ids::EVENT),
            tenant_id: tenant.id.clone(),
            event_type: new.event_type,
            payload: new.payload,
            channels: new.channels,
            idempotency_key: new.idempotency_key,
            created_at: Utc::now(),
        };
        let endpoints = self.store.enabled_endpoints_shared(&tenant.id).await?;
        let targets = matching_endpoints(&endpoints, &event);
        self.store_and_dispatch(event, targets.iter().map(|e| e.id.clone()).collect())
            .await
    }

    async fn store_and_dispatch(
        &self,
        event: Event,
        endpoint_ids: Vec<String>,
    ) -> Result<Published> {
        let lease = self.queue.lease(event.created_at);
        let deliveries = endpoint_ids
            .into_iter()
            .map(|endpoint_id| NewDelivery {
                id: ids::new_id(ids::DELIVERY),
                endpoint_id,
                lease: lease.clone(),
            })
            .collect();
        match self.store.publish(event, deliveries).await? {
            PublishOutcome::Existing(event) => Ok(Published {
                event,
                deliveries: Vec::new(),
                replayed: true,
            }),
            PublishOutcome::Created { event, deliveries } => {
                let payload: Arc<str> = Arc::from(event.payload.as_str());
                self.queue.enqueue(
                    deliveries
                        .iter()
                        .map(|d| task_of(d, &event.id, &event.event_type, payload.clone()))
                        .collect(),
                );
                metrics::counter!("hookrelay_events_published_total").increment(1);
                Ok(Published {
                    event,
                    deliveries,
                    replayed: false,
                })
            }
        }
    }

    pub async fn get_event(&self, who: &Principal, tenant_ref: &str, id: &str) -> Result<Event> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        self.store
            .get_event(&tenant.id, id)
            .await?
            .ok_or(ServiceError::NotFound("event"))
    }

    pub async fn list_events(
        &self,
        who: &Principal,
        tenant_ref: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Event>> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Ok(self.store.list_events(&tenant.id, page).await?)
    }

    /// Sends an existing event again to one endpoint, as a new delivery.
    pub async fn resend(
        &self,
        who: &Principal,
        tenant_ref: &str,
        event_id: &str,
        endpoint_id: &str,
    ) -> Result<Delivery> {
        let event = self.get_event(who, tenant_ref, event_id).await?;
        let endpoint = self.get_endpoint(who, tenant_ref, endpoint_id).await?;
        if endpoint.disabled {
            return Err(ServiceError::Conflict {
                code: "endpoint_disabled",
                message: "the endpoint is disabled: enable it first".into(),
            });
        }
        let new = NewDelivery {
            id: ids::new_id(ids::DELIVERY),
            endpoint_id: endpoint.id,
            lease: self.queue.lease(Utc::now()),
        };
        let created = self
            .store
            .add_deliveries(&event.tenant_id, &event.id, vec![new])
            .await?;
        let payload: Arc<str> = Arc::from(event.payload.as_str());
        self.queue.enqueue(
            created
                .iter()
                .map(|d| task_of(d, &event.id, &event.event_type, payload.clone()))
                .collect(),
        );
        created
            .into_iter()
            .next()
            .ok_or(ServiceError::NotFound("delivery"))
    }

    /// Publishes the event type's sample to this endpoint only.
    pub async fn send_test(
        &self,
        who: &Principal,
        tenant_ref: &str,
        endpoint_id: &str,
        event_type: Option<String>,
    ) -> Result<Published> {
        let endpoint = self.get_endpoint(who, tenant_ref, endpoint_id).await?;
        if endpoint.disabled {
            return Err(ServiceError::Conflict {
                code: "endpoint_disabled",
                message: "the endpoint is disabled: enable it first".into(),
            });
        }
        let et = match event_type {
            Some(name) => self.store.get_event_type(&name).await?.ok_or_else(|| {
                ServiceError::Invalid(Invalid::new(
                    "unknown_event_type",
                    format!(
                        "event type `{}` is not registered",
                        crate::domain::names::truncate(&name, 128)
                    ),
                ))
            })?,
            None => {
                let filter = EventTypeFilter::parse(&endpoint.event_types)?;
                let mut found = None;
                for name in filter.exact_names() {
                    if let Some(et) = self.store.get_event_type(name).await? {
                        found = Some(et);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    ServiceError::Invalid(Invalid::new(
                        "event_type_required",
                        "the endpoint's filter names no registered event type: pass event_type",
                    ))
                })?
            }
        };
        let payload = et
            .sample
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "{}".to_string());
        let event = Event {
            id: ids::new_id(ids::EVENT),
            tenant_id: endpoint.tenant_id.clone(),
            event_type: et.name,
            payload,
            channels: Vec::new(),
            idempotency_key: None,
            created_at: Utc::now(),
        };
        self.store_and_dispatch(event, vec![endpoint.id]).await
    }
}

pub(super) fn task_of(
    d: &Delivery,
    event_id: &str,
    event_type: &str,
    payload: Arc<str>,
) -> DeliveryTask {
    DeliveryTask {
        delivery_id: d.id.clone(),
        tenant_id: d.tenant_id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        event_id: event_id.to_string(),
        event_type: event_type.to_string(),
        payload,
        attempts_made: d.attempts,
        due_at: d.next_attempt_at.unwrap_or(d.created_at),
    }
}
