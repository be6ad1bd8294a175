//! The training loop: AdamW with linear warm-up and cosine decay, global gradient-norm clipping, periodic
//! checkpoints (model and optimizer state in safetensors) from which an interrupted run resumes bit for bit,
//! and a NaN/Inf guard that stops a run with a clear message and keeps what was written.
//!
//! AdamW is written out here (a dozen lines of tensor ops) rather than taken from `tch::nn::Optimizer`
//! because tch does not expose its optimizer state, and resuming exactly needs the moments saved.

use super::spec::{Experiment, TrainingSpec};
use super::store::{config_hash, MetricLine, RunDir, TensorInfo};
use super::tasks::{loss_and_accuracy, Split, Task};
use crate::models::{LanguageModel, MemoryLm};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use tch::{nn, Device, Kind, Tensor};

/// Learning rate at `step` (0-based): linear warm-up to `lr`, then cosine decay to 10 % of it.
pub fn schedule(t: &TrainingSpec, step: usize) -> f64 {
    if step < t.warmup {
        return t.lr * (step + 1) as f64 / t.warmup as f64;
    }
    let span = (t.steps - t.warmup).max(1) as f64;
    let progress = ((step - t.warmup) as f64 / span).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    t.lr * (0.1 + 0.9 * cosine)
}

/// AdamW (Loshchilov & Hutter) with decoupled weight decay on matrices only (not on biases, norms, or 1-D
/// parameters), β = (0.9, 0.95), ε = 1e-8.
pub struct AdamW {
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.95;
const EPS: f64 = 1e-8;

impl AdamW {
    pub fn new(vs: &nn::VarStore) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<_>, Vec<_>) = named.into_iter().unzip();
        let m = params.iter().map(|p| p.zeros_like()).collect();
        let v = params.iter().map(|p| p.zeros_like()).collect();
        Self { names, params, m, v, step: 0 }
    }

    /// Clips the global gradient norm to `clip` (0 = off); returns the norm before clipping.
    pub fn clip(&self, clip: f64) -> f64 {
        let grads: Vec<Tensor> = self.params.iter().filter(|p| p.grad().defined()).map(|p| p.grad()).collect();
        let norm = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        if clip > 0.0 && norm > clip {
            tch::no_grad(|| {
                for g in &grads {
                    let _ = g.shallow_clone().g_mul_scalar_(clip / norm);
                }
            });
        }
        norm
    }

    pub fn update(&mut self, lr: f64, weight_decay: f64) {
        self.step += 1;
        let t = self.step as f64;
        let (c1, c2) = (1.0 - BETA1.powf(t), 1.0 - BETA2.powf(t));
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let p = &mut self.params[i];
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let m = self.m[i].shallow_clone() * BETA1 + &g * (1.0 - BETA1);
                let v = self.v[i].shallow_clone() * BETA2 + g.square() * (1.0 - BETA2);
                if p.dim() >= 2 && weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let upd = (&m / c1) / ((&v / c2).sqrt() + EPS) * lr;
                let _ = p.g_sub_(&upd);
                self.m[i] = m;
                self.v[i] = v;
                p.zero_grad();
            }
        });
    }

    /// Model and optimizer tensors for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("param.{n}"), self.params[i].shallow_clone()));
            out.push((format!("adam_m.{n}"), self.m[i].shallow_clone()));
            out.push((format!("adam_v.{n}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores from checkpoint tensors.
    pub fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (i, n) in self.names.iter().enumerate() {
                let get = |prefix: &str| {
                    tensors.get(&format!("{prefix}.{n}")).with_context(|| format!("checkpoint lacks {prefix}.{n}"))
                };
                let shape = self.params[i].size();
                for prefix in ["param", "adam_m", "adam_v"] {
                    let got = get(prefix)?.size();
                    if got != shape {
                        bail!("checkpoint tensor {prefix}.{n} has shape {got:?}; the model needs {shape:?}");
                    }
                }
                self.params[i].f_copy_(get("param")?).with_context(|| format!("restoring {n}"))?;
                self.m[i] = get("adam_m")?.to_device(self.params[i].device());
                self.v[i] = get("adam_v")?.to_device(self.params[i].device());
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

impl crate::optim::Optimizer for AdamW {
    fn clip(&self, clip: f64) -> f64 {
        AdamW::clip(self, clip)
    }
    fn update(&mut self, lr: f64, weight_decay: f64) {
        AdamW::update(self, lr, weight_decay)
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        AdamW::state(self)
    }
    fn load(&mut self, tensors: &BTreeMap<String, Tensor>, step: usize) -> Result<()> {
        AdamW::load(self, tensors, step)
    }
}

/// The result of training one (row, seed).
pub struct Trained {
    pub model: Box<dyn LanguageModel>,
    pub vs: nn::VarStore,
    pub steps_done: usize,
    /// training tokens per second of this process's steps (see `monitor`)
    pub tokens_per_s: Option<f64>,
}

/// Trains (or resumes) one run; `stop_after` simulates an interruption after that many total steps.
pub fn train(
    cfg: &Experiment,
    task: &Task,
    seed: u64,
    device: Device,
    dir: &RunDir,
    bar: &ProgressBar,
    stop_after: Option<usize>,
) -> Result<Trained> {
    if !cfg.training.stages.is_empty() {
        return super::stages::train_stages(cfg, task, seed, device, dir, bar, stop_after);
    }
    let rule = crate::memories::build(&cfg.model.memory, cfg.model.dim / cfg.model.heads)
        .map_err(|e| anyhow::anyhow!("model.memory: {e}"))?;
    let (vs, model) = crate::tensor::with_torch_seed(seed, || {
        let vs = nn::VarStore::new(device);
        let model: Box<dyn LanguageModel> = Box::new(MemoryLm::new(&vs.root(), &cfg.model, task.vocab(), rule));
        (vs, model)
    });
    let t = &cfg.training;
    let mut opt: Box<dyn crate::optim::Optimizer> = match t.optimizer {
        crate::optim::OptimizerSpec::Adamw => Box::new(AdamW::new(&vs)),
        ref other => crate::optim::build(other, &vs)?,
    };
    let hash = config_hash(&serde_yaml::to_value(cfg)?);
    let expected: Vec<TensorInfo> =
        opt.state().iter().map(|(n, t)| TensorInfo { name: n.clone(), shape: t.size() }).collect();
    let mut step = 0usize;
    if let Some((ckpt_step, tensors)) = dir.load_checkpoint(&hash, &expected)? {
        if ckpt_step > t.steps {
            bail!(
                "{}: the checkpoint is at step {ckpt_step}, beyond training.steps = {}; pass --fresh to discard this run",
                dir.path.display(),
                t.steps
            );
        }
        opt.load(&tensors, ckpt_step)?;
        step = ckpt_step;
    }
    // lines logged after the checkpoint (or, without one, any line at all) belong to work redone now
    dir.truncate_metrics(step)?;
    bar.set_length(t.steps as u64);
    bar.set_position(step as u64);
    let started = std::time::Instant::now();
    let mut tokens = 0usize;
    let mut clock = super::monitor::Clock::default();
    while step < t.steps {
        if stop_after.is_some_and(|s| step >= s) {
            bail!("interrupted after step {step} (--stop-after)");
        }
        let step_started = std::time::Instant::now();
        // memory diagnostics on the steps that are logged
        let log_now = (step + 1).is_multiple_of(t.log_every) || step + 1 == t.steps;
        let batch = task.batch(seed, Split::Train, step as u64, t.batch_size, task.spec.seq_len, device);
        let (logits, memory) = crate::models::diagnostics::record_if(log_now, || model.forward(&batch.inputs));
        let (loss, acc) = loss_and_accuracy(&logits, &batch.targets);
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            bail!("loss became {loss_value} at step {step}; stopping this run (metrics so far are kept)");
        }
        loss.backward();
        let grad_norm = opt.clip(t.clip);
        if !grad_norm.is_finite() {
            bail!("gradient norm became {grad_norm} at step {step}; stopping this run (metrics so far are kept)");
        }
        let lr = schedule(t, step);
        opt.update(lr, t.weight_decay);
        step += 1;
        tokens += t.batch_size * task.spec.seq_len;
        clock.add(t.batch_size * task.spec.seq_len, step_started.elapsed().as_secs_f64() - memory.seconds);
        let tps = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(step as u64);
        bar.set_message(format!("loss {loss_value:.3} · {tps:.0} tok/s"));
        if step.is_multiple_of(t.log_every) || step == t.steps {
            let metric = if cfg.evaluation.every > 0 && step.is_multiple_of(cfg.evaluation.every) {
                Some(super::runner::evaluate(cfg, task, model.as_ref(), seed, device)?.0)
            } else {
                None
            };
            let line = MetricLine { step: step as u64, loss: loss_value, accuracy: acc, lr, grad_norm, metric };
            let extra = super::monitor::Extra { tokens_per_s: clock.window_rate(), memory: memory.layers };
            dir.append_record(&super::monitor::LoggedLine { base: &line, extra })?;
        }
        if step.is_multiple_of(t.checkpoint_every) || step == t.steps {
            dir.save_checkpoint(step, &hash, &opt.state())?;
        }
    }
    Ok(Trained { model, vs, steps_done: step, tokens_per_s: clock.rate() })
}
