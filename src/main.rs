//! The `hookrelay` command: parse flags, load configuration, run.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hookrelay::app::{App, shutdown_signal};
use hookrelay::config::Config;

/// jemalloc rather than the system allocator: see Cargo.toml.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "hookrelay", version, about = "Self-hosted webhook gateway")]
struct Cli {
    /// TOML configuration file (keys as in config/default.toml).
    #[arg(long, global = true, env = "HOOKRELAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery workers.
    Serve {
        /// Overrides HOOKRELAY_LISTEN.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Overrides HOOKRELAY_DATA_DIR.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve the API only; deliveries wait in the store for an instance with workers.
        #[arg(long)]
        no_workers: bool,
        /// Run delivery workers only: no tenant, admin or inbound routes (health, readiness
        /// and metrics are still served on the listen address).
        #[arg(long, conflicts_with = "no_workers")]
        no_api: bool,
    },
    /// Apply pending PostgreSQL migrations (HOOKRELAY_DATABASE_URL) and exit. `serve` also
    /// applies them at start; this lets an upgrade migrate before new instances start.
    Migrate,
    /// Print the effective configuration (secrets hidden) and exit.
    Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            no_workers,
            no_api,
        } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if no_workers {
                config.delivery.enabled = false;
            }
            if no_api {
                config.api.enabled = false;
            }
            let settings = config.settings()?;
            hookrelay::telemetry::init_logging(&settings.log_format);
            let app = App::build(settings).await?;
            app.run(shutdown_signal()).await
        }
        Command::Migrate => {
            let settings = config.settings()?;
            hookrelay::telemetry::init_logging(&settings.log_format);
            let Some(url) = settings.database_url else {
                anyhow::bail!(
                    "hookrelay migrate applies PostgreSQL migrations: set HOOKRELAY_DATABASE_URL (the embedded store migrates itself at start)"
                );
            };
            let version = hookrelay::store::postgres::PgStore::migrate_only(&url).await?;
            println!("database schema at version {version}");
            Ok(())
        }
        Command::Config => {
            if config.admin_key.is_some() {
                config.admin_key = Some("<set>".into());
            }
            if config.database_url.is_some() {
                config.database_url = Some("<set>".into());
            }
            config.settings()?;
            println!("{config:#?}");
            Ok(())
        }
    }
}
