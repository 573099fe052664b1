//! The narrow interface a client-side cache in front of this store (the clustered store)
//! has to it, and nothing else reaches past [`RedisStore`]'s public API:
//!
//! - **who wrote**: every write of a handle sets and deletes, in the same script, a
//!   *signature* key `<key>!<writer>` (see `layout.rs`), so Redis's invalidation messages
//!   name the writers of each key; [`RedisStore::writer`] is this handle's name,
//!   [`RedisStore::with_own_writer`] a handle on the same connections that signs as
//!   someone else, and [`RedisStore::parse_mention`] reads a key name a message mentions;
//! - **where to listen**: the key prefix to track, the primaries to connect to, and how to
//!   reach them ([`NodeSettings`]);
//! - **when**: the store's clock and command timeout, so the cache agrees with the store.

use std::{sync::Arc, time::Duration};

use redis::{ConnectionAddr, RedisConnectionInfo};

pub(crate) use super::connection::Node;
use super::{
    RedisStore, RedisStoreBuilder,
    connection::{Backend, no_cluster_urls, parse_url},
    layout::Keys,
};
use crate::{Error, clock::Clock, id::StoreKey};

/// How a connection outside the store's own (an invalidation listener) reaches a node:
/// its credentials and database, and for `rediss://` the TLS client configuration.
#[derive(Clone)]
pub(crate) struct NodeSettings {
    pub(crate) redis: RedisConnectionInfo,
    /// Trusts what the store's own connections trust: the builder's PEM roots, else the
    /// system's.
    #[cfg(feature = "redis-tls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl RedisStoreBuilder {
    /// Makes every write of the store it builds set and delete its key's signature; the
    /// plain store does not pay for it.
    pub(crate) fn signing_writes(mut self) -> Self {
        self.signed = true;
        self
    }

    /// How other connections will reach the nodes of the store this builds: read from the
    /// (first) URL, before anything connects.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid URL, a Unix socket, `#insecure` TLS, or TLS roots
    /// that cannot be used.
    pub(crate) fn node_settings(&self) -> Result<NodeSettings, Error> {
        let url = self.urls.first().ok_or_else(no_cluster_urls)?;
        let info = parse_url(url)?;
        match info.addr() {
            ConnectionAddr::Tcp(..) => {}
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(Error::Config(
                    "the clustered store does not support insecure TLS (rediss://…#insecure): its invalidation connections verify the server's certificate; trust the server's CA with RedisStoreBuilder::tls_root_certificates instead".into(),
                ));
            }
            ConnectionAddr::TcpTls { .. } => {}
            _ => {
                return Err(Error::Config(
                    "the clustered store's invalidation connections need a TCP address: a Redis server on a Unix socket is not supported".into(),
                ));
            }
        }
        Ok(NodeSettings {
            redis: info.redis_settings().clone(),
            #[cfg(feature = "redis-tls")]
            tls: matches!(info.addr(), ConnectionAddr::TcpTls { .. })
                .then(|| tls_client_config(self.tls_roots.as_deref()))
                .transpose()?,
        })
    }
}

/// A TLS client configuration trusting `pem`'s certificates, or the system's roots.
#[cfg(feature = "redis-tls")]
fn tls_client_config(pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};

    let mut roots = rustls::RootCertStore::empty();
    match pem {
        Some(pem) => {
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate
                    .map_err(|error| Error::Config(format!("invalid PEM in the TLS root certificates: {error}")))?;
                roots
                    .add(certificate)
                    .map_err(|error| Error::Config(format!("unusable TLS root certificate: {error}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(Error::Config(format!(
                    "no system root certificates for rediss:// ({}); trust a CA with RedisStoreBuilder::tls_root_certificates",
                    errors.join("; ")
                )));
            }
        }
    }
    if roots.is_empty() {
        return Err(Error::Config("the TLS root certificates hold no certificate".into()));
    }
    // The process's provider if the application installed one, as rustls itself would
    // pick; else ring, the one this crate enables.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Config(format!("TLS settings: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl RedisStore {
    /// A handle on the same store and connections that signs its writes with a name of its
    /// own, so they count as another writer's.
    pub(crate) fn with_own_writer(&self) -> Result<RedisStore, Error> {
        Ok(RedisStore {
            inner: self.inner.clone(),
            writer: crate::id::random_hex::<8>()?.into(),
        })
    }

    /// This handle's name in the signatures of its writes.
    pub(crate) fn writer(&self) -> &str {
        &self.writer
    }

    /// A key name an invalidation mentions: one of this store's session keys, and the
    /// writer when it is a signature (`<key>!<writer>`).
    pub(crate) fn parse_mention<'a>(&self, name: &'a [u8]) -> Option<(StoreKey, Option<&'a [u8]>)> {
        parse_mention(&self.inner.keys, name)
    }

    /// The prefix of this store's key names.
    pub(crate) fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// The store's clock.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The per-command timeout.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The nodes that accept writes: the one server, or every cluster primary that holds
    /// slots, sorted by address.
    ///
    /// # Errors
    ///
    /// When the cluster cannot be asked, or the server is a Unix socket.
    pub(crate) async fn primaries(&self) -> Result<Vec<Node>, Error> {
        match &self.inner.backend {
            Backend::Standalone { client, .. } => match client.get_connection_info().addr() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => Ok(vec![Node {
                    host: host.clone(),
                    port: *port,
                }]),
                _ => Err(Error::Config(
                    "a Redis server on a Unix socket has no TCP address".into(),
                )),
            },
            Backend::Cluster { .. } => Ok(self.inner.scan_nodes().await?.into_iter().flatten().collect()),
        }
    }
}

/// See [`RedisStore::parse_mention`].
fn parse_mention<'a>(keys: &Keys, name: &'a [u8]) -> Option<(StoreKey, Option<&'a [u8]>)> {
    let split = name.iter().rposition(|&byte| byte == b'}')? + 1;
    let key = keys.parse(&name[..split])?;
    match &name[split..] {
        [] => Some((key, None)),
        [b'!', writer @ ..] if !writer.is_empty() => Some((key, Some(writer))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_the_key_and_the_writer() {
        let key = StoreKey::from_bytes([0xab; 32]);
        let keys = Keys::new("app:");
        let signature = keys.signature(&key, "0123abcd");
        assert_eq!(signature, format!("{}!0123abcd", keys.key(&key)));
        assert_eq!(
            parse_mention(&keys, signature.as_bytes()),
            Some((key, Some(&b"0123abcd"[..])))
        );
        assert_eq!(parse_mention(&keys, keys.key(&key).as_bytes()), Some((key, None)));
        assert_eq!(keys.parse(signature.as_bytes()), None, "SCAN never yields a signature");
        for other in [
            format!("{}!", keys.key(&key)),
            format!("{}x", keys.key(&key)),
            "app:{ab}!x".into(),
        ] {
            assert_eq!(parse_mention(&keys, other.as_bytes()), None, "{other}");
        }
    }
}
