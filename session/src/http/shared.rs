//! What every framework adapter shares: the backend, the outage policy and the cookie
//! frame; a [`LazySession`] in from the request's cookies and client facts, the commit out.
//! Adapters pass text and their own response type, so the `http` crate's version does not
//! matter here.

use std::{fmt, net::IpAddr, sync::Arc};

use super::{
    backend::SessionBackend,
    commit::{self, ResponseParts},
    cookie,
    lazy::{LazySession, Loader, OutagePolicy},
};
use crate::{ClientInfo, SessionData};

/// The shared state of one session layer or middleware.
pub(crate) struct SessionCore<T: SessionData, B> {
    backend: Arc<B>,
    /// The same backend, type-erased once rather than on every request.
    loader: Arc<dyn Loader<T>>,
    pub(crate) outage_policy: OutagePolicy,
    /// The header a trusted proxy writes the client's address into, lowercase.
    pub(crate) trusted_proxy_header: Option<String>,
    /// The `Set-Cookie` text around the value, rendered once; `None` if the configuration
    /// cannot render (every set then reports why).
    frame: Option<cookie::SetCookieFrame>,
}

impl<T: SessionData, B> Clone for SessionCore<T, B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            loader: self.loader.clone(),
            outage_policy: self.outage_policy,
            trusted_proxy_header: self.trusted_proxy_header.clone(),
            frame: self.frame.clone(),
        }
    }
}

impl<T: SessionData, B> fmt::Debug for SessionCore<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCore")
            .field("outage_policy", &self.outage_policy)
            .field("trusted_proxy_header", &self.trusted_proxy_header)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData, B: SessionBackend<T>> SessionCore<T, B> {
    pub(crate) fn new(backend: B) -> Self {
        let frame = cookie::SetCookieFrame::new(backend.config().cookie()).ok();
        let backend = Arc::new(backend);
        Self {
            loader: backend.clone(),
            backend,
            outage_policy: OutagePolicy::default(),
            trusted_proxy_header: None,
            frame,
        }
    }

    /// Where this request's client address comes from: the last value of the trusted proxy
    /// header when one is configured (`last_value` looks a header up by name), else the
    /// connection's peer.
    pub(crate) fn ip_source<'a>(
        &self,
        last_value: impl FnOnce(&str) -> Option<&'a str>,
        peer: impl FnOnce() -> Option<IpAddr>,
    ) -> IpSource<'a> {
        match &self.trusted_proxy_header {
            Some(name) => IpSource::TrustedHeader(last_value(name)),
            None => IpSource::Peer(peer()),
        }
    }

    /// The request's lazy session, from its `Cookie` header values.
    pub(crate) fn begin<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a str>,
        client: ClientInfo,
    ) -> LazySession<T> {
        let cookies = cookie::read_values(cookie_headers, &self.backend.config().cookie().name);
        LazySession::new(self.loader.clone(), cookies, client, self.outage_policy)
    }

    /// Commits `session` after the handler and applies the outcome to `response`.
    pub(crate) async fn finish<R: ResponseParts>(&self, session: &LazySession<T>, response: &mut R) {
        commit::finish(&*self.backend, self.frame.as_ref(), session, response).await;
    }
}

/// Where the client's IP address comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IpSource<'a> {
    /// The connection's peer, if the framework knows it.
    Peer(Option<IpAddr>),
    /// A trusted proxy header: the text of its last occurrence, if any.
    TrustedHeader(Option<&'a str>),
}

/// The client facts a session may be bound to.
pub(crate) fn client_info(user_agent: Option<&str>, ip: IpSource<'_>) -> ClientInfo {
    let ip = match ip {
        IpSource::Peer(ip) => ip,
        // Only the last entry is the proxy's own; earlier ones are what the client sent.
        // An entry that does not parse leaves the address unknown.
        IpSource::TrustedHeader(value) => value
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok()),
    };
    ClientInfo {
        user_agent: user_agent.map(str::to_owned),
        ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_proxys_own_entry_counts() {
        let ip = |value| client_info(None, IpSource::TrustedHeader(value)).ip;
        assert_eq!(ip(Some("10.0.0.1, 192.0.2.7")), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(ip(Some("192.0.2.7, not-an-ip")), None);
        assert_eq!(ip(None), None);
        let peer = Some("198.51.100.1".parse().unwrap());
        assert_eq!(client_info(Some("agent"), IpSource::Peer(peer)).ip, peer);
    }
}
