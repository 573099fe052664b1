//! The session's `Set-Cookie` value, rendered by the `cookie` crate and size-checked.

use cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};

use crate::{
    Error,
    config::{CookieConfig, SameSite},
};

/// The most bytes a `Set-Cookie` value (name, value and attributes) may have: what every
/// major browser accepts.
pub const MAX_COOKIE_BYTES: usize = 4096;

/// The `Set-Cookie` value that sets the session cookie to `value`, or expires it.
///
/// # Errors
///
/// [`Error::CookieTooLarge`], with the actual size, beyond [`MAX_COOKIE_BYTES`].
pub(crate) fn render(config: &CookieConfig, value: Option<&str>) -> Result<String, Error> {
    render_with_max_age(config, value, config.max_age)
}

/// [`render`] with this session's own `Max-Age` (`None`: a browser-session cookie) in
/// place of the configured one.
pub(crate) fn render_with_max_age(
    config: &CookieConfig,
    value: Option<&str>,
    max_age: Option<std::time::Duration>,
) -> Result<String, Error> {
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
            if let Some(max_age) = max_age {
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
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionConfig;

    #[test]
    fn production_cookies_carry_the_secure_attributes() {
        let config = SessionConfig::production().build().unwrap();
        let text = render(config.cookie(), Some("value")).unwrap();
        for part in ["__Host-session=value", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"));
        assert!(render(config.cookie(), None).unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn oversized_cookies_are_refused_with_their_size() {
        let config = SessionConfig::development().build().unwrap();
        let error = render(config.cookie(), Some(&"x".repeat(5000))).unwrap_err();
        assert!(matches!(error, Error::CookieTooLarge { size, limit: 4096 } if size > 5000));
    }
}
