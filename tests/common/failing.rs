//! A store wrapper that can be switched into an outage.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use session::{
    Error,
    store::{Record, Rename, SessionStore, StoreKey},
};

#[derive(Clone)]
pub struct Failing<S> {
    pub inner: S,
    down: Arc<AtomicBool>,
}

impl<S> Failing<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: Arc::default(),
        }
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::Unavailable("connection refused (simulated outage)".into()))
        } else {
            Ok(())
        }
    }
}

impl<S: SessionStore> SessionStore for Failing<S> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        self.check()?;
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        self.check()?;
        self.inner.create(key, record).await
    }
    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        self.check()?;
        self.inner.update(key, update).await
    }
    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        self.check()?;
        self.inner.rename(from, to, update).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        self.check()?;
        self.inner.delete(key).await
    }
}
