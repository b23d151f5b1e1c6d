//! Structured logs: `RUST_LOG`-style filter (default `info`), text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber once; later calls do nothing.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("WXLOGIN_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
