//! Reading the session cookie from request headers, with the `cookie` crate.

use http::{HeaderMap, HeaderValue, header};

use crate::{Error, config::CookieConfig, set_cookie};

/// The value of the first cookie called `name` in the request.
///
/// Splits the `Cookie` header by hand, as the `cookie` crate's `split_parse` would (pairs
/// separated by `;`, name and value trimmed, pairs without `=` or with an empty name
/// skipped), but without building a `Cookie` for every pair: this runs on every request.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(pair_name, _)| !name.is_empty() && pair_name.trim() == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// The `Set-Cookie` header that sets the session cookie to `value`, or expires it.
pub(crate) fn set_cookie(config: &CookieConfig, value: Option<&str>) -> Result<HeaderValue, Error> {
    let text = set_cookie::render(config, value)?;
    HeaderValue::from_str(&text)
        .map_err(|error| Error::Config(format!("the session cookie is not a valid header: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; session=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("session=second"));
        assert_eq!(read(&headers, "session").as_deref(), Some("abc"));
        assert_eq!(read(&headers, "missing"), None);
    }
}
