//! One inner optimisation step and held-out evaluation, shared by DiLoCo workers
//! and the synchronous baseline.

use crate::Result;
use crate::adamw::AdamW;
use crate::config::InnerConfig;
use crate::data::Batch;
use crate::model::Gpt;

/// Forward, backward and one AdamW update at global inner step `step`; returns the loss
/// measured before the update.
pub fn train_step(
    model: &Gpt,
    opt: &mut AdamW,
    batch: &Batch,
    step: u64,
    cfg: &InnerConfig,
) -> Result<f32> {
    // The whole step runs on one of rayon's threads, so each of its ~100 parallel
    // loops starts there; called from outside the pool, every loop would hand its
    // work over and put this thread to sleep until it is done.
    rayon::scope(|_| {
        let (loss, grads) = model.loss_and_grads(batch)?;
        opt.step(model.params(), &grads, cfg.lr_at(step), cfg)?;
        Ok(loss)
    })
}

/// Mean loss over `batches` without updating anything.
pub fn eval_loss(model: &Gpt, batches: &[Batch]) -> Result<f32> {
    let mut total = 0.0f64;
    for b in batches {
        let (x, y) = b.to_tensors(model.device())?;
        total += model.loss(&x, &y)?.to_scalar::<f32>()? as f64;
    }
    Ok((total / batches.len().max(1) as f64) as f32)
}
