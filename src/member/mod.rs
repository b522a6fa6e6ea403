//! The beacon member service (DESIGN.md sections 1 and 5): what makes a node a member of the
//! random beacon's groups.
//!
//! - [`service`]: one network key's membership as a sans-IO state machine — chain events and
//!   channel messages in, channel and chain actions out;
//! - [`driver`]: runs a service on a node and a chain (the I/O);
//! - [`priority`]: signing goes first: DKG work waits while a member in the process signs;
//! - [`share_times`]: when a group's shares arrived, per entry (the latency the page plots);
//! - [`sim`]: the chain's rules and many members on one virtual block clock over an in-memory
//!   bus, with an interceptor (tests, benches).
//!
//! The service uses only the chain's events and calls and the group channels, never the
//! swarm, so the same code serves natively and in a tab.

pub mod driver;
pub mod priority;
pub mod service;
pub mod share_times;
pub mod sim;

pub use service::{Member, MemberAction, MemberEvent, Outgoing, Refusal, SavedGroup, Submission};
