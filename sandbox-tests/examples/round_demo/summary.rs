//! What the providers' `crowdtrain train` output says about each round, read back from
//! its lines (`round R trained: ...`, `round R finalized: checkpoint H (...)`), and the
//! round table the demo ends with.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

/// One provider's work in one round, as its `trained` line reports it.
#[derive(Clone, Debug)]
pub struct Trained {
    /// Loss of the first and last inner steps.
    pub loss: (f32, f32),
    /// Tokens trained on.
    pub tokens: u64,
    /// Size of its compressed pseudo-gradient.
    pub blob_bytes: u64,
}

/// Where one provider's round went, in seconds (from the `[+S s]` ends of its lines).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Training the inner steps and compressing.
    pub train: f32,
    /// Serving its blob and gathering the others' (until all came or the deadline).
    pub exchange: f32,
    /// Aggregating the blobs into the next checkpoint.
    pub aggregate: f32,
    /// Posting the receipt and waiting for the round to finalize.
    pub chain: f32,
}

/// One provider's rounds: what it trained and the checkpoint each round finalized.
#[derive(Clone, Debug, Default)]
pub struct ProviderLog {
    /// Work by round.
    pub trained: BTreeMap<u64, Trained>,
    /// Finalized checkpoint by round, and whether it was the one this provider computed.
    pub finalized: BTreeMap<u64, (String, bool)>,
    /// Rounds it went through from training to finalized, timed.
    pub timing: BTreeMap<u64, Timing>,
}

/// The seconds a line ends with (`... [+1.25s]`).
fn elapsed(line: &str) -> Option<f32> {
    let at = line.rfind("[+")?;
    line[at + 2..].strip_suffix("s]")?.parse().ok()
}

/// The seconds inside `(aggregated in 0.12s)`.
fn aggregated(line: &str) -> Option<f32> {
    let at = line.find("(aggregated in ")?;
    let rest = &line[at + "(aggregated in ".len()..];
    rest[..rest.find("s)")?].parse().ok()
}

impl ProviderLog {
    /// Reads the lines of `crowdtrain train` (see `cli/train.rs` for their format).
    pub fn parse(lines: &[String]) -> Result<Self> {
        let mut log = Self::default();
        for line in lines {
            let Some(rest) = line.strip_prefix("round ") else {
                continue;
            };
            let (round, rest) = rest.split_once(' ').context("round number")?;
            let round: u64 = round.parse().with_context(|| format!("{line:?}"))?;
            let secs = elapsed(line).unwrap_or(0.0);
            if rest.starts_with("trained: ") {
                log.timing.entry(round).or_default().train = secs;
            } else if rest.starts_with("receipt posted: ") {
                let t = log.timing.entry(round).or_default();
                t.aggregate = aggregated(line).unwrap_or(0.0);
                t.exchange = secs - t.aggregate;
            } else if rest.starts_with("finalized: ") {
                log.timing.entry(round).or_default().chain = secs;
            }
            if let Some(rest) = rest.strip_prefix("trained: loss ") {
                // "<a> -> <b>, <tokens> tokens, blob <bytes> bytes (<hash>)"
                let words: Vec<&str> = rest.split([' ', ',']).filter(|w| !w.is_empty()).collect();
                let [a, "->", b, tokens, "tokens", "blob", bytes, "bytes", ..] = words[..] else {
                    bail!("unexpected line {line:?}");
                };
                log.trained.insert(
                    round,
                    Trained {
                        loss: (a.parse()?, b.parse()?),
                        tokens: tokens.parse()?,
                        blob_bytes: bytes.parse()?,
                    },
                );
            } else if let Some(rest) = rest.strip_prefix("finalized: checkpoint ") {
                let hash: String = rest.chars().take(64).collect();
                log.finalized
                    .insert(round, (hash, rest.contains("(the one we computed)")));
            }
        }
        Ok(log)
    }
}

/// One row of the final table.
#[derive(Clone, Debug)]
pub struct RoundRow {
    /// Chain round.
    pub round: u64,
    /// Mean over providers of the first and last inner-step losses.
    pub train_loss: (f32, f32),
    /// Held-out loss of the finalized checkpoint.
    pub heldout: f32,
    /// Tokens trained in the round, all providers.
    pub tokens: u64,
    /// Bytes of blobs the providers published in the round.
    pub blob_bytes: u64,
    /// Bytes synchronous data-parallel training sends for the same steps: one f32
    /// gradient per provider per inner step.
    pub f32_bytes: u64,
    /// The finalized checkpoint.
    pub checkpoint: String,
}

/// The table, one line per round.
pub fn table(rows: &[RoundRow]) -> String {
    let mut out = format!(
        "   {:>5} {:>17} {:>9} {:>8} {:>12} {:>14} {:>7}  {}\n",
        "round",
        "train loss",
        "held-out",
        "tokens",
        "blob bytes",
        "f32 sync bytes",
        "saving",
        "checkpoint"
    );
    for r in rows {
        out += &format!(
            "   {:>5} {:>7.3} → {:>7.3} {:>9.3} {:>8} {:>12} {:>14} {:>6.0}×  {}…\n",
            r.round,
            r.train_loss.0,
            r.train_loss.1,
            r.heldout,
            r.tokens,
            r.blob_bytes,
            r.f32_bytes,
            r.f32_bytes as f64 / r.blob_bytes.max(1) as f64,
            &r.checkpoint[..12.min(r.checkpoint.len())]
        );
    }
    out
}

/// Mean seconds per round over every provider and round that went the whole way.
pub fn mean_timing(logs: &[ProviderLog]) -> Timing {
    let all: Vec<Timing> = logs
        .iter()
        .flat_map(|l| {
            l.timing
                .iter()
                .filter(|(r, _)| l.finalized.contains_key(r) && l.trained.contains_key(r))
                .map(|(_, t)| *t)
        })
        .collect();
    let n = all.len().max(1) as f32;
    Timing {
        train: all.iter().map(|t| t.train).sum::<f32>() / n,
        exchange: all.iter().map(|t| t.exchange).sum::<f32>() / n,
        aggregate: all.iter().map(|t| t.aggregate).sum::<f32>() / n,
        chain: all.iter().map(|t| t.chain).sum::<f32>() / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_train_lines_are_read_back() {
        let lines: Vec<String> = [
            "joined run demo as a at checkpoint x (round 0); spec y",
            "round 1 trained: loss 5.5452 -> 3.1000, 10240 tokens, blob 12345 bytes (abcd) [+2.50s]",
            "round 1 receipt posted: checkpoint ab from 3 blobs (aggregated in 0.25s) [+1.25s]",
            &format!(
                "round 1 finalized: checkpoint {} (the one we computed) [+0.50s]",
                "e".repeat(64)
            ),
        ]
        .map(String::from)
        .to_vec();
        let log = ProviderLog::parse(&lines).unwrap();
        let t = &log.trained[&1];
        assert_eq!(
            (t.loss, t.tokens, t.blob_bytes),
            ((5.5452, 3.1), 10240, 12345)
        );
        assert_eq!(log.finalized[&1], ("e".repeat(64), true));
        let t = log.timing[&1];
        assert_eq!(
            (t.train, t.exchange, t.aggregate, t.chain),
            (2.5, 1.0, 0.25, 0.5)
        );
    }
}
