//! Reading the session cookie from request headers and rendering `Set-Cookie` (with the
//! `cookie` crate); as text, so that every HTTP framework (whatever its `http` version) shares it.

#[cfg(test)]
use http::{HeaderMap, HeaderValue, header};

use crate::{Error, config::CookieConfig, set_cookie};

/// The values of the cookies called `name` in the request (every `Cookie` header, in
/// order); pairs without `=` are skipped, not fatal. A browser sends several when cookies
/// of one name were set for different paths or domains (say, an old one for a parent
/// domain): each is tried in turn.
#[cfg(test)]
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Vec<String> {
    read_values(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok()),
        name,
    )
}

/// [`read`] over the `Cookie` header values as text (those that are not text skipped).
///
/// Split by hand with the `cookie` crate's rules (pairs on `;`, name and value trimmed, the
/// value taken as it is), without building a `Cookie` for every pair of the header.
pub(crate) fn read_values<'a>(values: impl IntoIterator<Item = &'a str>, name: &str) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(pair_name, _)| pair_name.trim() == name)
        .map(|(_, value)| value.trim().to_owned())
        .collect()
}

/// The `Set-Cookie` text of the session cookie around its value: the `cookie` crate writes
/// `name=value` and then the attributes, which depend only on the configuration, so they
/// are rendered once per layer rather than on every response that sets the cookie.
#[derive(Debug, Clone)]
pub(crate) struct SetCookieFrame {
    head: String,
    tail: String,
}

impl SetCookieFrame {
    pub(crate) fn new(config: &CookieConfig) -> Result<Self, Error> {
        let text = set_cookie::render(config, Some(""))?;
        let head = format!("{}=", config.name);
        let tail = text
            .strip_prefix(&head)
            .ok_or_else(|| Error::Config("the session cookie does not start with its name".to_owned()))?
            .to_owned();
        Ok(Self { head, tail })
    }

    /// What [`set_cookie`] gives for `Some(value)`, with the same size limit.
    pub(crate) fn header(&self, value: &str) -> Result<String, Error> {
        let size = self.head.len() + value.len() + self.tail.len();
        if size > set_cookie::MAX_COOKIE_BYTES {
            return Err(Error::CookieTooLarge {
                size,
                limit: set_cookie::MAX_COOKIE_BYTES,
            });
        }
        let mut text = String::with_capacity(size);
        text.push_str(&self.head);
        text.push_str(value);
        text.push_str(&self.tail);
        Ok(text)
    }
}

/// The `Set-Cookie` header that sets the session cookie to `value`, or expires it.
pub(crate) fn set_cookie(config: &CookieConfig, value: Option<&str>) -> Result<String, Error> {
    set_cookie::render(config, value)
}

/// The `Set-Cookie` text for `value` (or its expiry), through the frame when there is one.
pub(crate) fn set_cookie_text(
    frame: Option<&SetCookieFrame>,
    config: &CookieConfig,
    value: Option<&str>,
) -> Result<String, Error> {
    match (frame, value) {
        (Some(frame), Some(value)) => frame.header(value),
        _ => set_cookie(config, value),
    }
}

/// Why a `Set-Cookie` text is not a valid header value (a configuration with characters
/// headers cannot carry).
pub(crate) fn invalid_header(error: impl std::fmt::Display) -> Error {
    Error::Config(format!("the session cookie is not a valid header: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_renders_what_the_cookie_crate_renders() {
        use crate::SessionConfig;
        use std::time::Duration;

        for config in [
            SessionConfig::production().build().unwrap(),
            SessionConfig::development()
                .max_age(Some(Duration::from_secs(600)))
                .cookie_domain("example.com")
                .build()
                .unwrap(),
        ] {
            let frame = SetCookieFrame::new(config.cookie()).unwrap();
            let value = "a-sealed_value123";
            assert_eq!(
                frame.header(value).unwrap(),
                set_cookie(config.cookie(), Some(value)).unwrap()
            );
            let big = "x".repeat(5000);
            assert!(matches!(
                frame.header(&big),
                Err(Error::CookieTooLarge { limit: 4096, .. })
            ));
        }
    }

    #[test]
    fn reads_every_cookie_of_the_name_in_order_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; session=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("session=second"));
        assert_eq!(read(&headers, "session"), ["abc", "second"]);
        assert!(read(&headers, "missing").is_empty());

        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("broken; =x;  session = padded ;"),
        );
        assert_eq!(read(&headers, "session"), ["padded"]);

        // The same values as the cookie crate's parser.
        for header in [
            "a=1; session=abc",
            "broken; =x;  session = padded ;",
            "session=\"q\";session=a=b; x",
        ] {
            let by_crate: Vec<String> = ::cookie::Cookie::split_parse(header)
                .filter_map(Result::ok)
                .filter(|cookie| cookie.name() == "session")
                .map(|cookie| cookie.value().to_owned())
                .collect();
            assert_eq!(read_values([header], "session"), by_crate, "{header}");
        }
    }
}
