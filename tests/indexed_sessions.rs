//! Indexed sessions on the memory store: "where am I logged in" (`sessions_of`), "log out
//! my other devices" (`delete_others_of`), "log me out everywhere" (`delete_all_of`), the
//! index following logins, logouts and new IDs, the deletion callbacks, and the devices the
//! HTTP layer records.

mod common;

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::http::{browser, serve};
use session::{
    Callbacks, ClientInfo, Device, ManualClock, MemoryStore, SaveOutcome, Session, SessionConfig, SessionData,
    SessionProvider,
    store::{IndexKey, StoreKey},
};

#[derive(SessionData, Debug, Clone)]
struct Account {
    #[session(index)]
    user: Option<String>,
    visits: u64,
}

#[derive(SessionData, Debug, Clone)]
struct Numbered {
    #[session(index, rename = "uid")]
    account: Option<u64>,
}

type Provider<T> = SessionProvider<T, MemoryStore>;

/// What the deletion callbacks heard: IDs' keys through `on_deleted`, keys through
/// `on_deleted_key`.
#[derive(Clone, Default)]
struct Heard {
    by_id: Arc<Mutex<Vec<StoreKey>>>,
    by_key: Arc<Mutex<Vec<StoreKey>>>,
}

impl Heard {
    fn callbacks(&self) -> Callbacks {
        let (by_id, by_key) = (self.by_id.clone(), self.by_key.clone());
        Callbacks::new()
            .on_deleted(move |id| by_id.lock().unwrap().push(id.store_key()))
            .on_deleted_key(move |key| by_key.lock().unwrap().push(*key))
    }

    fn by_id(&self) -> HashSet<StoreKey> {
        self.by_id.lock().unwrap().iter().copied().collect()
    }

    fn by_key(&self) -> HashSet<StoreKey> {
        self.by_key.lock().unwrap().iter().copied().collect()
    }

    fn total(&self) -> usize {
        self.by_id.lock().unwrap().len() + self.by_key.lock().unwrap().len()
    }
}

fn provider<T: SessionData>(clock: &ManualClock, heard: &Heard) -> Provider<T> {
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let config = SessionConfig::testing().clock(clock.clone()).build().unwrap();
    SessionProvider::new(store, config).with_callbacks(heard.callbacks())
}

fn device(agent: &str) -> Device {
    let client = ClientInfo {
        user_agent: Some(agent.to_owned()),
        ip: Some("192.0.2.7".parse().unwrap()),
    };
    Device::from_client(&client, false)
}

async fn log_in(provider: &Provider<Account>, user: Option<&str>, agent: &str) -> Session<Account> {
    let mut session = provider.create().unwrap();
    session.set_user(user.map(str::to_owned));
    session.set_device(device(agent));
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Created);
    session
}

fn key_of(session: &Session<Account>) -> StoreKey {
    session.id().store_key()
}

#[tokio::test]
async fn alices_three_devices_are_listed_then_the_others_then_all_are_logged_out() {
    let (clock, heard) = (ManualClock::new(), Heard::default());
    let provider = provider::<Account>(&clock, &heard);
    let mut laptop = log_in(&provider, Some("alice"), "Firefox on Linux").await;
    clock.advance(Duration::from_secs(1));
    let phone = log_in(&provider, Some("alice"), "Safari on iOS").await;
    clock.advance(Duration::from_secs(1));
    let tablet = log_in(&provider, Some("alice"), "Chrome on Android").await;
    let mut bobs = log_in(&provider, Some("bob"), "Edge on Windows").await;
    let mut anonymous = log_in(&provider, None, "curl").await;
    clock.advance(Duration::from_secs(1));
    *laptop.visits_mut() += 1;
    provider.save(&mut laptop).await.unwrap();

    let listed = provider.sessions_of(&laptop).await.unwrap();
    let agents: Vec<&str> = listed
        .iter()
        .map(|session| session.device.as_ref().unwrap().user_agent.as_deref().unwrap())
        .collect();
    assert_eq!(
        agents,
        ["Firefox on Linux", "Chrome on Android", "Safari on iOS"],
        "alice's sessions, the most recently used first"
    );
    assert_eq!(
        listed.iter().map(|session| session.current).collect::<Vec<_>>(),
        [true, false, false],
        "the session asking is marked"
    );
    assert_eq!(listed[0].key, key_of(&laptop));
    assert_eq!(listed[0].data.visits, 1, "with its data");
    assert!(listed[1].created() > listed[0].created(), "and its lifetimes");
    assert!(
        listed
            .iter()
            .all(|session| session.data.user.as_deref() == Some("alice"))
    );
    let alice = IndexKey::of("user", "alice").unwrap();
    assert!(listed.iter().all(|session| session.meta.index == Some(alice)));
    assert_eq!(
        listed
            .iter()
            .map(|session| session.device.as_ref().unwrap().ip)
            .collect::<Vec<_>>(),
        [None, None, None],
        "no IP unless asked for"
    );

    let by_index = provider.sessions_of_index(&alice).await.unwrap();
    assert_eq!(by_index.len(), 3, "the same sessions by the index key alone");
    assert!(by_index.iter().all(|session| !session.current));
    assert_eq!(provider.sessions_of(&bobs).await.unwrap().len(), 1);
    assert!(
        provider.sessions_of(&anonymous).await.unwrap().is_empty(),
        "nobody logged in: nothing"
    );
    assert_eq!(provider.delete_others_of(&anonymous).await.unwrap(), 0);
    assert_eq!(provider.delete_all_of(&mut anonymous).await.unwrap(), 0);
    assert!(!anonymous.is_deleted(), "and nothing is deleted");

    assert_eq!(provider.delete_others_of(&laptop).await.unwrap(), 2, "phone and tablet");
    assert_eq!(heard.by_key(), HashSet::from([key_of(&phone), key_of(&tablet)]));
    assert!(provider.try_get(phone.id()).await.unwrap().is_none());
    assert!(provider.try_get(tablet.id()).await.unwrap().is_none());
    assert!(
        provider.try_get(laptop.id()).await.unwrap().is_some(),
        "the laptop stays"
    );
    assert_eq!(provider.sessions_of(&laptop).await.unwrap().len(), 1);

    let second_laptop_tab = provider.get(laptop.id()).await.unwrap();
    let again = log_in(&provider, Some("alice"), "Firefox on Linux").await;
    assert_eq!(
        provider.delete_all_of(&mut laptop).await.unwrap(),
        2,
        "the laptop's and the new one"
    );
    assert!(laptop.is_deleted(), "the caller's session is marked deleted");
    assert_eq!(heard.by_id(), HashSet::from([key_of(&laptop)]), "heard with its ID");
    assert!(heard.by_key().contains(&key_of(&again)), "the other by key");
    assert_eq!(heard.total(), 4, "each deletion heard once");
    assert_eq!(
        provider.save(&mut laptop).await.unwrap(),
        SaveOutcome::Deleted,
        "the layer's save of the deleted session writes nothing more"
    );
    assert_eq!(heard.total(), 4, "and is not heard twice");
    assert!(provider.try_get(second_laptop_tab.id()).await.unwrap().is_none());
    assert!(provider.sessions_of_index(&alice).await.unwrap().is_empty());

    assert!(provider.try_get(bobs.id()).await.unwrap().is_some(), "bob is untouched");
    let bob = IndexKey::of("user", "bob").unwrap();
    assert_eq!(
        provider.delete_index(&bob).await.unwrap(),
        1,
        "an administrator's logout"
    );
    assert!(provider.try_get(bobs.id()).await.unwrap().is_none());
    assert!(provider.try_get(anonymous.id()).await.unwrap().is_some());
    bobs.set_visits(1);
    assert!(
        provider.save(&mut bobs).await.is_err(),
        "a deleted session is not resurrected"
    );
}

#[tokio::test]
async fn the_index_follows_new_ids_logins_logouts_and_never_a_failed_requests_data() {
    let (clock, heard) = (ManualClock::new(), Heard::default());
    let provider = provider::<Account>(&clock, &heard);
    let (alice, bob, carol) = (
        IndexKey::of("user", "alice").unwrap(),
        IndexKey::of("user", "bob").unwrap(),
        IndexKey::of("user", "carol").unwrap(),
    );
    let mut session = log_in(&provider, Some("alice"), "Firefox").await;
    provider.regenerate_id(&mut session).await.unwrap();
    let listed = provider.sessions_of(&session).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key_of(&session), "indexed under the new ID's key");
    assert!(listed[0].current);
    assert_eq!(
        listed[0].device.as_ref().unwrap().user_agent.as_deref(),
        Some("Firefox"),
        "the device moves with it"
    );

    session.set_user(Some("bob".into()));
    provider.save(&mut session).await.unwrap();
    assert!(
        provider.sessions_of_index(&alice).await.unwrap().is_empty(),
        "out of alice's"
    );
    assert_eq!(provider.sessions_of_index(&bob).await.unwrap().len(), 1, "into bob's");

    session.set_user(None);
    provider.save(&mut session).await.unwrap();
    assert!(
        provider.sessions_of_index(&bob).await.unwrap().is_empty(),
        "a logout leaves the index"
    );

    // A request that logged in as carol and failed: its ID change is applied, its data is not.
    session.set_user(Some("carol".into()));
    session.regenerate_id().unwrap();
    provider.save_lifecycle_only(&mut session).await.unwrap();
    assert!(
        provider.sessions_of_index(&carol).await.unwrap().is_empty(),
        "the stored index is the stored data's"
    );
    assert_eq!(provider.get(session.id()).await.unwrap().meta().index, None);
}

#[tokio::test]
async fn logging_out_everywhere_from_a_session_not_yet_stored_deletes_the_stored_ones() {
    let (clock, heard) = (ManualClock::new(), Heard::default());
    let provider = provider::<Account>(&clock, &heard);
    let stored = [
        log_in(&provider, Some("alice"), "a").await,
        log_in(&provider, Some("alice"), "b").await,
    ];
    let mut fresh = provider.create().unwrap();
    fresh.set_user(Some("alice".into()));
    assert_eq!(provider.delete_all_of(&mut fresh).await.unwrap(), 2);
    assert!(fresh.is_deleted());
    assert_eq!(provider.save(&mut fresh).await.unwrap(), SaveOutcome::Deleted);
    assert!(
        provider.try_get(fresh.id()).await.unwrap().is_none(),
        "it is not stored either"
    );
    for session in &stored {
        assert!(provider.try_get(session.id()).await.unwrap().is_none());
    }
    assert_eq!(heard.by_key(), stored.iter().map(key_of).collect());
}

#[tokio::test]
async fn bulk_deletions_report_each_session_by_key() {
    let (clock, heard) = (ManualClock::new(), Heard::default());
    let provider = provider::<Account>(&clock, &heard);
    let alices = [
        log_in(&provider, Some("alice"), "a").await,
        log_in(&provider, Some("alice"), "b").await,
    ];
    let others = [
        log_in(&provider, Some("bob"), "c").await,
        log_in(&provider, None, "d").await,
    ];
    let deleted = provider
        .delete_where(|session| session.data.user.as_deref() == Some("alice"))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(heard.by_key(), alices.iter().map(key_of).collect());
    assert_eq!(provider.clear().await.unwrap(), 2);
    assert_eq!(
        heard.by_key(),
        alices.iter().chain(&others).map(key_of).collect(),
        "clear reports the rest"
    );
    assert_eq!(heard.total(), 4, "each once");
    assert_eq!(provider.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_numeric_index_under_a_renamed_field() {
    let (clock, heard) = (ManualClock::new(), Heard::default());
    let provider = provider::<Numbered>(&clock, &heard);
    let mut sessions = Vec::new();
    for account in [7, 7, 8] {
        let mut session = provider.create().unwrap();
        session.set_account(Some(account));
        provider.save(&mut session).await.unwrap();
        sessions.push(session);
    }
    let seven = IndexKey::of("uid", &7u64).unwrap();
    assert_eq!(sessions[0].data().index_key(), Some(seven), "the stored name is hashed");
    let listed = provider.sessions_of(&sessions[0]).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|session| session.data.account == Some(7)));
    assert_eq!(provider.delete_others_of(&sessions[0]).await.unwrap(), 1);
    assert_eq!(provider.sessions_of_index(&seven).await.unwrap().len(), 1);
    assert_eq!(
        provider.sessions_of(&sessions[2]).await.unwrap().len(),
        1,
        "account 8 untouched"
    );
}

/// Through the tower layer: three browsers of alice, one of bob; each session is listed
/// with the User-Agent and address the layer recorded; the other devices, then all, are
/// logged out, and the last browser's cookie is expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_layer_devices_are_recorded_listed_and_logged_out() {
    use axum::{
        Json, Router,
        extract::{Query, State},
        routing::get,
    };
    use serde_json::{Value, json};
    use session::http::{LazySession, SessionLayer};

    #[derive(serde::Deserialize)]
    struct Login {
        user: String,
    }

    async fn login(session: LazySession<Account>, Query(login): Query<Login>) -> Result<&'static str, session::Error> {
        let mut session = session.load().await?;
        session.set_user(Some(login.user));
        session.regenerate_id()?;
        Ok("ok")
    }

    async fn who(session: LazySession<Account>) -> Result<String, session::Error> {
        let session = session.existing().await?;
        Ok(session.and_then(|session| session.user().clone()).unwrap_or_default())
    }

    async fn devices(
        State(provider): State<Provider<Account>>,
        session: LazySession<Account>,
    ) -> Result<Json<Value>, session::Error> {
        let session = session.load().await?;
        let listed = provider.sessions_of(&session).await?;
        Ok(Json(json!(
            listed
                .iter()
                .map(|listed| {
                    let device = listed.device.clone().unwrap_or_default();
                    json!({ "agent": device.user_agent, "ip": device.ip, "current": listed.current })
                })
                .collect::<Vec<_>>()
        )))
    }

    async fn log_out_others(
        State(provider): State<Provider<Account>>,
        session: LazySession<Account>,
    ) -> Result<String, session::Error> {
        let session = session.load().await?;
        Ok(provider.delete_others_of(&session).await?.to_string())
    }

    async fn log_out_everywhere(
        State(provider): State<Provider<Account>>,
        session: LazySession<Account>,
    ) -> Result<String, session::Error> {
        let mut session = session.load().await?;
        Ok(provider.delete_all_of(&mut session).await?.to_string())
    }

    let heard = Heard::default();
    let config = SessionConfig::development().record_client_ip(true).build().unwrap();
    let provider = SessionProvider::new(MemoryStore::new(), config).with_callbacks(heard.callbacks());
    let app = Router::new()
        .route("/login", get(login))
        .route("/who", get(who))
        .route("/devices", get(devices))
        .route("/logout-others", get(log_out_others))
        .route("/logout-everywhere", get(log_out_everywhere))
        .with_state(provider.clone())
        .layer(SessionLayer::new(provider));
    let base = serve(app).await;

    let agent = |name: &str| {
        reqwest::Client::builder()
            .cookie_store(true)
            .user_agent(name)
            .build()
            .unwrap()
    };
    let browsers = [agent("Firefox"), agent("Safari"), agent("Chrome")];
    for browser in &browsers {
        let answer = browser.get(format!("{base}/login?user=alice")).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "ok");
    }
    let bob = browser();
    bob.get(format!("{base}/login?user=bob")).send().await.unwrap();

    let text = |response: reqwest::Response| async move { response.text().await.unwrap() };
    let listed: Value = browsers[1]
        .get(format!("{base}/devices"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    let agents: HashSet<&str> = listed.iter().map(|entry| entry["agent"].as_str().unwrap()).collect();
    assert_eq!(
        agents,
        HashSet::from(["Firefox", "Safari", "Chrome"]),
        "alice's three browsers"
    );
    let current: Vec<&str> = listed
        .iter()
        .filter(|entry| entry["current"] == true)
        .map(|entry| entry["agent"].as_str().unwrap())
        .collect();
    assert_eq!(current, ["Safari"], "the asking browser's own session");
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(
        listed.iter().all(|entry| entry["ip"] == json!(loopback)),
        "the peer address, recorded as configured: {listed:?}"
    );

    let others = text(browsers[0].get(format!("{base}/logout-others")).send().await.unwrap()).await;
    assert_eq!(others, "2");
    assert_eq!(
        text(browsers[0].get(format!("{base}/who")).send().await.unwrap()).await,
        "alice"
    );
    for browser in &browsers[1..] {
        let who = text(browser.get(format!("{base}/who")).send().await.unwrap()).await;
        assert_eq!(who, "", "logged out on the other devices");
    }
    assert_eq!(text(bob.get(format!("{base}/who")).send().await.unwrap()).await, "bob");

    let everywhere = browsers[0]
        .get(format!("{base}/logout-everywhere"))
        .send()
        .await
        .unwrap();
    let expired = everywhere
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|value| value.to_str().unwrap().contains("Max-Age=0"));
    assert!(expired, "the caller's cookie is expired");
    assert_eq!(text(everywhere).await, "1");
    assert_eq!(
        text(browsers[0].get(format!("{base}/who")).send().await.unwrap()).await,
        ""
    );
    assert_eq!(text(bob.get(format!("{base}/who")).send().await.unwrap()).await, "bob");
    assert_eq!(heard.total(), 3, "each deleted session heard once");
}
