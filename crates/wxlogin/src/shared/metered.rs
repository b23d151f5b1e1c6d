//! The shared state with its failures counted (`wxlogin_shared_state_errors_total`, by
//! operation): each function of the seam wrapped around whichever implementation `app.rs` chose.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{
    Claims, Events, Lease, Leases, Limit, Limiter, Ping, Revocation, SharedError, Values, Verdict,
};
use crate::metrics::Metrics;

pub(super) struct Metered<T: ?Sized> {
    pub(super) inner: Arc<T>,
    pub(super) metrics: Metrics,
}

impl<T: ?Sized> Metered<T> {
    fn count<R>(
        &self,
        operation: &'static str,
        result: Result<R, SharedError>,
    ) -> Result<R, SharedError> {
        if result.is_err() {
            self.metrics.shared_state_error(operation);
        }
        result
    }
}

#[async_trait]
impl Claims for Metered<dyn Claims> {
    async fn claim(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, SharedError> {
        let result = self.inner.claim(key, ttl).await;
        self.count("claim", result)
    }
}

#[async_trait]
impl Leases for Metered<dyn Leases> {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, SharedError> {
        let result = self.inner.try_acquire(name, ttl).await;
        self.count("lease_acquire", result)
    }

    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Lease, SharedError> {
        let result = self.inner.acquire(name, ttl).await;
        self.count("lease_acquire", result)
    }

    async fn release(&self, lease: &Lease) -> Result<(), SharedError> {
        let result = self.inner.release(lease).await;
        self.count("lease_release", result)
    }
}

#[async_trait]
impl Events for Metered<dyn Events> {
    async fn publish(&self, event: Revocation) -> Result<(), SharedError> {
        let result = self.inner.publish(event).await;
        self.count("publish", result)
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Revocation> {
        self.inner.subscribe()
    }
}

#[async_trait]
impl Limiter for Metered<dyn Limiter> {
    async fn take(&self, limits: &[Limit], now: SystemTime) -> Result<Verdict, SharedError> {
        let result = self.inner.take(limits, now).await;
        self.count("rate_limit", result)
    }
}

#[async_trait]
impl Values for Metered<dyn Values> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedError> {
        let result = self.inner.get(key).await;
        self.count("value_get", result)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedError> {
        let result = self.inner.set(key, value, ttl).await;
        self.count("value_set", result)
    }

    async fn delete_if_equal(&self, key: &str, expected: &[u8]) -> Result<bool, SharedError> {
        let result = self.inner.delete_if_equal(key, expected).await;
        self.count("value_delete", result)
    }
}

#[async_trait]
impl Ping for Metered<dyn Ping> {
    async fn ping(&self) -> Result<(), SharedError> {
        let result = self.inner.ping().await;
        self.count("ping", result)
    }
}
