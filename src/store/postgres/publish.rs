//! Publishes on PostgreSQL, committed in batches (`batch.rs`): a batch of events and all
//! their deliveries is one statement (`UNNEST`), so one round trip and one commit.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::postgres::PgPool;

use super::batch::BatchWrite;
use super::{StoreError, any_unleased, backend, created_deliveries, event_row, query};
use crate::domain::Event;
use crate::store::columns::{EVENT_COLUMNS, json, ms};
use crate::store::{NewDelivery, PublishOutcome, Result};

/// One publish: the event and the deliveries to create with it.
pub type Job = (Event, Vec<NewDelivery>);

pub struct PublishWrite {
    /// Called after a batch that created deliveries no instance holds in memory.
    pub announce: Arc<dyn Fn() + Send + Sync>,
}

impl BatchWrite for PublishWrite {
    type Job = Job;
    type Out = PublishOutcome;

    async fn write(&self, pool: &PgPool, jobs: &[Job]) -> Result<Vec<Result<PublishOutcome>>> {
        let inserted = insert(pool, jobs).await?;
        if jobs.iter().any(|(_, deliveries)| any_unleased(deliveries)) {
            (self.announce)();
        }
        let mut answers = Vec::with_capacity(jobs.len());
        for (event, deliveries) in jobs {
            answers.push(if inserted.contains(&event.id) {
                Ok(PublishOutcome::Created {
                    event: event.clone(),
                    deliveries: created_deliveries(
                        &event.tenant_id,
                        (&event.id, &event.event_type),
                        deliveries,
                        ms(event.created_at),
                    ),
                })
            } else {
                // Its idempotency key was taken, before or earlier in this batch.
                existing(pool, event).await
            });
        }
        Ok(answers)
    }
}

/// Inserts the batch's events (skipping those whose idempotency key is taken) and the
/// deliveries of those inserted; returns the ids of the events inserted.
async fn insert(pool: &PgPool, batch: &[Job]) -> Result<HashSet<String>> {
    let events = batch.iter().map(|(event, _)| event);
    let ev_ids: Vec<&str> = events.clone().map(|e| e.id.as_str()).collect();
    let ev_tenants: Vec<&str> = events.clone().map(|e| e.tenant_id.as_str()).collect();
    let ev_types: Vec<&str> = events.clone().map(|e| e.event_type.as_str()).collect();
    let ev_payloads: Vec<&str> = events.clone().map(|e| e.payload.as_str()).collect();
    let ev_channels: Vec<String> = events.clone().map(|e| json(&e.channels)).collect();
    let ev_keys: Vec<Option<&str>> = events
        .clone()
        .map(|e| e.idempotency_key.as_deref())
        .collect();
    let ev_at: Vec<i64> = events.map(|e| ms(e.created_at)).collect();

    let mut d_ids = Vec::new();
    let mut d_tenants = Vec::new();
    let mut d_events = Vec::new();
    let mut d_endpoints = Vec::new();
    let mut d_types = Vec::new();
    let mut d_at = Vec::new();
    let mut d_owners = Vec::new();
    let mut d_untils = Vec::new();
    for (event, deliveries) in batch {
        for d in deliveries {
            d_ids.push(d.id.as_str());
            d_tenants.push(event.tenant_id.as_str());
            d_events.push(event.id.as_str());
            d_endpoints.push(d.endpoint_id.as_str());
            d_types.push(event.event_type.as_str());
            d_at.push(ms(event.created_at));
            d_owners.push(d.lease.as_ref().map(|l| l.owner.as_str()));
            d_untils.push(d.lease.as_ref().map(|l| ms(l.until)));
        }
    }
    let inserted: Vec<String> = sqlx::query_scalar(
        "WITH ev AS (
             INSERT INTO events (id, tenant_id, event_type, payload, channels, idempotency_key,
                                 created_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::int8[])
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL
             DO NOTHING
             RETURNING id),
         d AS (
             INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status,
                 attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
             SELECT u.id, u.tenant_id, u.event_id, u.endpoint_id, u.event_type, 'pending', 0,
                    u.at, u.owner, u.until, u.at, u.at
               FROM UNNEST($8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                           $13::int8[], $14::text[], $15::int8[])
                    AS u(id, tenant_id, event_id, endpoint_id, event_type, at, owner, until)
              WHERE u.event_id IN (SELECT id FROM ev)
             RETURNING 1)
         SELECT id FROM ev",
    )
    .bind(&ev_ids)
    .bind(&ev_tenants)
    .bind(&ev_types)
    .bind(&ev_payloads)
    .bind(&ev_channels)
    .bind(&ev_keys)
    .bind(&ev_at)
    .bind(&d_ids)
    .bind(&d_tenants)
    .bind(&d_events)
    .bind(&d_endpoints)
    .bind(&d_types)
    .bind(&d_at)
    .bind(&d_owners)
    .bind(&d_untils)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    Ok(inserted.into_iter().collect())
}

/// The event that already holds `event`'s idempotency key.
async fn existing(pool: &PgPool, event: &Event) -> Result<PublishOutcome> {
    let row = query(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(&event.tenant_id)
    .bind(&event.idempotency_key)
    .fetch_optional(pool)
    .await
    .map_err(backend)?;
    let first = row
        .as_ref()
        .map(event_row)
        .transpose()
        .map_err(backend)?
        .ok_or_else(|| StoreError::Corrupt("idempotent event vanished".into()))?;
    Ok(PublishOutcome::Existing(first))
}
