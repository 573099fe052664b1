//! One request's worth of session work in each library, shared by the criterion benches
//! and the report's wire counts: encode + decode, cookie seal + open, store load + save.

use std::{collections::HashMap, sync::Arc};

use actix_session::storage::{CookieSessionStore, SessionKey, SessionStore as ActixStore};
use axum_extra::extract::cookie::{Cookie as ExtraCookie, Key as AxumKey, PrivateCookieJar};
use session::{
    __private::{DirtySet, codec},
    ClientInfo, CookieSessions, SessionConfig, SessionData, SessionProvider,
    crypto::{KeyId, KeyRing, Secret},
    store::{FieldRecord, SessionStore},
};
use tower_sessions::{
    Session as TowerSession, SessionStore as TowerStore,
    cookie::time::{Duration as TimeDuration, OffsetDateTime},
    session::{Id, Record},
};

use crate::{
    apps::BoxError,
    content::{self, PlainProfile, Profile},
};

/// The cookie name every cookie path uses.
pub const COOKIE_NAME: &str = "session";

fn actix_ttl() -> actix_web::cookie::time::Duration {
    actix_web::cookie::time::Duration::minutes(30)
}

// ---- Encode + decode -------------------------------------------------------------------

/// This crate: the field-tagged record of every field, and back.
pub fn ours_codec(data: &Profile) -> Profile {
    let record = codec::encode(data, DirtySet::all(<Profile as SessionData>::FIELDS.len())).expect("encodable");
    codec::decode::<Profile>(&FieldRecord::from_bytes(record.into_bytes()))
}

/// tower-sessions: its `Record` through MessagePack, as its Redis store does.
pub fn tower_codec(record: &Record) -> Record {
    let bytes = rmp_serde::to_vec(record).expect("encodable");
    rmp_serde::from_slice(&bytes).expect("decodable")
}

/// actix-session: its state map through JSON, as all its stores do.
pub fn actix_codec(state: &HashMap<String, String>) -> HashMap<String, String> {
    let text = serde_json::to_string(state).expect("encodable");
    serde_json::from_str(&text).expect("decodable")
}

/// A tower-sessions record of the benchmark content.
pub fn tower_record() -> Record {
    Record {
        id: Id::default(),
        data: content::tower_data(),
        expiry_date: OffsetDateTime::now_utc() + TimeDuration::weeks(2),
    }
}

// ---- Cookie seal + open ----------------------------------------------------------------

/// This crate's cookie store with the benchmark session, ready to seal.
pub struct OursCookie {
    store: CookieSessions,
    session: session::Session<Profile>,
    client: ClientInfo,
}

impl OursCookie {
    /// A store with a random key and a filled session.
    ///
    /// # Errors
    ///
    /// When no key can be generated.
    pub fn new() -> Result<Self, BoxError> {
        let ring = KeyRing::new(KeyId(1), Secret::generate()?);
        let store = CookieSessions::new(ring, SessionConfig::development().build()?)?;
        let mut session = store.create::<Profile>()?;
        content::fill(&mut session);
        Ok(Self {
            store,
            session,
            client: ClientInfo::default(),
        })
    }

    /// Seals the session after a change (the `Set-Cookie` value is rendered and size-checked
    /// inside), then opens it as the next request would; returns the sealed length.
    pub fn seal_open(&mut self) -> usize {
        *self.session.visits_mut() += 1;
        let value = self.store.seal(&mut self.session, &self.client).expect("sealed");
        let opened = self.store.open::<Profile>(&value, &self.client).expect("opened");
        assert_eq!(opened.visits(), self.session.visits());
        value.len()
    }
}

/// actix-session's cookie path: `CookieSessionStore` (JSON) inside a private cookie of the
/// cookie crate, as its middleware builds and reads it.
pub struct ActixCookie {
    store: CookieSessionStore,
    key: actix_web::cookie::Key,
    state: HashMap<String, String>,
}

impl Default for ActixCookie {
    fn default() -> Self {
        Self {
            store: CookieSessionStore::default(),
            key: actix_web::cookie::Key::generate(),
            state: content::actix_state(),
        }
    }
}

impl ActixCookie {
    /// Seals the state into a `Set-Cookie` value and opens it from a `Cookie` header;
    /// returns the sealed length.
    pub async fn seal_open(&mut self) -> usize {
        use actix_web::cookie::{Cookie, CookieJar, SameSite};

        let visits: u64 = self.state["visits"].parse().expect("a number");
        self.state.insert("visits".to_owned(), (visits + 1).to_string());
        // Seal, as the middleware's `set_session_cookie`.
        let session_key = self.store.save(self.state.clone(), &actix_ttl()).await.expect("saved");
        let value: String = session_key.into();
        let mut cookie = Cookie::new(COOKIE_NAME, value);
        cookie.set_secure(false);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_path("/");
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(cookie);
        let set_cookie = jar.delta().next().expect("one cookie").encoded().to_string();
        // Open, as `extract_session_key` and `load_session_state`.
        let pair = set_cookie.split(';').next().expect("name=value").to_owned();
        let received = Cookie::parse_encoded(pair).expect("a cookie");
        let mut jar = CookieJar::new();
        jar.add_original(received);
        let opened = jar.private(&self.key).get(COOKIE_NAME).expect("authentic");
        let key = SessionKey::try_from(opened.value().to_owned()).expect("a session key");
        let state = self.store.load(&key).await.expect("loaded").expect("present");
        assert_eq!(state["visits"], self.state["visits"]);
        set_cookie.len()
    }
}

/// axum-extra's `PrivateCookieJar` holding the session as JSON.
pub struct AxumCookie {
    key: AxumKey,
    profile: PlainProfile,
}

impl Default for AxumCookie {
    fn default() -> Self {
        Self {
            key: AxumKey::generate(),
            profile: PlainProfile::sample(),
        }
    }
}

impl AxumCookie {
    /// Adds the session to a jar and renders its `Set-Cookie`, then reads it back from a
    /// `Cookie` header; returns the sealed length.
    pub fn seal_open(&mut self) -> usize {
        use axum::response::IntoResponse;
        use http::{HeaderMap, HeaderValue, header};

        self.profile.visits += 1;
        let value = serde_json::to_string(&self.profile).expect("encodable");
        let mut cookie = ExtraCookie::new(COOKIE_NAME, value);
        cookie.set_http_only(true);
        cookie.set_path("/");
        cookie.set_same_site(axum_extra::extract::cookie::SameSite::Lax);
        let response = PrivateCookieJar::new(self.key.clone()).add(cookie).into_response();
        let set_cookie = response.headers().get(header::SET_COOKIE).expect("a cookie");
        let pair = set_cookie
            .to_str()
            .expect("text")
            .split(';')
            .next()
            .expect("name=value");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).expect("a header"));
        let jar = PrivateCookieJar::from_headers(&headers, self.key.clone());
        let opened: PlainProfile =
            serde_json::from_str(jar.get(COOKIE_NAME).expect("authentic").value()).expect("JSON");
        assert_eq!(opened.visits, self.profile.visits);
        set_cookie.len()
    }
}

// ---- Store load + save -----------------------------------------------------------------

/// This crate: a provider over `S` and one stored session.
pub struct OursStore<S> {
    provider: SessionProvider<Profile, S>,
    token: String,
}

impl<S: SessionStore> OursStore<S> {
    /// Stores the benchmark session in `store`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn new(store: S) -> Result<Self, BoxError> {
        let provider = SessionProvider::<Profile, S>::new(store, SessionConfig::development().build()?);
        let mut session = provider.create()?;
        content::fill(&mut session);
        provider.save(&mut session).await?;
        Ok(Self {
            token: session.id().expose(),
            provider,
        })
    }

    /// A request that increments the counter: load, change, save.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load_save(&self) -> Result<u64, BoxError> {
        let mut session = self.provider.load(&self.token).await?.ok_or("session lost")?;
        *session.visits_mut() += 1;
        self.provider.save(&mut session).await?;
        Ok(*session.visits())
    }

    /// A load alone.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load(&self) -> Result<u64, BoxError> {
        let session = self.provider.load(&self.token).await?.ok_or("session lost")?;
        Ok(*session.visits())
    }

    /// The loaded session, for [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn loaded(&self) -> Result<session::Session<Profile>, BoxError> {
        Ok(self.provider.load(&self.token).await?.ok_or("session lost")?)
    }

    /// A save alone of a changed counter.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn save(&self, session: &mut session::Session<Profile>) -> Result<(), BoxError> {
        *session.visits_mut() += 1;
        self.provider.save(session).await?;
        Ok(())
    }
}

/// tower-sessions: a store and one stored session, used through its `Session`.
pub struct TowerStoreOps<S> {
    store: Arc<S>,
    id: Id,
}

impl<S: TowerStore> TowerStoreOps<S> {
    /// Stores the benchmark session in `store`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn new(store: S) -> Result<Self, BoxError> {
        let store = Arc::new(store);
        let mut record = tower_record();
        store.create(&mut record).await?;
        Ok(Self { store, id: record.id })
    }

    /// A request that increments the counter, as its middleware and a handler do it.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load_save(&self) -> Result<u64, BoxError> {
        let session = TowerSession::new(Some(self.id), self.store.clone(), None);
        let visits = session.get::<u64>("visits").await?.ok_or("session lost")? + 1;
        session.insert("visits", visits).await?;
        session.save().await?;
        Ok(visits)
    }

    /// A load alone.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load(&self) -> Result<Record, BoxError> {
        Ok(self.store.load(&self.id).await?.ok_or("session lost")?)
    }

    /// A save alone of a changed counter.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn save(&self, record: &mut Record) -> Result<(), BoxError> {
        let visits = record.data.get("visits").and_then(|value| value.as_u64()).unwrap_or(0) + 1;
        record.data.insert("visits".to_owned(), visits.into());
        self.store.save(record).await?;
        Ok(())
    }
}

/// actix-session: a store and one stored session state.
pub struct ActixStoreOps<S> {
    store: S,
    key: String,
}

impl<S: ActixStore> ActixStoreOps<S> {
    /// Stores the benchmark session in `store`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn new(store: S) -> Result<Self, BoxError> {
        let key = store
            .save(content::actix_state(), &actix_ttl())
            .await
            .map_err(|error| error.to_string())?;
        Ok(Self {
            store,
            key: key.as_ref().to_owned(),
        })
    }

    fn key(&self) -> SessionKey {
        SessionKey::try_from(self.key.clone()).expect("a key it issued")
    }

    /// A request that increments the counter, as its middleware and a handler do it.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load_save(&self) -> Result<u64, BoxError> {
        let mut state = self.load().await?;
        let visits = state["visits"].parse::<u64>()? + 1;
        state.insert("visits".to_owned(), visits.to_string());
        self.save(state).await?;
        Ok(visits)
    }

    /// A load alone.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn load(&self) -> Result<HashMap<String, String>, BoxError> {
        let state = self.store.load(&self.key()).await.map_err(|error| error.to_string())?;
        Ok(state.ok_or("session lost")?)
    }

    /// A save alone (`update` of the existing key).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn save(&self, state: HashMap<String, String>) -> Result<(), BoxError> {
        self.store
            .update(self.key(), state, &actix_ttl())
            .await
            .map_err(|error| error.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_the_content() {
        assert_eq!(ours_codec(&Profile::sample()), Profile::sample());
        let record = tower_record();
        assert_eq!(tower_codec(&record), record);
        assert_eq!(actix_codec(&content::actix_state()), content::actix_state());
    }

    #[tokio::test]
    async fn cookie_paths_round_trip() {
        assert!(OursCookie::new().unwrap().seal_open() > 100);
        assert!(ActixCookie::default().seal_open().await > 100);
        assert!(AxumCookie::default().seal_open() > 100);
    }

    #[tokio::test]
    async fn memory_stores_load_and_save() {
        let ours = OursStore::new(session::MemoryStore::new()).await.unwrap();
        assert_eq!(ours.load_save().await.unwrap(), content::VISITS + 1);
        let tower = TowerStoreOps::new(tower_sessions::MemoryStore::default())
            .await
            .unwrap();
        assert_eq!(tower.load_save().await.unwrap(), content::VISITS + 1);
    }
}
