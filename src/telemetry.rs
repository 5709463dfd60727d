//! Logs (tracing) and metrics (Prometheus). Secrets never reach either: domain types that hold
//! them redact themselves in `Debug`, and no code logs a request body or a header value.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::Store;

/// Installs the process-wide metrics recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("webhook_delivery_duration_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .expect("static buckets")
                .set_buckets_for_metric(
                    Matcher::Full("webhook_inbound_verify_duration_seconds".into()),
                    &[
                        0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
                        0.001, 0.002_5, 0.005, 0.01, 0.05,
                    ],
                )
                .expect("static buckets")
                .install_recorder()
                .expect("only this function installs a metrics recorder")
        })
        .clone()
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only what is printed for the operator (the
    // generated admin key).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Sets the queue gauges from the store: `webhook_queue_depth` (pending deliveries) and
/// `webhook_oldest_pending_age_seconds`. Called on every scrape, so they are never stale.
pub async fn update_queue_gauges(store: &dyn Store) {
    match store.queue_stats().await {
        Ok(stats) => {
            metrics::gauge!("webhook_queue_depth").set(stats.pending as f64);
            let age = stats
                .oldest_pending_at
                .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics::gauge!("webhook_oldest_pending_age_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "queue statistics unavailable"),
    }
}
