//! Configuration: defaults → TOML file → `HOOKRELAY_*` environment → command-line flags.
//!
//! Every key of the file can also be set from the environment: a top-level key `listen` is
//! `HOOKRELAY_LISTEN`, a key `concurrency` of the `[delivery]` table is
//! `HOOKRELAY_DELIVERY_CONCURRENCY`. Lists (`allow_nets`, `retry_schedule`) are comma-separated
//! in the environment. `config/default.toml` documents every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

use crate::domain::duration::{parse_duration, parse_duration_list};

const ENV_PREFIX: &str = "HOOKRELAY_";
const SECTIONS: &[&str] = &[
    "api",
    "delivery",
    "health",
    "secrets",
    "inbound",
    "retention",
];
const LIST_KEYS: &[&str] = &["allow_nets", "retry_schedule"];
/// Keys whose environment value is a number or boolean; every other key stays a string
/// (an admin key made only of digits is still a string).
const TYPED_KEYS: &[&str] = &[
    "https_only",
    "max_body_bytes",
    "enabled",
    "concurrency",
    "max_response_body_bytes",
    "retry_jitter",
    "failing_after_failures",
    "max_pending_per_source",
    "max_pending_total",
    "max_logged_body_bytes",
    "database_pool_size",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite store.
    pub data_dir: PathBuf,
    /// A `postgres://` URL selects PostgreSQL instead of the embedded store.
    pub database_url: Option<String>,
    /// Most PostgreSQL connections this process opens.
    pub database_pool_size: u32,
    /// The admin bearer token. When unset, the first start generates one and prints it once.
    pub admin_key: Option<String>,
    /// CIDRs that outbound deliveries may reach despite the private-address block.
    pub allow_nets: Vec<String>,
    /// External base URL, used for source URLs.
    pub public_url: Option<String>,
    /// Refuse `http://` endpoint URLs.
    pub https_only: bool,
    /// Largest request body the API accepts, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// `text` or `json` log lines.
    pub log_format: String,
    pub api: ApiConfig,
    pub delivery: DeliveryConfig,
    pub health: HealthConfig,
    pub secrets: SecretsConfig,
    pub inbound: InboundConfig,
    pub retention: RetentionConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Events (with their deliveries and attempts), inbound request logs and operational
    /// events older than this are deleted; `0s` keeps everything. Work still pending is kept.
    pub max_age: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: "30d".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the tenant, admin and inbound API (false: only health, readiness and metrics).
    pub enabled: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Run delivery workers in this process.
    pub enabled: bool,
    /// Most HTTP attempts in flight at once.
    pub concurrency: usize,
    /// Default per-attempt timeout (an endpoint's `timeout_ms` overrides it).
    pub timeout: String,
    /// How long a claimed delivery stays owned by this instance without progress.
    pub lease: String,
    /// How often the store is polled for due deliveries that are not already scheduled here.
    pub poll_interval: String,
    /// Bytes of each response body kept in the attempt log.
    pub max_response_body_bytes: usize,
    /// Delays before each retry; the first attempt is immediate.
    pub retry_schedule: Vec<String>,
    /// Random spread applied to each retry delay, as a fraction (0.2 = ±20%).
    pub retry_jitter: f64,
    /// Upper bound on a receiver's `Retry-After`.
    pub retry_after_max: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// An endpoint failing without a single success for this long is disabled.
    pub auto_disable_after: String,
    /// Consecutive failed attempts after which an endpoint is `failing`.
    pub failing_after_failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Default grace period during which the old secret still signs after a rotation.
    pub rotation_grace: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Pending deliveries of a source's HTTP destinations beyond which `/in/{source}` answers
    /// 503 with `Retry-After` instead of accepting more.
    pub max_pending_per_source: u64,
    /// Pending deliveries of the whole installation beyond which every source answers 503
    /// with `Retry-After`.
    pub max_pending_total: u64,
    /// The `Retry-After` sent with that 503.
    pub backlog_retry_after: String,
    /// Bytes of each inbound request body kept in the source's request log.
    pub max_logged_body_bytes: usize,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            max_pending_per_source: 10_000,
            max_pending_total: 1_000_000,
            backlog_retry_after: "30s".into(),
            max_logged_body_bytes: 65_536,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            data_dir: PathBuf::from("./hookrelay-data"),
            database_url: None,
            database_pool_size: 16,
            admin_key: None,
            allow_nets: Vec::new(),
            public_url: None,
            https_only: false,
            max_body_bytes: 1024 * 1024,
            log_format: "text".into(),
            api: ApiConfig::default(),
            delivery: DeliveryConfig::default(),
            health: HealthConfig::default(),
            secrets: SecretsConfig::default(),
            inbound: InboundConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            concurrency: 256,
            timeout: "15s".into(),
            lease: "60s".into(),
            poll_interval: "1s".into(),
            max_response_body_bytes: 4096,
            retry_schedule: ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .map(String::from)
                .to_vec(),
            retry_jitter: 0.2,
            retry_after_max: "1h".into(),
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            auto_disable_after: "5d".into(),
            failing_after_failures: 5,
        }
    }
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            rotation_grace: "24h".into(),
        }
    }
}

/// The validated, typed view of [`Config`] that the rest of the program uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded store (`data_dir` is then unused).
    pub database_url: Option<String>,
    pub database_pool_size: u32,
    pub admin_key: Option<String>,
    pub allow_nets: Vec<IpNet>,
    pub public_url: Option<String>,
    pub https_only: bool,
    pub max_body_bytes: usize,
    pub log_format: String,
    pub api_enabled: bool,
    pub delivery_enabled: bool,
    pub concurrency: usize,
    pub default_timeout: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub max_response_body_bytes: usize,
    pub retry_schedule: Vec<Duration>,
    pub retry_jitter: f64,
    pub retry_after_max: Duration,
    pub auto_disable_after: Duration,
    pub failing_after_failures: u32,
    pub rotation_grace: Duration,
    pub inbound_max_pending: u64,
    pub inbound_max_pending_total: u64,
    pub inbound_retry_after: Duration,
    pub inbound_max_logged_body: usize,
    /// Added to the process clock when inbound signatures' timestamps are checked. Not a
    /// configuration key: zero in production; tests set it to verify providers' published
    /// vectors, whose timestamps are old.
    pub inbound_clock_offset: chrono::Duration,
    /// How old stored history may get before the retention job deletes it; `None` keeps it.
    pub retention_max_age: Option<Duration>,
    /// How often the retention job runs. Not a configuration key: tests shorten it.
    pub retention_interval: Duration,
}

impl Config {
    /// Loads defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Self::load_from(file, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if key == "CONFIG" {
                continue;
            }
            let key = key.to_ascii_lowercase();
            let (section, field) = split_section(&key);
            let value = env_value(field, &value);
            match section {
                Some(section) => {
                    let entry = table
                        .entry(section.to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    let toml::Value::Table(inner) = entry else {
                        bail!("config key `{section}` must be a table");
                    };
                    inner.insert(field.to_string(), value);
                }
                None => {
                    table.insert(field.to_string(), value);
                }
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        Ok(config)
    }

    pub fn settings(&self) -> anyhow::Result<Settings> {
        let database_url = self.database_url.clone().filter(|u| !u.trim().is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("database_url must be a postgres:// or postgresql:// URL");
        }
        if self.database_pool_size == 0 {
            bail!("database_pool_size must be at least 1");
        }
        let allow_nets = self
            .allow_nets
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_net(s.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let d = &self.delivery;
        if d.concurrency == 0 {
            bail!("delivery.concurrency must be at least 1");
        }
        if !(0.0..=1.0).contains(&d.retry_jitter) {
            bail!("delivery.retry_jitter must be between 0 and 1");
        }
        let duration =
            |name: &str, v: &str| parse_duration(v).map_err(|e| anyhow::anyhow!("{name}: {e}"));
        Ok(Settings {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url,
            database_pool_size: self.database_pool_size,
            admin_key: self.admin_key.clone().filter(|k| !k.is_empty()),
            allow_nets,
            public_url: self.public_url.clone(),
            https_only: self.https_only,
            max_body_bytes: self.max_body_bytes,
            log_format: self.log_format.clone(),
            api_enabled: self.api.enabled,
            delivery_enabled: d.enabled,
            concurrency: d.concurrency,
            default_timeout: duration("delivery.timeout", &d.timeout)?,
            lease: duration("delivery.lease", &d.lease)?,
            poll_interval: duration("delivery.poll_interval", &d.poll_interval)?,
            max_response_body_bytes: d.max_response_body_bytes,
            retry_schedule: parse_duration_list(&d.retry_schedule)
                .map_err(|e| anyhow::anyhow!("delivery.retry_schedule: {e}"))?,
            retry_jitter: d.retry_jitter,
            retry_after_max: duration("delivery.retry_after_max", &d.retry_after_max)?,
            auto_disable_after: duration(
                "health.auto_disable_after",
                &self.health.auto_disable_after,
            )?,
            failing_after_failures: self.health.failing_after_failures.max(1),
            rotation_grace: duration("secrets.rotation_grace", &self.secrets.rotation_grace)?,
            inbound_max_pending: self.inbound.max_pending_per_source,
            inbound_max_pending_total: self.inbound.max_pending_total,
            inbound_retry_after: duration(
                "inbound.backlog_retry_after",
                &self.inbound.backlog_retry_after,
            )?,
            inbound_max_logged_body: self.inbound.max_logged_body_bytes,
            inbound_clock_offset: chrono::Duration::zero(),
            retention_max_age: Some(duration("retention.max_age", &self.retention.max_age)?)
                .filter(|d| !d.is_zero()),
            retention_interval: Duration::from_secs(60),
        })
    }
}

/// `127.0.0.1/32`, or a bare address meaning that one host.
pub fn parse_net(s: &str) -> anyhow::Result<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    let ip: std::net::IpAddr = s
        .parse()
        .with_context(|| format!("`{s}` is not a CIDR such as 127.0.0.1/32"))?;
    Ok(IpNet::from(ip))
}

fn split_section(key: &str) -> (Option<&'static str>, &str) {
    for section in SECTIONS {
        if let Some(rest) = key.strip_prefix(section).and_then(|r| r.strip_prefix('_')) {
            return (Some(section), rest);
        }
    }
    (None, key)
}

fn env_value(field: &str, raw: &str) -> toml::Value {
    if LIST_KEYS.contains(&field) {
        return toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        );
    }
    if !TYPED_KEYS.contains(&field) {
        return toml::Value::String(raw.to_string());
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Config::default().settings().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.retry_schedule.len(), 7);
        assert_eq!(s.retry_schedule[0], Duration::from_secs(5));
    }

    #[test]
    fn environment_overrides_file_and_sections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[delivery]\nconcurrency = 8\n",
        )
        .unwrap();
        let cfg = Config::load_from(
            Some(&path),
            env(&[
                ("HOOKRELAY_DELIVERY_CONCURRENCY", "16"),
                ("HOOKRELAY_ALLOW_NETS", "127.0.0.1/32, ::1"),
                ("HOOKRELAY_DELIVERY_RETRY_SCHEDULE", "100ms,1s"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        let s = cfg.settings().unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.concurrency, 16);
        assert_eq!(s.allow_nets.len(), 2);
        assert_eq!(
            s.retry_schedule,
            vec![Duration::from_millis(100), Duration::from_secs(1)]
        );
    }

    #[test]
    fn the_documented_default_file_matches_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file = Config::load_from(Some(&path), Vec::new()).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn a_zero_retention_age_keeps_everything() {
        let c = Config::load_from(None, env(&[("HOOKRELAY_RETENTION_MAX_AGE", "0s")])).unwrap();
        assert_eq!(c.settings().unwrap().retention_max_age, None);
        let c = Config::load_from(None, env(&[("HOOKRELAY_RETENTION_MAX_AGE", "7d")])).unwrap();
        assert_eq!(
            c.settings().unwrap().retention_max_age,
            Some(Duration::from_secs(7 * 86_400))
        );
    }

    #[test]
    fn a_database_url_must_be_postgres() {
        let c = Config::load_from(None, env(&[("HOOKRELAY_DATABASE_URL", "mysql://x/y")])).unwrap();
        let err = c.settings().unwrap_err();
        assert!(format!("{err:#}").contains("postgres://"), "{err:#}");
        let c = Config::load_from(
            None,
            env(&[("HOOKRELAY_DATABASE_URL", "postgres://u@127.0.0.1/db")]),
        )
        .unwrap();
        assert!(c.settings().unwrap().database_url.is_some());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::load_from(None, env(&[("HOOKRELAY_NOPE", "1")])).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
