use super::*;
use crate::{
    beacon::{
        dkg::sign_result,
        group::Lifetime,
        threshold::{combine, deal, Dealing},
    },
    identity::OperatorKey,
};
use rand::{rngs::StdRng, SeedableRng};

/// A dev chain of `operators` native operators (one seat each), groups of 5 / T 3.
struct Fixture {
    rules: Rules,
    keys: BTreeMap<Address, OperatorKey>,
    rng: StdRng,
    clock: u64,
}

impl Fixture {
    fn new(operators: usize) -> Self {
        Self::with_config(operators, Config::dev())
    }

    fn with_config(operators: usize, config: Config) -> Self {
        let mut rules = Rules::new(config).unwrap();
        let mut keys = BTreeMap::new();
        for _ in 0..operators {
            let key = OperatorKey::generate();
            rules.faucet(key.address()).unwrap();
            keys.insert(key.address(), key);
        }
        Self {
            rules,
            keys,
            rng: StdRng::seed_from_u64(7),
            clock: 1_800_000_000,
        }
    }

    fn mine(&mut self, blocks: u64) {
        for _ in 0..blocks {
            self.clock += 1;
            self.rules.mine(self.clock);
        }
    }

    fn events(&self) -> Vec<Event> {
        self.rules
            .events(0, usize::MAX)
            .unwrap()
            .events
            .into_iter()
            .map(|l| l.event)
            .collect()
    }

    fn last_dkg(&self) -> Selection {
        self.rules.selection().expect("a DKG runs").clone()
    }

    /// What an honest group would submit for the running DKG: a dealt key, and the
    /// result hash signed by `signers`' network keys.
    fn result(&mut self, signers: &[Index], submitter: Index) -> (DkgResult, Dealing) {
        let selection = self.last_dkg();
        let n = selection.parameters.size();
        let dealing = deal(n, selection.parameters.threshold, &mut self.rng).unwrap();
        let hash = dkg::result_hash(&dealing.group_public_key, &BTreeSet::new());
        let signatures = signers
            .iter()
            .map(|index| {
                let member = selection.parameters.members[*index as usize - 1];
                (
                    *index,
                    SignatureBytes(sign_result(&self.keys[&member], &hash)),
                )
            })
            .collect();
        let result = DkgResult {
            session: selection.session,
            group_key: dealing.group_public_key.to_bytes().to_vec(),
            misbehaved: Vec::new(),
            signatures,
            submitter,
        };
        (result, dealing)
    }

    /// Mines until the running DKG's first phase is the pending block (its join delay).
    fn mine_to_start(&mut self) {
        let start = self.last_dkg().start_block;
        while self.rules.pending() < start {
            self.mine(1);
        }
    }

    /// Runs the DKG to a group with every seat signing, submitted by seat 1.
    fn make_group(&mut self) -> (GroupId, Dealing) {
        self.mine_to_start();
        let (result, dealing) = self.result(&[1, 2, 3, 4, 5], 1);
        let id = self.rules.submit_dkg_result(&result).unwrap();
        (id, dealing)
    }
}

/// The entry a dealt group makes over `previous`, from shares of seats 1..=T.
fn sign_entry(dealing: &Dealing, threshold: usize, previous: &Signature) -> Signature {
    let message = entry::entry_message(previous);
    let shares: Vec<_> = dealing.shares[..threshold]
        .iter()
        .map(|s| crate::beacon::threshold::SignatureShare {
            index: s.index,
            signature: s.sign(&message).signature,
        })
        .collect();
    combine(threshold, &shares).unwrap()
}

#[test]
fn genesis_waits_for_enough_seats_then_starts_one_dkg() {
    let mut chain = Fixture::new(4);
    chain.mine(3);
    assert!(
        chain.rules.selection().is_none(),
        "4 seats for a group of 5"
    );
    let fifth = OperatorKey::generate();
    chain.rules.faucet(fifth.address()).unwrap();
    chain.keys.insert(fifth.address(), fifth);
    chain.mine(1);
    let selection = chain.last_dkg();
    assert_eq!(selection.entry, entry::genesis());
    assert_eq!(selection.parameters.size(), 5);
    // Native operators: network key = operator address.
    assert_eq!(selection.operators, selection.parameters.members);
    let started = chain.rules.events(0, 100).unwrap().events;
    let logged = started
        .iter()
        .find(|l| matches!(l.event, Event::DkgStarted { .. }));
    // Logged in the block that was pending when it started, visible once mined.
    assert!(logged.is_none(), "not mined yet");
    chain.mine(1);
    let events = chain.rules.events(0, 100).unwrap().events;
    let started = events
        .iter()
        .find(|l| matches!(l.event, Event::DkgStarted { .. }))
        .unwrap();
    // The first phase runs a join delay after the event.
    let Event::DkgStarted { start_block, .. } = started.event else {
        unreachable!()
    };
    assert_eq!(start_block, selection.start_block);
    assert_eq!(
        started.block + chain.rules.config().join_blocks(),
        start_block
    );
    // Later blocks start no second DKG.
    chain.mine(3);
    assert_eq!(chain.last_dkg().session, selection.session);
}

#[test]
fn an_honest_result_makes_a_group_and_a_replay_is_refused() {
    let mut chain = Fixture::new(6);
    chain.mine(1);
    let (result, dealing) = chain.result(&[1, 2, 3, 4], 2);
    // Nobody's turn comes during the join delay.
    let (first, _) = chain.result(&[1, 2, 3, 4], 1);
    assert!(matches!(
        chain.rules.submit_dkg_result(&first),
        Err(CallError::NotYourTurn { .. })
    ));
    chain.mine_to_start();
    // Seat 2 is second among the signers: one result step after the start.
    assert!(matches!(
        chain.rules.submit_dkg_result(&result),
        Err(CallError::NotYourTurn { .. })
    ));
    chain.mine(2);
    let id = chain.rules.submit_dkg_result(&result).unwrap();
    assert_eq!(id, 0);
    let group = &chain.rules.groups()[0];
    assert_eq!(group.group_key, dealing.group_public_key);
    assert_eq!(group.status, GroupStatus::Active);
    assert_eq!(
        chain.rules.submit_dkg_result(&result),
        Err(CallError::AlreadySubmitted)
    );
    chain.mine(1);
    assert!(chain
        .events()
        .iter()
        .any(|e| matches!(e, Event::GroupCreated { submitter: 2, .. })));
}

#[test]
fn results_are_refused_with_their_reason_and_change_nothing() {
    let mut chain = Fixture::new(5);
    chain.mine(1);
    chain.mine_to_start();
    let (good, _) = chain.result(&[1, 2, 3, 4], 1);
    let selection = chain.last_dkg();
    let refused = |chain: &mut Fixture, result: &DkgResult| {
        let error = chain.rules.submit_dkg_result(result).unwrap_err();
        assert!(chain.rules.groups().is_empty());
        error.reason()
    };

    let mut r = good.clone();
    r.session[0] ^= 1;
    assert_eq!(refused(&mut chain, &r), "wrong_session");
    // N = 5, H = 3: 3 + 1 signatures needed.
    let (three, _) = chain.result(&[1, 2, 3], 1);
    assert_eq!(refused(&mut chain, &three), "too_few_signatures");
    let mut r = good.clone();
    r.signatures.push(r.signatures[0]);
    assert_eq!(refused(&mut chain, &r), "duplicate_signer");
    let mut r = good.clone();
    r.signatures[1].0 = 9;
    assert_eq!(refused(&mut chain, &r), "bad_signer");
    let mut r = good.clone();
    r.submitter = 5;
    assert_eq!(refused(&mut chain, &r), "submitter_not_signer");
    let mut r = good.clone();
    r.submitter = 0;
    assert_eq!(refused(&mut chain, &r), "not_a_member");
    // Seat 4 is fourth among the signers: its turn is 3 result steps after the start.
    let mut r = good.clone();
    r.submitter = 4;
    match chain.rules.submit_dkg_result(&r) {
        Err(CallError::NotYourTurn { from_block }) => {
            assert_eq!(from_block, selection.start_block + 3 * 2)
        }
        other => panic!("{other:?}"),
    }
    let mut r = good.clone();
    r.group_key.truncate(64);
    assert_eq!(refused(&mut chain, &r), "bad_group_key");
    let mut r = good.clone();
    r.group_key[5] ^= 1;
    assert_eq!(refused(&mut chain, &r), "bad_group_key");
    // Another valid key than the one signed.
    let mut r = good.clone();
    r.group_key = deal(5, 3, &mut chain.rng)
        .unwrap()
        .group_public_key
        .to_bytes()
        .to_vec();
    assert_eq!(refused(&mut chain, &r), "bad_result_signature");
    // The signers signed an empty misbehaved list; this one names seat 5.
    let mut r = good.clone();
    r.misbehaved = vec![5];
    assert_eq!(refused(&mut chain, &r), "bad_result_signature");
    let mut r = good.clone();
    r.misbehaved = vec![3, 2];
    assert_eq!(refused(&mut chain, &r), "bad_misbehaved");
    // A non-member's key signing for seat 3.
    let outsider = OperatorKey::generate();
    let mut r = good.clone();
    let hash = dkg::result_hash(
        &PublicKey::from_bytes(&good.group_key).unwrap(),
        &BTreeSet::new(),
    );
    r.signatures[2].1 = SignatureBytes(sign_result(&outsider, &hash));
    assert_eq!(refused(&mut chain, &r), "bad_result_signature");
    // A flipped bit in a signature.
    let mut r = good.clone();
    r.signatures[0].1 .0[10] ^= 0x40;
    assert_eq!(refused(&mut chain, &r), "bad_result_signature");

    // The honest result still goes through.
    chain.rules.submit_dkg_result(&good).unwrap();
}

#[test]
fn a_dkg_without_a_result_times_out_and_starts_again() {
    let mut chain = Fixture::new(5);
    chain.mine(1);
    let first = chain.last_dkg();
    let timeout = chain.rules.config().dkg_timeout();
    chain.mine_to_start();
    chain.mine(timeout);
    let second = chain.last_dkg();
    assert_ne!(first.session, second.session);
    assert!(second.start_block >= first.timeout_block);
    let (late, _) = {
        // A result for the first DKG is refused as stale.
        let mut r = chain.result(&[1, 2, 3, 4], 1).0;
        r.session = first.session;
        (r, ())
    };
    assert_eq!(
        chain.rules.submit_dkg_result(&late),
        Err(CallError::WrongSession)
    );
    chain.mine(1);
    assert!(chain.events().contains(&Event::DkgTimedOut {
        session: first.session
    }));
}

#[test]
fn entries_chain_from_genesis_and_each_starts_the_next_selection() {
    let mut chain = Fixture::new(7);
    chain.mine(1);
    let (group, dealing) = chain.make_group();
    let mut previous = entry::genesis();
    let mut dkg_entry = None;
    for round in 0..3u64 {
        let request = chain.rules.request_entry().unwrap();
        assert_eq!(request, round);
        let entry = sign_entry(&dealing, 3, &previous);
        let first = entry::first_submitter(&previous, 5);
        let served = chain
            .rules
            .submit_entry(request, &entry.to_bytes(), first)
            .unwrap();
        assert_eq!(served.random, entry::random_number(&entry));
        assert_eq!(served.group, group);
        assert_eq!(chain.rules.entry(), entry);
        assert_eq!(
            chain.rules.submit_entry(request, &entry.to_bytes(), first),
            Err(CallError::AlreadyServed(request))
        );
        // The first entry started a selection from itself; later ones find it running.
        let first_entry = *dkg_entry.get_or_insert(entry);
        assert_eq!(chain.last_dkg().entry, first_entry);
        // Only one group exists, so the next request goes to it again.
        previous = entry;
        chain.mine(1);
    }
    let submitted = chain
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::EntrySubmitted { .. }))
        .count();
    assert_eq!(submitted, 3);
    assert_eq!(chain.rules.groups()[0].served, 3);
}

#[test]
fn entries_are_refused_with_their_reason() {
    let mut chain = Fixture::new(5);
    assert_eq!(
        chain.rules.submit_entry(0, &[0; 64], 1),
        Err(CallError::UnknownRequest(0))
    );
    // A request made before any group exists waits.
    let request = chain.rules.request_entry().unwrap();
    assert_eq!(
        chain.rules.submit_entry(request, &[0; 64], 1),
        Err(CallError::NotAssigned(request))
    );
    chain.mine(1);
    let (_, dealing) = chain.make_group();
    let previous = entry::genesis();
    let entry = sign_entry(&dealing, 3, &previous);
    let first = entry::first_submitter(&previous, 5);
    let bytes = entry.to_bytes();
    let reason = |result: Result<Served, CallError>| result.unwrap_err().reason();
    assert_eq!(
        reason(chain.rules.submit_entry(request, &bytes[..63], first)),
        "bad_entry"
    );
    assert_eq!(
        reason(chain.rules.submit_entry(request, &[0; 64], first)),
        "bad_entry"
    );
    let mut flipped = bytes;
    flipped[63] ^= 1;
    assert_eq!(
        reason(chain.rules.submit_entry(request, &flipped, first)),
        "bad_entry"
    );
    // A valid point that is not the group's signature (another group's, a replayed one).
    let other = deal(5, 3, &mut chain.rng).unwrap();
    let forged = sign_entry(&other, 3, &previous);
    assert_eq!(
        reason(chain.rules.submit_entry(request, &forged.to_bytes(), first)),
        "invalid_entry"
    );
    // The right entry from a seat whose turn has not come.
    let next = first % 5 + 1;
    match chain.rules.submit_entry(request, &bytes, next) {
        Err(CallError::NotYourTurn { from_block }) => {
            assert_eq!(from_block, chain.rules.head() + 1 + 2)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reason(chain.rules.submit_entry(request, &bytes, 6)),
        "not_a_member"
    );
    // Two blocks later it is the next seat's turn too.
    chain.mine(2);
    chain.rules.submit_entry(request, &bytes, next).unwrap();
}

#[test]
fn a_group_that_does_not_answer_is_terminated_and_the_request_reassigned() {
    let mut chain = Fixture::new(5);
    chain.mine(1);
    let (dead, _) = chain.make_group();
    // The group's entry would start the next selection; none yet, so make a second
    // group from a restarted DKG: let the first group fail first.
    let request = chain.rules.request_entry().unwrap();
    let timeout = chain.rules.config().relay_timeout();
    chain.mine(timeout);
    assert_eq!(
        chain.rules.groups()[dead as usize].status,
        GroupStatus::Terminated
    );
    // No group is active: a selection starts again from the same entry.
    let (alive, dealing) = chain.make_group();
    chain.mine(1);
    let events = chain.events();
    assert!(events.contains(&Event::EntryTimedOut {
        request,
        group: dead
    }));
    let assigned: Vec<GroupId> = events
        .iter()
        .filter_map(|e| match e {
            Event::EntryAssigned {
                request: r, group, ..
            } if *r == request => Some(*group),
            _ => None,
        })
        .collect();
    assert_eq!(assigned, vec![dead, alive]);
    let entry = sign_entry(&dealing, 3, &entry::genesis());
    chain
        .rules
        .submit_entry(
            request,
            &entry.to_bytes(),
            entry::first_submitter(&entry::genesis(), 5),
        )
        .unwrap();
}

#[test]
fn groups_expire_after_their_entries_and_a_new_selection_follows() {
    let config = Config::dev().with_lifetime(Lifetime {
        entries: 2,
        blocks: 1_000,
    });
    let mut chain = Fixture::with_config(5, config);
    chain.mine(1);
    let (group, dealing) = chain.make_group();
    let mut previous = entry::genesis();
    for _ in 0..2 {
        let request = chain.rules.request_entry().unwrap();
        let entry = sign_entry(&dealing, 3, &previous);
        chain
            .rules
            .submit_entry(
                request,
                &entry.to_bytes(),
                entry::first_submitter(&previous, 5),
            )
            .unwrap();
        previous = entry;
    }
    assert_eq!(
        chain.rules.groups()[group as usize].status,
        GroupStatus::Expired
    );
    // A request now waits for the DKG the last entry started.
    let request = chain.rules.request_entry().unwrap();
    assert_eq!(
        chain.rules.submit_entry(request, &[0; 64], 1),
        Err(CallError::NotAssigned(request))
    );
    // The first entry started that DKG; the second found it running.
    assert_ne!(chain.last_dkg().entry, previous);
    let (next, dealing) = chain.make_group();
    let entry = sign_entry(&dealing, 3, &previous);
    let served = chain
        .rules
        .submit_entry(
            request,
            &entry.to_bytes(),
            entry::first_submitter(&previous, 5),
        )
        .unwrap();
    assert_eq!(served.group, next);
    // Expiry by blocks.
    chain.mine(1_000);
    assert_eq!(
        chain.rules.groups()[next as usize].status,
        GroupStatus::Expired
    );
}

#[test]
fn the_request_queue_is_bounded() {
    let mut chain = Fixture::with_config(0, Config::dev().with_max_pending_requests(2));
    chain.rules.request_entry().unwrap();
    chain.rules.request_entry().unwrap();
    assert_eq!(
        chain.rules.request_entry(),
        Err(CallError::TooManyRequests(2))
    );
}

#[test]
fn a_wallet_registers_its_session_key_and_the_faucet_stakes_it() {
    let mut chain = Fixture::new(0);
    chain.mine(1);
    let wallet = OperatorKey::generate();
    let session = OperatorKey::generate();
    let now = time::OffsetDateTime::from_unix_timestamp(chain.rules.timestamp() as i64).unwrap();
    let attest = |chain_id: u64, peer: &OperatorKey| {
        attestation::create(
            &wallet,
            &peer.peer_id(),
            chain_id,
            "keep-light.test",
            now - time::Duration::minutes(1),
            std::time::Duration::from_secs(3600),
            "nonce0001",
        )
        .unwrap()
    };
    let view = chain
        .rules
        .register_network_key(&attest(31337, &session))
        .unwrap();
    assert_eq!(view.network_key, Some(session.address()));
    assert_eq!(view.stake, 1);
    // Wrong chain: refused, nothing changes.
    let other = OperatorKey::generate();
    assert_eq!(
        chain
            .rules
            .register_network_key(&attest(1, &other))
            .unwrap_err()
            .reason(),
        "bad_attestation"
    );
    assert_eq!(
        chain.rules.operator(&wallet.address()).network_key,
        Some(session.address())
    );
    // Another wallet cannot take the same session key.
    let thief = OperatorKey::generate();
    let stolen = attestation::create(
        &thief,
        &session.peer_id(),
        31337,
        "keep-light.test",
        now,
        std::time::Duration::from_secs(3600),
        "nonce0002",
    )
    .unwrap();
    assert_eq!(
        chain.rules.register_network_key(&stolen),
        Err(CallError::NetworkKeyTaken(session.address()))
    );
    // A new session key replaces the old one.
    chain
        .rules
        .register_network_key(&attest(31337, &other))
        .unwrap();
    assert_eq!(
        chain.rules.operator(&wallet.address()).network_key,
        Some(other.address())
    );
    // After the attestation expires the operator holds no network key (not selectable).
    chain.mine(1);
    chain.rules.mine(chain.rules.timestamp() + 3_600);
    assert_eq!(chain.rules.operator(&wallet.address()).network_key, None);
    chain.mine(1);
    assert!(chain
        .events()
        .iter()
        .any(|e| matches!(e, Event::NetworkKeyRegistered { .. })));
}

#[test]
fn selection_seats_the_session_keys_of_wallet_operators() {
    let mut chain = Fixture::new(4);
    chain.mine(1);
    let wallet = OperatorKey::generate();
    let session = OperatorKey::generate();
    let now = time::OffsetDateTime::from_unix_timestamp(chain.rules.timestamp() as i64).unwrap();
    let attestation = attestation::create(
        &wallet,
        &session.peer_id(),
        31337,
        "keep-light.test",
        now,
        std::time::Duration::from_secs(3600),
        "nonce0003",
    )
    .unwrap();
    chain.rules.register_network_key(&attestation).unwrap();
    chain.mine(1);
    let selection = chain.last_dkg();
    let seat = selection
        .operators
        .iter()
        .position(|o| *o == wallet.address())
        .expect("five seats, five operators");
    assert_eq!(selection.parameters.members[seat], session.address());
}

#[test]
fn events_serialise_as_documented_and_read_back() {
    let mut chain = Fixture::new(5);
    chain.mine(1);
    chain.make_group();
    chain.rules.request_entry().unwrap();
    chain.mine(1);
    let events = chain.rules.events(0, 100).unwrap().events;
    assert!(events.len() >= 8, "{events:?}");
    for logged in &events {
        let json = serde_json::to_value(logged).unwrap();
        assert!(
            json["block"].is_u64() && json["event"].is_string(),
            "{json}"
        );
        let back: Logged = serde_json::from_value(json).unwrap();
        assert_eq!(&back, logged);
    }
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["event"], "operatorStaked");
    assert!(json["stake"].is_string());
    let started = events
        .iter()
        .map(|l| serde_json::to_value(l).unwrap())
        .find(|j| j["event"] == "dkgStarted")
        .unwrap();
    assert_eq!(started["session"].as_str().unwrap().len(), 66);
    assert_eq!(started["entry"].as_str().unwrap().len(), 2 + 128);
    assert!(started["phaseBlocks"].is_u64());
    // Reading from a later block skips earlier events.
    let last = events.last().unwrap().block;
    assert!(chain.rules.events(last + 1, 100).unwrap().events.is_empty());
    // Pages hold whole blocks: a limit of 1 still brings all of block `first`'s events.
    let first = events[0].block;
    let page = chain.rules.events(first, 1).unwrap();
    let in_first = events.iter().filter(|e| e.block == first).count();
    assert_eq!(page.events.len(), in_first);
    assert_eq!(page.through, first);
}

#[test]
fn configs_that_cannot_work_are_refused() {
    assert!(Rules::new(Config::dev().with_group(1, 1)).is_err());
    assert!(Rules::new(Config::dev().with_group(5, 6)).is_err());
    assert!(Rules::new(Config::dev().with_group(256, 3)).is_err());
    assert!(Rules::new(Config::dev().with_minimum_stake(0)).is_err());
    assert!(Rules::new(Config::dev().with_relay_step(0)).is_err());
    assert!(Rules::new(Config::dev().with_faucet(false))
        .unwrap()
        .faucet(Address([1; 20]))
        .is_err());
}
