//! A store wrapper that can be switched into an outage, or into answering with errors.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use session::{
    Error,
    store::{Record, Rename, Revision, SessionStore, StoreKey},
};

#[derive(Clone)]
pub struct Failing<S> {
    pub inner: S,
    mode: Arc<AtomicU8>,
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const ERRORING: u8 = 2;

impl<S> Failing<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            mode: Arc::default(),
        }
    }
    /// Unreachable (`Error::Unavailable`) while `down`.
    pub fn set_down(&self, down: bool) {
        self.mode.store(if down { DOWN } else { UP }, Ordering::SeqCst);
    }
    /// Answering every call with an error (`Error::Store`) while `erroring`.
    pub fn set_erroring(&self, erroring: bool) {
        self.mode.store(if erroring { ERRORING } else { UP }, Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), Error> {
        match self.mode.load(Ordering::SeqCst) {
            DOWN => Err(Error::Unavailable("connection refused (simulated outage)".into())),
            ERRORING => Err(Error::Store("WRONGTYPE (simulated error reply)".into())),
            _ => Ok(()),
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
    async fn load_revision(&self, key: &StoreKey) -> Result<Option<(Record, Revision)>, Error> {
        self.check()?;
        self.inner.load_revision(key).await
    }
    async fn create_revision(&self, key: &StoreKey, record: &Record) -> Result<Option<Revision>, Error> {
        self.check()?;
        self.inner.create_revision(key, record).await
    }
    async fn update_revision(
        &self,
        key: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<Option<Revision>, Error> {
        self.check()?;
        self.inner.update_revision(key, revision, update).await
    }
    async fn rename_revision(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<(Rename, Revision), Error> {
        self.check()?;
        self.inner.rename_revision(from, to, revision, update).await
    }
}
