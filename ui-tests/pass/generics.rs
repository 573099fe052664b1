use serde::{Serialize, de::DeserializeOwned};
use session::{SessionData, SessionProvider, MemoryStore, SessionConfig};

#[derive(SessionData)]
struct Typed<T: Serialize + DeserializeOwned + Default + Send + Sync + 'static, U>
where
    U: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
{
    first: T,
    second: Vec<U>,
}

fn main() {
    let provider = SessionProvider::<Typed<String, u8>, _>::new(MemoryStore::new(), SessionConfig::development().build().unwrap());
    let mut session = provider.create().unwrap();
    session.set_first("x".into());
    session.second_mut().push(1);
}
