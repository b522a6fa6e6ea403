//! Distributed key generation: GJKR as keep-core runs it, as a sans-IO state machine.
//!
//! # Overview
//! N members, each holding a network key (secp256k1) and a seat index 1..=N, produce a group
//! key Y = s·G2 and each member's share xᵢ of s, any T of which can sign, without anyone ever
//! holding s. The phases (DESIGN.md section 5, keep-core `pkg/beacon/relay/gjkr/states.go`):
//!
//! | phase | broadcast | then, locally |
//! |---|---|---|
//! | 1 | one ephemeral secp256k1 public key per peer | 2: a symmetric key per pair (ECDH) |
//! | 3 | Pedersen commitments Cₖ = aₖG + bₖH, shares (sᵢⱼ, tᵢⱼ) encrypted per receiver | |
//! | 4 | accusations: dealers whose shares fail the commitments, revealing the pair's key | 5–6: every accusation resolved the same way by everyone (accused or false accuser disqualified); QUAL |
//! | 7 | Feldman points Aₖ = aₖ·G2 (QUAL only) | |
//! | 8 | accusations: dealers whose shares fail their points | 9: resolved likewise |
//! | 10 | the ephemeral keys of pairs with members to reconstruct | 11: their polynomials from the revealed shares; 12: group key, shares, public key shares |
//! | 13 | the result hash, signed with the network key (EIP-191) | 14: submission order |
//!
//! A phase ends as soon as every active member's message for it has arrived, or at its block
//! deadline (start + k·`phase_blocks` for the k-th broadcasting phase, the same for everyone).
//! A member silent in a phase becomes inactive; what it did or failed to do is reported as
//! [`Misbehaviour`] data, and decided identically at every honest member because every decision
//! rests on broadcast messages only.
//!
//! # Usage
//! ```text
//! let mut dkg = Dkg::new(parameters, me, network_key, session, start_block, seed)?;
//! loop {
//!     while let Some(action) = dkg.poll_action() { … broadcast / penalise / finished … }
//!     // feed what arrives, and the chain's blocks:
//!     dkg.handle_message(block, from, message);   // `from`: the seat the net layer authenticated
//!     dkg.handle_block(block);                    // at or after dkg.poll_timeout()
//! }
//! ```
//! Messages for a later phase are kept until that phase starts, never dropped; messages for a
//! phase that has ended are refused as late.
//!
//! # Security notes
//! - Share checks in phase 4 are one MSM with a random weight per dealer (sound per dealer);
//!   phase 8 checks the aggregate Σⱼ sⱼᵢ·G2 against the aggregated points first and checks
//!   dealers one by one only when it fails. Deviations that cancel out across colluding dealers
//!   pass it, but then the aggregated points still match every honest share, so the group key is
//!   right; they only escape the misbehaved list.
//! - The result hash is keccak256(Y in EIP-197 layout ‖ one byte per misbehaved index), so
//!   groups have at most 255 seats.

pub mod crypto;
mod phases;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ark_bn254::{Fr, G1Affine, G2Affine};
use rand::SeedableRng;

use crate::{
    beacon::bls::{PublicKey, SecretKey},
    identity::{Address, OperatorKey},
};

/// A member's seat index, 1..=N.
pub type Index = u32;

/// The largest group the result hash can name (one byte per index).
pub const MAX_MEMBERS: u32 = 255;

/// What every member of one DKG agrees on before it starts.
#[derive(Debug, Clone)]
pub struct Parameters {
    /// The network-key address of each seat, index i at position i−1.
    pub members: Vec<Address>,
    /// T: shares needed to sign (polynomials have T coefficients).
    pub threshold: u32,
    /// Blocks each broadcasting phase may last.
    pub phase_blocks: u64,
}

impl Parameters {
    /// N.
    pub fn size(&self) -> u32 {
        self.members.len() as u32
    }

    /// Result signatures a submission needs: H + (N−H)/2 with H = T.
    pub fn signatures_required(&self) -> usize {
        let (n, h) = (self.size() as usize, self.threshold as usize);
        h + (n - h) / 2
    }
}

/// The broadcasting phases, numbered as in keep-core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    EphemeralKeys = 1,
    Commitments = 3,
    ShareAccusations = 4,
    Points = 7,
    PointAccusations = 8,
    Disclosure = 10,
    ResultSigning = 13,
}

impl Phase {
    /// In order.
    pub const ALL: [Phase; 7] = [
        Phase::EphemeralKeys,
        Phase::Commitments,
        Phase::ShareAccusations,
        Phase::Points,
        Phase::PointAccusations,
        Phase::Disclosure,
        Phase::ResultSigning,
    ];

    /// 0 for the first broadcasting phase, 6 for the last.
    pub fn ordinal(self) -> u64 {
        Self::ALL.iter().position(|p| *p == self).expect("listed") as u64
    }
}

/// One DKG message: which DKG (`session`, the selection's seed), from which seat, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub session: [u8; 32],
    pub sender: Index,
    pub body: Body,
}

/// What a member broadcasts in each phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Phase 1: the sender's ephemeral public key for each other member.
    EphemeralKeys { keys: Vec<(Index, [u8; 33])> },
    /// Phase 3: Pedersen commitments (T points) and the shares for each other active member,
    /// encrypted with that pair's key.
    Commitments {
        commitments: Vec<G1Affine>,
        shares: Vec<(Index, Vec<u8>)>,
    },
    /// Phase 4: dealers accused, each with the sender's ephemeral private key for that pair.
    ShareAccusations { accused: Vec<(Index, [u8; 32])> },
    /// Phase 7: Feldman points (T points).
    Points { points: Vec<G2Affine> },
    /// Phase 8: dealers whose shares fail their points, with the pair's private key.
    PointAccusations { accused: Vec<(Index, [u8; 32])> },
    /// Phase 10: the sender's ephemeral private keys for its pairs with members to reconstruct.
    Disclosure { keys: Vec<(Index, [u8; 32])> },
    /// Phase 13: the result hash and the sender's EIP-191 signature of it (r‖s‖v, v 27/28).
    ResultSignature { hash: [u8; 32], signature: [u8; 65] },
}

impl Body {
    pub fn phase(&self) -> Phase {
        match self {
            Body::EphemeralKeys { .. } => Phase::EphemeralKeys,
            Body::Commitments { .. } => Phase::Commitments,
            Body::ShareAccusations { .. } => Phase::ShareAccusations,
            Body::Points { .. } => Phase::Points,
            Body::PointAccusations { .. } => Phase::PointAccusations,
            Body::Disclosure { .. } => Phase::Disclosure,
            Body::ResultSignature { .. } => Phase::ResultSigning,
        }
    }
}

/// What a member did wrong, for the net layer to penalise and the result to list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Offence {
    /// Sent nothing in the phase: inactive from then on.
    Silent,
    /// Its message broke the phase's rules (the reason says how).
    Malformed { reason: &'static str },
    /// Its shares did not match its commitments (an accusation held, or nothing decrypted).
    WrongShares,
    /// It accused a dealer whose shares were fine, or revealed a key that was not its own.
    FalseAccusation,
    /// Its shares did not match its Feldman points.
    BadPoints,
    /// It disclosed a key that does not open its pair.
    BadDisclosure,
    /// A second, different message for a phase it had already sent one in.
    Equivocation,
    /// The message arrived after its phase had ended (ignored).
    Late,
    /// The message claims another seat than the one it came from.
    Forged { claimed: Index },
    /// The message belongs to another DKG (a replay).
    WrongSession,
    /// It signed another result than ours, or its signature does not recover to its key.
    BadResultSignature,
}

/// Who did what in which phase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Misbehaviour {
    pub member: Index,
    pub phase: Phase,
    pub offence: Offence,
}

/// The DKG's result for one member.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Y, the group public key.
    pub group_public_key: PublicKey,
    /// This member's index and its share xᵢ of the group secret.
    pub index: Index,
    pub share: SecretKey,
    /// xⱼ·G2 of every member still operating (not misbehaved), by index.
    pub public_key_shares: BTreeMap<Index, PublicKey>,
    /// QUAL: the members whose polynomials make up the key.
    pub qualified: BTreeSet<Index>,
    /// Every member that misbehaved or went silent, sorted (what the result lists).
    pub misbehaved: BTreeSet<Index>,
    /// keccak256(Y ‖ misbehaved indices): what members sign and the chain checks.
    pub result_hash: [u8; 32],
    /// The supporting EIP-191 signatures, by signer index (this member's included).
    pub signatures: BTreeMap<Index, [u8; 65]>,
}

impl Outcome {
    /// The block at which this member submits the result unless it is on chain already:
    /// `start` for the first signer, then one `step` later for each signer before it
    /// (keep-core's submission order, by index).
    pub fn submission_block(&self, start: u64, step: u64) -> u64 {
        let position = self.signatures.range(..self.index).count() as u64;
        start + position * step
    }
}

/// Why a DKG ended without a usable result; the member service gives up on this selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgError {
    /// The parameters are unusable (fix the caller).
    #[error("bad parameters: {0}")]
    Parameters(String),
    /// Fewer than T members stayed qualified: no key can be made.
    #[error("{qualified} members qualified, {threshold} needed")]
    TooFewQualified { qualified: usize, threshold: u32 },
    /// This member was disqualified or went inactive itself.
    #[error("this member was disqualified in phase {phase:?}")]
    Disqualified { phase: Phase },
    /// A disqualified member's polynomial could not be rebuilt: too few valid shares disclosed.
    #[error("member {member}: {valid} valid shares disclosed, {threshold} needed")]
    CannotReconstruct {
        member: Index,
        valid: usize,
        threshold: u32,
    },
    /// Too few members signed this member's result before the deadline.
    #[error("{signatures} result signatures, {required} needed")]
    NotEnoughSignatures { signatures: usize, required: usize },
}

/// What the machine asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Broadcast this message to the group's channel.
    Broadcast(Message),
    /// A member misbehaved (penalise it; it is also in the outcome's misbehaved set where
    /// the protocol says so).
    Misbehaved(Misbehaviour),
    /// The DKG is over: the result (also at [`Dkg::outcome`]).
    Finished(Result<Box<Outcome>, DkgError>),
}

/// What every phase may read and report to.
#[derive(Clone)]
pub(crate) struct Context {
    pub parameters: Parameters,
    pub me: Index,
    pub network_key: OperatorKey,
    pub session: [u8; 32],
    pub rng: rand::rngs::StdRng,
    pub actions: VecDeque<Action>,
}

impl Context {
    pub fn report(&mut self, member: Index, phase: Phase, offence: Offence) {
        self.actions.push_back(Action::Misbehaved(Misbehaviour {
            member,
            phase,
            offence,
        }));
    }

    pub fn broadcast(&mut self, body: Body) {
        self.actions.push_back(Action::Broadcast(Message {
            session: self.session,
            sender: self.me,
            body,
        }));
    }

    pub fn all(&self) -> impl Iterator<Item = Index> {
        1..=self.parameters.size()
    }

    pub fn t(&self) -> usize {
        self.parameters.threshold as usize
    }
}

/// One member's DKG. A clone is a snapshot (the simulator's probes replay from one).
#[derive(Clone)]
pub struct Dkg {
    context: Context,
    phase: Option<phases::State>,
    start_block: u64,
    /// Messages for phases not yet begun, one per sender and phase.
    early: BTreeMap<(Phase, Index), Body>,
    outcome: Option<Result<Box<Outcome>, DkgError>>,
}

impl Dkg {
    /// Starts member `me` of a DKG identified by `session` (the selection's seed) at
    /// `start_block`. `seed` is this member's secret randomness for the whole DKG (32 bytes
    /// from a CSPRNG; the simulator derives it from its own seed). The first broadcast is
    /// queued at once.
    pub fn new(
        parameters: Parameters,
        me: Index,
        network_key: OperatorKey,
        session: [u8; 32],
        start_block: u64,
        seed: [u8; 32],
    ) -> Result<Self, DkgError> {
        let n = parameters.size();
        if n < 2 || n > MAX_MEMBERS {
            return Err(DkgError::Parameters(format!(
                "group size must be 2..={MAX_MEMBERS}, got {n}"
            )));
        }
        if parameters.threshold == 0 || parameters.threshold > n {
            return Err(DkgError::Parameters(format!(
                "threshold must be 1..={n}, got {}",
                parameters.threshold
            )));
        }
        if me == 0 || me > n || parameters.members[me as usize - 1] != network_key.address() {
            return Err(DkgError::Parameters(format!(
                "seat {me} is not this network key's"
            )));
        }
        if parameters.phase_blocks == 0 {
            return Err(DkgError::Parameters(
                "phase_blocks must be at least 1".into(),
            ));
        }
        let mut context = Context {
            parameters,
            me,
            network_key,
            session,
            rng: rand::rngs::StdRng::from_seed(seed),
            actions: VecDeque::new(),
        };
        let first = phases::EphemeralKeys::start(&mut context);
        Ok(Self {
            context,
            phase: Some(phases::State::EphemeralKeys(first)),
            start_block,
            early: BTreeMap::new(),
            outcome: None,
        })
    }

    /// The phase now running (`None` once finished).
    pub fn phase(&self) -> Option<Phase> {
        self.phase.as_ref().map(phases::State::phase)
    }

    /// The block at which the running phase ends at the latest.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.phase().map(|p| self.deadline(p))
    }

    fn deadline(&self, phase: Phase) -> u64 {
        self.start_block + (phase.ordinal() + 1) * self.context.parameters.phase_blocks
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.context.actions.pop_front()
    }

    /// Whether `other` stands exactly where this machine does, queued actions aside (same
    /// phase state, buffered messages, outcome and randomness). The machine is deterministic,
    /// so from equal states equal inputs give equal actions: the probe skips a replay with it.
    pub(crate) fn same_state(&self, other: &Dkg) -> bool {
        self.phase == other.phase
            && self.early == other.early
            && self.outcome == other.outcome
            && self.start_block == other.start_block
            && self.context.rng == other.context.rng
            && self.context.session == other.context.session
            && self.context.me == other.context.me
    }

    /// The result, once finished.
    pub fn outcome(&self) -> Option<&Result<Box<Outcome>, DkgError>> {
        self.outcome.as_ref()
    }

    /// This member's outcome once it is fixed: from the last phase on, where only the result's
    /// signatures are still gathered, or once finished well. A member whose result-signing
    /// phase has not ended when the chain accepts the group's result takes its seat with it.
    pub fn fixed_outcome(&self) -> Option<&Outcome> {
        match &self.outcome {
            Some(Ok(outcome)) => Some(outcome),
            Some(Err(_)) => None,
            None => self.phase.as_ref().and_then(phases::State::fixed_outcome),
        }
    }

    /// A message from seat `from` (as the net layer authenticated it) at `block`.
    pub fn handle_message(&mut self, block: u64, from: Index, message: Message) {
        let phase = message.body.phase();
        if message.session != self.context.session {
            self.context.report(from, phase, Offence::WrongSession);
            return;
        }
        if message.sender != from {
            let claimed = message.sender;
            self.context
                .report(from, phase, Offence::Forged { claimed });
            return;
        }
        if from == 0 || from > self.context.parameters.size() || from == self.context.me {
            return;
        }
        let Some(current) = self.phase() else {
            return;
        };
        if phase < current || block > self.deadline(phase) {
            self.context.report(from, phase, Offence::Late);
        } else if phase > current {
            // Kept for its phase; a second one for the same phase is not.
            match self.early.get(&(phase, from)) {
                Some(kept) if *kept != message.body => {
                    self.context.report(from, phase, Offence::Equivocation)
                }
                Some(_) => {}
                None => {
                    self.early.insert((phase, from), message.body);
                }
            }
        } else if let Some(state) = &mut self.phase {
            state.receive(&mut self.context, from, message.body);
        }
        self.advance(block);
    }

    /// The chain reached `block`: a phase whose deadline has passed ends.
    pub fn handle_block(&mut self, block: u64) {
        self.advance(block);
    }

    /// Ends phases while they are complete or past their deadline.
    fn advance(&mut self, block: u64) {
        while let Some(state) = self.phase.take() {
            let current = state.phase();
            if !(state.complete(&self.context) || block >= self.deadline(current)) {
                self.phase = Some(state);
                return;
            }
            match state.finish(&mut self.context) {
                Ok(phases::Next::Phase(mut next)) => {
                    let phase = next.phase();
                    let keys: Vec<_> = self
                        .early
                        .range((phase, 0)..=(phase, Index::MAX))
                        .map(|(k, _)| *k)
                        .collect();
                    for key in keys {
                        let body = self.early.remove(&key).expect("listed");
                        next.receive(&mut self.context, key.1, body);
                    }
                    self.phase = Some(next);
                }
                Ok(phases::Next::Done(outcome)) => self.finish(Ok(outcome)),
                Err(error) => self.finish(Err(error)),
            }
        }
    }

    fn finish(&mut self, outcome: Result<Box<Outcome>, DkgError>) {
        self.early.clear();
        self.context
            .actions
            .push_back(Action::Finished(outcome.clone()));
        self.outcome = Some(outcome);
    }
}

/// keccak256(Y ‖ misbehaved indices, one byte each): the DKG result's hash.
pub fn result_hash(group_public_key: &PublicKey, misbehaved: &BTreeSet<Index>) -> [u8; 32] {
    use sha3::{Digest, Keccak256};
    let mut hasher = Keccak256::new();
    hasher.update(group_public_key.to_bytes());
    hasher.update(misbehaved.iter().map(|i| *i as u8).collect::<Vec<u8>>());
    hasher.finalize().into()
}

/// Signs a result hash with a network key (EIP-191 `personal_sign` of the 32 bytes).
pub fn sign_result(key: &OperatorKey, hash: &[u8; 32]) -> [u8; 65] {
    let signing = k256::ecdsa::SigningKey::from_slice(&key.secret_bytes()).expect("valid key");
    let (signature, recovery) =
        signing.sign_prehash_recoverable(&crate::identity::attestation::eip191_hash(hash));
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&signature.to_bytes());
    out[64] = 27 + recovery.to_byte();
    out
}

/// The address whose key made `signature` over `hash` (EIP-191), if it recovers; low s only.
/// The envelopes' recovery (natively libsecp256k1's, several times k256's speed): every
/// member checks every other member's result signature.
pub fn result_signer(hash: &[u8; 32], signature: &[u8; 65]) -> Option<Address> {
    use crate::wire::signature::{recover, Prepared, PREPARED_LEN};
    let mut prepared = [0u8; PREPARED_LEN];
    prepared[..32].copy_from_slice(&crate::identity::attestation::eip191_hash(hash));
    prepared[32..96].copy_from_slice(&signature[..64]);
    prepared[96] = signature[64].checked_sub(27)?;
    recover(&Prepared::from_bytes(&prepared)?).ok()
}

pub(crate) fn fr_of(key: &SecretKey) -> Fr {
    key.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_signature_recovers_its_signer_and_malformed_ones_do_not() {
        let key = OperatorKey::generate();
        let hash = [7u8; 32];
        let signature = sign_result(&key, &hash);
        assert!(signature[64] == 27 || signature[64] == 28);
        assert_eq!(result_signer(&hash, &signature), Some(key.address()));
        assert_ne!(result_signer(&[8u8; 32], &signature), Some(key.address()));
        // An envelope-style recovery byte (0/1) is not EIP-191's.
        let mut raw = signature;
        raw[64] -= 27;
        assert_eq!(result_signer(&hash, &raw), None);
        // The high-s twin of a valid signature is refused, as Ethereum refuses it.
        use k256::elliptic_curve::ops::Neg;
        let parsed = k256::ecdsa::Signature::from_slice(&signature[..64]).unwrap();
        let (r, s) = parsed.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r, s.neg()).unwrap();
        let mut twin = signature;
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] ^= 1;
        assert_eq!(result_signer(&hash, &twin), None);
    }
}
