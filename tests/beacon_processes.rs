//! The beacon across real processes (DESIGN.md sections 6 and 8): `keep-light dev`, and
//! `keep-light chain` + relays + `keep-light member` processes answering `beacon request`,
//! with members and relays failing on the way.
#![cfg(not(target_arch = "wasm32"))]

use std::{path::Path, time::Duration};

use serde_json::Value;

#[path = "support/processes.rs"]
mod processes;

use processes::{free_port, relay, spawn, start, terminate, Lines, Proc};

/// Checks entry lines (DESIGN.md section 6): each verifies under its group key, its random
/// number is keccak256 of it, signers are T of the group's operators, and each line extends
/// `previous` (the genesis entry first, when given).
fn check_entry_lines(lines: &[Value], threshold: usize, mut previous: Option<String>) {
    use keep_light::beacon::{
        bls::{PublicKey, Signature},
        entry,
    };
    let bytes = |v: &Value, field: &str| {
        let text = v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {v}"));
        hex::decode(text.strip_prefix("0x").unwrap()).unwrap()
    };
    for line in lines {
        let entry_point = Signature::from_bytes(&bytes(line, "entry")).unwrap();
        let previous_point = Signature::from_bytes(&bytes(line, "previous")).unwrap();
        let group_key = PublicKey::from_bytes(&bytes(line, "group_key")).unwrap();
        assert!(
            entry::verify_entry(&group_key, &previous_point, &entry_point),
            "{line}"
        );
        assert_eq!(bytes(line, "random"), entry::random_number(&entry_point));
        if let Some(previous) = &previous {
            assert_eq!(line["previous"].as_str().unwrap(), previous, "{line}");
        }
        previous = Some(line["entry"].as_str().unwrap().to_owned());
        let members = line["group_members"].as_array().unwrap();
        let signers = line["signers"].as_array().unwrap();
        if threshold > 0 {
            assert_eq!(signers.len(), threshold, "{line}");
        }
        assert!(signers.iter().all(|s| members.contains(s)), "{line}");
        assert!(line["entry_block"].as_u64() > line["request_block"].as_u64());
    }
}

fn genesis_hex() -> String {
    format!(
        "0x{}",
        hex::encode(keep_light::beacon::entry::genesis().to_bytes())
    )
}

/// `keep-light dev --headless --port 0` with `args` (which name `--entries K`): the process,
/// still exiting, and its K entry lines.
fn dev(args: &[&str]) -> (Proc, Vec<Value>) {
    let entries: usize = args
        .iter()
        .position(|a| *a == "--entries")
        .and_then(|i| args[i + 1].parse().ok())
        .expect("--entries K");
    let mut all = vec!["dev", "--headless", "--port", "0"];
    all.extend_from_slice(args);
    let mut child = start(&all);
    let lines = Lines::new(child.stdout.take().unwrap());
    let proc = Proc(child);
    let entries = (0..entries)
        .map(|_| lines.next("an entry line", |v| v["entry"].is_string()))
        .collect();
    (proc, entries)
}

/// `keep-light chain` with `args`: the process, its lines after the URL line, and its
/// JSON-RPC URL.
fn chain(args: &[&str]) -> (Proc, Lines, String) {
    let mut all = vec!["chain"];
    all.extend_from_slice(args);
    let (proc, lines) = spawn(&all);
    let rpc = lines.next("the rpc line", |v| v["rpc"].is_string())["rpc"]
        .as_str()
        .unwrap()
        .to_owned();
    (proc, lines, rpc)
}

/// `keep-light member` with the key `0x…key` (as 32 bytes), on `rpc`'s chain through the
/// `bootstrap` relays, keeping its shares in `data_dir` if given.
fn member(key: u64, rpc: &str, bootstrap: &[&str], data_dir: Option<&Path>) -> (Proc, Lines) {
    let key = format!("0x{key:064x}");
    let mut args = vec!["member", "--key-hex", &key, "--chain", rpc];
    for relay in bootstrap {
        args.extend(["--bootstrap", relay]);
    }
    let dir = data_dir.map(|d| d.to_str().unwrap().to_owned());
    if let Some(dir) = &dir {
        args.extend(["--data-dir", dir]);
    }
    spawn(&args)
}

#[test]
fn dev_headless_prints_three_chained_entries_from_genesis_and_exits() {
    let (mut proc, entries) = dev(&[
        "--members",
        "7",
        "--group-size",
        "5",
        "--threshold",
        "3",
        "--entries",
        "3",
        "--block-time",
        "200",
    ]);
    check_entry_lines(&entries, 3, Some(genesis_hex()));
    for line in &entries {
        assert!(
            line["dkg_ms"].is_u64() && line["entry_ms"].is_u64(),
            "{line}"
        );
    }
    assert!(proc.0.wait().unwrap().success());
}

#[test]
fn dev_with_silent_members_still_serves() {
    // 5 seats from 6 operators, 1 of them silent: it is marked misbehaved if selected, and 3
    // of the 4 or 5 speaking seats sign.
    let (mut proc, entries) = dev(&[
        "--members",
        "6",
        "--silent-members",
        "1",
        "--entries",
        "2",
        "--block-time",
        "100",
        "--phase-blocks",
        "10",
    ]);
    check_entry_lines(&entries, 3, Some(genesis_hex()));
    assert!(proc.0.wait().unwrap().success());
}

/// `keep-light chain`, two relays and five `keep-light member` processes: `beacon request`
/// prints an entry; with T = N every member's share is needed, so after a member is stopped
/// and restarted from its `--data-dir` the next entry shows it still signs.
#[test]
fn separate_processes_serve_requests_and_a_restarted_member_signs_from_its_data_dir() {
    let (_chain, _, rpc) = chain(&[
        "--block-time",
        "200",
        "--group-size",
        "5",
        "--threshold",
        "5",
        "--phase-blocks",
        "25",
    ]);
    let (_relay1, _, ws1) = relay(&[]);
    let (_relay2, _, ws2) = relay(&[]);
    let data = std::env::temp_dir().join(format!("keep-light-members-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let member = |n: u64| {
        let dir = data.join(n.to_string());
        member(100 + n, &rpc, &[&ws1, &ws2], Some(&dir))
    };
    let mut members: Vec<(Proc, Lines)> = (0..5).map(member).collect();
    // A DKG in which every member must take part. The chain's join delay lets every member
    // subscribe to the DKG's topic before anyone speaks; the long wait is for a loaded machine.
    for (_, lines) in &members {
        lines.next_within("the group", Duration::from_secs(120), |v| {
            v["event"] == "group"
        });
    }
    let request = |previous: Option<String>| {
        let (ok, line) = run_json_timeout(&["beacon", "request", "--chain", &rpc]);
        assert!(ok, "{line}");
        check_entry_lines(std::slice::from_ref(&line), 0, previous);
        line
    };
    let first = request(Some(genesis_hex()));
    // Each member reports when the others' shares came (the page's latency plot): other
    // seats only, each once, and the one that combined them all (T = N) heard all four.
    let heard: Vec<usize> = members
        .iter()
        .map(|(_, lines)| {
            let round = lines.next("share times", |v| v["event"] == "shareTimes");
            let shares = round["shares"].as_array().unwrap();
            let mut seats: Vec<u64> = shares.iter().map(|s| s["seat"].as_u64().unwrap()).collect();
            seats.sort();
            seats.dedup();
            assert_eq!(seats.len(), shares.len(), "{round}");
            assert!(seats.iter().all(|seat| (1..=5).contains(seat)), "{round}");
            assert!(
                shares.iter().all(|s| s["afterMs"].as_f64().is_some()),
                "{round}"
            );
            shares.len()
        })
        .collect();
    assert!(heard.iter().all(|n| (1..=4).contains(n)), "{heard:?}");
    assert!(heard.contains(&4), "{heard:?}");
    // Member 0 goes away and comes back with its key shares.
    terminate(&mut members[0].0);
    members[0] = member(0);
    members[0]
        .1
        .next("the member started", |v| v["event"] == "started");
    let second = request(Some(first["entry"].as_str().unwrap().to_owned()));
    assert_ne!(first["entry"], second["entry"]);
    let _ = std::fs::remove_dir_all(&data);
}

/// Runs the binary to completion (up to two minutes) and returns its last stdout line.
fn run_json_timeout(args: &[&str]) -> (bool, Value) {
    let mut child = start(args);
    let lines = Lines::new(child.stdout.take().unwrap());
    let mut proc = Proc(child);
    let mut last = Value::Null;
    let until = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = proc.0.try_wait().unwrap() {
            for line in lines.during(Duration::from_millis(200)) {
                last = line;
            }
            return (status.success(), last);
        }
        for line in lines.during(Duration::from_millis(100)) {
            last = line;
        }
        assert!(std::time::Instant::now() < until, "{args:?} did not finish");
    }
}

/// `keep-light chain`, two relays and five `keep-light member` processes (T = 3): while the
/// genesis DKG runs, a member and one relay are killed. The four members left finish the DKG
/// over the other relay with the killed member marked misbehaved, and answer a request.
#[test]
fn a_dkg_finishes_when_a_member_and_a_relay_are_killed_midway() {
    let (_chain, _, rpc) = chain(&[
        "--block-time",
        "200",
        "--group-size",
        "5",
        "--threshold",
        "3",
        "--phase-blocks",
        "10",
    ]);
    let (mut relay1, _, ws1) = relay(&[]);
    let (_relay2, _, ws2) = relay(&[]);
    let mut members: Vec<(Proc, Lines)> = (0..5)
        .map(|n| member(200 + n, &rpc, &[&ws1, &ws2], None))
        .collect();
    let victim = members[4]
        .1
        .next("the victim started", |v| v["event"] == "started")["operator"]
        .clone();
    // Killed once it has begun the DKG's second phase: it spoke in the first, then goes quiet.
    members[4]
        .1
        .next_within("the victim's second phase", Duration::from_secs(60), |v| {
            v["event"] == "dkgPhase" && v["phase"] == "commitments"
        });
    let _ = members[4].0 .0.kill();
    let _ = relay1.0.kill();

    let (_, lines) = &members[0];
    let finished = lines.next_within("the DKG's end", Duration::from_secs(120), |v| {
        v["event"] == "dkgFinished"
    });
    assert_eq!(finished["ok"], true, "{finished}");
    let group = lines.next("the group", |v| v["event"] == "group");
    let seat = group["operators"]
        .as_array()
        .unwrap()
        .iter()
        .position(|o| *o == victim)
        .expect("all five were selected") as u64
        + 1;
    let misbehaved: Vec<u64> = finished["misbehaved"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        misbehaved.contains(&seat),
        "{finished} (victim seat {seat})"
    );

    let (ok, line) = run_json_timeout(&["beacon", "request", "--chain", &rpc]);
    assert!(ok, "{line}");
    check_entry_lines(&[line], 0, Some(genesis_hex()));
}

/// `keep-light chain --data-dir`: stopped and started again on the same port, the chain
/// replays its journal (same head, groups and entries); the members go on, and the next entry
/// extends the one made before the restart.
#[test]
fn a_chain_restarted_from_its_data_dir_goes_on_where_it_stopped() {
    let data = std::env::temp_dir().join(format!("keep-light-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let dir = data.to_str().unwrap().to_owned();
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "chain",
        "--block-time",
        "200",
        "--group-size",
        "3",
        "--threshold",
        "2",
        "--phase-blocks",
        "10",
        "--listen",
        &listen,
        "--data-dir",
        &dir,
    ];
    let (mut chain, lines) = spawn(&args);
    let replayed = lines.next("the replay line", |v| v["event"] == "replayed");
    assert_eq!(replayed["calls"], 0, "{replayed}");
    let rpc = lines.next("the rpc line", |v| v["rpc"].is_string())["rpc"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_relay, _, ws) = relay(&[]);
    let members: Vec<(Proc, Lines)> = (0..3u64)
        .map(|n| member(300 + n, &rpc, &[&ws], None))
        .collect();
    for (_, lines) in &members {
        lines.next_within("the group", Duration::from_secs(60), |v| {
            v["event"] == "group"
        });
    }
    let (ok, first) = run_json_timeout(&["beacon", "request", "--chain", &rpc]);
    assert!(ok, "{first}");

    terminate(&mut chain);
    let (_chain, lines) = spawn(&args);
    let replayed = lines.next("the replay line", |v| v["event"] == "replayed");
    assert!(replayed["calls"].as_u64().unwrap() > 0, "{replayed}");
    assert!(
        replayed["head"].as_u64() >= first["entry_block"].as_u64(),
        "{replayed} after {first}"
    );
    lines.next("the rpc line", |v| v["rpc"] == rpc.as_str());
    let (ok, second) = run_json_timeout(&["beacon", "request", "--chain", &rpc]);
    assert!(ok, "{second}");
    check_entry_lines(&[second], 0, first["entry"].as_str().map(str::to_owned));
    let _ = std::fs::remove_dir_all(&data);
}

/// `keep-light dev --data-dir`: a second run with the same directory goes on from the first
/// (the chain replayed, the members' key shares kept): its first entry extends the first
/// run's last one.
#[test]
fn dev_restarted_from_its_data_dir_goes_on_from_its_last_entry() {
    let data = std::env::temp_dir().join(format!("keep-light-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let dir = data.to_str().unwrap().to_owned();
    let args = [
        "--members",
        "5",
        "--group-size",
        "3",
        "--threshold",
        "2",
        "--entries",
        "1",
        "--block-time",
        "200",
        "--data-dir",
        &dir,
    ];
    let (mut first_run, first) = dev(&args);
    assert!(first_run.0.wait().unwrap().success());
    check_entry_lines(&first, 2, Some(genesis_hex()));
    let (mut second_run, second) = dev(&args);
    assert!(second_run.0.wait().unwrap().success());
    check_entry_lines(&second, 2, first[0]["entry"].as_str().map(str::to_owned));
    let _ = std::fs::remove_dir_all(&data);
}
