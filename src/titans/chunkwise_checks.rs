//! Checks for the chunkwise form (Eqs. 16–18, catalog §3): chunk size 1 equals the sequential recurrence; the
//! closed form (tch) equals the explicit token-by-token mini-batch reference for C ∈ {2, 4, 5, 16} and lengths
//! that are not multiples of C; state carries across calls; outer gradients of the closed form match finite
//! differences of the reference; and C > 1 is a *different function* from the sequential rule (asserted).

use super::checks::{reference_batched as linear_reference_batched, Case, Drawn};
use super::chunkwise::{reference, torch};
use super::linear_memory;
use super::mlp_checks::{compare_outputs, outer_gradients_vs_fd, reference_batched, MlpDrawn, Projection, LOSS_SCALE};
use super::mlp_memory::{self, MlpConfig, ReadMode};
use crate::check::{CheckEnv, Measurement};
use crate::tensor::{errors, from_tch, stack_heads, Arr, Errors};
use crate::tolerance;
use anyhow::Result;
use tch::Tensor;

const LENGTHS: [usize; 4] = [1, 7, 63, 100];
const CHUNKS: [usize; 4] = [2, 4, 5, 16];

fn run_linear(x: &[Tensor], chunk: usize, read: ReadMode) -> linear_memory::torch::Outputs {
    torch::linear_forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], chunk, LOSS_SCALE, read)
}

fn run_mlp(
    x: &[Tensor],
    m0: &[Tensor],
    s0: &[Tensor],
    cfg: &MlpConfig,
    chunk: usize,
    read: ReadMode,
) -> mlp_memory::torch::Outputs {
    torch::mlp_forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], m0, s0, cfg, chunk, LOSS_SCALE, read)
}

/// The mini-batch reference of every head, restacked: `(y, M_T, S_T)`.
pub fn linear_chunked_reference(d: &Drawn, chunk: usize, read: ReadMode) -> (Arr, Arr, Arr) {
    linear_chunked_reference_with(d, chunk, LOSS_SCALE, read)
}

/// [`linear_chunked_reference`] with an explicit loss scale.
pub fn linear_chunked_reference_with(d: &Drawn, chunk: usize, loss_scale: f64, read: ReadMode) -> (Arr, Arr, Arr) {
    let (nb, nh) = d.dims();
    let (mut ys, mut ms, mut ss) = (vec![], vec![], vec![]);
    for b in 0..nb {
        for h in 0..nh {
            let (y, m, s) = reference::linear_forward(&d.head(b, h), chunk, loss_scale, read);
            ys.push(y);
            ms.push(m);
            ss.push(s);
        }
    }
    (stack_heads(&ys, nb, nh), stack_heads(&ms, nb, nh), stack_heads(&ss, nb, nh))
}

fn compare3(tag: &str, o: &linear_memory::torch::Outputs, r: &(Arr, Arr, Arr), tol: f64) -> Result<Vec<Measurement>> {
    Ok(vec![
        Measurement::compare(format!("y ({tag})"), &from_tch(&o.y)?, &r.0, tol)?,
        Measurement::compare(format!("M_T ({tag})"), &from_tch(&o.m_final)?, &r.1, tol)?,
        Measurement::compare(format!("S_T ({tag})"), &from_tch(&o.s_final)?, &r.2, tol)?,
    ])
}

/// C = 1 is the sequential rule: the closed form with C = 1 against the *sequential* references
/// (`linear_memory::reference::forward`, `mlp_memory::reference::forward`).
pub fn chunk1_equals_sequential(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (i, &t) in LENGTHS.iter().enumerate() {
            for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
                let d = Drawn::new(seed + 200 + i as u64, Case::with_len(t), env.kind);
                let r = linear_reference_batched(&d, LOSS_SCALE, read);
                let o = run_linear(&d.tensors(env, false), 1, read);
                out.extend(compare3(&format!("linear, C=1, T={t}, {}, seed {seed}", read.name()), &o, &r, tol)?);
            }
        }
        for &t in &[7usize, 63] {
            let cfg = MlpConfig::new(2, 6);
            let d = MlpDrawn::new(seed + 210 + t as u64, Case::with_len(t), cfg, env.kind);
            let r = reference_batched(&d, |inp| {
                mlp_memory::reference::forward(inp, &cfg, LOSS_SCALE, ReadMode::AfterWrite)
            });
            let (x, m0, s0) = d.tensors(env, false);
            let o = run_mlp(&x, &m0, &s0, &cfg, 1, ReadMode::AfterWrite);
            out.extend(compare_outputs(&format!("MLP L_M=2, C=1, T={t}, seed {seed}"), &o, &r, tol)?);
        }
    }
    Ok(out)
}

/// Eqs. 16–18, linear memory: the matrix closed form (tch) vs the frozen-gradient token loop (f64), for
/// C ∈ {2, 4, 5, 16} and T ∈ {1, 7, 63, 100} (mostly not multiples of C), both read modes.
pub fn linear_chunkwise(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (i, &t) in LENGTHS.iter().enumerate() {
            for &c in &CHUNKS {
                for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
                    let d = Drawn::new(seed + 300 + 10 * i as u64 + c as u64, Case::with_len(t), env.kind);
                    let r = linear_chunked_reference(&d, c, read);
                    let o = run_linear(&d.tensors(env, false), c, read);
                    out.extend(compare3(&format!("C={c}, T={t}, {}, seed {seed}", read.name()), &o, &r, tol)?);
                }
            }
        }
    }
    Ok(out)
}

/// Eqs. 16–18, MLP memory: batched per-token autograd gradients at the chunk start + coefficient mixing (tch)
/// vs the frozen-gradient token loop with hand backprop (f64); L_M = 1, 2, 3, C ∈ {4, 5}, T ∈ {7, 63}.
pub fn mlp_chunkwise(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for cfg in super::mlp_checks::configs() {
            for &t in &[7usize, 63] {
                for &c in &[4usize, 5] {
                    let read = if c == 5 { ReadMode::BeforeWrite } else { ReadMode::AfterWrite };
                    let d = MlpDrawn::new(seed + 400 + t as u64 + c as u64, Case::with_len(t), cfg, env.kind);
                    let r = reference_batched(&d, |inp| reference::mlp_forward(inp, &cfg, c, LOSS_SCALE, read));
                    let (x, m0, s0) = d.tensors(env, false);
                    let o = run_mlp(&x, &m0, &s0, &cfg, c, read);
                    let tag = format!("L_M={}, C={c}, T={t}, {}, seed {seed}", cfg.layers, read.name());
                    out.extend(compare_outputs(&tag, &o, &r, tol)?);
                }
            }
        }
    }
    Ok(out)
}

fn narrow_all(x: &[Tensor], start: i64, len: i64) -> Vec<Tensor> {
    x.iter().map(|a| a.narrow(2, start, len)).collect()
}

/// State carries across calls: one call over T == two chained calls split at a multiple of C == the f64
/// token-by-token reference; with C = 1, one call == T chained one-token calls.
pub fn state_carry(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for &(t, c) in &[(63usize, 4usize), (100, 16), (7, 2)] {
            let split = (c * (t / (2 * c))) as i64;
            let d = Drawn::new(seed + 500 + t as u64, Case::with_len(t), env.kind);
            let x = d.tensors(env, false);
            let one = run_linear(&x, c, ReadMode::AfterWrite);
            let mut first_in = narrow_all(&x[..6], 0, split);
            first_in.extend([x[6].shallow_clone(), x[7].shallow_clone()]);
            let first = run_linear(&first_in, c, ReadMode::AfterWrite);
            let mut second_in = narrow_all(&x[..6], split, t as i64 - split);
            second_in.extend([first.m_final.shallow_clone(), first.s_final.shallow_clone()]);
            let second = run_linear(&second_in, c, ReadMode::AfterWrite);
            let chained = linear_memory::torch::Outputs {
                y: Tensor::cat(&[&first.y, &second.y], 2),
                m_final: second.m_final,
                s_final: second.s_final,
            };
            let tag = format!("linear, C={c}, T={t}, split at {split}, seed {seed}");
            let one_ref = (from_tch(&one.y)?, from_tch(&one.m_final)?, from_tch(&one.s_final)?);
            for m in compare3(&format!("two chained calls vs one call ({tag})"), &chained, &one_ref, tol)? {
                out.push(m);
            }
            let r = linear_chunked_reference(&d, c, ReadMode::AfterWrite);
            out.extend(compare3(&format!("one call vs token-by-token reference ({tag})"), &one, &r, tol)?);
        }
        // C = 1: one call vs one-token calls
        let t = 23usize;
        let d = Drawn::new(seed + 550, Case::with_len(t), env.kind);
        let x = d.tensors(env, false);
        let one = run_linear(&x, 1, ReadMode::AfterWrite);
        let (mut m, mut s) = (x[6].shallow_clone(), x[7].shallow_clone());
        let mut ys = vec![];
        for i in 0..t as i64 {
            let mut inp = narrow_all(&x[..6], i, 1);
            inp.extend([m, s]);
            let o = run_linear(&inp, 1, ReadMode::AfterWrite);
            ys.push(o.y);
            m = o.m_final;
            s = o.s_final;
        }
        let stepped = linear_memory::torch::Outputs { y: Tensor::cat(&ys, 2), m_final: m, s_final: s };
        let one_ref = (from_tch(&one.y)?, from_tch(&one.m_final)?, from_tch(&one.s_final)?);
        out.extend(compare3(
            &format!("{t} one-token calls vs one call (linear, C=1, seed {seed})"),
            &stepped,
            &one_ref,
            tol,
        )?);
        // MLP memory: two chained calls vs one call vs reference
        let cfg = MlpConfig::new(2, 6);
        let (t, c) = (37usize, 4usize);
        let split = 16i64;
        let d = MlpDrawn::new(seed + 560, Case::with_len(t), cfg, env.kind);
        let (x, m0, s0) = d.tensors(env, false);
        let one = run_mlp(&x, &m0, &s0, &cfg, c, ReadMode::AfterWrite);
        let first = run_mlp(&narrow_all(&x, 0, split), &m0, &s0, &cfg, c, ReadMode::AfterWrite);
        let second = run_mlp(
            &narrow_all(&x, split, t as i64 - split),
            &first.m_final,
            &first.s_final,
            &cfg,
            c,
            ReadMode::AfterWrite,
        );
        let tag = format!("MLP L_M=2, C={c}, T={t}, split at {split}, seed {seed}");
        let one_arr = (
            from_tch(&one.y)?,
            one.m_final.iter().map(from_tch).collect::<Result<Vec<_>>>()?,
            one.s_final.iter().map(from_tch).collect::<Result<Vec<_>>>()?,
        );
        let chained = mlp_memory::torch::Outputs {
            y: Tensor::cat(&[&first.y, &second.y], 2),
            m_final: second.m_final,
            s_final: second.s_final,
        };
        out.extend(compare_outputs(&format!("two chained calls vs one call ({tag})"), &chained, &one_arr, tol)?);
        let r = reference_batched(&d, |inp| reference::mlp_forward(inp, &cfg, c, LOSS_SCALE, ReadMode::AfterWrite));
        out.extend(compare_outputs(&format!("one call vs token-by-token reference ({tag})"), &one, &r, tol)?);
    }
    Ok(out)
}

/// A measurement that passes when `ours` is *clearly different* from `other`: it reports
/// `MIN_RELATIVE_DIFFERENCE / observed` against a bound of 1 (pass iff observed ≥ the minimum).
pub fn must_differ(quantity: String, ours: &Arr, other: &Arr) -> Result<Measurement> {
    let e = errors(ours, other)?;
    // a non-finite difference (a diverged run) is a failure, not a "difference"
    let ratio = if e.rel_rmse.is_finite() {
        tolerance::MIN_RELATIVE_DIFFERENCE / e.rel_rmse.max(f64::MIN_POSITIVE)
    } else {
        f64::INFINITY
    };
    Ok(Measurement {
        quantity: format!(
            "{quantity}: relative difference {:.3e} must be ≥ {:.0e} (reported: minimum / observed, bound 1)",
            e.rel_rmse,
            tolerance::MIN_RELATIVE_DIFFERENCE
        ),
        errors: Errors { max_abs: e.max_abs, rel_rmse: ratio },
        tolerance: 1.0,
    })
}

/// For C > 1 the chunked model is a different function of its inputs (the gradients of a chunk are taken at
/// the chunk-start state, catalog §3 / ⚠ Eq. 16): the difference from the sequential rule must be clearly
/// non-zero, while C = 1 agrees (checked in `titans_chunkwise_chunk1_sequential`). Not a bug: a documented
/// property.
pub fn differs_from_sequential(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for &c in &[4usize, 16] {
            let t = 63;
            let d = Drawn::new(seed + 600 + c as u64, Case::with_len(t), env.kind);
            let o = run_linear(&d.tensors(env, false), c, ReadMode::AfterWrite);
            let (y_seq, m_seq, _) = linear_reference_batched(&d, LOSS_SCALE, ReadMode::AfterWrite);
            out.push(must_differ(
                format!("linear y, C={c} vs sequential (T={t}, seed {seed})"),
                &from_tch(&o.y)?,
                &y_seq,
            )?);
            out.push(must_differ(
                format!("linear M_T, C={c} vs sequential (T={t}, seed {seed})"),
                &from_tch(&o.m_final)?,
                &m_seq,
            )?);
        }
        let cfg = MlpConfig::new(2, 6);
        let d = MlpDrawn::new(seed + 650, Case::with_len(63), cfg, env.kind);
        let (x, m0, s0) = d.tensors(env, false);
        let o = run_mlp(&x, &m0, &s0, &cfg, 8, ReadMode::AfterWrite);
        let r =
            reference_batched(&d, |inp| mlp_memory::reference::forward(inp, &cfg, LOSS_SCALE, ReadMode::AfterWrite));
        out.push(must_differ(format!("MLP L_M=2 y, C=8 vs sequential (T=63, seed {seed})"), &from_tch(&o.y)?, &r.0)?);
    }
    Ok(out)
}

/// Outer gradients of the chunkwise closed forms (what training differentiates) w.r.t. every input: tch
/// autograd vs central finite differences of the f64 mini-batch reference. Linear memory (matrix form) and
/// MLP memory (second order through the batched per-token gradients).
pub fn chunkwise_gradients(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    for &seed in &env.seeds {
        for read in [ReadMode::AfterWrite, ReadMode::BeforeWrite] {
            let case = Case { b: 1, h: 2, t: 7, d_k: 4, d_v: 3 };
            // linear memory, via an L_M = 1 draw (its single weight is the d_v × d_k matrix M_0)
            let lin_cfg = MlpConfig::new(1, 1);
            let d = MlpDrawn::new(seed + 700, case, lin_cfg, env.kind);
            let proj = Projection::draw(seed ^ 0xC0DE, &d);
            let c = 3;
            out.extend(outer_gradients_vs_fd(
                env,
                &format!("linear, C={c}, T=7, {}, seed {seed}", read.name()),
                &d,
                &proj,
                |x, m0, s0| {
                    let o = torch::linear_forward(
                        &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &m0[0], &s0[0], c, LOSS_SCALE, read,
                    );
                    mlp_memory::torch::Outputs { y: o.y, m_final: vec![o.m_final], s_final: vec![o.s_final] }
                },
                |dd| {
                    reference_batched(dd, |inp| {
                        let lin = linear_memory::reference::Inputs {
                            k: inp.k.clone(),
                            v: inp.v.clone(),
                            q: inp.q.clone(),
                            alpha: inp.alpha.clone(),
                            eta: inp.eta.clone(),
                            theta: inp.theta.clone(),
                            m0: inp.m0[0].clone(),
                            s0: inp.s0[0].clone(),
                        };
                        let (y, m, s) = reference::linear_forward(&lin, c, LOSS_SCALE, read);
                        mlp_memory::reference::Trace { y, m_final: vec![m], s_final: vec![s] }
                    })
                },
            )?);
            // MLP memory, L_M = 2
            let cfg = MlpConfig::new(2, 5);
            let d = MlpDrawn::new(seed + 710, case, cfg, env.kind);
            let proj = Projection::draw(seed ^ 0xC0DF, &d);
            out.extend(outer_gradients_vs_fd(
                env,
                &format!("MLP L_M=2, C={c}, T=7, {}, seed {seed}", read.name()),
                &d,
                &proj,
                |x, m0, s0| run_mlp(x, m0, s0, &cfg, c, read),
                |dd| reference_batched(dd, |inp| reference::mlp_forward(inp, &cfg, c, LOSS_SCALE, read)),
            )?);
        }
    }
    Ok(out)
}
