//! Property tests: the codec round-trips any value, merges as a map of fields (removals
//! included) and no input panics the decoder.

mod common;

use common::AppSession;
use proptest::prelude::*;
use session::{__private::DirtySet, __private::codec, SessionData, store::FieldRecord};

fn app_session() -> impl Strategy<Value = (AppSession, Option<String>)> {
    (
        proptest::option::of(".{0,40}"),
        any::<u64>(),
        ".{0,20}",
        proptest::option::of("[a-z]{2}"),
        proptest::option::of(".{0,30}"),
    )
        .prop_map(|(user, visits, theme, language, notice)| {
            let mut data = AppSession::initial();
            data.user = user;
            data.visits = visits;
            data.theme = theme;
            data.language = language;
            if let Some(notice) = &notice {
                data.notice.set_next(notice.clone());
            }
            (data, notice)
        })
}

proptest! {
    #[test]
    fn every_session_round_trips((data, notice) in app_session()) {
        let record = codec::encode(&data, DirtySet::all(AppSession::FIELDS.len())).unwrap();
        let back: AppSession = codec::decode(&record);
        prop_assert_eq!(&back.user, &data.user);
        prop_assert_eq!(back.visits, data.visits);
        prop_assert_eq!(&back.theme, &data.theme);
        prop_assert_eq!(&back.language, &data.language);
        // What was set for the next request is what the next request sees.
        prop_assert_eq!(back.notice.get(), notice.as_ref());
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let record = FieldRecord::from_bytes(bytes);
        let _: AppSession = codec::decode(&record);
        let mut base = FieldRecord::new();
        base.push(1, b"x");
        let _ = base.merge(&record);
        let _ = record.get(7);
    }

    #[test]
    fn merge_matches_a_field_map(
        base in proptest::collection::vec((0u32..6, proptest::collection::vec(any::<u8>(), 0..8)), 0..6),
        update in proptest::collection::vec((0u32..6, proptest::collection::vec(any::<u8>(), 0..8)), 0..6),
    ) {
        let mut expected = std::collections::BTreeMap::new();
        let mut record = FieldRecord::new();
        for (tag, value) in dedup(base) {
            record.push(tag, &value);
            expected.insert(tag, value);
        }
        // An update's empty value is a removal, and a repeated tag takes its last value.
        let mut changes = FieldRecord::new();
        for (tag, value) in update {
            changes.push(tag, &value);
            if value.is_empty() {
                expected.remove(&tag);
            } else {
                expected.insert(tag, value);
            }
        }
        record.merge(&changes).unwrap();
        let actual: std::collections::BTreeMap<u32, Vec<u8>> =
            record.iter().map(|field| field.map(|(tag, value)| (tag, value.to_vec()))).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(actual, expected);
    }
}

fn dedup(fields: Vec<(u32, Vec<u8>)>) -> Vec<(u32, Vec<u8>)> {
    let mut seen = std::collections::BTreeMap::new();
    for (tag, value) in fields {
        seen.entry(tag).or_insert(value);
    }
    seen.into_iter().collect()
}
