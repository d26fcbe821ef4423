//! `tern`: the Tern MQTT broker daemon.

use std::process::ExitCode;
use std::time::Duration;
use tern_config::{Command, Config, LogFormat};

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn wait_for_signal() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    let config = match tern_config::load() {
        Ok(Command::Run(config)) => config,
        Ok(Command::CheckConfig { path }) => match tern_config::parse_file(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        Err(e) => e.exit(),
    };
    init_logging(&config);
    let workers = config.workers;
    let handle = match tern_broker::start(config) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("tern: {e}");
            return ExitCode::from(1);
        }
    };
    for addr in handle.local_addrs() {
        println!("tern: listening on {addr}");
    }
    tracing::info!(workers, "tern {} started", env!("CARGO_PKG_VERSION"));
    if let Err(e) = wait_for_signal() {
        tracing::error!(error = %e, "cannot wait for signals");
    }
    handle.shutdown(Duration::from_secs(5));
    ExitCode::SUCCESS
}
