//! The beacon messages on the wire (`proto/beacon.proto`): encoding, and decoding that checks
//! every length, count and point before the protocol machines see the message.
//!
//! # Overview
//! [`decode_dkg`] turns an envelope's payload into a [`dkg::Message`] or a [`BeaconWireError`]
//! whose [`BeaconWireError::reason`] names what was wrong, so the node can count it and
//! penalise the sender; [`encode_dkg`] is its inverse. Lists are bounded by
//! [`dkg::MAX_MEMBERS`] and the threshold by the same, so a hostile message cannot make the
//! decoder or the machines allocate without bound.

use prost::Message as _;

use super::{
    bls::{g1_to_bytes, g2_on_curve_from_bytes, PublicKey, Signature},
    dkg::{self, Body, Index, MAX_MEMBERS},
};

#[allow(clippy::all, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/keeplight.beacon.rs"));
}

use generated::{
    dkg_message, Commitments, EncryptedShares, EphemeralKeys, PeerKey, PeerKeys, Points,
    ResultSignature,
};
pub use generated::{DkgMessage, EntryShare};

/// Envelope type of a DKG message.
pub const DKG_TYPE: &str = "beacon.dkg.Message";
/// Envelope type of a relay-entry signature share.
pub const ENTRY_SHARE_TYPE: &str = "beacon.entry.Share";

/// A share's ciphertext: two 32-byte scalars and the AEAD tag.
const CIPHERTEXT_LEN: usize = 64 + 16;

/// Why a beacon payload was refused; the sender is to be penalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconWireError {
    /// Not a protobuf message of the expected kind.
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// A field has the wrong length, count or value (the text says which).
    #[error("malformed: {0}")]
    Malformed(String),
    /// A point that is not on the curve (or not canonical).
    #[error("bad point: {0}")]
    BadPoint(String),
}

impl BeaconWireError {
    /// A short stable name for counters and JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            BeaconWireError::Undecodable(_) => "undecodable_payload",
            BeaconWireError::Malformed(_) => "malformed",
            BeaconWireError::BadPoint(_) => "bad_point",
        }
    }
}

fn malformed(what: impl Into<String>) -> BeaconWireError {
    BeaconWireError::Malformed(what.into())
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], BeaconWireError> {
    bytes
        .try_into()
        .map_err(|_| malformed(format!("{what}: {} bytes, expected {N}", bytes.len())))
}

fn bounded<T>(list: &[T], what: &str) -> Result<(), BeaconWireError> {
    if list.len() > MAX_MEMBERS as usize {
        return Err(malformed(format!("{what}: {} entries", list.len())));
    }
    Ok(())
}

fn seat(index: u32, what: &str) -> Result<Index, BeaconWireError> {
    if index == 0 || index > MAX_MEMBERS {
        return Err(malformed(format!("{what}: seat {index}")));
    }
    Ok(index)
}

fn peer_keys<const N: usize>(
    keys: &[PeerKey],
    what: &str,
) -> Result<Vec<(Index, [u8; N])>, BeaconWireError> {
    bounded(keys, what)?;
    keys.iter()
        .map(|k| Ok((seat(k.peer, what)?, fixed::<N>(&k.key, what)?)))
        .collect()
}

fn to_peer_keys<const N: usize>(keys: &[(Index, [u8; N])]) -> Vec<PeerKey> {
    keys.iter()
        .map(|(peer, key)| PeerKey {
            peer: *peer,
            key: key.to_vec(),
        })
        .collect()
}

/// A DKG message as its envelope payload.
pub fn encode_dkg(message: &dkg::Message) -> Vec<u8> {
    dkg_to_proto(message).encode_to_vec()
}

/// A DKG message as its protobuf (what a channel sends).
pub fn dkg_to_proto(message: &dkg::Message) -> DkgMessage {
    let body = match &message.body {
        Body::EphemeralKeys { keys } => dkg_message::Body::EphemeralKeys(EphemeralKeys {
            keys: to_peer_keys(keys),
        }),
        Body::Commitments {
            commitments,
            shares,
        } => dkg_message::Body::Commitments(Commitments {
            commitments: commitments
                .iter()
                .map(|c| g1_to_bytes(*c).to_vec())
                .collect(),
            shares: shares
                .iter()
                .map(|(receiver, ciphertext)| EncryptedShares {
                    receiver: *receiver,
                    ciphertext: ciphertext.clone(),
                })
                .collect(),
        }),
        Body::ShareAccusations { accused } => dkg_message::Body::ShareAccusations(PeerKeys {
            keys: to_peer_keys(accused),
        }),
        Body::Points { points } => dkg_message::Body::Points(Points {
            points: points
                .iter()
                .map(|p| PublicKey(*p).to_bytes().to_vec())
                .collect(),
        }),
        Body::PointAccusations { accused } => dkg_message::Body::PointAccusations(PeerKeys {
            keys: to_peer_keys(accused),
        }),
        Body::Disclosure { keys } => dkg_message::Body::Disclosure(PeerKeys {
            keys: to_peer_keys(keys),
        }),
        Body::ResultSignature { hash, signature } => {
            dkg_message::Body::ResultSignature(ResultSignature {
                hash: hash.to_vec(),
                signature: signature.to_vec(),
            })
        }
    };
    DkgMessage {
        session: message.session.to_vec(),
        sender: message.sender,
        body: Some(body),
    }
}

/// An envelope payload as a DKG message, every field checked.
pub fn decode_dkg(payload: &[u8]) -> Result<dkg::Message, BeaconWireError> {
    let message =
        DkgMessage::decode(payload).map_err(|e| BeaconWireError::Undecodable(e.to_string()))?;
    dkg_from_proto(message)
}

/// A DKG message as the channel decoded it (protobuf only), every field checked.
pub fn dkg_from_proto(message: DkgMessage) -> Result<dkg::Message, BeaconWireError> {
    let session = fixed::<32>(&message.session, "session")?;
    let sender = seat(message.sender, "sender")?;
    let body = match message.body.ok_or_else(|| malformed("no body"))? {
        dkg_message::Body::EphemeralKeys(m) => Body::EphemeralKeys {
            keys: peer_keys::<33>(&m.keys, "ephemeral keys")?,
        },
        dkg_message::Body::Commitments(m) => {
            bounded(&m.commitments, "commitments")?;
            bounded(&m.shares, "shares")?;
            let commitments = m
                .commitments
                .iter()
                .map(|c| {
                    Signature::from_bytes(c)
                        .map(|s| s.point())
                        .map_err(|e| BeaconWireError::BadPoint(format!("commitment: {e}")))
                })
                .collect::<Result<_, _>>()?;
            let shares = m
                .shares
                .into_iter()
                .map(|s| {
                    if s.ciphertext.len() != CIPHERTEXT_LEN {
                        return Err(malformed(format!(
                            "ciphertext: {} bytes, expected {CIPHERTEXT_LEN}",
                            s.ciphertext.len()
                        )));
                    }
                    Ok((seat(s.receiver, "share receiver")?, s.ciphertext))
                })
                .collect::<Result<_, _>>()?;
            Body::Commitments {
                commitments,
                shares,
            }
        }
        dkg_message::Body::ShareAccusations(m) => Body::ShareAccusations {
            accused: peer_keys::<32>(&m.keys, "share accusations")?,
        },
        dkg_message::Body::Points(m) => {
            bounded(&m.points, "points")?;
            let points = m
                .points
                .iter()
                .map(|p| {
                    g2_on_curve_from_bytes(p)
                        .map_err(|e| BeaconWireError::BadPoint(format!("point: {e}")))
                })
                .collect::<Result<_, _>>()?;
            Body::Points { points }
        }
        dkg_message::Body::PointAccusations(m) => Body::PointAccusations {
            accused: peer_keys::<32>(&m.keys, "point accusations")?,
        },
        dkg_message::Body::Disclosure(m) => Body::Disclosure {
            keys: peer_keys::<32>(&m.keys, "disclosure")?,
        },
        dkg_message::Body::ResultSignature(m) => Body::ResultSignature {
            hash: fixed::<32>(&m.hash, "result hash")?,
            signature: fixed::<65>(&m.signature, "result signature")?,
        },
    };
    Ok(dkg::Message {
        session,
        sender,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::sim::{DkgSimulation, SimConfig};

    #[test]
    fn every_message_of_a_dkg_survives_the_wire_unchanged() {
        let mut sim = DkgSimulation::new(SimConfig::new(5, 3, 21));
        sim.run(100_000).unwrap();
        let mut phases = std::collections::BTreeSet::new();
        for message in sim.sent() {
            let bytes = encode_dkg(message);
            assert_eq!(&decode_dkg(&bytes).unwrap(), message);
            phases.insert(message.body.phase());
        }
        assert_eq!(phases.len(), dkg::Phase::ALL.len(), "every phase's message");
    }

    #[test]
    fn bad_payloads_are_refused_with_their_reason() {
        let mut sim = DkgSimulation::new(SimConfig::new(3, 2, 22));
        sim.run(100_000).unwrap();
        let find = |phase| {
            sim.sent()
                .iter()
                .find(|m| m.body.phase() == phase)
                .unwrap()
                .clone()
        };
        let reason = |bytes: &[u8]| decode_dkg(bytes).unwrap_err().reason();
        assert_eq!(reason(&[0xff, 0xff, 0xff]), "undecodable_payload");
        // A session of the wrong length, seat 0, no body.
        let mut message =
            DkgMessage::decode(&encode_dkg(&find(dkg::Phase::EphemeralKeys))[..]).unwrap();
        message.session.pop();
        assert_eq!(reason(&message.encode_to_vec()), "malformed");
        let mut message =
            DkgMessage::decode(&encode_dkg(&find(dkg::Phase::EphemeralKeys))[..]).unwrap();
        message.sender = 0;
        assert_eq!(reason(&message.encode_to_vec()), "malformed");
        message.sender = 1;
        message.body = None;
        assert_eq!(reason(&message.encode_to_vec()), "malformed");
        // A commitment off the curve; a point off the curve; a short ciphertext.
        let mut message =
            DkgMessage::decode(&encode_dkg(&find(dkg::Phase::Commitments))[..]).unwrap();
        if let Some(dkg_message::Body::Commitments(c)) = &mut message.body {
            c.commitments[0][63] ^= 1;
        }
        assert_eq!(reason(&message.encode_to_vec()), "bad_point");
        let mut message =
            DkgMessage::decode(&encode_dkg(&find(dkg::Phase::Commitments))[..]).unwrap();
        if let Some(dkg_message::Body::Commitments(c)) = &mut message.body {
            c.shares[0].ciphertext.pop();
        }
        assert_eq!(reason(&message.encode_to_vec()), "malformed");
        let mut message = DkgMessage::decode(&encode_dkg(&find(dkg::Phase::Points))[..]).unwrap();
        if let Some(dkg_message::Body::Points(p)) = &mut message.body {
            p.points[1][127] ^= 1;
        }
        assert_eq!(reason(&message.encode_to_vec()), "bad_point");
        // More entries than any group has seats.
        let many = DkgMessage {
            session: vec![0; 32],
            sender: 1,
            body: Some(dkg_message::Body::Disclosure(PeerKeys {
                keys: vec![
                    PeerKey {
                        peer: 1,
                        key: vec![0; 32]
                    };
                    MAX_MEMBERS as usize + 1
                ],
            })),
        };
        assert_eq!(reason(&many.encode_to_vec()), "malformed");
    }
}
