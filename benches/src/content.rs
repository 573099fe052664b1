//! The one session every comparison stores: a user id, a user name, a visit counter and
//! eight short preferences, written in each library's own idiom.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use session::SessionData;

/// The user id.
pub const USER_ID: u64 = 1_234_567;
/// The user name.
pub const USER_NAME: &str = "alice@example.com";
/// The visit counter's starting value.
pub const VISITS: u64 = 42;
/// The eight preferences, by name.
pub const PREFERENCES: [(&str, &str); 8] = [
    ("theme", "dark"),
    ("language", "en-GB"),
    ("timezone", "Europe/London"),
    ("currency", "GBP"),
    ("font_size", "medium"),
    ("density", "compact"),
    ("sidebar", "left"),
    ("notifications", "email"),
];

/// The session as this crate stores it: one typed field each.
#[derive(SessionData, Debug, Clone, PartialEq)]
pub struct Profile {
    /// The user id.
    pub user_id: u64,
    /// The user name.
    pub user_name: String,
    /// The visit counter.
    pub visits: u64,
    /// Preference.
    pub theme: String,
    /// Preference.
    pub language: String,
    /// Preference.
    pub timezone: String,
    /// Preference.
    pub currency: String,
    /// Preference.
    pub font_size: String,
    /// Preference.
    pub density: String,
    /// Preference.
    pub sidebar: String,
    /// Preference.
    pub notifications: String,
}

impl Profile {
    /// The benchmark content.
    pub fn sample() -> Self {
        let pref = |i: usize| PREFERENCES[i].1.to_owned();
        Self {
            user_id: USER_ID,
            user_name: USER_NAME.to_owned(),
            visits: VISITS,
            theme: pref(0),
            language: pref(1),
            timezone: pref(2),
            currency: pref(3),
            font_size: pref(4),
            density: pref(5),
            sidebar: pref(6),
            notifications: pref(7),
        }
    }
}

/// Writes the benchmark content into one of this crate's sessions, field by field, as a
/// handler would.
pub fn fill(session: &mut ProfileFields) {
    let sample = Profile::sample();
    session.set_user_id(sample.user_id);
    session.set_user_name(sample.user_name);
    session.set_visits(sample.visits);
    session.set_theme(sample.theme);
    session.set_language(sample.language);
    session.set_timezone(sample.timezone);
    session.set_currency(sample.currency);
    session.set_font_size(sample.font_size);
    session.set_density(sample.density);
    session.set_sidebar(sample.sidebar);
    session.set_notifications(sample.notifications);
}

/// The same session as a plain serde struct: what an axum-extra `PrivateCookieJar` user
/// serializes into the cookie value (as JSON).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PlainProfile {
    /// The user id.
    pub user_id: u64,
    /// The user name.
    pub user_name: String,
    /// The visit counter.
    pub visits: u64,
    /// The eight preferences, by name.
    pub preferences: HashMap<String, String>,
}

impl PlainProfile {
    /// The benchmark content.
    pub fn sample() -> Self {
        Self {
            user_id: USER_ID,
            user_name: USER_NAME.to_owned(),
            visits: VISITS,
            preferences: PREFERENCES
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }
}

/// The content as tower-sessions keeps it: `serde_json::Value`s by key, as
/// `Session::insert` makes them.
pub fn tower_data() -> HashMap<String, Value> {
    let mut data = HashMap::new();
    data.insert("user_id".to_owned(), Value::from(USER_ID));
    data.insert("user_name".to_owned(), Value::from(USER_NAME));
    data.insert("visits".to_owned(), Value::from(VISITS));
    for (name, value) in PREFERENCES {
        data.insert(name.to_owned(), Value::from(value));
    }
    data
}

/// The content as actix-session keeps it: JSON text by key, as `Session::insert` makes it.
pub fn actix_state() -> HashMap<String, String> {
    tower_data()
        .into_iter()
        .map(|(key, value)| (key, value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_idiom_holds_the_same_eleven_values() {
        assert_eq!(tower_data().len(), 11);
        assert_eq!(actix_state()["user_name"], format!("\"{USER_NAME}\""));
        assert_eq!(PlainProfile::sample().preferences.len(), 8);
        assert_eq!(<Profile as SessionData>::FIELDS.len(), 11);
    }
}
