//! Reading and writing the session cookie, with the `cookie` crate.

use cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};
use http::{HeaderMap, HeaderValue, header};

use crate::{
    Error,
    config::{CookieConfig, SameSite},
};

/// The most bytes a `Set-Cookie` value (name, value and attributes) may have: what every
/// major browser accepts.
pub const MAX_COOKIE_BYTES: usize = 4096;

/// The value of the first cookie called `name` in the request.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// The `Set-Cookie` header that sets the session cookie to `value`, or expires it.
pub(crate) fn set_cookie(config: &CookieConfig, value: Option<&str>) -> Result<HeaderValue, Error> {
    let mut cookie = Cookie::build((config.name.as_str(), value.unwrap_or("")))
        .path(config.path.as_str())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(match config.same_site {
            SameSite::Strict => CookieSameSite::Strict,
            SameSite::Lax => CookieSameSite::Lax,
            SameSite::None => CookieSameSite::None,
        });
    if let Some(domain) = &config.domain {
        cookie = cookie.domain(domain.as_str());
    }
    match value {
        None => {
            cookie = cookie
                .max_age(CookieDuration::ZERO)
                .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
        }
        Some(_) => {
            if let Some(max_age) = config.max_age {
                cookie = cookie.max_age(CookieDuration::seconds(
                    i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
                ));
            }
        }
    }
    let text = cookie.build().to_string();
    if text.len() > MAX_COOKIE_BYTES {
        return Err(Error::CookieTooLarge {
            size: text.len(),
            limit: MAX_COOKIE_BYTES,
        });
    }
    HeaderValue::from_str(&text).map_err(|error| {
        Error::Config(format!("the session cookie is not a valid header: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionConfig;

    #[test]
    fn reads_the_named_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; session=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("session=second"));
        assert_eq!(read(&headers, "session").as_deref(), Some("abc"));
        assert_eq!(read(&headers, "missing"), None);
    }

    #[test]
    fn production_cookies_carry_the_secure_attributes() {
        let config = SessionConfig::production().build().unwrap();
        let header = set_cookie(config.cookie(), Some("value")).unwrap();
        let text = header.to_str().unwrap();
        for part in [
            "__Host-session=value",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"));
        let removal = set_cookie(config.cookie(), None).unwrap();
        assert!(removal.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn oversized_cookies_are_refused_with_their_size() {
        let config = SessionConfig::development().build().unwrap();
        let error = set_cookie(config.cookie(), Some(&"x".repeat(5000))).unwrap_err();
        assert!(matches!(error, Error::CookieTooLarge { size, limit: 4096 } if size > 5000));
    }
}
