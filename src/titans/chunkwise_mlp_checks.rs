//! Checks for the factored chunkwise MLP memory ([`super::chunkwise_mlp`]): it is the same function as the
//! materialised form ([`super::chunkwise::torch::mlp_forward`], per-token weight copies and autograd inner
//! gradients) and as the f64 frozen-gradient reference, for outputs, final states and outer gradients.

use super::checks::Case;
use super::chunkwise::{reference, torch as materialised};
use super::chunkwise_mlp;
use super::mlp_checks::{
    compare_outputs, configs, outer_gradients_vs_fd, reference_batched, MlpDrawn, Projection, LOSS_SCALE,
};
use super::mlp_memory::{Activation, MlpConfig, ReadMode};
use crate::check::{CheckEnv, Measurement};
use crate::tensor::from_tch;
use crate::tolerance;
use anyhow::Result;
use tch::Tensor;

/// The shapes: L_M = 1, 2, 3 (SiLU), a residual memory, exact GELU and a deep linear memory.
fn factored_configs() -> Vec<MlpConfig> {
    let mut v = configs();
    v.push(MlpConfig { residual: true, ..MlpConfig::new(2, 5) });
    v.push(MlpConfig { activation: Activation::Gelu, ..MlpConfig::new(2, 9) });
    v.push(MlpConfig { activation: Activation::Identity, ..MlpConfig::new(3, 4) });
    v
}

fn run(
    factored: bool,
    x: &[Tensor],
    m0: &[Tensor],
    s0: &[Tensor],
    cfg: &MlpConfig,
    chunk: usize,
    read: ReadMode,
) -> super::mlp_memory::torch::Outputs {
    let f = if factored { chunkwise_mlp::mlp_forward } else { materialised::mlp_forward };
    f(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], m0, s0, cfg, chunk, LOSS_SCALE, read)
}

/// Factored vs the f64 reference (outputs and final states) and vs the materialised form in the same dtype
/// (outputs, states, and the gradients of a random projection of them w.r.t. every input); outer gradients of
/// the factored form vs finite differences of the reference on a small case.
pub fn factored_mlp(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol_ref = tolerance::torch_vs_reference(env.kind);
    // two tch evaluations of one function in one dtype, with different summation orders
    let tol_same = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (ci, cfg) in factored_configs().into_iter().enumerate() {
            let case = |t| if cfg.residual { Case { d_v: 7, ..Case::with_len(t) } } else { Case::with_len(t) };
            // a deep linear memory has no saturating activation: under these gates its reference states grow
            // geometrically and reach 1e13 by T = 21 and overflow by T = 63 (measured), so it runs short sequences
            let lengths: &[(usize, usize)] = if cfg.activation == Activation::Identity {
                &[(7, 4), (9, 5), (9, 16)]
            } else {
                &[(7, 4), (63, 5), (63, 16)]
            };
            for &(t, c) in lengths {
                let read = if c == 5 { ReadMode::BeforeWrite } else { ReadMode::AfterWrite };
                let d = MlpDrawn::new(seed + 900 + 10 * ci as u64 + c as u64, case(t), cfg, env.kind);
                let tag = format!(
                    "L_M={}, {}, residual {}, C={c}, T={t}, {}, seed {seed}",
                    cfg.layers,
                    cfg.activation.name(),
                    cfg.residual,
                    read.name()
                );
                let r = reference_batched(&d, |inp| reference::mlp_forward(inp, &cfg, c, LOSS_SCALE, read));
                let (x, m0, s0) = d.tensors(env, true);
                let fac = run(true, &x, &m0, &s0, &cfg, c, read);
                let mat = run(false, &x, &m0, &s0, &cfg, c, read);
                out.extend(compare_outputs(&format!("factored vs reference, {tag}"), &fac, &r, tol_ref)?);
                out.push(Measurement::compare(
                    format!("y factored vs materialised ({tag})"),
                    &from_tch(&fac.y)?,
                    &from_tch(&mat.y)?,
                    tol_same,
                )?);
                for l in 0..cfg.layers {
                    out.push(Measurement::compare(
                        format!("W{}_T factored vs materialised ({tag})", l + 1),
                        &from_tch(&fac.m_final[l])?,
                        &from_tch(&mat.m_final[l])?,
                        tol_same,
                    )?);
                }
                let proj = Projection::draw(seed ^ 0xFAC7, &d);
                let inputs: Vec<&Tensor> = x.iter().chain(m0.iter()).chain(s0.iter()).collect();
                let g_fac = Tensor::run_backward(&[proj.of_torch(&fac, env)], &inputs, false, false);
                let g_mat = Tensor::run_backward(&[proj.of_torch(&mat, env)], &inputs, false, false);
                for (i, (name, _)) in d.all().iter().enumerate() {
                    out.push(Measurement::compare(
                        format!("dL/d{name} factored vs materialised ({tag})"),
                        &from_tch(&g_fac[i])?,
                        &from_tch(&g_mat[i])?,
                        tolerance::gradient_vs_reference(env.kind).max(tol_same),
                    )?);
                }
            }
        }
        // outer gradients vs finite differences of the f64 reference, small enough for FD
        let cfg = MlpConfig { activation: Activation::Gelu, ..MlpConfig::new(2, 5) };
        let d = MlpDrawn::new(seed + 990, Case { b: 1, h: 2, t: 7, d_k: 4, d_v: 3 }, cfg, env.kind);
        let proj = Projection::draw(seed ^ 0xFAC8, &d);
        out.extend(outer_gradients_vs_fd(
            env,
            &format!("factored, L_M=2 gelu, C=3, T=7, seed {seed}"),
            &d,
            &proj,
            |x, m0, s0| run(true, x, m0, s0, &cfg, 3, ReadMode::AfterWrite),
            |dd| reference_batched(dd, |inp| reference::mlp_forward(inp, &cfg, 3, LOSS_SCALE, ReadMode::AfterWrite)),
        )?);
    }
    Ok(out)
}
