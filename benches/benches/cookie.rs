//! Seal and open of a typical cookie session (a user and a few preferences) and of a larger
//! one (plus 30 recent pages), plain and gzip-compressed; compression is skipped when it
//! does not shrink the payload, as for the typical session. Run with
//! `cargo bench -p session-benches --bench cookie`.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{Criterion, criterion_group, criterion_main};
use session::{
    ClientInfo, CookieSessions, Flash, SessionConfig, SessionData,
    crypto::{KeyId, KeyRing, Secret},
};

#[derive(SessionData)]
struct DemoSession {
    user: Option<String>,
    visits: u64,
    #[session(flash)]
    notice: Flash<String>,
    theme: Option<String>,
    language: Option<String>,
    timezone: Option<String>,
    currency: Option<String>,
    recent_pages: Vec<String>,
}

fn store(compress_above: Option<usize>) -> CookieSessions {
    let ring = KeyRing::new(KeyId(1), Secret::from_bytes((0u8..64).collect::<Vec<u8>>()).unwrap());
    CookieSessions::new(ring, SessionConfig::production().build().unwrap())
        .unwrap()
        .compress_above(compress_above)
}

fn bench(c: &mut Criterion) {
    let client = ClientInfo::default();
    let cases = [
        ("typical/plain", store(None), 0),
        ("typical/compressed", store(Some(0)), 0),
        ("large/plain", store(None), 30),
        ("large/compressed", store(Some(0)), 30),
    ];
    for (name, store, pages) in cases {
        let mut session = store.create::<DemoSession>().unwrap();
        session.set_user(Some("alice@example.com".into()));
        session.set_visits(42);
        session.set_theme(Some("dark".into()));
        session.set_language(Some("en-GB".into()));
        session.set_timezone(Some("Europe/London".into()));
        session.set_currency(Some("GBP".into()));
        session.set_recent_pages(
            (0..pages)
                .map(|i| format!("/products/category-{}/item-{i}", i % 3))
                .collect(),
        );
        let sealed = store.seal(&mut session, &client).unwrap();
        eprintln!("{name}: cookie value {} bytes", sealed.len());

        c.bench_function(&format!("cookie/{name}/seal"), |b| {
            b.iter(|| {
                session.set_visits(43);
                store.seal(&mut session, &client).unwrap()
            })
        });
        c.bench_function(&format!("cookie/{name}/open"), |b| {
            b.iter(|| store.open::<DemoSession>(&sealed, &client).unwrap())
        });
        c.bench_function(&format!("cookie/{name}/seal+open"), |b| {
            b.iter(|| {
                session.set_visits(44);
                let value = store.seal(&mut session, &client).unwrap();
                store.open::<DemoSession>(&value, &client).unwrap()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
