//! A store wrapper that counts what reaches the store.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use session::{
    Error,
    store::{QueryStore, Record, Rename, Revision, ScanPage, SessionStore, StoreKey},
};

#[derive(Default)]
pub struct Counts {
    pub loads: AtomicUsize,
    pub writes: AtomicUsize,
    /// Tags of the fields in each write, in order.
    pub written_tags: Mutex<Vec<Vec<u32>>>,
}

impl Counts {
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    pub fn last_written_tags(&self) -> Vec<u32> {
        self.written_tags.lock().unwrap().last().cloned().unwrap_or_default()
    }
    fn write(&self, record: Option<&Record>) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let tags = record
            .map(|r| r.fields.iter().map(|f| f.unwrap().0).collect())
            .unwrap_or_default();
        self.written_tags.lock().unwrap().push(tags);
    }
}

#[derive(Clone)]
pub struct Counting<S> {
    pub inner: S,
    pub counts: Arc<Counts>,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }
}

impl<S: SessionStore> SessionStore for Counting<S> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        self.counts.write(Some(record));
        self.inner.create(key, record).await
    }
    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        self.counts.write(Some(update));
        self.inner.update(key, update).await
    }
    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        self.counts.write(Some(update));
        self.inner.rename(from, to, update).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        self.counts.write(None);
        self.inner.delete(key).await
    }
    async fn load_revision(&self, key: &StoreKey) -> Result<Option<(Record, Revision)>, Error> {
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load_revision(key).await
    }
    async fn create_revision(&self, key: &StoreKey, record: &Record) -> Result<Option<Revision>, Error> {
        self.counts.write(Some(record));
        self.inner.create_revision(key, record).await
    }
    async fn update_revision(
        &self,
        key: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<Option<Revision>, Error> {
        self.counts.write(Some(update));
        self.inner.update_revision(key, revision, update).await
    }
    async fn rename_revision(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        revision: &Revision,
        update: &Record,
    ) -> Result<(Rename, Revision), Error> {
        self.counts.write(Some(update));
        self.inner.rename_revision(from, to, revision, update).await
    }
}

impl<S: QueryStore> QueryStore for Counting<S> {
    async fn scan(&self, cursor: u64, batch: usize) -> Result<ScanPage, Error> {
        self.inner.scan(cursor, batch).await
    }
    async fn count(&self) -> Result<usize, Error> {
        self.inner.count().await
    }
    async fn delete_many(&self, keys: &[StoreKey]) -> Result<usize, Error> {
        self.inner.delete_many(keys).await
    }
    async fn clear(&self) -> Result<usize, Error> {
        self.inner.clear().await
    }
}
