//! What a session can be bound to: the client's User-Agent and IP address.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// Facts about the client that a session may be bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client's address: the connection's peer, or a configured trusted proxy
    /// header's value, never an arbitrary header.
    pub ip: Option<IpAddr>,
}

/// Which client facts a session is bound to. A session presented by a client whose
/// bound facts differ is treated as no session.
///
/// Binding to the IP address logs out users whose address changes (mobile networks);
/// binding to the User-Agent logs them out on browser updates. Both are off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientBinding {
    /// Bind to the `User-Agent` header.
    pub user_agent: bool,
    /// Bind to the client IP address.
    pub ip: bool,
}

impl ClientBinding {
    /// Binds to nothing.
    pub const NONE: Self = Self {
        user_agent: false,
        ip: false,
    };

    /// Whether anything is bound.
    pub fn is_enabled(self) -> bool {
        self.user_agent || self.ip
    }

    /// Whether `client` matches the bound facts whose digest the session holds. An unknown
    /// IP address never matches a binding to the IP: a server that cannot tell the client's
    /// address cannot tell it apart from another client's.
    pub(crate) fn matches(self, stored: Option<[u8; 16]>, client: &ClientInfo) -> bool {
        !(self.ip && client.ip.is_none()) && stored == self.digest(client)
    }

    /// The digest of the bound facts, kept inside the sealed session.
    pub(crate) fn digest(self, client: &ClientInfo) -> Option<[u8; 16]> {
        if !self.is_enabled() {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(b"session/binding/v1");
        if self.user_agent {
            let agent = client.user_agent.as_deref().unwrap_or("");
            hasher.update((agent.len() as u64).to_be_bytes());
            hasher.update(agent.as_bytes());
        }
        if self.ip {
            hasher.update(client.ip.map(|ip| ip.to_string()).unwrap_or_default().as_bytes());
        }
        let digest = hasher.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Some(out)
    }
}
