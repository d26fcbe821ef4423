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

/// SIGTERM and SIGINT, blocked in the main thread before any other thread
/// exists, so every thread inherits the mask and the signals can only be
/// taken by `Signals::wait` (`sigwait`). A signal sent during startup waits
/// there too instead of killing the process half-started.
struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    fn block() -> std::io::Result<Self> {
        // SAFETY: `set` is a plain C struct initialised by sigemptyset before
        // use; the calls only read and write it and the thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(Self { set })
        }
    }

    /// Blocks until SIGTERM or SIGINT arrives.
    fn wait(&self) {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `self.set` was initialised in `block`; `sig` is a valid out pointer.
            let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
            match (rc, sig) {
                (0, libc::SIGTERM) => return tracing::info!("SIGTERM: shutting down"),
                (0, libc::SIGINT) => return tracing::info!("SIGINT: shutting down"),
                (0, _) => continue,
                (rc, _) => {
                    tracing::error!(error = %std::io::Error::from_raw_os_error(rc), "sigwait failed; shutting down");
                    return;
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let config = match tern_config::load() {
        Ok(Command::Run(config)) => *config,
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
    let signals = match Signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tern: cannot block signals for the shutdown handler: {e}");
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
    // A second SIGTERM/SIGINT during shutdown, or a shutdown that overruns
    // its grace period by 5 s, ends the process at once.
    let grace = Duration::from_secs(5);
    std::thread::spawn(move || {
        signals.wait();
        tracing::warn!("second signal during shutdown: exiting now");
        std::process::exit(1);
    });
    std::thread::spawn(move || {
        std::thread::sleep(grace + Duration::from_secs(5));
        tracing::error!("shutdown did not finish in time: exiting now");
        std::process::exit(1);
    });
    handle.shutdown(grace);
    ExitCode::SUCCESS
}
