//! Structured logs: `WXLOGIN_LOG` / `RUST_LOG` filter (else `log.level`), text or JSON lines, on
//! standard output. Text has colours only when standard output is a terminal, so files and log
//! collectors get plain lines. The lines' format is [`Lines`]; a request's context is in
//! [`request`], not in a span.

mod lines;
pub(crate) mod request;

use std::io::IsTerminal as _;

pub use lines::Lines;

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
        LogFormat::Json => builder.json().event_format(Lines::Json).try_init(),
        LogFormat::Text => builder.event_format(Lines::Text).try_init(),
    };
}

/// As [`init`], on standard error, for commands whose standard output is their result (the admin
/// tables and JSON). Their failure is reported once, as the one `wxlogin: ...` line, so the
/// command line's own error record is left out (`wxlogin::cli=off`).
pub fn init_to_stderr(settings: &LogSettings) {
    let filter = EnvFilter::try_from_env("WXLOGIN_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = match "wxlogin::cli=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match settings.format {
        LogFormat::Json => builder.json().event_format(Lines::Json).try_init(),
        LogFormat::Text => builder.event_format(Lines::Text).try_init(),
    };
}
