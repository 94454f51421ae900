//! On a GPU host (a build with `--features cuda`): the model trains on CUDA like on the
//! CPU (same loss to rounding), and the pseudo-gradient it produces compresses to the
//! same bytes on the GPU kernels as on the CPU reference. Elsewhere it says why it
//! skipped.

use candle_core::Device;
use crowdtrain_agent::adamw::AdamW;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::model::device_by_name;
use crowdtrain_agent::train::train_step;
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig};
use crowdtrain_kernels::{Backend, QuantConfig, quantize};

/// Pseudo-gradient and per-step losses of three inner steps on `device`.
fn train(device: &Device) -> (Vec<f32>, Vec<f32>) {
    let cfg = InnerConfig::new(4, 32, 3);
    let corpus = Corpus::kjv().unwrap();
    let batches = corpus.round_batches("gpu", 0, 0, 16, 3, 4, 32);
    let model = Gpt::new(ModelConfig::tiny(), 21, device).unwrap();
    let start = model.flat().unwrap();
    let mut opt = AdamW::new(model.params()).unwrap();
    let losses = (0..3)
        .map(|i| train_step(&model, &mut opt, &batches[i], i as u64, &cfg).unwrap())
        .collect();
    let end = model.flat().unwrap();
    (start.iter().zip(&end).map(|(s, e)| s - e).collect(), losses)
}

#[test]
fn cuda_training_and_blobs_match_the_cpu() {
    let gpu = match device_by_name("cuda") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped the CPU/GPU training comparison: {why}");
            return;
        }
    };
    let (delta, gpu_losses) = train(&gpu);
    let (_, cpu_losses) = train(&Device::Cpu);
    for (g, c) in gpu_losses.iter().zip(&cpu_losses) {
        assert!(
            (g - c).abs() < 1e-3,
            "GPU losses {gpu_losses:?}, CPU {cpu_losses:?}"
        );
    }
    // A GPU is here: the kernels must use it, and give the CPU's bytes.
    let backend = Backend::detect();
    assert_eq!(
        backend.name(),
        "cuda",
        "the CUDA build fell back to CPU kernels"
    );
    for quant in [QuantConfig::int8(), QuantConfig::int4()] {
        let on_gpu = backend.quantize(&delta, quant, 7).unwrap();
        let on_cpu = quantize(&delta, quant, 7).unwrap();
        assert_eq!(on_gpu.to_bytes(), on_cpu.to_bytes(), "{quant:?}");
    }
}

#[test]
fn device_names_are_checked_and_a_cpu_build_says_how_to_get_cuda() {
    assert!(matches!(device_by_name("cpu"), Ok(Device::Cpu)));
    let err = device_by_name("tpu").unwrap_err().to_string();
    assert!(err.contains("cpu, cuda or cuda:N"), "{err}");
    if !cfg!(feature = "cuda") {
        let err = device_by_name("cuda:1").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
