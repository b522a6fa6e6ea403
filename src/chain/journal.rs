//! A dev chain kept on disk: every call that changed the chain, and every mined block's
//! timestamp, one JSON line each in `DIR/chain.jsonl`. The rules are deterministic given
//! their inputs, so replaying the lines rebuilds the same state (heads, groups, entries,
//! events); a restarted `keep-light chain --data-dir DIR` goes on where it stopped. Refused
//! calls changed nothing and are not written.
//!
//! The first line names the chain's parameters; a restart with other parameters is refused
//! rather than replayed into another chain. Each line is flushed to the OS as it is written (a
//! killed process loses nothing; a machine crash may lose the last lines, as a dev chain may).
//! A last line cut short by a crash is dropped; a bad line anywhere else is an error.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    rules::{decimal, CallError, Rules},
    ChainInfo, DkgResult, RequestId,
};
use crate::{
    beacon::{bls::Signature, dkg::Index},
    identity::{attestation::Attestation, Address},
};

/// One change to the chain, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "call",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Call {
    Mine {
        timestamp: u64,
    },
    SetStake {
        operator: Address,
        #[serde(with = "decimal")]
        stake: u128,
    },
    Faucet {
        operator: Address,
    },
    RegisterNetworkKey {
        attestation: Attestation,
    },
    SubmitDkgResult {
        result: DkgResult,
    },
    RequestEntry,
    SubmitEntry {
        request: RequestId,
        /// Only accepted entries are written, so always a point.
        entry: Signature,
        submitter: Index,
    },
}

impl Call {
    /// Makes the call on `rules` (what replaying does).
    pub fn apply(&self, rules: &mut Rules) -> Result<(), CallError> {
        match self {
            Call::Mine { timestamp } => {
                rules.mine(*timestamp);
                Ok(())
            }
            Call::SetStake { operator, stake } => rules.set_stake(*operator, *stake),
            Call::Faucet { operator } => rules.faucet(*operator),
            Call::RegisterNetworkKey { attestation } => {
                rules.register_network_key(attestation).map(|_| ())
            }
            Call::SubmitDkgResult { result } => rules.submit_dkg_result(result).map(|_| ()),
            Call::RequestEntry => rules.request_entry().map(|_| ()),
            Call::SubmitEntry {
                request,
                entry,
                submitter,
            } => rules
                .submit_entry(*request, &entry.to_bytes(), *submitter)
                .map(|_| ()),
        }
    }
}

/// The file's first line.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// The parameters the calls were made under (the block time aside: it may change).
    parameters: ChainInfo,
}

/// The open journal, appended to as calls succeed.
pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Journal {
    /// Opens (or starts) `dir/chain.jsonl` for a chain with `parameters`, and replays what it
    /// holds into `rules`. Returns the journal and how many calls were replayed.
    pub fn open(
        dir: &Path,
        parameters: &ChainInfo,
        rules: &mut Rules,
    ) -> Result<(Self, usize), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("chain.jsonl");
        let fail = |line: usize, what: String| format!("{}:{line}: {what}", path.display());
        let wanted = comparable(parameters);
        let mut replayed = 0;
        let mut kept_bytes = 0u64;
        let mut fresh = true;
        if let Ok(file) = File::open(&path) {
            let lines: Vec<String> = BufReader::new(file)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(|e| fail(0, e.to_string()))?;
            let last = lines.len();
            for (number, text) in lines.iter().enumerate().map(|(i, t)| (i + 1, t)) {
                if number == 1 {
                    let header: Header = match serde_json::from_str(text) {
                        Ok(header) => header,
                        // The first write was cut short: nothing was ever kept.
                        Err(_) if last == 1 => break,
                        Err(e) => return Err(fail(1, format!("not a chain journal: {e}"))),
                    };
                    if comparable(&header.parameters) != wanted {
                        return Err(fail(
                            1,
                            format!(
                                "kept for other chain parameters ({}); start with the same \
                                 ones or another --data-dir",
                                serde_json::to_string(&header.parameters).unwrap_or_default()
                            ),
                        ));
                    }
                    fresh = false;
                } else {
                    let call: Call = match serde_json::from_str(text) {
                        Ok(call) => call,
                        // Cut short as the process died: the call never took effect for anyone.
                        Err(_) if number == last => break,
                        Err(e) => return Err(fail(number, e.to_string())),
                    };
                    call.apply(rules)
                        .map_err(|e| fail(number, format!("does not replay: {e}")))?;
                    replayed += 1;
                }
                kept_bytes += text.len() as u64 + 1;
            }
        }
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // Drop a torn last line before appending after it.
        file.set_len(kept_bytes).map_err(io)?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let file = BufWriter::new(file);
        let mut journal = Self { path, file };
        if fresh {
            let header = Header {
                parameters: parameters.clone(),
            };
            journal.write_line(&serde_json::to_string(&header).expect("serialisable"))?;
        }
        Ok((journal, replayed))
    }

    /// Appends a call that succeeded.
    pub fn append(&mut self, call: &Call) -> Result<(), String> {
        self.write_line(&serde_json::to_string(call).expect("serialisable"))
    }

    fn write_line(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// The parameters a replay depends on: all but the block time.
fn comparable(parameters: &ChainInfo) -> ChainInfo {
    ChainInfo {
        block_time_ms: None,
        ..parameters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::rules::Config;

    fn info(rules: &Rules) -> ChainInfo {
        ChainInfo::of(rules.config(), Some(1000))
    }

    #[test]
    fn a_replayed_journal_rebuilds_the_chain_and_a_torn_last_line_is_dropped() {
        let dir = std::env::temp_dir().join(format!("keep-light-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut rules = Rules::new(Config::dev()).unwrap();
        let parameters = info(&rules);
        let (mut journal, replayed) = Journal::open(&dir, &parameters, &mut rules).unwrap();
        assert_eq!(replayed, 0);
        let operators: Vec<Address> = (1..=5u8)
            .map(|i| {
                crate::identity::OperatorKey::from_bytes(&[i; 32])
                    .unwrap()
                    .address()
            })
            .collect();
        let mut calls = Vec::new();
        for (i, operator) in operators.iter().enumerate() {
            calls.push(Call::Faucet {
                operator: *operator,
            });
            calls.push(Call::Mine {
                timestamp: 1_800_000_000 + i as u64,
            });
        }
        calls.push(Call::SetStake {
            operator: operators[0],
            stake: 3,
        });
        calls.push(Call::Mine {
            timestamp: 1_800_000_100,
        });
        for call in &calls {
            call.apply(&mut rules).unwrap();
            journal.append(call).unwrap();
        }
        drop(journal);
        // A crash mid-write.
        let path = dir.join("chain.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"call":"mine","times"#).unwrap();
        drop(file);

        let mut again = Rules::new(Config::dev()).unwrap();
        let (mut journal, replayed) = Journal::open(&dir, &parameters, &mut again).unwrap();
        assert_eq!(replayed, calls.len());
        assert_eq!(again.head(), rules.head());
        assert_eq!(again.operator(&operators[0]), rules.operator(&operators[0]));
        let events = |rules: &Rules| {
            serde_json::to_string(&rules.events(0, usize::MAX).unwrap().events).unwrap()
        };
        assert_eq!(events(&again), events(&rules));
        assert!(again.selection().is_some(), "the genesis DKG runs again");
        // The torn line is gone; new lines follow the last whole one.
        journal
            .append(&Call::Mine {
                timestamp: 1_800_000_200,
            })
            .unwrap();
        drop(journal);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("times\n") && text.ends_with("1800000200}\n"),
            "{text}"
        );

        // Other parameters: refused, not replayed into another chain.
        let mut other = Rules::new(Config::dev().with_group(3, 2)).unwrap();
        let error = Journal::open(&dir, &info(&other), &mut other)
            .err()
            .expect("refused");
        assert!(error.contains("other chain parameters"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
