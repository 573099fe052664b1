use session::store::{Record, Rename, SessionStore, StoreKey};
use session::{Error, MemoryStore, Session, SessionConfig, SessionData, SessionProvider};

#[derive(SessionData)]
struct AppSession {
    #[session(index)]
    user: Option<String>,
}

/// A store that keeps no index of its sessions.
struct Plain(MemoryStore);

impl SessionStore for Plain {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, Error> {
        self.0.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, Error> {
        self.0.create(key, record).await
    }
    async fn update(&self, key: &StoreKey, update: &Record) -> Result<bool, Error> {
        self.0.update(key, update).await
    }
    async fn rename(&self, from: &StoreKey, to: &StoreKey, update: &Record) -> Result<Rename, Error> {
        self.0.rename(from, to, update).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, Error> {
        self.0.delete(key).await
    }
}

async fn log_out_everywhere(session: &mut Session<AppSession>) -> Result<usize, Error> {
    let provider = SessionProvider::<AppSession, _>::new(Plain(MemoryStore::new()), SessionConfig::production().build()?);
    provider.delete_all_of(session).await
}

fn main() {
    let _ = log_out_everywhere;
}
