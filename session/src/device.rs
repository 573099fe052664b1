//! The device a session is used from, kept server-side in a reserved field of the record.
//!
//! It is stored like a field, under [`DEVICE_TAG`], a tag no derived field can have (the
//! derive refuses a stored name that hashes to it), so stores keep it without knowing it
//! and the codec skips it as an unknown tag. Its value is a format byte, then the postcard
//! encoding of the User-Agent and IP address.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{ClientInfo, data::FieldDef};

/// The stored name the device's tag is the hash of; the derive refuses it (and any name of
/// the same tag) for a field.
pub(crate) const DEVICE_NAME: &str = "$device";
/// The tag of the device in a record.
pub(crate) const DEVICE_TAG: u32 = FieldDef::tag_of(DEVICE_NAME);
/// The format of the stored value.
const FORMAT: u8 = 1;
/// The most bytes of User-Agent kept: enough to tell browsers and systems apart, and a
/// header of any length cannot grow the record past its size limit.
pub(crate) const MAX_USER_AGENT_BYTES: usize = 256;

/// The device a session is used from, as the HTTP layer saw it when it stored the session
/// (and again when its User-Agent changed): for a "where you are logged in" page.
///
/// The HTTP layer records the User-Agent always and the client IP only when
/// [`SessionConfigBuilder::record_client_ip`](crate::SessionConfigBuilder::record_client_ip)
/// is on: an IP address is personal data, so keeping it is the application's choice. It is
/// kept server-side, never in the cookie: cookie sessions have no device. A session
/// created outside the layer has none unless the application records one with
/// [`Session::set_device`](crate::Session::set_device).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    /// The `User-Agent` header, cut to at most 256 bytes.
    pub user_agent: Option<String>,
    /// The client's address, when recording it is enabled.
    pub ip: Option<IpAddr>,
}

impl Device {
    /// The device of `client`: its User-Agent (cut to 256 bytes, at a character
    /// boundary), and its IP address if `with_ip`.
    pub fn from_client(client: &ClientInfo, with_ip: bool) -> Self {
        Self {
            user_agent: client.user_agent.as_deref().map(|agent| cut(agent).to_owned()),
            ip: client.ip.filter(|_| with_ip),
        }
    }

    /// The stored value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A string and an address: postcard cannot fail on them (were it to, the format
        // byte alone reads back as no device).
        postcard::to_extend(self, vec![FORMAT]).unwrap_or_else(|_| vec![FORMAT])
    }

    /// Reads a stored value; `None` for an unknown format or bytes that do not decode.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let (&FORMAT, body) = bytes.split_first()? else {
            return None;
        };
        postcard::from_bytes(body).ok()
    }
}

/// `agent` cut to [`MAX_USER_AGENT_BYTES`], at a character boundary: what is recorded.
pub(crate) fn cut(agent: &str) -> &str {
    let mut end = agent.len().min(MAX_USER_AGENT_BYTES);
    while !agent.is_char_boundary(end) {
        end -= 1;
    }
    &agent[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_round_trip_and_long_agents_are_cut_at_a_character() {
        let client = ClientInfo {
            user_agent: Some("é".repeat(200)),
            ip: Some("192.0.2.7".parse().unwrap()),
        };
        let device = Device::from_client(&client, true);
        assert_eq!(device.user_agent.as_deref().map(str::len), Some(256));
        assert_eq!(Device::decode(&device.encode()), Some(device));
        assert_eq!(Device::from_client(&client, false).ip, None, "the IP is opt-in");
        assert_eq!(Device::decode(&[9, 0, 0]), None, "an unknown format");
        assert_eq!(Device::decode(&[]), None);
        assert_eq!(DEVICE_TAG, FieldDef::tag_of("$device"));
    }
}
