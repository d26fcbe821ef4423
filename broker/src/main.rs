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

/// SIGTERM and SIGINT, registered before anything else starts so that a
/// signal during startup still means a clean shutdown.
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (term, int) = rt.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })?;
        Ok(Self { rt, term, int })
    }

    fn wait(mut self) {
        self.rt.block_on(async {
            tokio::select! {
                _ = self.term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = self.int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        });
    }
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
    let signals = match Signals::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tern: cannot register signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
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
    signals.wait();
    handle.shutdown(Duration::from_secs(5));
    ExitCode::SUCCESS
}
