//! The DKG's phases, one type each: a phase holds only what is legal in it, `receive` takes
//! its messages, `finish` consumes it and returns the next (having queued this member's
//! broadcast for it). Decisions rest on broadcast messages only, so honest members agree.

use std::collections::{BTreeMap, BTreeSet};

use ark_bn254::{Fr, G1Affine, G2Affine, G2Projective};
use ark_ec::{CurveGroup, PrimeGroup};
use ark_ff::Zero;

use super::{
    crypto::{self, EphemeralSecret, PedersenCase},
    fr_of, result_hash, result_signer, sign_result, Body, Context, DkgError, Index, Offence,
    Outcome, Phase,
};
use crate::beacon::bls::{PublicKey, SecretKey};

#[derive(Clone, PartialEq)]
pub(crate) enum State {
    EphemeralKeys(EphemeralKeys),
    Commitments(Commitments),
    ShareAccusations(ShareAccusations),
    Points(Points),
    PointAccusations(PointAccusations),
    Disclosure(Disclosure),
    ResultSigning(ResultSigning),
}

pub(crate) enum Next {
    Phase(State),
    Done(Box<Outcome>),
}

impl State {
    pub fn phase(&self) -> Phase {
        match self {
            State::EphemeralKeys(_) => Phase::EphemeralKeys,
            State::Commitments(_) => Phase::Commitments,
            State::ShareAccusations(_) => Phase::ShareAccusations,
            State::Points(_) => Phase::Points,
            State::PointAccusations(_) => Phase::PointAccusations,
            State::Disclosure(_) => Phase::Disclosure,
            State::ResultSigning(_) => Phase::ResultSigning,
        }
    }

    /// The outcome as the last phase holds it while it gathers result signatures.
    pub fn fixed_outcome(&self) -> Option<&Outcome> {
        match self {
            State::ResultSigning(p) => Some(&p.outcome),
            _ => None,
        }
    }

    /// Whether every member expected in this phase has been heard from.
    pub fn complete(&self, _: &Context) -> bool {
        match self {
            State::EphemeralKeys(p) => p.received.keys().copied().eq(p.expected()),
            State::Commitments(p) => p.heard.iter().copied().eq(p.expected()),
            State::ShareAccusations(p) => p.accusations.keys().copied().eq(p.expected()),
            State::Points(p) => p.points.keys().copied().eq(p.expected()),
            State::PointAccusations(p) => p.accusations.keys().copied().eq(p.expected()),
            State::Disclosure(p) => p.disclosed.keys().copied().eq(p.expected()),
            State::ResultSigning(p) => p.heard.iter().copied().eq(p.expected()),
        }
    }

    pub fn receive(&mut self, cx: &mut Context, from: Index, body: Body) {
        let phase = self.phase();
        if body.phase() != phase {
            return;
        }
        let offence = match (self, body) {
            (State::EphemeralKeys(p), Body::EphemeralKeys { keys }) => p.receive(cx, from, keys),
            (
                State::Commitments(p),
                Body::Commitments {
                    commitments,
                    shares,
                },
            ) => p.receive(cx, from, commitments, shares),
            (State::ShareAccusations(p), Body::ShareAccusations { accused }) => {
                receive_accusations(&mut p.accusations, &p.base.active, cx, from, accused)
            }
            (State::Points(p), Body::Points { points }) => p.receive(cx, from, points),
            (State::PointAccusations(p), Body::PointAccusations { accused }) => {
                receive_accusations(&mut p.accusations, &p.base.qualified, cx, from, accused)
            }
            (State::Disclosure(p), Body::Disclosure { keys }) => p.receive(from, keys),
            (State::ResultSigning(p), Body::ResultSignature { hash, signature }) => {
                p.receive(cx, from, hash, signature)
            }
            _ => None,
        };
        if let Some(offence) = offence {
            cx.report(from, phase, offence);
        }
    }

    pub fn finish(self, cx: &mut Context) -> Result<Next, DkgError> {
        Ok(match self {
            State::EphemeralKeys(p) => Next::Phase(State::Commitments(p.finish(cx))),
            State::Commitments(p) => Next::Phase(State::ShareAccusations(p.finish(cx))),
            State::ShareAccusations(p) => Next::Phase(State::Points(p.finish(cx)?)),
            State::Points(p) => Next::Phase(State::PointAccusations(p.finish(cx))),
            State::PointAccusations(p) => Next::Phase(State::Disclosure(p.finish(cx)?)),
            State::Disclosure(p) => Next::Phase(State::ResultSigning(p.finish(cx)?)),
            State::ResultSigning(p) => Next::Done(Box::new(p.finish(cx)?)),
        })
    }
}

/// Marks every member of `expected` not in `heard` silent in `phase`; returns them.
fn silent(
    cx: &mut Context,
    phase: Phase,
    expected: impl Iterator<Item = Index>,
    heard: &BTreeSet<Index>,
) -> BTreeSet<Index> {
    let missing: BTreeSet<Index> = expected.filter(|i| !heard.contains(i)).collect();
    for member in &missing {
        cx.report(*member, phase, Offence::Silent);
    }
    missing
}

/// Phase 1: an ephemeral key pair for each other member.
#[derive(Clone, PartialEq)]
pub(crate) struct EphemeralKeys {
    me: Index,
    n: Index,
    mine: BTreeMap<Index, EphemeralSecret>,
    /// sender → (peer → the sender's public key for that peer); this member's own included.
    received: BTreeMap<Index, BTreeMap<Index, [u8; 33]>>,
}

impl EphemeralKeys {
    pub fn start(cx: &mut Context) -> Self {
        let me = cx.me;
        let mut mine = BTreeMap::new();
        let mut public = BTreeMap::new();
        for peer in cx.all().filter(|i| *i != me) {
            let (secret, key) = crypto::ephemeral_key(&mut cx.rng);
            mine.insert(peer, secret);
            public.insert(peer, key);
        }
        cx.broadcast(Body::EphemeralKeys {
            keys: public.iter().map(|(i, k)| (*i, *k)).collect(),
        });
        let mut received = BTreeMap::new();
        received.insert(me, public);
        Self {
            me,
            n: cx.parameters.size(),
            mine,
            received,
        }
    }

    fn expected(&self) -> impl Iterator<Item = Index> {
        1..=self.n
    }

    fn receive(
        &mut self,
        _: &mut Context,
        from: Index,
        keys: Vec<(Index, [u8; 33])>,
    ) -> Option<Offence> {
        if let Some(kept) = self.received.get(&from) {
            let same = kept.iter().map(|(i, k)| (*i, *k)).eq(keys.iter().copied());
            return (!same).then_some(Offence::Equivocation);
        }
        let keys: BTreeMap<Index, [u8; 33]> = keys.into_iter().collect();
        let peers_right = keys.keys().copied().eq((1..=self.n).filter(|i| *i != from));
        if !peers_right {
            return Some(Offence::Malformed {
                reason: "not one key per other member",
            });
        }
        // Only the form is checked here (decompressing every pair's key would cost each member
        // N² square roots): a key that is not a point fails its pair's ECDH, which convicts
        // its owner in any accusation between the two (see `resolve`).
        if keys.values().any(|k| k[0] != 2 && k[0] != 3) {
            return Some(Offence::Malformed {
                reason: "ephemeral key is not a compressed point",
            });
        }
        self.received.insert(from, keys);
        None
    }

    fn finish(self, cx: &mut Context) -> Commitments {
        let heard: BTreeSet<Index> = self.received.keys().copied().collect();
        silent(cx, Phase::EphemeralKeys, self.expected(), &heard);
        let active = heard;
        // Phase 2: a symmetric key per pair with every active member.
        // Without one (its key for this member is not a point), shares cannot cross, and the
        // accusations that follow convict the peer.
        let mut pair_keys = BTreeMap::new();
        for peer in active.iter().filter(|i| **i != self.me) {
            let theirs = &self.received[peer][&self.me];
            if let Some(key) = crypto::pair_key(&self.mine[peer], theirs) {
                pair_keys.insert(*peer, key);
            }
        }
        Commitments::start(
            cx,
            Base {
                me: self.me,
                active,
                ephemeral: self.received,
                mine: self.mine,
                pair_keys,
                qualified: BTreeSet::new(),
                misbehaved: BTreeSet::new(),
            },
        )
    }
}

/// What the phases after the first carry along.
#[derive(Clone, PartialEq)]
pub(crate) struct Base {
    me: Index,
    /// Members still taking part.
    active: BTreeSet<Index>,
    /// Every ephemeral public key: owner → (peer → key).
    ephemeral: BTreeMap<Index, BTreeMap<Index, [u8; 33]>>,
    /// This member's ephemeral secrets, by peer.
    mine: BTreeMap<Index, EphemeralSecret>,
    /// This member's symmetric key with each active peer.
    pair_keys: BTreeMap<Index, [u8; 32]>,
    /// QUAL, once phase 6 has fixed it.
    qualified: BTreeSet<Index>,
    /// Everyone listed in the result as misbehaved (silent members included).
    misbehaved: BTreeSet<Index>,
}

impl Base {
    fn drop_out(&mut self, members: &BTreeSet<Index>) {
        for m in members {
            self.active.remove(m);
            self.misbehaved.insert(*m);
        }
    }
}

/// A dealer's phase-3 message.
#[derive(Clone, PartialEq)]
struct Dealt {
    commitments: Vec<G1Affine>,
    shares: BTreeMap<Index, Vec<u8>>,
}

/// Phase 3: Pedersen commitments and encrypted shares.
#[derive(Clone, PartialEq)]
pub(crate) struct Commitments {
    base: Base,
    a: Vec<Fr>,
    dealt: BTreeMap<Index, Dealt>,
    /// Senders heard from (valid or not).
    heard: BTreeSet<Index>,
}

impl Commitments {
    fn start(cx: &mut Context, base: Base) -> Self {
        let t = cx.t();
        let a = crypto::random_polynomial(t, &mut cx.rng);
        let b = crypto::random_polynomial(t, &mut cx.rng);
        let commitments = crypto::pedersen_commitments(&a, &b);
        let mut shares = BTreeMap::new();
        for peer in base.active.iter().filter(|i| **i != base.me) {
            let x = Fr::from(*peer);
            let (s, t) = (crypto::evaluate(&a, x), crypto::evaluate(&b, x));
            let ciphertext = match base.pair_keys.get(peer) {
                Some(key) => crypto::encrypt_shares(key, &cx.session, base.me, *peer, &s, &t),
                None => Vec::new(),
            };
            shares.insert(*peer, ciphertext);
        }
        cx.broadcast(Body::Commitments {
            commitments: commitments.clone(),
            shares: shares.iter().map(|(i, c)| (*i, c.clone())).collect(),
        });
        let mut dealt = BTreeMap::new();
        dealt.insert(
            base.me,
            Dealt {
                commitments,
                shares,
            },
        );
        let heard = [base.me].into();
        Self {
            base,
            a,
            dealt,
            heard,
        }
    }

    fn expected(&self) -> impl Iterator<Item = Index> + '_ {
        self.base.active.iter().copied()
    }

    fn receive(
        &mut self,
        cx: &mut Context,
        from: Index,
        commitments: Vec<G1Affine>,
        shares: Vec<(Index, Vec<u8>)>,
    ) -> Option<Offence> {
        if !self.base.active.contains(&from) {
            return Some(Offence::Late);
        }
        if !self.heard.insert(from) {
            return Some(Offence::Equivocation);
        }
        if commitments.len() != cx.t() || commitments.iter().any(|c| !c.is_on_curve()) {
            return Some(Offence::Malformed {
                reason: "not T commitments",
            });
        }
        let shares: BTreeMap<Index, Vec<u8>> = shares.into_iter().collect();
        let receivers = self.base.active.iter().copied().filter(|i| *i != from);
        if !shares.keys().copied().eq(receivers) {
            return Some(Offence::Malformed {
                reason: "not one share per other active member",
            });
        }
        self.dealt.insert(
            from,
            Dealt {
                commitments,
                shares,
            },
        );
        None
    }

    fn finish(mut self, cx: &mut Context) -> ShareAccusations {
        let expected: Vec<Index> = self.expected().collect();
        let gone = silent(cx, Phase::Commitments, expected.into_iter(), &self.heard);
        self.base.drop_out(&gone);
        // Heard but malformed: out too (reported on receipt).
        let malformed: BTreeSet<Index> = self
            .base
            .active
            .iter()
            .filter(|i| !self.dealt.contains_key(i))
            .copied()
            .collect();
        self.base.drop_out(&malformed);
        for dealer in &malformed {
            self.dealt.remove(dealer);
        }
        // Phase 4's check: this member's shares from every dealer, one batched MSM.
        let me = self.base.me;
        let mut accused = Vec::new();
        let mut mine = BTreeMap::new();
        for (dealer, dealt) in &self.dealt {
            if *dealer == me {
                let x = Fr::from(me);
                mine.insert(me, (crypto::evaluate(&self.a, x), Fr::zero()));
                continue;
            }
            let decrypted = self.base.pair_keys.get(dealer).and_then(|key| {
                crypto::decrypt_shares(key, &cx.session, *dealer, me, &dealt.shares[&me])
            });
            match decrypted {
                Some(pair) => {
                    mine.insert(*dealer, pair);
                }
                None => accused.push(*dealer),
            }
        }
        let others: Vec<(Index, PedersenCase<'_>)> = mine
            .iter()
            .filter(|(d, _)| **d != me)
            .map(|(d, (s, t))| {
                (
                    *d,
                    PedersenCase {
                        s: *s,
                        t: *t,
                        commitments: &self.dealt[d].commitments,
                    },
                )
            })
            .collect();
        let cases: Vec<PedersenCase<'_>> = others
            .iter()
            .map(|(_, c)| PedersenCase {
                s: c.s,
                t: c.t,
                commitments: c.commitments,
            })
            .collect();
        if !crypto::pedersen_batch(me, &cases, &mut cx.rng) {
            for (dealer, case) in &others {
                if !crypto::pedersen_holds(me, case) {
                    accused.push(*dealer);
                }
            }
        }
        accused.sort_unstable();
        for dealer in &accused {
            mine.remove(dealer);
        }
        let revealed: Vec<(Index, [u8; 32])> = accused
            .iter()
            .map(|d| (*d, self.base.mine[d].to_bytes().into()))
            .collect();
        cx.broadcast(Body::ShareAccusations {
            accused: revealed.clone(),
        });
        let mut accusations = BTreeMap::new();
        accusations.insert(me, revealed);
        ShareAccusations {
            base: self.base,
            a: self.a,
            dealt: self.dealt,
            shares: mine,
            accusations,
        }
    }
}

/// Takes an accusation message: every accused member must be in `among` and not the accuser.
fn receive_accusations(
    accusations: &mut BTreeMap<Index, Vec<(Index, [u8; 32])>>,
    among: &BTreeSet<Index>,
    _: &mut Context,
    from: Index,
    accused: Vec<(Index, [u8; 32])>,
) -> Option<Offence> {
    if !among.contains(&from) {
        return Some(Offence::Late);
    }
    if let Some(kept) = accusations.get(&from) {
        return (*kept != accused).then_some(Offence::Equivocation);
    }
    let distinct: BTreeSet<Index> = accused.iter().map(|(i, _)| *i).collect();
    if distinct.len() != accused.len() || distinct.iter().any(|i| *i == from || !among.contains(i))
    {
        accusations.insert(from, Vec::new());
        return Some(Offence::Malformed {
            reason: "accuses a non-member, itself, or twice",
        });
    }
    accusations.insert(from, accused);
    None
}

/// Resolves one accusation (accuser `i` says dealer `j`'s shares to it are wrong, revealing
/// its key for the pair) the way every member does: the guilty one, and its offence.
/// `valid` judges the decrypted shares (against commitments, or points).
fn resolve(
    base: &Base,
    dealt: &BTreeMap<Index, Dealt>,
    session: &[u8; 32],
    accuser: Index,
    accused: Index,
    revealed: &[u8; 32],
    valid: impl Fn(Fr, Fr) -> bool,
    dealer_offence: Offence,
) -> (Index, Offence) {
    let Some(secret) = crypto::is_key_of(revealed, &base.ephemeral[&accuser][&accused]) else {
        return (accuser, Offence::FalseAccusation);
    };
    // The accused's key for the accuser is not a point: no share of its could be read.
    let Some(key) = crypto::pair_key(&secret, &base.ephemeral[&accused][&accuser]) else {
        return (accused, dealer_offence);
    };
    let Some(ciphertext) = dealt.get(&accused).and_then(|d| d.shares.get(&accuser)) else {
        return (accused, dealer_offence);
    };
    match crypto::decrypt_shares(&key, session, accused, accuser, ciphertext) {
        Some((s, t)) if valid(s, t) => (accuser, Offence::FalseAccusation),
        _ => (accused, dealer_offence),
    }
}

/// Phase 4: share accusations; finishing resolves them (5) and fixes QUAL (6).
#[derive(Clone, PartialEq)]
pub(crate) struct ShareAccusations {
    base: Base,
    a: Vec<Fr>,
    dealt: BTreeMap<Index, Dealt>,
    /// This member's valid shares (s, t) from each dealer (its own t is not needed).
    shares: BTreeMap<Index, (Fr, Fr)>,
    accusations: BTreeMap<Index, Vec<(Index, [u8; 32])>>,
}

impl ShareAccusations {
    fn expected(&self) -> impl Iterator<Item = Index> + '_ {
        self.base.active.iter().copied()
    }

    fn finish(mut self, cx: &mut Context) -> Result<Points, DkgError> {
        let heard: BTreeSet<Index> = self.accusations.keys().copied().collect();
        let expected: Vec<Index> = self.expected().collect();
        let gone = silent(cx, Phase::ShareAccusations, expected.into_iter(), &heard);
        let mut disqualified: BTreeMap<Index, Offence> = BTreeMap::new();
        for (accuser, accused) in &self.accusations {
            for (dealer, revealed) in accused {
                let commitments = &self.dealt.get(dealer).map(|d| d.commitments.clone());
                let (guilty, offence) = resolve(
                    &self.base,
                    &self.dealt,
                    &cx.session,
                    *accuser,
                    *dealer,
                    revealed,
                    |s, t| {
                        commitments.as_ref().is_some_and(|c| {
                            crypto::pedersen_holds(
                                *accuser,
                                &PedersenCase {
                                    s,
                                    t,
                                    commitments: c,
                                },
                            )
                        })
                    },
                    Offence::WrongShares,
                );
                disqualified.entry(guilty).or_insert(offence);
            }
        }
        for (member, offence) in &disqualified {
            cx.report(*member, Phase::ShareAccusations, offence.clone());
        }
        let out: BTreeSet<Index> = gone.into_iter().chain(disqualified.into_keys()).collect();
        self.base.drop_out(&out);
        // QUAL.
        self.base.qualified = self.base.active.clone();
        let me = self.base.me;
        if !self.base.qualified.contains(&me) {
            return Err(DkgError::Disqualified {
                phase: Phase::ShareAccusations,
            });
        }
        if self.base.qualified.len() < cx.t() {
            return Err(DkgError::TooFewQualified {
                qualified: self.base.qualified.len(),
                threshold: cx.parameters.threshold,
            });
        }
        // Only QUAL's shares make up this member's share.
        self.shares
            .retain(|dealer, _| self.base.qualified.contains(dealer));
        let points = crypto::feldman_points(&self.a);
        cx.broadcast(Body::Points {
            points: points.clone(),
        });
        let mut all = BTreeMap::new();
        all.insert(me, points);
        Ok(Points {
            base: self.base,
            dealt: self.dealt,
            shares: self.shares,
            points: all,
        })
    }
}

/// Phase 7: Feldman points from QUAL.
#[derive(Clone, PartialEq)]
pub(crate) struct Points {
    base: Base,
    dealt: BTreeMap<Index, Dealt>,
    shares: BTreeMap<Index, (Fr, Fr)>,
    points: BTreeMap<Index, Vec<G2Affine>>,
}

impl Points {
    fn expected(&self) -> impl Iterator<Item = Index> + '_ {
        self.base.qualified.iter().copied()
    }

    fn receive(&mut self, cx: &mut Context, from: Index, points: Vec<G2Affine>) -> Option<Offence> {
        if !self.base.qualified.contains(&from) {
            return Some(Offence::Late);
        }
        if let Some(kept) = self.points.get(&from) {
            return (*kept != points).then_some(Offence::Equivocation);
        }
        // On the curve, but not checked one by one for the subgroup (N·T checks of ~0.1 ms):
        // a point off the subgroup makes its dealer's evaluations fail the Feldman check at
        // honest members, and once ≥ T honest checks pass the aggregated points are in the
        // subgroup (the torsion polynomial vanishes at T indices whose differences are all
        // smaller than the cofactor's least prime factor, 10069).
        if points.len() != cx.t() || points.iter().any(|p| !p.is_on_curve()) {
            // Kept empty: the dealer is reconstructed like a silent one.
            self.points.insert(from, Vec::new());
            return Some(Offence::Malformed {
                reason: "not T points on G2",
            });
        }
        self.points.insert(from, points);
        None
    }

    fn finish(self, cx: &mut Context) -> PointAccusations {
        let heard: BTreeSet<Index> = self.points.keys().copied().collect();
        let expected: Vec<Index> = self.expected().collect();
        let gone = silent(cx, Phase::Points, expected.into_iter(), &heard);
        let mut reconstruct: BTreeSet<Index> = gone;
        reconstruct.extend(
            self.points
                .iter()
                .filter(|(_, p)| p.is_empty())
                .map(|(i, _)| *i),
        );
        // Phase 8's check: Σⱼ sⱼ·G2 against the aggregated points, dealers one by one only
        // if that fails.
        let me = self.base.me;
        let dealers: Vec<Index> = self
            .base
            .qualified
            .iter()
            .filter(|d| !reconstruct.contains(d))
            .copied()
            .collect();
        let mut aggregate = vec![G2Projective::zero(); cx.t()];
        let mut sum = Fr::zero();
        for dealer in &dealers {
            for (acc, p) in aggregate.iter_mut().zip(&self.points[dealer]) {
                *acc += p;
            }
            sum += self.shares[dealer].0;
        }
        let aggregate = G2Projective::normalize_batch(&aggregate);
        let mut accused = Vec::new();
        if !crypto::feldman_holds(me, sum, &aggregate) {
            for dealer in dealers.iter().filter(|d| **d != me) {
                if !crypto::feldman_holds(me, self.shares[dealer].0, &self.points[dealer]) {
                    accused.push(*dealer);
                }
            }
        }
        let revealed: Vec<(Index, [u8; 32])> = accused
            .iter()
            .map(|d| (*d, self.base.mine[d].to_bytes().into()))
            .collect();
        cx.broadcast(Body::PointAccusations {
            accused: revealed.clone(),
        });
        let mut accusations = BTreeMap::new();
        accusations.insert(me, revealed);
        PointAccusations {
            base: self.base,
            dealt: self.dealt,
            shares: self.shares,
            points: self.points,
            reconstruct,
            accusations,
        }
    }
}

/// Phase 8: point accusations; finishing resolves them (9).
#[derive(Clone, PartialEq)]
pub(crate) struct PointAccusations {
    base: Base,
    dealt: BTreeMap<Index, Dealt>,
    shares: BTreeMap<Index, (Fr, Fr)>,
    points: BTreeMap<Index, Vec<G2Affine>>,
    /// QUAL members whose polynomial must be rebuilt (no valid points).
    reconstruct: BTreeSet<Index>,
    accusations: BTreeMap<Index, Vec<(Index, [u8; 32])>>,
}

impl PointAccusations {
    fn expected(&self) -> impl Iterator<Item = Index> + '_ {
        self.base.qualified.iter().copied()
    }

    fn finish(mut self, cx: &mut Context) -> Result<Disclosure, DkgError> {
        let heard: BTreeSet<Index> = self.accusations.keys().copied().collect();
        let expected: Vec<Index> = self.expected().collect();
        let gone = silent(cx, Phase::PointAccusations, expected.into_iter(), &heard);
        // Silent here: listed as misbehaved, but its points stand.
        self.base.misbehaved.extend(&gone);
        let mut guilty_of: BTreeMap<Index, Offence> = BTreeMap::new();
        for (accuser, accused) in &self.accusations {
            for (dealer, revealed) in accused {
                let Some(points) = self.points.get(dealer).filter(|p| !p.is_empty()) else {
                    continue; // Rebuilt anyway.
                };
                let (guilty, offence) = resolve(
                    &self.base,
                    &self.dealt,
                    &cx.session,
                    *accuser,
                    *dealer,
                    revealed,
                    |s, _| crypto::feldman_holds(*accuser, s, points),
                    Offence::BadPoints,
                );
                guilty_of.entry(guilty).or_insert(offence);
            }
        }
        for (member, offence) in &guilty_of {
            cx.report(*member, Phase::PointAccusations, offence.clone());
        }
        self.reconstruct.extend(guilty_of.keys());
        let me = self.base.me;
        if self.reconstruct.contains(&me) {
            return Err(DkgError::Disqualified {
                phase: Phase::PointAccusations,
            });
        }
        self.base.misbehaved.extend(&self.reconstruct);
        // Phase 10: this member's keys for its pairs with those to rebuild.
        let keys: Vec<(Index, [u8; 32])> = self
            .reconstruct
            .iter()
            .map(|m| (*m, self.base.mine[m].to_bytes().into()))
            .collect();
        cx.broadcast(Body::Disclosure { keys: keys.clone() });
        let mut disclosed = BTreeMap::new();
        disclosed.insert(me, keys);
        Ok(Disclosure {
            base: self.base,
            dealt: self.dealt,
            shares: self.shares,
            points: self.points,
            reconstruct: self.reconstruct,
            disclosed,
        })
    }
}

/// Phase 10: disclosure of the keys of pairs with members to rebuild; finishing rebuilds them
/// (11), makes the group key and shares (12) and signs the result (13).
#[derive(Clone, PartialEq)]
pub(crate) struct Disclosure {
    base: Base,
    dealt: BTreeMap<Index, Dealt>,
    shares: BTreeMap<Index, (Fr, Fr)>,
    points: BTreeMap<Index, Vec<G2Affine>>,
    reconstruct: BTreeSet<Index>,
    disclosed: BTreeMap<Index, Vec<(Index, [u8; 32])>>,
}

impl Disclosure {
    fn expected(&self) -> impl Iterator<Item = Index> + '_ {
        self.base
            .qualified
            .iter()
            .filter(|i| !self.reconstruct.contains(i))
            .copied()
    }

    fn receive(&mut self, from: Index, keys: Vec<(Index, [u8; 32])>) -> Option<Offence> {
        if !self.base.qualified.contains(&from) || self.reconstruct.contains(&from) {
            return Some(Offence::Late);
        }
        if let Some(kept) = self.disclosed.get(&from) {
            return (*kept != keys).then_some(Offence::Equivocation);
        }
        self.disclosed.insert(from, keys);
        None
    }

    fn finish(mut self, cx: &mut Context) -> Result<ResultSigning, DkgError> {
        let heard: BTreeSet<Index> = self.disclosed.keys().copied().collect();
        let expected: Vec<Index> = self.expected().collect();
        let gone = silent(cx, Phase::Disclosure, expected.into_iter(), &heard);
        self.base.misbehaved.extend(&gone);
        let t = cx.t();
        let me = self.base.me;
        // Phase 11: each rebuilt member's polynomial from T valid disclosed shares.
        let mut bad_disclosers = BTreeSet::new();
        for member in self.reconstruct.clone() {
            let commitments = &self.dealt[&member].commitments;
            let mut valid: Vec<(Index, Fr)> = Vec::new();
            if let Some((s, _)) = self.shares.get(&member) {
                valid.push((me, *s));
            }
            for (discloser, keys) in &self.disclosed {
                if *discloser == me {
                    continue;
                }
                let Some((_, revealed)) = keys.iter().find(|(m, _)| *m == member) else {
                    continue;
                };
                let share = crypto::is_key_of(revealed, &self.base.ephemeral[discloser][&member])
                    .and_then(|secret| {
                        crypto::pair_key(&secret, &self.base.ephemeral[&member][discloser])
                    })
                    .and_then(|key| {
                        let ciphertext = self.dealt[&member].shares.get(discloser)?;
                        crypto::decrypt_shares(&key, &cx.session, member, *discloser, ciphertext)
                    });
                match share {
                    Some((s, t)) => {
                        let case = PedersenCase { s, t, commitments };
                        // Shares that fail the commitments were accused in phase 4 already;
                        // they are simply not used.
                        if crypto::pedersen_holds(*discloser, &case) {
                            valid.push((*discloser, s));
                        }
                    }
                    None => {
                        bad_disclosers.insert(*discloser);
                    }
                }
            }
            if valid.len() < t {
                return Err(DkgError::CannotReconstruct {
                    member,
                    valid: valid.len(),
                    threshold: cx.parameters.threshold,
                });
            }
            valid.truncate(t);
            let polynomial = crypto::interpolate(&valid);
            self.points
                .insert(member, crypto::feldman_points(&polynomial));
        }
        for discloser in &bad_disclosers {
            cx.report(*discloser, Phase::Disclosure, Offence::BadDisclosure);
        }
        self.base.misbehaved.extend(&bad_disclosers);
        // Phase 12: the group key, this member's share, every operating member's key share.
        let mut aggregate = vec![G2Projective::zero(); t];
        let mut share = Fr::zero();
        for dealer in &self.base.qualified {
            for (acc, p) in aggregate.iter_mut().zip(&self.points[dealer]) {
                *acc += p;
            }
            share += self.shares[dealer].0;
        }
        let aggregate = G2Projective::normalize_batch(&aggregate);
        let group_public_key = PublicKey(aggregate[0]);
        let misbehaved: BTreeSet<Index> = cx
            .all()
            .filter(|i| !self.base.qualified.contains(i) || self.base.misbehaved.contains(i))
            .collect();
        let public_key_shares: BTreeMap<Index, PublicKey> = cx
            .all()
            .zip(crypto::evaluate_g2_all(&aggregate, cx.parameters.size()))
            .filter(|(i, _)| !misbehaved.contains(i))
            .map(|(i, point)| (i, PublicKey(point)))
            .collect();
        let share = SecretKey::from_scalar(share).ok_or(DkgError::TooFewQualified {
            qualified: self.base.qualified.len(),
            threshold: cx.parameters.threshold,
        })?;
        debug_assert_eq!(
            (G2Projective::generator() * fr_of(&share)).into_affine(),
            public_key_shares[&me].0
        );
        // Phase 13: sign the result.
        let hash = result_hash(&group_public_key, &misbehaved);
        let signature = sign_result(&cx.network_key, &hash);
        cx.broadcast(Body::ResultSignature { hash, signature });
        let mut signatures = BTreeMap::new();
        signatures.insert(me, signature);
        let expected = public_key_shares.keys().copied().collect();
        Ok(ResultSigning {
            outcome: Outcome {
                group_public_key,
                index: me,
                share,
                public_key_shares,
                qualified: self.base.qualified,
                misbehaved,
                result_hash: hash,
                signatures,
            },
            expected,
            heard: [me].into(),
        })
    }
}

/// Phase 13: result signatures from the operating members.
#[derive(Clone, PartialEq)]
pub(crate) struct ResultSigning {
    outcome: Outcome,
    expected: BTreeSet<Index>,
    heard: BTreeSet<Index>,
}

impl ResultSigning {
    fn expected(&self) -> impl Iterator<Item = Index> + '_ {
        self.expected.iter().copied()
    }

    fn receive(
        &mut self,
        cx: &mut Context,
        from: Index,
        hash: [u8; 32],
        signature: [u8; 65],
    ) -> Option<Offence> {
        if !self.heard.insert(from) {
            let same = self.outcome.signatures.get(&from) == Some(&signature);
            return (!same).then_some(Offence::Equivocation);
        }
        let signer = result_signer(&hash, &signature);
        if hash != self.outcome.result_hash
            || signer != Some(cx.parameters.members[from as usize - 1])
        {
            return Some(Offence::BadResultSignature);
        }
        self.outcome.signatures.insert(from, signature);
        None
    }

    fn finish(self, cx: &mut Context) -> Result<Outcome, DkgError> {
        // Reported, not listed: the result was fixed before this phase.
        let signed: BTreeSet<Index> = self.outcome.signatures.keys().copied().collect();
        let expected: Vec<Index> = self.expected().collect();
        silent(cx, Phase::ResultSigning, expected.into_iter(), &signed);
        let required = cx.parameters.signatures_required();
        if self.outcome.signatures.len() < required {
            return Err(DkgError::NotEnoughSignatures {
                signatures: self.outcome.signatures.len(),
                required,
            });
        }
        Ok(self.outcome)
    }
}
