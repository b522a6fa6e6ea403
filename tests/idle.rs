//! A node with nothing to do costs nothing: after its timers have fired (a ban that ended, a
//! bootstrap relay that failed and waits out its backoff), its event loop sleeps instead of
//! polling. A fired timer that stayed ready would spin the loop at a whole core.
//!
//! The check reads this process's CPU time (Linux `/proc/self/stat`), not the clock: a loop
//! spinning for the 2 s measured burns about 2 s of CPU, an idle one a few milliseconds, so the
//! bound below leaves room for a loaded machine on either side.
#![cfg(target_os = "linux")]

use std::time::Duration;

use futures::StreamExt;
use keep_light::{
    identity::OperatorKey,
    net::{EventReceiver, Node, NodeConfig, NodeEvent, Role},
};

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Clock ticks: 100 per second on Linux (USER_HZ).
    Duration::from_millis(ticks * 10)
}

async fn next_matching<T>(
    events: &mut EventReceiver,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.next().await {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
        panic!("the node stopped")
    })
    .await
    .expect("the awaited event came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_sleeps_after_its_timers_have_fired() {
    let relay_config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut relay_events) = Node::start(relay_config).await.unwrap();
    let address = next_matching(&mut relay_events, |e| match e {
        NodeEvent::Listening { address } => Some(address.clone()),
        _ => None,
    })
    .await;
    // A member with one live relay and one that refuses: a failed dial waiting on its backoff.
    let member_config = NodeConfig::new(OperatorKey::generate())
        .with_bootstrap(vec![address, "/ip4/127.0.0.1/tcp/1".into()])
        .with_bootstrap_target(2);
    let (member, mut member_events) = Node::start(member_config).await.unwrap();
    next_matching(&mut member_events, |e| {
        matches!(e, NodeEvent::DialFailed { retry_in_ms, .. } if *retry_in_ms > 0).then_some(())
    })
    .await;
    next_matching(&mut relay_events, |e| {
        matches!(e, NodeEvent::Connected { .. }).then_some(())
    })
    .await;
    // A short ban of the member, ended by the relay's own timer.
    relay.ban(
        member.peer_id(),
        Some(Duration::from_millis(200)),
        "idle-test",
    );
    next_matching(&mut relay_events, |e| {
        matches!(e, NodeEvent::Unbanned { .. }).then_some(())
    })
    .await;
    // Let the member's redial and the pings settle, then measure a quiet stretch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time() - before;
    assert!(
        used < Duration::from_millis(500),
        "two idle nodes used {used:?} of CPU in 2 s: a loop is polling instead of sleeping"
    );
    drop((member_events, relay_events));
}
