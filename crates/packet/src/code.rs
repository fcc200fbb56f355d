//! Names on the wire: bureau codes, group names and packet ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::NameError;

/// Longest bureau code, in bytes (DESIGN §1: `^[A-Z0-9][A-Z0-9-]{1,15}$`).
pub const MAX_CODE_LEN: usize = 16;
/// Longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 32;

/// A bureau's code, e.g. `BR`, `GH` or `UA-NCB`: 2 to 16 characters of `A-Z`, `0-9` and `-`,
/// not starting with `-`.
///
/// Parse, don't validate: a `BureauCode` that exists is valid.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BureauCode(String);

impl BureauCode {
    /// Parses and validates a bureau code.
    pub fn new(code: &str) -> Result<Self, NameError> {
        check_name(code, MAX_CODE_LEN, "bureau code").map(|()| Self(code.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The DNS name in this bureau's TLS certificate: the code in lowercase, then the network,
    /// e.g. `br.example-net`. Nodes dial each other by this name.
    pub fn tls_name(&self, network: &NetworkName) -> String {
        format!("{}.{}", self.0.to_ascii_lowercase(), network.as_str())
    }
}

/// A group of bureaus named in the roster, e.g. `CRIMJUST`: 2 to 32 characters of `A-Z`, `0-9`
/// and `-`, not starting with `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

impl GroupName {
    /// Parses and validates a group name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        check_name(name, MAX_GROUP_LEN, "group name").map(|()| Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(s: &str, max: usize, what: &'static str) -> Result<(), NameError> {
    let len = s.len();
    if !(2..=max).contains(&len) {
        return Err(NameError::Length {
            what,
            min: 2,
            max,
            got: len,
        });
    }
    let valid = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-';
    if let Some(pos) = s.bytes().position(|c| !valid(c)) {
        return Err(NameError::Character { what, pos });
    }
    if s.starts_with('-') {
        return Err(NameError::Character { what, pos: 0 });
    }
    Ok(())
}

macro_rules! name_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad` honours width and alignment, for tables.
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_impls!(BureauCode);
name_impls!(GroupName);

/// A packet's identifier: 16 random bytes chosen by the origin, unique per origin.
///
/// Written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PacketId(pub [u8; 16]);

impl PacketId {
    /// Draws a fresh id from the caller's random number generator.
    pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&hex::encode(self.0))
    }
}

impl fmt::Debug for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketId({self})")
    }
}

impl FromStr for PacketId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).map_err(|_| NameError::PacketId)?;
        Ok(Self(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for ok in ["BR", "GH", "UA-NCB", "A1", "0123456789ABCDEF"] {
            assert_eq!(BureauCode::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "B", "br", "-BR", "B R", "0123456789ABCDEFG", "BRÉ"] {
            assert!(BureauCode::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn packet_id_hex() {
        let id = PacketId([0xab; 16]);
        assert_eq!(id.to_string().parse::<PacketId>().unwrap(), id);
        assert!("abc".parse::<PacketId>().is_err());
    }
}

/// Longest network name, in bytes (one DNS label: it appears in certificate names).
pub const MAX_NETWORK_LEN: usize = 63;

/// A network's name, e.g. `example-net`: one lowercase DNS label (`a-z`, `0-9`, `-`, 1 to 63
/// bytes, not starting or ending with `-`), because it is part of every node's TLS name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkName(String);

impl NetworkName {
    /// Parses and validates a network name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let what = "network name";
        if !(1..=MAX_NETWORK_LEN).contains(&name.len()) {
            return Err(NameError::Length {
                what,
                min: 1,
                max: MAX_NETWORK_LEN,
                got: name.len(),
            });
        }
        let valid = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
        if let Some(pos) = name.bytes().position(|c| !valid(c)) {
            return Err(NameError::Character { what, pos });
        }
        if name.starts_with('-') || name.ends_with('-') {
            let pos = if name.starts_with('-') {
                0
            } else {
                name.len() - 1
            };
            return Err(NameError::Character { what, pos });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

name_impls!(NetworkName);
