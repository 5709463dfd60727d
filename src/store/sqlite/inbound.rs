//! Inbound sources in the embedded store: sources, hidden endpoints of their HTTP
//! destinations, the request log and dedup keys. An accepted request's dedup check, log row,
//! events and deliveries are one job of the group-commit writer, so they commit together.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::rows::*;
use super::*;
use crate::domain::source::{InboundOutcome, InboundRequestLog, Source, SourceActivity};
use crate::inbound::{SourceSecret, SourceSettings};

fn json_col<T: serde::de::DeserializeOwned>(r: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn source_row(r: &Row<'_>) -> rusqlite::Result<Source> {
    let settings: SourceSettings = json_col(r, 3)?;
    let token: Option<String> = r.get(8)?;
    let token_at: Option<i64> = r.get(9)?;
    Ok(Source {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        settings,
        allowed_event_types: json_col(r, 4)?,
        destinations: json_col(r, 5)?,
        enabled: r.get(6)?,
        dedup_window_s: r.get::<_, i64>(7)?.max(0) as u64,
        unconfirmed_token: token
            .map(|t| (SourceSecret::new(t), from_ms(token_at.unwrap_or_default()))),
        created_at: from_ms(r.get(10)?),
        updated_at: from_ms(r.get(11)?),
    })
}

fn request_row(r: &Row<'_>) -> rusqlite::Result<InboundRequestLog> {
    let outcome: String = r.get(4)?;
    Ok(InboundRequestLog {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        source_id: r.get(2)?,
        received_at: from_ms(r.get(3)?),
        outcome: InboundOutcome::parse(&outcome).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                Type::Text,
                format!("outcome {outcome}").into(),
            )
        })?,
        reason: r.get(5)?,
        provider_event_id: r.get(6)?,
        event_type: r.get(7)?,
        dedup_key: r.get(8)?,
        headers: json_col(r, 9)?,
        body: r.get(10)?,
        body_bytes: r.get::<_, i64>(11)?.max(0) as u64,
        routed_events: json_col(r, 12)?,
        routing_error: r.get(13)?,
    })
}

fn insert_request(c: &Connection, q: &InboundRequestLog) -> rusqlite::Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO inbound_requests ({REQUEST_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?
    .execute(params![
        q.id,
        q.tenant_id,
        q.source_id,
        ms(q.received_at),
        q.outcome.as_str(),
        q.reason,
        q.provider_event_id,
        q.event_type,
        q.dedup_key,
        json(&q.headers),
        q.body,
        q.body_bytes as i64,
        json(&q.routed_events),
        q.routing_error
    ])?;
    Ok(())
}

fn insert_source(c: &Connection, s: &Source) -> rusqlite::Result<()> {
    let (token, token_at) = match &s.unconfirmed_token {
        Some((t, at)) => (Some(t.expose()), Some(ms(*at))),
        None => (None, None),
    };
    c.prepare_cached(&format!(
        "INSERT INTO sources ({SOURCE_COLUMNS}, provider) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        s.id,
        s.tenant_id,
        s.name,
        json(&s.settings),
        json(&s.allowed_event_types),
        json(&s.destinations),
        s.enabled,
        s.dedup_window_s as i64,
        token,
        token_at,
        ms(s.created_at),
        ms(s.updated_at),
        s.provider()
    ])?;
    Ok(())
}

/// Writes the user-editable fields; the unconfirmed token is the receive path's own.
fn update_source(c: &Connection, s: &Source) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "UPDATE sources SET name = ?3, settings = ?4, allowed_event_types = ?5, destinations = ?6,
            enabled = ?7, dedup_window_s = ?8, updated_at = ?9, provider = ?10
         WHERE id = ?1 AND tenant_id = ?2",
    )?
    .execute(params![
        s.id,
        s.tenant_id,
        s.name,
        json(&s.settings),
        json(&s.allowed_event_types),
        json(&s.destinations),
        s.enabled,
        s.dedup_window_s as i64,
        ms(s.updated_at),
        s.provider()
    ])
}

/// Deletes hidden endpoints of a source (all when `ids` is `None`) and cancels their pending
/// deliveries.
fn remove_hidden_endpoints(
    c: &Connection,
    tenant_id: &str,
    source_id: &str,
    ids: Option<&[String]>,
    now: i64,
) -> rusqlite::Result<()> {
    let targets: Vec<String> = match ids {
        Some(ids) => ids.to_vec(),
        None => c
            .prepare_cached("SELECT id FROM endpoints WHERE tenant_id = ?1 AND source_id = ?2")?
            .query_map([tenant_id, source_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?,
    };
    for id in targets {
        let n = c
            .prepare_cached(
                "DELETE FROM endpoints WHERE tenant_id = ?1 AND id = ?2 AND source_id = ?3",
            )?
            .execute(params![tenant_id, id, source_id])?;
        if n > 0 {
            c.prepare_cached(
                "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL,
                    lease_owner = NULL, lease_until = NULL, last_error = 'source destination removed',
                    updated_at = ?3
                 WHERE endpoint_id = ?2 AND tenant_id = ?1 AND status = 'pending'",
            )?
            .execute(params![tenant_id, id, now])?;
        }
    }
    Ok(())
}

fn insert_event(c: &Connection, event: &Event) -> rusqlite::Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        event.id,
        event.tenant_id,
        event.event_type,
        event.payload,
        json(&event.channels),
        event.idempotency_key,
        ms(event.created_at)
    ])?;
    Ok(())
}

fn accept(c: &Connection, accept: InboundAccept) -> rusqlite::Result<InboundAccepted> {
    let InboundAccept {
        mut request,
        dedup,
        events,
        batch_items,
    } = accept;
    let received = ms(request.received_at);
    if let Some(d) = &dedup {
        let mut first = None;
        let mut all_seen = !d.keys.is_empty();
        for key in &d.keys {
            let seen: Option<String> = c
                .prepare_cached(
                    "SELECT request_id FROM inbound_dedup
                     WHERE source_id = ?1 AND key = ?2 AND received_at >= ?3",
                )?
                .query_row(params![request.source_id, key, ms(d.since)], |r| r.get(0))
                .optional()?;
            match seen {
                Some(id) => first = first.or(Some(id)),
                None => all_seen = false,
            }
        }
        if let (true, Some(first_request_id)) = (all_seen, first) {
            request.outcome = InboundOutcome::Duplicate;
            request.routed_events = Vec::new();
            request.routing_error = None;
            insert_request(c, &request)?;
            return Ok(InboundAccepted::Duplicate {
                request,
                first_request_id,
            });
        }
        // Keys past the window can never match again.
        c.prepare_cached("DELETE FROM inbound_dedup WHERE source_id = ?1 AND received_at < ?2")?
            .execute(params![request.source_id, ms(d.since)])?;
        for key in &d.keys {
            c.prepare_cached(
                "INSERT INTO inbound_dedup (source_id, key, request_id, received_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source_id, key) DO UPDATE
                    SET request_id = excluded.request_id, received_at = excluded.received_at",
            )?
            .execute(params![request.source_id, key, request.id, received])?;
        }
    }
    let mut stored = Vec::with_capacity(events.len());
    for (event, deliveries) in events {
        insert_event(c, &event)?;
        let now = ms(event.created_at);
        let created = deliveries
            .iter()
            .map(|d| {
                super::insert_delivery(c, &event.tenant_id, (&event.id, &event.event_type), d, now)
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        stored.push((event, created));
    }
    for item in &batch_items {
        c.prepare_cached(
            "INSERT INTO inbound_batch_items
                (tenant_id, endpoint_id, event_id, batch_type, max_events, window_ms, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            item.tenant_id,
            item.endpoint_id,
            item.event_id,
            item.batch_type,
            item.max_events as i64,
            item.window_ms as i64,
            ms(item.created_at)
        ])?;
    }
    insert_request(c, &request)?;
    Ok(InboundAccepted::Stored {
        request,
        events: stored,
    })
}

/// Whether an endpoint's waiting items make a batch at `now`: as many as the oldest item's
/// `max_events`, or the oldest at least its `window_ms` old.
const DUE_BATCHES: &str = "SELECT tenant_id, endpoint_id FROM inbound_batch_items i
    WHERE id = (SELECT min(id) FROM inbound_batch_items o WHERE o.endpoint_id = i.endpoint_id)
      AND (created_at + window_ms <= ?1
           OR (SELECT count(*) FROM inbound_batch_items n WHERE n.endpoint_id = i.endpoint_id)
              >= max_events)";

fn flush_batch(c: &Connection, f: BatchFlush) -> rusqlite::Result<Option<(Event, Delivery)>> {
    let now = ms(f.now);
    let oldest: Option<(String, i64, i64, i64)> = c
        .prepare_cached(
            "SELECT batch_type, max_events, window_ms, created_at FROM inbound_batch_items
             WHERE endpoint_id = ?1 AND tenant_id = ?2 ORDER BY id LIMIT 1",
        )?
        .query_row([&f.endpoint_id, &f.tenant_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((batch_type, max_events, window_ms, oldest_at)) = oldest else {
        return Ok(None);
    };
    let items: Vec<(i64, String)> = c
        .prepare_cached(
            "SELECT i.id, e.payload FROM inbound_batch_items i
             JOIN events e ON e.id = i.event_id AND e.tenant_id = i.tenant_id
             WHERE i.endpoint_id = ?1 AND i.tenant_id = ?2 ORDER BY i.id LIMIT ?3",
        )?
        .query_map(
            params![f.endpoint_id, f.tenant_id, max_events.max(1)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    if items.is_empty() || ((items.len() as i64) < max_events && oldest_at + window_ms > now) {
        return Ok(None);
    }
    let last = items.last().map(|(id, _)| *id).unwrap_or_default();
    c.prepare_cached(
        "DELETE FROM inbound_batch_items WHERE endpoint_id = ?1 AND tenant_id = ?2 AND id <= ?3",
    )?
    .execute(params![f.endpoint_id, f.tenant_id, last])?;
    let payloads: Vec<&str> = items.iter().map(|(_, p)| p.as_str()).collect();
    let event = Event {
        id: f.event_id,
        tenant_id: f.tenant_id,
        event_type: batch_type,
        payload: crate::domain::source::batch_payload(&payloads),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: f.now,
    };
    insert_event(c, &event)?;
    let delivery = super::insert_delivery(
        c,
        &event.tenant_id,
        (&event.id, &event.event_type),
        &f.delivery,
        now,
    )?;
    Ok(Some((event, delivery)))
}

impl SqliteStore {
    pub(super) async fn due_inbound_batches_impl(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DueBatch>> {
        self.read(move |c| {
            c.prepare_cached(DUE_BATCHES)?
                .query_map([ms(now)], |r| {
                    Ok(DueBatch {
                        tenant_id: r.get(0)?,
                        endpoint_id: r.get(1)?,
                    })
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn flush_inbound_batch_impl(
        &self,
        flush: BatchFlush,
    ) -> Result<Option<(Event, Delivery)>> {
        self.write(move |c| flush_batch(c, flush).map_err(backend))
            .await
    }

    pub(super) async fn create_source_impl(
        &self,
        source: Source,
        endpoints: Vec<Endpoint>,
    ) -> Result<()> {
        self.write(move |c| {
            insert_source(c, &source).map_err(backend)?;
            for ep in &endpoints {
                insert_endpoint(c, ep).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn get_source_impl(
        &self,
        tenant_id: Option<String>,
        id: &str,
    ) -> Result<Option<Source>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"
            ))?
            .query_row(params![id, tenant_id], source_row)
            .optional()
        })
        .await
    }

    pub(super) async fn list_sources_impl(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Source>> {
        let p = owned_page(page);
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            query_page(
                c,
                &format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = ?1"),
                &[&tenant_id],
                &as_page(&p),
                source_row,
                |s| s.id.clone(),
            )
        })
        .await
    }

    pub(super) async fn update_source_impl(
        &self,
        source: Source,
        add: Vec<Endpoint>,
        remove: Vec<String>,
    ) -> Result<bool> {
        self.write(move |c| {
            let n = update_source(c, &source).map_err(backend)?;
            if n == 0 {
                return Ok(false);
            }
            remove_hidden_endpoints(
                c,
                &source.tenant_id,
                &source.id,
                Some(&remove),
                ms(source.updated_at),
            )
            .map_err(backend)?;
            for ep in &add {
                insert_endpoint(c, ep).map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }

    pub(super) async fn delete_source_impl(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.write(move |c| {
            let exists = c
                .query_row(
                    "SELECT 1 FROM sources WHERE tenant_id = ?1 AND id = ?2",
                    [&tenant_id, &id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?
                .is_some();
            if !exists {
                return Ok(false);
            }
            remove_hidden_endpoints(c, &tenant_id, &id, None, ms(Utc::now())).map_err(backend)?;
            // The log and dedup keys go with it (foreign keys cascade).
            c.execute(
                "DELETE FROM sources WHERE tenant_id = ?1 AND id = ?2",
                [&tenant_id, &id],
            )
            .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn store_unconfirmed_token_impl(
        &self,
        tenant_id: &str,
        source_id: &str,
        token: String,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (tenant_id, source_id) = (tenant_id.to_string(), source_id.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE sources SET unconfirmed_token = ?3, unconfirmed_token_at = ?4
                 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant_id, source_id, token, ms(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn accept_inbound_impl(
        &self,
        request: InboundAccept,
    ) -> Result<InboundAccepted> {
        // Fails only when the store does (a duplicate is found, not violated).
        self.writer
            .write_unguarded(move |c| accept(c, request).map_err(backend))
            .await
    }

    pub(super) async fn log_inbound_impl(&self, request: InboundRequestLog) -> Result<()> {
        // A rejection stores nothing a provider relies on: losing it in a power cut loses
        // a log line, not an event.
        self.write_relaxed(move |c| insert_request(c, &request).map_err(backend))
            .await
    }

    pub(super) async fn list_inbound_requests_impl(
        &self,
        tenant_id: &str,
        source_id: &str,
        outcome: Option<InboundOutcome>,
        page: PageRequest<'_>,
    ) -> Result<Page<InboundRequestLog>> {
        let p = owned_page(page);
        let (tenant_id, source_id) = (tenant_id.to_string(), source_id.to_string());
        self.read(move |c| {
            let outcome = outcome.map(|o| o.as_str().to_string());
            let mut sql = format!(
                "SELECT {REQUEST_COLUMNS} FROM inbound_requests WHERE source_id = ?1 AND tenant_id = ?2"
            );
            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&source_id, &tenant_id];
            if let Some(o) = &outcome {
                args.push(o);
                sql.push_str(" AND outcome = ?3");
            }
            query_page(c, &sql, &args, &as_page(&p), request_row, |r| r.id.clone())
        })
        .await
    }

    pub(super) async fn source_backlog_impl(&self, source_id: &str) -> Result<u64> {
        let source_id = source_id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT (SELECT count(*) FROM deliveries
                         WHERE status = 'pending'
                           AND endpoint_id IN (SELECT id FROM endpoints WHERE source_id = ?1))
                      + (SELECT count(*) FROM inbound_batch_items
                         WHERE endpoint_id IN (SELECT id FROM endpoints WHERE source_id = ?1))",
            )?
            .query_row([source_id], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
        })
        .await
    }

    pub(super) async fn source_activity_impl(
        &self,
        tenant_id: &str,
        source_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceActivity> {
        let (tenant_id, source_id) = (tenant_id.to_string(), source_id.to_string());
        self.read(move |c| {
            let hour_ago = ms(now - Duration::hours(1));
            let day_ago = ms(now - Duration::days(1));
            let mut activity = SourceActivity {
                last_event_at: c
                    .prepare_cached(
                        "SELECT max(received_at) FROM inbound_requests
                         WHERE source_id = ?1 AND tenant_id = ?2 AND outcome = 'accepted'",
                    )?
                    .query_row([&source_id, &tenant_id], |r| r.get::<_, Option<i64>>(0))?
                    .map(from_ms),
                ..SourceActivity::default()
            };
            let mut by_outcome = BTreeMap::new();
            {
                let mut stmt = c.prepare_cached(
                    "SELECT outcome, count(*) FROM inbound_requests
                     WHERE source_id = ?1 AND tenant_id = ?2 AND received_at >= ?3 GROUP BY outcome",
                )?;
                let mut rows = stmt.query(params![source_id, tenant_id, hour_ago])?;
                while let Some(r) = rows.next()? {
                    by_outcome.insert(r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64);
                }
            }
            activity.events_last_hour = by_outcome.get("accepted").copied().unwrap_or_default();
            activity.requests_last_hour = by_outcome;
            {
                let mut stmt = c.prepare_cached(
                    "SELECT coalesce(reason, 'unknown'), count(*) FROM inbound_requests
                     WHERE source_id = ?1 AND tenant_id = ?2 AND outcome = 'rejected'
                       AND received_at >= ?3 GROUP BY reason",
                )?;
                let mut rows = stmt.query(params![source_id, tenant_id, day_ago])?;
                while let Some(r) = rows.next()? {
                    activity
                        .rejections_by_reason
                        .insert(r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64);
                }
            }
            let mut stmt = c.prepare_cached(
                "SELECT received_at, outcome, reason FROM inbound_requests
                 WHERE source_id = ?1 AND tenant_id = ?2 ORDER BY id DESC LIMIT 50",
            )?;
            let mut rows = stmt.query([&source_id, &tenant_id])?;
            while let Some(r) = rows.next()? {
                let outcome: String = r.get(1)?;
                if let Some(o) = InboundOutcome::parse(&outcome) {
                    activity
                        .recent
                        .push((from_ms(r.get(0)?), o, r.get(2)?));
                }
            }
            Ok(activity)
        })
        .await
    }
}
