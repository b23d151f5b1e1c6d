//! Structured logs: `WXLOGIN_LOG` / `RUST_LOG` filter (else `log.level`), text or JSON lines, on
//! standard output. Text has colours only when standard output is a terminal, so files and log
//! collectors get plain lines.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the process-wide subscriber once; later calls do nothing.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_env("WXLOGIN_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
