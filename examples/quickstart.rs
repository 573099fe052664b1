//! Define a session type, create a session, change it, save it, load it back; then a
//! server-only session that a background job keeps for the logged-in user.
//!
//! Run with `cargo run --example quickstart`; it needs no server.

use session::{Flash, MemoryStore, SessionConfig, SessionData, SessionProvider};

/// A background export's progress: a server-only session, which no client ever holds.
#[derive(SessionData, Debug)]
struct ExportJob {
    done: u32,
    total: u32,
}

/// What this application remembers about a visitor.
#[derive(SessionData, Debug)]
struct AppSession {
    user: Option<String>,
    visits: u64,
    #[session(default = "light".to_string())]
    theme: String,
    #[session(flash)]
    notice: Flash<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), session::Error> {
    let provider = SessionProvider::<AppSession, _>::new(MemoryStore::new(), SessionConfig::development().build()?);

    // First request: a new visitor logs in.
    let mut session = provider.create()?;
    session.set_user(Some("alice".to_owned()));
    *session.visits_mut() += 1;
    session.set_notice("Welcome alice".to_owned());
    let outcome = provider.save(&mut session).await?;
    let cookie = session.id().expose();
    println!("saved a new session ({outcome:?}); the client holds {}…", &cookie[..8]);

    // Second request: the same client comes back.
    let mut session = provider.load(&cookie).await?.expect("the session was just stored");
    println!(
        "user={:?} visits={} theme={} notice={:?}",
        session.user(),
        session.visits(),
        session.theme(),
        session.notice()
    );
    session.set_theme("dark".to_owned());
    let written: Vec<_> = session.dirty_fields().collect();
    let outcome = provider.save(&mut session).await?;
    println!("{outcome:?}: wrote {written:?} (the theme, and the consumed notice)");

    // Third request: the flash notice is gone, the rest is kept.
    let session = provider.load(&cookie).await?.expect("still live");
    println!("reloaded: {:?}", session.data());

    // A background job's state as a server-only session tied to alice's session: the
    // application keeps its ID; a client presenting it is refused; it lasts only as long as
    // alice's session (a logout, an expiry or a new login ends it).
    let jobs = SessionProvider::<ExportJob, _>::new(provider.store().clone(), SessionConfig::development().build()?);
    let mut job = jobs.spawn_server_only(&session)?;
    job.set_total(40);
    jobs.save(&mut job).await?;
    let job_id = job.id().clone();
    let mut job = jobs.get_server_only(&job_id).await?;
    *job.done_mut() += 10;
    jobs.save(&mut job).await?;
    println!(
        "export {}/{}; still wanted: {}; refused to a client: {}",
        job.done(),
        job.total(),
        provider.is_live_parent_of(&job).await?,
        jobs.load(&job_id.expose()).await?.is_none()
    );
    println!("live sessions: {}", provider.count().await?);
    Ok(())
}
