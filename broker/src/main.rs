//! `tern`: the Tern MQTT broker daemon.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tern_config::{Command, Config, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Starts logging; the handle changes the level filter later (reload).
fn init_logging(config: &Config) -> reload::Handle<EnvFilter, Registry> {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match config.log_format {
        LogFormat::Json => registry.with(fmt.json()).init(),
        LogFormat::Text => registry.with(fmt).init(),
    }
    handle
}

/// Where reloads read the configuration: the same arguments, environment
/// and file as at start; and how they change the log level.
fn reload_source(log: reload::Handle<EnvFilter, Registry>) -> tern_broker::ReloadSource {
    tern_broker::ReloadSource {
        load: Box::new(|| match tern_config::load() {
            Ok(Command::Run(config)) => Ok(*config),
            Ok(Command::CheckConfig { .. } | Command::Passwd(_)) => Err("not a run command".into()),
            Err(e) => Err(e.to_string().trim_end().to_string()),
        }),
        set_log_level: Box::new(move |level| {
            let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
            log.reload(filter).map_err(|e| e.to_string())
        }),
    }
}

/// A signal `Signals::wait` took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGTERM, SIGINT (or a failed `sigwait`): shut down.
    Stop,
    /// SIGHUP: reload the configuration.
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP, blocked in the main thread before any other
/// thread exists, so every thread inherits the mask and the signals can only
/// be taken by `Signals::wait` (`sigwait`). A signal sent during startup
/// waits there too instead of killing (or, for SIGHUP, hanging up) the
/// process half-started.
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
            libc::sigaddset(&mut set, libc::SIGHUP);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(Self { set })
        }
    }

    /// Blocks until SIGTERM, SIGINT or SIGHUP arrives.
    fn wait(&self) -> Signal {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `self.set` was initialised in `block`; `sig` is a valid out pointer.
            let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
            match (rc, sig) {
                (0, libc::SIGTERM) => {
                    tracing::info!("SIGTERM: shutting down");
                    return Signal::Stop;
                }
                (0, libc::SIGINT) => {
                    tracing::info!("SIGINT: shutting down");
                    return Signal::Stop;
                }
                (0, libc::SIGHUP) => return Signal::Reload,
                (0, _) => continue,
                (rc, _) => {
                    tracing::error!(error = %std::io::Error::from_raw_os_error(rc), "sigwait failed; shutting down");
                    return Signal::Stop;
                }
            }
        }
    }

    /// Blocks until SIGTERM or SIGINT arrives (SIGHUP is ignored).
    fn wait_stop(&self) {
        while self.wait() == Signal::Reload {
            tracing::warn!("SIGHUP during shutdown: ignored");
        }
    }
}

/// Reads a password for `tern passwd` after `prompt`, without echo when
/// standard input is a terminal.
fn ask_password(prompt: &str) -> std::io::Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: `isatty` and `tcgetattr`/`tcsetattr` only read and write the
    // terminal settings of fd 0 and the plain C struct passed by pointer.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::isatty(fd) == 1 && libc::tcgetattr(fd, &mut t) == 0 {
            let mut quiet = t;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(fd, libc::TCSANOW, &quiet);
            Some(t)
        } else {
            None
        }
    };
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: as above; restores the settings read before.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        writeln!(err)?;
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
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
        Ok(Command::Passwd(args)) => {
            return match tern_broker::passwd::run(&args, &mut ask_password) {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tern passwd: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => e.exit(),
    };
    let log = init_logging(&config);
    let signals = match Signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tern: cannot block signals for the shutdown handler: {e}");
            return ExitCode::from(1);
        }
    };
    let workers = config.workers;
    let handle = match tern_broker::start_reloadable(config, reload_source(log)) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("tern: {e}");
            return ExitCode::from(1);
        }
    };
    // Where to connect, for whoever started us. A closed stdout (a caller
    // that read only the first line) is not an error.
    let mut out = std::io::stdout().lock();
    for addr in handle.local_addrs() {
        let _ = writeln!(out, "tern: listening on {addr}");
    }
    if let Some(addr) = handle.http_addr() {
        let _ = writeln!(out, "tern: http on {addr}");
    }
    let _ = out.flush();
    drop(out);
    tracing::info!(workers, "tern {} started", env!("CARGO_PKG_VERSION"));
    while signals.wait() == Signal::Reload {
        // The reload logs its outcome, one line per changed key.
        let _ = handle.reload();
    }
    // A second SIGTERM/SIGINT during shutdown, or a shutdown that overruns
    // its grace period (`shutdown_grace`) by 5 s, ends the process at once.
    let grace = handle.shutdown_grace();
    std::thread::spawn(move || {
        signals.wait_stop();
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
