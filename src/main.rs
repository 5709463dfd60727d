//! The `hookrelay` command: parse flags, load configuration, run.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hookrelay::app::{App, shutdown_signal};
use hookrelay::config::Config;

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
    },
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
            let settings = config.settings()?;
            hookrelay::telemetry::init_logging(&settings.log_format);
            let app = App::build(settings).await?;
            app.run(shutdown_signal()).await
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
