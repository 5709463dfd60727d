//! Inbound sources on PostgreSQL: sources, hidden endpoints of their HTTP destinations, the
//! request log, dedup keys and batch items. An accepted request's dedup check, log row,
//! events and deliveries commit in one transaction, as on SQLite.
//!
//! Dedup across instances: a request claims its keys with an upsert that only takes a key
//! that is new or past the window. Two instances receiving the same webhook at once
//! serialise on the key's row: the second waits for the first to commit, then finds the
//! key taken and logs a duplicate.

use std::collections::BTreeMap;

use chrono::Duration;
use sqlx::postgres::PgPool;

use super::batch::BatchWrite;
use super::*;
use crate::domain::source::{InboundOutcome, InboundRequestLog, Source, SourceActivity};
use crate::inbound::{SourceSecret, SourceSettings};

type SqlResult<T> = std::result::Result<T, sqlx::Error>;

fn source_row(r: &PgRow) -> RowResult<Source> {
    let settings: SourceSettings = json_col(r, 3)?;
    let token: Option<String> = r.try_get(8)?;
    let token_at: Option<i64> = r.try_get(9)?;
    Ok(Source {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        settings,
        allowed_event_types: json_col(r, 4)?,
        destinations: json_col(r, 5)?,
        enabled: r.try_get(6)?,
        dedup_window_s: r.try_get::<i64, _>(7)?.max(0) as u64,
        unconfirmed_token: token
            .map(|t| (SourceSecret::new(t), from_ms(token_at.unwrap_or_default()))),
        created_at: time(r, 10)?,
        updated_at: time(r, 11)?,
    })
}

fn request_row(r: &PgRow) -> RowResult<InboundRequestLog> {
    let outcome: &str = r.try_get(4)?;
    Ok(InboundRequestLog {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        source_id: r.try_get(2)?,
        received_at: time(r, 3)?,
        outcome: InboundOutcome::parse(outcome).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "4".into(),
            source: format!("outcome {outcome}").into(),
        })?,
        reason: r.try_get(5)?,
        provider_event_id: r.try_get(6)?,
        event_type: r.try_get(7)?,
        dedup_key: r.try_get(8)?,
        headers: json_col(r, 9)?,
        body: r.try_get(10)?,
        body_bytes: r.try_get::<i64, _>(11)?.max(0) as u64,
        routed_events: json_col(r, 12)?,
        routing_error: r.try_get(13)?,
    })
}

async fn insert_request(c: &mut sqlx::PgConnection, q: &InboundRequestLog) -> SqlResult<()> {
    query(format!(
        "INSERT INTO inbound_requests ({REQUEST_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&q.id)
    .bind(&q.tenant_id)
    .bind(&q.source_id)
    .bind(ms(q.received_at))
    .bind(q.outcome.as_str())
    .bind(&q.reason)
    .bind(&q.provider_event_id)
    .bind(&q.event_type)
    .bind(&q.dedup_key)
    .bind(json(&q.headers))
    .bind(&q.body)
    .bind(q.body_bytes as i64)
    .bind(json(&q.routed_events))
    .bind(&q.routing_error)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn insert_source(c: &mut sqlx::PgConnection, s: &Source) -> SqlResult<()> {
    let (token, token_at) = match &s.unconfirmed_token {
        Some((t, at)) => (Some(t.expose().to_string()), Some(ms(*at))),
        None => (None, None),
    };
    query(format!(
        "INSERT INTO sources ({SOURCE_COLUMNS}, provider) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&s.id)
    .bind(&s.tenant_id)
    .bind(&s.name)
    .bind(json(&s.settings))
    .bind(json(&s.allowed_event_types))
    .bind(json(&s.destinations))
    .bind(s.enabled)
    .bind(s.dedup_window_s as i64)
    .bind(token)
    .bind(token_at)
    .bind(ms(s.created_at))
    .bind(ms(s.updated_at))
    .bind(s.provider())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Deletes hidden endpoints of a source (all when `ids` is `None`) and cancels their pending
/// deliveries.
async fn remove_hidden_endpoints(
    c: &mut sqlx::PgConnection,
    tenant_id: &str,
    source_id: &str,
    ids: Option<&[String]>,
) -> SqlResult<()> {
    let removed: Vec<String> = match ids {
        Some(ids) => {
            sqlx::query_scalar(
                "DELETE FROM endpoints WHERE tenant_id = $1 AND source_id = $2 AND id = ANY($3)
                 RETURNING id",
            )
            .bind(tenant_id)
            .bind(source_id)
            .bind(ids)
            .fetch_all(&mut *c)
            .await?
        }
        None => {
            sqlx::query_scalar(
                "DELETE FROM endpoints WHERE tenant_id = $1 AND source_id = $2 RETURNING id",
            )
            .bind(tenant_id)
            .bind(source_id)
            .fetch_all(&mut *c)
            .await?
        }
    };
    for id in removed {
        super::cancel_pending(c, tenant_id, &id, "source destination removed").await?;
    }
    Ok(())
}

async fn insert_event(c: &mut sqlx::PgConnection, event: &Event) -> SqlResult<()> {
    query(format!(
        "INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&event.id)
    .bind(&event.tenant_id)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(json(&event.channels))
    .bind(&event.idempotency_key)
    .bind(ms(event.created_at))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Claims the request's dedup keys; `Some(first request)` when every key was already taken
/// within the window (a duplicate), `None` when the request is new.
async fn claim_dedup_keys(
    c: &mut sqlx::PgConnection,
    source_id: &str,
    request_id: &str,
    received: i64,
    d: &DedupCheck,
) -> SqlResult<Option<String>> {
    if d.keys.is_empty() {
        return Ok(None);
    }
    let since = ms(d.since);
    // Keys past the window can never match again.
    sqlx::query("DELETE FROM inbound_dedup WHERE source_id = $1 AND received_at < $2")
        .bind(source_id)
        .bind(since)
        .execute(&mut *c)
        .await?;
    let taken: Vec<String> = sqlx::query_scalar(
        "INSERT INTO inbound_dedup (source_id, key, request_id, received_at)
         SELECT $1, k, $2, $3 FROM UNNEST($4::text[]) AS k
         ON CONFLICT (source_id, key) DO UPDATE
            SET request_id = excluded.request_id, received_at = excluded.received_at
          WHERE inbound_dedup.received_at < $5
         RETURNING key",
    )
    .bind(source_id)
    .bind(request_id)
    .bind(received)
    .bind(&d.keys)
    .bind(since)
    .fetch_all(&mut *c)
    .await?;
    if taken.is_empty() {
        let first: Option<String> = sqlx::query_scalar(
            "SELECT request_id FROM inbound_dedup WHERE source_id = $1 AND key = $2",
        )
        .bind(source_id)
        .bind(&d.keys[0])
        .fetch_optional(&mut *c)
        .await?;
        return Ok(first);
    }
    if taken.len() < d.keys.len() {
        // Partly seen: as on SQLite, every key now points at this request.
        sqlx::query(
            "UPDATE inbound_dedup SET request_id = $2, received_at = $3
              WHERE source_id = $1 AND key = ANY($4)",
        )
        .bind(source_id)
        .bind(request_id)
        .bind(received)
        .bind(&d.keys)
        .execute(&mut *c)
        .await?;
    }
    Ok(None)
}

async fn accept(c: &mut sqlx::PgConnection, accept: InboundAccept) -> SqlResult<InboundAccepted> {
    let InboundAccept {
        mut request,
        dedup,
        events,
        batch_items,
    } = accept;
    let received = ms(request.received_at);
    if let Some(d) = &dedup
        && let Some(first_request_id) =
            claim_dedup_keys(c, &request.source_id, &request.id, received, d).await?
    {
        request.outcome = InboundOutcome::Duplicate;
        request.routed_events = Vec::new();
        request.routing_error = None;
        insert_request(c, &request).await?;
        return Ok(InboundAccepted::Duplicate {
            request,
            first_request_id,
        });
    }
    let mut stored = Vec::with_capacity(events.len());
    for (event, deliveries) in events {
        insert_event(c, &event).await?;
        let created = super::insert_deliveries(
            c,
            &event.tenant_id,
            (&event.id, &event.event_type),
            &deliveries,
            ms(event.created_at),
        )
        .await?;
        stored.push((event, created));
    }
    for item in &batch_items {
        sqlx::query(
            "INSERT INTO inbound_batch_items
                (tenant_id, endpoint_id, event_id, batch_type, max_events, window_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&item.tenant_id)
        .bind(&item.endpoint_id)
        .bind(&item.event_id)
        .bind(&item.batch_type)
        .bind(item.max_events as i32)
        .bind(item.window_ms as i64)
        .bind(ms(item.created_at))
        .execute(&mut *c)
        .await?;
    }
    insert_request(c, &request).await?;
    Ok(InboundAccepted::Stored {
        request,
        events: stored,
    })
}

/// Accepted inbound requests, committed in batches (`batch.rs`): each request's dedup
/// check, log row, events and deliveries in turn, all in one transaction. A request
/// repeated within one batch finds the key its twin took, as it would a moment later.
pub(super) struct AcceptWrite {
    /// Called after a batch that created deliveries no instance holds in memory.
    pub announce: Arc<dyn Fn() + Send + Sync>,
}

impl BatchWrite for AcceptWrite {
    type Job = InboundAccept;
    type Out = InboundAccepted;

    async fn write(
        &self,
        pool: &PgPool,
        jobs: &[InboundAccept],
    ) -> Result<Vec<Result<InboundAccepted>>> {
        let mut tx = pool.begin().await.map_err(backend)?;
        let mut answers = Vec::with_capacity(jobs.len());
        let mut unleased = false;
        for job in jobs {
            let accepted = accept(&mut tx, job.clone()).await.map_err(backend)?;
            unleased |= matches!(accepted, InboundAccepted::Stored { .. })
                && job.events.iter().any(|(_, d)| any_unleased(d));
            answers.push(Ok(accepted));
        }
        tx.commit().await.map_err(backend)?;
        if unleased {
            (self.announce)();
        }
        Ok(answers)
    }
}

/// Whether an endpoint's waiting items make a batch at `now`: as many as the oldest item's
/// `max_events`, or the oldest at least its `window_ms` old.
const DUE_BATCHES: &str = "SELECT tenant_id, endpoint_id FROM inbound_batch_items i
    WHERE id = (SELECT min(id) FROM inbound_batch_items o WHERE o.endpoint_id = i.endpoint_id)
      AND (created_at + window_ms <= $1
           OR (SELECT count(*) FROM inbound_batch_items n WHERE n.endpoint_id = i.endpoint_id)
              >= max_events)";

async fn flush_batch(
    c: &mut sqlx::PgConnection,
    f: BatchFlush,
) -> SqlResult<Option<(Event, Delivery)>> {
    let now = ms(f.now);
    // Locking the oldest item makes concurrent flushes of one endpoint take turns.
    let oldest = sqlx::query(
        "SELECT batch_type, max_events, window_ms, created_at FROM inbound_batch_items
         WHERE endpoint_id = $1 AND tenant_id = $2 ORDER BY id LIMIT 1 FOR UPDATE",
    )
    .bind(&f.endpoint_id)
    .bind(&f.tenant_id)
    .fetch_optional(&mut *c)
    .await?;
    let Some(oldest) = oldest else {
        return Ok(None);
    };
    let batch_type: String = oldest.try_get(0)?;
    let max_events: i32 = oldest.try_get(1)?;
    let window_ms: i64 = oldest.try_get(2)?;
    let oldest_at: i64 = oldest.try_get(3)?;
    let items = sqlx::query(
        "SELECT i.id, e.payload FROM inbound_batch_items i
         JOIN events e ON e.id = i.event_id AND e.tenant_id = i.tenant_id
         WHERE i.endpoint_id = $1 AND i.tenant_id = $2 ORDER BY i.id LIMIT $3",
    )
    .bind(&f.endpoint_id)
    .bind(&f.tenant_id)
    .bind(i64::from(max_events.max(1)))
    .fetch_all(&mut *c)
    .await?;
    if items.is_empty()
        || ((items.len() as i64) < i64::from(max_events) && oldest_at + window_ms > now)
    {
        return Ok(None);
    }
    let ids = items
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<SqlResult<Vec<_>>>()?;
    let payloads = items
        .iter()
        .map(|r| r.try_get::<&str, _>(1))
        .collect::<SqlResult<Vec<_>>>()?;
    // By id, not `id <= last`: an item committed late with a smaller id is not taken.
    sqlx::query("DELETE FROM inbound_batch_items WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *c)
        .await?;
    let event = Event {
        id: f.event_id,
        tenant_id: f.tenant_id,
        event_type: batch_type,
        payload: crate::domain::source::batch_payload(&payloads),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: f.now,
    };
    insert_event(c, &event).await?;
    let delivery = super::insert_deliveries(
        c,
        &event.tenant_id,
        (&event.id, &event.event_type),
        std::slice::from_ref(&f.delivery),
        now,
    )
    .await?
    .pop()
    .expect("one delivery inserted");
    Ok(Some((event, delivery)))
}

impl PgStore {
    pub(super) async fn due_inbound_batches_impl(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DueBatch>> {
        self.fetch_all(sqlx::query(DUE_BATCHES).bind(ms(now)), |r| {
            Ok(DueBatch {
                tenant_id: r.try_get(0)?,
                endpoint_id: r.try_get(1)?,
            })
        })
        .await
    }

    pub(super) async fn flush_inbound_batch_impl(
        &self,
        flush: BatchFlush,
    ) -> Result<Option<(Event, Delivery)>> {
        let unleased = flush.delivery.lease.is_none();
        let mut tx = self.begin().await?;
        let flushed = flush_batch(&mut tx, flush).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        if unleased && flushed.is_some() {
            self.announce_due().await;
        }
        Ok(flushed)
    }

    pub(super) async fn create_source_impl(
        &self,
        source: Source,
        endpoints: Vec<Endpoint>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_source(&mut tx, &source).await.map_err(backend)?;
        for ep in &endpoints {
            insert_endpoint(&mut tx, ep).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    pub(super) async fn get_source_impl(
        &self,
        tenant_id: Option<&str>,
        id: &str,
    ) -> Result<Option<Source>> {
        self.fetch_optional(
            query(format!(
                "SELECT {SOURCE_COLUMNS} FROM sources
                 WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
            ))
            .bind(id)
            .bind(tenant_id),
            source_row,
        )
        .await
    }

    pub(super) async fn list_sources_impl(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Source>> {
        self.page(
            &format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = $1"),
            vec![tenant_id.to_string()],
            page,
            source_row,
            |s| s.id.clone(),
        )
        .await
    }

    pub(super) async fn update_source_impl(
        &self,
        s: Source,
        add: Vec<Endpoint>,
        remove: Vec<String>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        // The user-editable fields; the unconfirmed token is the receive path's own.
        let n = sqlx::query(
            "UPDATE sources SET name = $3, settings = $4, allowed_event_types = $5,
                destinations = $6, enabled = $7, dedup_window_s = $8, updated_at = $9,
                provider = $10
             WHERE id = $1 AND tenant_id = $2",
        )
        .bind(&s.id)
        .bind(&s.tenant_id)
        .bind(&s.name)
        .bind(json(&s.settings))
        .bind(json(&s.allowed_event_types))
        .bind(json(&s.destinations))
        .bind(s.enabled)
        .bind(s.dedup_window_s as i64)
        .bind(ms(s.updated_at))
        .bind(s.provider())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        remove_hidden_endpoints(&mut tx, &s.tenant_id, &s.id, Some(&remove))
            .await
            .map_err(backend)?;
        for ep in &add {
            insert_endpoint(&mut tx, ep).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    pub(super) async fn delete_source_impl(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let exists =
            sqlx::query("SELECT 1 FROM sources WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .is_some();
        if !exists {
            return Ok(false);
        }
        remove_hidden_endpoints(&mut tx, tenant_id, id, None)
            .await
            .map_err(backend)?;
        // The log and dedup keys go with it (foreign keys cascade).
        sqlx::query("DELETE FROM sources WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    pub(super) async fn store_unconfirmed_token_impl(
        &self,
        tenant_id: &str,
        source_id: &str,
        token: String,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sources SET unconfirmed_token = $3, unconfirmed_token_at = $4
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(source_id)
        .bind(token)
        .bind(ms(at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    pub(super) async fn accept_inbound_impl(
        &self,
        request: InboundAccept,
    ) -> Result<InboundAccepted> {
        // Group commit with the requests arriving meanwhile: see batch.rs.
        self.accepter.submit(request).await
    }

    pub(super) async fn log_inbound_impl(&self, request: InboundRequestLog) -> Result<()> {
        // A rejection stores nothing a provider relies on: losing it in a crash loses a log
        // line, not an event.
        let mut tx = self.begin_relaxed().await?;
        insert_request(&mut tx, &request).await.map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    pub(super) async fn list_inbound_requests_impl(
        &self,
        tenant_id: &str,
        source_id: &str,
        outcome: Option<InboundOutcome>,
        page: PageRequest<'_>,
    ) -> Result<Page<InboundRequestLog>> {
        let mut sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM inbound_requests WHERE source_id = $1 AND tenant_id = $2"
        );
        let mut binds = vec![source_id.to_string(), tenant_id.to_string()];
        if let Some(o) = outcome {
            binds.push(o.as_str().to_string());
            sql.push_str(" AND outcome = $3");
        }
        self.page(&sql, binds, page, request_row, |r| r.id.clone())
            .await
    }

    pub(super) async fn source_backlog_impl(&self, source_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM deliveries
                     WHERE status = 'pending'
                       AND endpoint_id IN (SELECT id FROM endpoints WHERE source_id = $1))
                  + (SELECT count(*) FROM inbound_batch_items
                     WHERE endpoint_id IN (SELECT id FROM endpoints WHERE source_id = $1))",
        )
        .bind(source_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n.max(0) as u64)
    }

    pub(super) async fn source_activity_impl(
        &self,
        tenant_id: &str,
        source_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceActivity> {
        let hour_ago = ms(now - Duration::hours(1));
        let day_ago = ms(now - Duration::days(1));
        let last_event_at: Option<i64> = sqlx::query_scalar(
            "SELECT max(received_at) FROM inbound_requests
             WHERE source_id = $1 AND tenant_id = $2 AND outcome = 'accepted'",
        )
        .bind(source_id)
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let mut activity = SourceActivity {
            last_event_at: last_event_at.map(from_ms),
            ..SourceActivity::default()
        };
        let by_outcome: BTreeMap<String, u64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT outcome, count(*) FROM inbound_requests
             WHERE source_id = $1 AND tenant_id = $2 AND received_at >= $3 GROUP BY outcome",
        )
        .bind(source_id)
        .bind(tenant_id)
        .bind(hour_ago)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|(o, n)| (o, n.max(0) as u64))
        .collect();
        activity.events_last_hour = by_outcome.get("accepted").copied().unwrap_or_default();
        activity.requests_last_hour = by_outcome;
        activity.rejections_by_reason = sqlx::query_as::<_, (String, i64)>(
            "SELECT coalesce(reason, 'unknown'), count(*) FROM inbound_requests
             WHERE source_id = $1 AND tenant_id = $2 AND outcome = 'rejected'
               AND received_at >= $3 GROUP BY reason",
        )
        .bind(source_id)
        .bind(tenant_id)
        .bind(day_ago)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|(r, n)| (r, n.max(0) as u64))
        .collect();
        let recent = sqlx::query_as::<_, (i64, String, Option<String>)>(
            "SELECT received_at, outcome, reason FROM inbound_requests
             WHERE source_id = $1 AND tenant_id = $2 ORDER BY id DESC LIMIT 50",
        )
        .bind(source_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        for (at, outcome, reason) in recent {
            if let Some(o) = InboundOutcome::parse(&outcome) {
                activity.recent.push((from_ms(at), o, reason));
            }
        }
        Ok(activity)
    }
}
