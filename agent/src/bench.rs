//! `crowdtrain bench`: placeholder until the figures are wired.
use anyhow::Result;
use crowdtrain_agent::data::Corpus;

/// Runs the benchmark.
pub fn run(_corpus: &Corpus, _quick: bool) -> Result<()> {
    Ok(())
}
