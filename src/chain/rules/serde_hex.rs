//! Serde helpers: `u128` as a decimal string, byte strings and fixed-length arrays as `0x` hex.

/// u128 as a decimal string (JSON numbers are not safe past 2⁵³).
pub(crate) mod decimal {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Byte strings as `0x` hex.
pub(super) mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("0x{}", hex::encode(bytes)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| D::Error::custom("hex must start with 0x"))?;
        hex::decode(digits).map_err(D::Error::custom)
    }
}

macro_rules! hex_array {
    ($name:ident, $len:literal) => {
        /// A fixed-length byte array as `0x` hex.
        pub(crate) mod $name {
            use serde::{de::Error, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(
                bytes: &[u8; $len],
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                super::hex_bytes::serialize(bytes, serializer)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<[u8; $len], D::Error> {
                let bytes = super::hex_bytes::deserialize(deserializer)?;
                <[u8; $len]>::try_from(bytes.as_slice()).map_err(|_| {
                    D::Error::custom(format!("expected {} bytes, got {}", $len, bytes.len()))
                })
            }
        }
    };
}
hex_array!(hex32, 32);
hex_array!(hex65, 65);
