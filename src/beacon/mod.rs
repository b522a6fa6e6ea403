//! The random beacon's cryptography and its protocol state machines.
//!
//! - [`bls`]: BN254 BLS keys, signatures, hash-to-G1 and encodings (keep-core / EIP-197);
//! - [`threshold`]: Shamir dealing, signature shares, verified Lagrange combination;
//! - [`entry`]: relay entry chain and the random number handed to requesters;
//! - [`selection`]: group selection by tickets;
//! - [`dkg`]: GJKR distributed key generation, a sans-IO state machine per member;
//! - [`group`]: a group's record and expiry, and each member's delivery rate;
//! - [`signing`]: one member's relay-entry signing: shares, batched checks, submission turn;
//! - [`sim`]: many members on a virtual block clock, with an interceptor (tests, benches);
//! - [`probe`]: one member's recorded DKG replayed with one hostile message (fuzzing);
//! - [`wire`]: the beacon messages' protobuf encoding and checked decoding.
//!
//! Everything here is pure: no I/O, randomness passed in.

pub mod bls;
pub mod dkg;
pub mod entry;
pub mod group;
pub mod probe;
pub mod selection;
pub mod signing;
pub mod sim;
pub mod threshold;
pub mod wire;
