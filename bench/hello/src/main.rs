//! The ceiling of the benchmarks (scenario S0): the same HTTP stack as wxlogin (axum on hyper,
//! HTTP/1.1, tokio's multi-threaded runtime) answering 200 `hello` on every path, with no logging,
//! no middleware and no state.
//!
//! `bench-hello [ADDR]`, ADDR defaulting to `127.0.0.1:8090`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(serve(&addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn serve(addr: &str) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let app = axum::Router::new().fallback(|| async { "hello" });
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("server stopped: {e}"))
}

#[allow(clippy::print_stderr)]
fn fail(message: &str) -> ExitCode {
    eprintln!("bench-hello: {message}");
    ExitCode::FAILURE
}
