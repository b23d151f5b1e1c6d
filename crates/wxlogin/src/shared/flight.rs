//! Single flight of login-code exchanges: the in-process half of the code claims.
//!
//! The shared [`Claims`] decide which request may send a code to WeChat at all (so a code presented
//! twice reaches WeChat once across instances); this table lets concurrent duplicates on one
//! instance share the winner's outcome instead of a bare `invalid_code`. A running exchange is a
//! future, which cannot cross processes, so this half is per instance by nature.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

use super::Claims;
use crate::error::ApiError;

/// WeChat codes live 5 minutes: a code claimed within that time is never sent to WeChat again.
const CODE_MEMORY: Duration = Duration::from_secs(5 * 60);

/// A running exchange whose outcome is `Result<T, ApiError>`.
type Running<T> = Shared<BoxFuture<'static, Result<T, ApiError>>>;

/// Exchanges in flight on this instance. Each value is a `Running<T>` of the purpose that started
/// it (login, session-key refresh, ...).
type InFlight = HashMap<[u8; 32], Box<dyn Any + Send>>;

/// Single flight of code exchanges on this instance, over the shared claims. Cheap to clone.
#[derive(Clone)]
pub(crate) struct CodeExchanges {
    in_flight: Arc<Mutex<InFlight>>,
    claims: Arc<dyn Claims>,
}

/// Removes a finished exchange from the in-flight table, also when its work panicked, so a retry
/// is answered (`invalid_code`: the code is spent) instead of waiting on a dead task.
struct Finished {
    in_flight: Arc<Mutex<InFlight>>,
    key: [u8; 32],
}

impl Drop for Finished {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.key);
    }
}

fn lock(in_flight: &Mutex<InFlight>) -> MutexGuard<'_, InFlight> {
    in_flight.lock().unwrap_or_else(|p| p.into_inner())
}

impl CodeExchanges {
    pub(crate) fn new(claims: Arc<dyn Claims>) -> Self {
        Self {
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            claims,
        }
    }

    /// Runs `work` for `key` unless the code was claimed before (→ `invalid_code`) or is being
    /// exchanged on this instance (→ that outcome; `invalid_code` when it runs for another purpose,
    /// whose outcome this caller cannot use). The work is spawned, so a client that disconnects
    /// does not abandon a code WeChat consumed.
    pub(crate) async fn run<T>(
        &self,
        key: [u8; 32],
        work: BoxFuture<'static, Result<T, ApiError>>,
    ) -> Result<T, ApiError>
    where
        T: Clone + Send + Sync + 'static,
    {
        let shared = {
            let mut in_flight = lock(&self.in_flight);
            if let Some(running) = in_flight.get(&key) {
                running
                    .downcast_ref::<Running<T>>()
                    .cloned()
                    .ok_or_else(ApiError::invalid_code)?
            } else {
                let finished = Finished {
                    in_flight: self.in_flight.clone(),
                    key,
                };
                let claims = self.claims.clone();
                // The work logs as the request that started it.
                let task = tokio::spawn(crate::telemetry::request::carried(async move {
                    let _finished = finished;
                    match claims.claim(&key, CODE_MEMORY).await {
                        Ok(true) => work.await,
                        Ok(false) => Err(ApiError::invalid_code()),
                        // Closed: without the claim nothing proves the code is fresh.
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot claim a login code");
                            Err(ApiError::unavailable(
                                "cannot check the login code right now; retry",
                            ))
                        }
                    }
                }));
                let shared: Running<T> = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(ApiError::internal(&format!("code exchange task: {e}")))
                    })
                }
                .boxed()
                .shared();
                in_flight.insert(key, Box::new(shared.clone()));
                shared
            }
        };
        shared.await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::FutureExt as _;

    use super::CodeExchanges;
    use crate::clock::ManualClock;
    use crate::error::{ApiError, ErrorCode};
    use crate::shared::memory::MemoryState;

    fn exchanges() -> CodeExchanges {
        let clock = ManualClock::starting_now();
        CodeExchanges::new(Arc::new(MemoryState::new(clock.shared())))
    }

    /// A hang is what this guards against, so each answer gets a real-time bound; a prompt answer
    /// takes microseconds.
    async fn answer<T>(outcome: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        tokio::time::timeout(Duration::from_secs(5), outcome)
            .await
            .unwrap_or_else(|_| panic!("the exchange hung"))
    }

    #[tokio::test]
    async fn a_panicking_exchange_leaves_no_code_in_flight() {
        let exchanges = exchanges();
        let key = [3; 32];
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let first = exchanges.run::<u32>(
            key,
            async move {
                let _ = wait.await;
                panic!("the work of a code exchange panicked");
            }
            .boxed(),
        );
        // A duplicate joins the running exchange before it panics.
        let joined = exchanges.run::<u32>(key, async { Ok(1) }.boxed());
        let (first, joined, ()) = futures::join!(answer(first), answer(joined), async {
            tokio::task::yield_now().await;
            go.send(()).unwrap();
        });
        assert_eq!(first.unwrap_err().code, ErrorCode::Internal);
        assert_eq!(joined.unwrap_err().code, ErrorCode::Internal);

        // The code was claimed, so a retry is told it is spent, at once; its work never runs.
        let retry = exchanges.run::<u32>(key, async { Ok(2) }.boxed());
        assert_eq!(
            answer(retry).await.unwrap_err().code,
            ErrorCode::InvalidCode
        );
        // Other codes are unaffected.
        let other = exchanges.run::<u32>([4; 32], async { Ok(3) }.boxed());
        assert_eq!(answer(other).await.unwrap(), 3);
    }
}
