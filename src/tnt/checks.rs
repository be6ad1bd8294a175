//! TNT's checks (see `papers/tnt.yaml`): the hierarchy's tch implementation (full shards in parallel, matrix
//! chunks) against the token-by-token f64 reference for every output part, every state and every gradient; the
//! equivalences (one level without resets == Titans' chunkwise memory; resets exactly at shard boundaries; the
//! global read frozen inside a global chunk); the Q-K projector's block form against Appendix C's recurrence and
//! Eq. 8's explicit sum. Odd sizes (`d_k = 4 ≠ d_v = 3`), seeded draws, stream positions mid-chunk and mid-shard.

use super::hierarchy::{self, TntConfig};
use super::memory_rules::TntLinear;
use super::qk_projection;
use crate::check::{Check, CheckEnv, Measurement};
use crate::memory::batched::{draw, RuleInputs};
use crate::memory::rule::{HeadInputs, MemoryRule};
use crate::memory::ReadMode;
use crate::tensor::{from_tch, head2, inner, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::titans::chunkwise_checks::must_differ;
use crate::titans::memory_rules::{TitansGates, TitansLinear};
use crate::tolerance;
use anyhow::Result;
use ndarray::{s, Array2, ArrayD, Axis, Ix1, Ix2};
use tch::Tensor;

/// Every TNT check, by the names `papers/tnt.yaml` uses.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "tnt_hierarchy",
            summary: "Eqs. 5–7, 13–15: tch hierarchy (full shards in parallel) vs token-by-token f64 reference — o, the global read, every local read, every state; 1–3 local memories, positions mid-chunk/mid-shard; one call == chained calls split anywhere",
            run: hierarchy_forward,
        },
        Check {
            name: "tnt_hierarchy_gradients",
            summary: "Eqs. 5–7, 13–15: tch autograd of a random projection of (o, states) w.r.t. k, v, q, every gate and every initial state (W_init included) vs central finite differences of the f64 reference, across a shard boundary",
            run: hierarchy_gradients,
        },
        Check {
            name: "tnt_one_level_is_titans",
            summary: "one local memory, no global memory, no Q-K projection, S_L ≥ T: TNT == Titans' chunkwise memory from W_init (C = 1: the sequential Eq. 1), reference vs reference and tch vs tch",
            run: one_level_is_titans,
        },
        Check {
            name: "tnt_resets_at_boundaries",
            summary: "Eq. 6: every shard's local outputs equal a fresh call on that shard alone (the reset happens exactly at the boundary, shards independent), and shifting the boundary by one token clearly changes them",
            run: resets_at_boundaries,
        },
        Check {
            name: "tnt_global_memory",
            summary: "Eq. 5 / Eq. 7's first term: within a global chunk every token reads V at the chunk's start (the reference's V after the prefix), and V steps once per chunk",
            run: global_memory_frozen,
        },
        Check {
            name: "tnt_qk_projection",
            summary: "Eqs. 7–10, Appendix C: tch block prefix-sum projector vs the sequential reset recurrence; Eq. 8's explicit sum == the recurrence without reset; Eq. 9 == Eq. 8 for unit keys; orthonormal keys give an idempotent P",
            run: qk_projection_check,
        },
    ]
}

/// A drawn problem: the rule and its inputs at stream position `pos`.
struct Case {
    x: RuleInputs,
}

fn config(global_chunk: usize, local_chunks: &[usize], shard: usize) -> TntConfig {
    TntConfig {
        global_chunk,
        local_chunks: local_chunks.to_vec(),
        shard,
        qk_projection: true,
        global_memory: true,
        loss_scale: 1.0,
    }
}

fn tnt(config: TntConfig, gated: bool) -> TntLinear {
    TntLinear { config, max_lr: 0.5, momentum: gated, forgetting: gated }
}

impl Case {
    fn new(rule: TntLinear, seed: u64, (b, h, t): (usize, usize, usize), pos: usize, kind: tch::Kind) -> Self {
        let mut x = draw(&rule, seed, (b, h, t, 4, 3), kind);
        let lay = rule.config.layout();
        x.state[lay.pos()].fill(pos as f64);
        Self { x }
    }
    fn tensors(&self, env: &CheckEnv, grad: bool) -> Vec<Tensor> {
        self.x.all().iter().map(|a| to_tch(a, env.kind, env.device).set_requires_grad(grad)).collect()
    }
}

/// The reference's parts over `[B, H]`: `(o, global read, local reads, states)`.
fn reference_parts(rule: &TntLinear, x: &RuleInputs) -> (Arr, Option<Arr>, Vec<Arr>, Vec<Arr>) {
    let (nb, nh) = (x.k.shape()[0], x.k.shape()[1]);
    let (mut y, mut yg, mut yl, mut st) = (vec![], vec![], vec![], vec![]);
    for b in 0..nb {
        for h in 0..nh {
            let head = |a: &Arr| a.index_axis(Axis(0), b).index_axis(Axis(0), h).to_owned();
            let inputs = HeadInputs {
                k: head2(&x.k, b, h),
                v: head2(&x.v, b, h),
                q: head2(&x.q, b, h),
                gates: x.gates.iter().map(|g| head(g).into_dimensionality::<Ix1>().expect("rank 1")).collect(),
            };
            let state: Vec<ArrayD<f64>> = x.state.iter().map(head).collect();
            let tr = rule.reference_trace(&inputs, &state);
            y.push(tr.y.clone());
            yg.push(tr.y_global.clone());
            yl.push(tr.y_local.clone());
            st.push(rule.reference_forward(&inputs, &state, ReadMode::AfterWrite).1);
        }
    }
    let n_local = yl[0].len();
    let locals =
        (0..n_local).map(|i| stack_heads(&yl.iter().map(|l| l[i].clone()).collect::<Vec<_>>(), nb, nh)).collect();
    let states =
        (0..st[0].len()).map(|i| stack_heads(&st.iter().map(|s| s[i].clone()).collect::<Vec<_>>(), nb, nh)).collect();
    let global = rule.config.global_memory.then(|| stack_heads(&yg, nb, nh));
    (stack_heads(&y, nb, nh), global, locals, states)
}

/// Tokens `from .. from + len` of the inputs (the states unchanged).
fn tokens(x: &RuleInputs, from: usize, len: usize) -> RuleInputs {
    let cut = |a: &Arr| a.slice_axis(Axis(2), ndarray::Slice::from(from..from + len)).to_owned();
    RuleInputs {
        k: cut(&x.k),
        v: cut(&x.v),
        q: cut(&x.q),
        gates: x.gates.iter().map(cut).collect(),
        state: x.state.clone(),
    }
}

fn torch_run(rule: &TntLinear, xt: &[Tensor]) -> hierarchy::torch::Outputs {
    let n = rule.config.layout().n_gates();
    hierarchy::torch::forward(&rule.config, &xt[0], &xt[1], &xt[2], &xt[3..3 + n], &xt[3 + n..])
}

/// Splits `xt` at token `at`: the first call's inputs (with the initial states) and the second's inputs (without
/// states).
fn split(xt: &[Tensor], n_gates: usize, at: i64) -> (Vec<Tensor>, Vec<Tensor>) {
    let t = xt[0].size()[2];
    let first = xt
        .iter()
        .enumerate()
        .map(|(i, a)| if i < 3 + n_gates { a.narrow(2, 0, at) } else { a.shallow_clone() })
        .collect();
    let second = xt[..3 + n_gates].iter().map(|a| a.narrow(2, at, t - at)).collect();
    (first, second)
}

fn hierarchy_forward(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    // (config, gated, T, start position, chained split points)
    let cases: Vec<(TntConfig, bool, usize, usize, Vec<i64>)> = vec![
        (config(4, &[2], 6), true, 23, 0, vec![1, 5, 12]),
        (config(4, &[2], 6), true, 23, 9, vec![2, 7]),
        (config(5, &[3, 1], 6), true, 17, 4, vec![3, 8]),
        (config(8, &[1, 2, 4], 8), false, 30, 13, vec![6, 19]),
        (TntConfig { qk_projection: false, ..config(3, &[2], 4) }, true, 11, 1, vec![5]),
        (config(7, &[2], 4), true, 1, 3, vec![]),
    ];
    for &seed in &env.seeds {
        for (ci, (cfg, gated, t, pos, splits)) in cases.iter().enumerate() {
            let rule = tnt(cfg.clone(), *gated);
            let case = Case::new(rule.clone(), seed + 31 * ci as u64, (2, 2, *t), *pos, env.kind);
            let tag = format!("{}, T={t}, pos {pos}, seed {seed}", rule.name());
            let (y_ref, yg_ref, yl_ref, st_ref) = reference_parts(&rule, &case.x);
            let xt = case.tensors(env, false);
            let o = tch::no_grad(|| torch_run(&rule, &xt));
            out.push(Measurement::compare(format!("o ({tag})"), &from_tch(&o.y)?, &y_ref, tol)?);
            if let (Some(a), Some(b)) = (&o.y_global, &yg_ref) {
                out.push(Measurement::compare(format!("global read ({tag})"), &from_tch(a)?, b, tol)?);
            }
            for (i, (a, b)) in o.y_local.iter().zip(&yl_ref).enumerate() {
                out.push(Measurement::compare(format!("local read {} ({tag})", i + 1), &from_tch(a)?, b, tol)?);
            }
            let names = rule.state(4, 3);
            for ((a, b), spec) in o.state.iter().zip(&st_ref).zip(&names) {
                out.push(Measurement::compare(format!("{}_T ({tag})", spec.name), &from_tch(a)?, b, tol)?);
            }
            let n_gates = rule.config.layout().n_gates();
            for &at in splits {
                let (first, mut second) = split(&xt, n_gates, at);
                let o1 = tch::no_grad(|| torch_run(&rule, &first));
                second.extend(o1.state);
                let o2 = tch::no_grad(|| torch_run(&rule, &second));
                let y = from_tch(&Tensor::cat(&[&o1.y, &o2.y], 2))?;
                out.push(Measurement::compare(format!("chained at {at}: o ({tag})"), &y, &y_ref, tol)?);
                for ((a, b), spec) in o2.state.iter().zip(&st_ref).zip(&names) {
                    out.push(Measurement::compare(
                        format!("chained at {at}: {}_T ({tag})", spec.name),
                        &from_tch(a)?,
                        b,
                        tol,
                    )?);
                }
            }
        }
    }
    Ok(out)
}

fn hierarchy_gradients(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let bound = tolerance::gradient_vs_reference(env.kind).max(tolerance::FINITE_DIFFERENCE_CHAIN);
    let mut out = vec![];
    for &seed in &env.seeds {
        // T = 9 from position 3: the rest of a shard, a global-chunk boundary, a reset, a partial shard
        for (cfg, gated) in [(config(4, &[2, 1], 4), true), (config(3, &[2], 6), false)] {
            let rule = tnt(cfg, gated);
            let case = Case::new(rule.clone(), seed + 500, (1, 2, 9), 3, env.kind);
            let (y0, _, _, st0) = reference_parts(&rule, &case.x);
            let mut r = Draw::new(seed ^ 0x7e57);
            let ry = r.normal(y0.shape(), 1.0);
            let rs: Vec<Arr> = st0.iter().map(|a| r.normal(a.shape(), 1.0)).collect();
            let lay = rule.config.layout();
            let loss_ref = |x: &RuleInputs| -> f64 {
                let (y, _, _, st) = reference_parts(&rule, x);
                inner(&ry, &y)
                    + st.iter()
                        .zip(&rs)
                        .enumerate()
                        .filter(|(i, _)| *i != lay.pos())
                        .map(|(_, (a, b))| inner(b, a))
                        .sum::<f64>()
            };
            let xt = case.tensors(env, true);
            let o = torch_run(&rule, &xt);
            let mut l = (&o.y * to_tch(&ry, env.kind, env.device)).sum(env.kind);
            for (i, (s, w)) in o.state.iter().zip(&rs).enumerate() {
                if i != lay.pos() {
                    l += (s * to_tch(w, env.kind, env.device)).sum(env.kind);
                }
            }
            let grads = Tensor::run_backward(&[l], &xt.iter().collect::<Vec<_>>(), false, false);
            let names = RuleInputs::names(&rule, 4, 3);
            for (i, g) in grads.iter().enumerate() {
                let mut xp = case.x.clone();
                let shape = xp.all()[i].shape().to_vec();
                let n = xp.all()[i].len();
                let mut fd = vec![0.0; n];
                let h = tolerance::FD_STEP;
                for (j, gj) in fd.iter_mut().enumerate() {
                    let x0 = xp.all()[i].as_slice_memory_order().unwrap()[j];
                    xp.all_mut()[i].as_slice_memory_order_mut().unwrap()[j] = x0 + h;
                    let fp = loss_ref(&xp);
                    xp.all_mut()[i].as_slice_memory_order_mut().unwrap()[j] = x0 - h;
                    let fm = loss_ref(&xp);
                    xp.all_mut()[i].as_slice_memory_order_mut().unwrap()[j] = x0;
                    *gj = (fp - fm) / (2.0 * h);
                }
                let fd = ArrayD::from_shape_vec(shape, fd)?;
                let ours = if g.defined() { from_tch(g)? } else { Arr::zeros(fd.raw_dim()) };
                out.push(Measurement::compare(
                    format!("dL/d{} ({}, seed {seed}) vs FD", names[i], rule.name()),
                    &ours,
                    &fd,
                    bound,
                )?);
            }
        }
    }
    Ok(out)
}

/// TNT with one local memory and nothing else against Titans' chunkwise linear memory from `M_0 = W_init`,
/// `S_0 = 0`, with the local memory's gates: the same function (Eq. 6 without a reset is Eq. 3).
fn one_level_is_titans(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (c, gated) in [(1usize, true), (1, false), (3, true), (4, false)] {
            let t = 13;
            let cfg = TntConfig {
                global_memory: false,
                qk_projection: false,
                ..config(5, &[c], 4 * c * 4) // S_L = 16C ≥ T: no reset after the first token
            };
            let rule = tnt(cfg, gated);
            let case = Case::new(rule.clone(), seed + 900 + c as u64, (2, 2, t), 0, env.kind);
            let titans = TitansLinear {
                gates: TitansGates { max_lr: 0.5, momentum: gated, forgetting: gated },
                chunk: c,
                loss_scale: 1.0,
            };
            let lay = rule.config.layout();
            let w_init = &case.x.state[lay.local_state(0) + 3];
            let tx = RuleInputs {
                k: case.x.k.clone(),
                v: case.x.v.clone(),
                q: case.x.q.clone(),
                gates: case.x.gates.clone(),
                state: vec![w_init.clone(), Arr::zeros(w_init.raw_dim())],
            };
            let tag = format!("C = {c}, {}, seed {seed}", if gated { "momentum + forgetting" } else { "plain GD" });
            // reference vs reference
            let (y_t, st_t) = crate::memory::batched::reference_batched(&titans, &tx, ReadMode::AfterWrite);
            let (y_n, _, _, st_n) = reference_parts(&rule, &case.x);
            let w = lay.local_state(0);
            let alg = tolerance::ALGEBRAIC_F64;
            out.push(Measurement::compare(format!("reference o vs Titans ({tag})"), &y_n, &y_t, alg)?);
            out.push(Measurement::compare(format!("reference W_T vs Titans M_T ({tag})"), &st_n[w], &st_t[0], alg)?);
            out.push(Measurement::compare(
                format!("reference S_T vs Titans S_T ({tag})"),
                &st_n[w + 1],
                &st_t[1],
                alg,
            )?);
            // tch vs tch
            let xt = case.tensors(env, false);
            let o = tch::no_grad(|| torch_run(&rule, &xt));
            let txt: Vec<Tensor> = tx.all().iter().map(|a| to_tch(a, env.kind, env.device)).collect();
            let (y, st) =
                tch::no_grad(|| titans.forward(&txt[0], &txt[1], &txt[2], &txt[3..6], &txt[6..], ReadMode::AfterWrite));
            out.push(Measurement::compare(
                format!("tch o vs Titans tch ({tag})"),
                &from_tch(&o.y)?,
                &from_tch(&y)?,
                tol,
            )?);
            out.push(Measurement::compare(
                format!("tch W_T vs Titans tch M_T ({tag})"),
                &from_tch(&o.state[w])?,
                &from_tch(&st[0])?,
                tol,
            )?);
        }
    }
    Ok(out)
}

/// Without the global memory the output is the local reads only; each shard's outputs must equal a fresh call
/// (position 0, same `W_init`) on that shard's tokens alone, and moving the boundary must change them.
fn resets_at_boundaries(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::equivalence(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        for (shard, chunks, pos) in [(6usize, vec![2usize, 3], 4usize), (4, vec![1], 0), (8, vec![4], 7)] {
            let cfg = TntConfig { global_memory: false, ..config(5, &chunks, shard) };
            let rule = tnt(cfg, true);
            let t = 20;
            let case = Case::new(rule.clone(), seed + 1300 + shard as u64, (1, 2, t), pos, env.kind);
            let xt = case.tensors(env, false);
            let n_gates = rule.config.layout().n_gates();
            let whole = tch::no_grad(|| torch_run(&rule, &xt));
            let y_ref = reference_parts(&rule, &case.x).0;
            // shard boundaries inside the call: tokens where pos + t ≡ 0 (mod S_L)
            let first = ((shard - pos % shard) % shard) as i64;
            let mut starts: Vec<i64> = (0..).map(|r| first + r * shard as i64).take_while(|&s| s < t as i64).collect();
            if starts.first() != Some(&0) {
                starts.insert(0, 0);
            }
            let lay = rule.config.layout();
            for (j, &s0) in starts.iter().enumerate().skip(1) {
                let len = starts.get(j + 1).copied().unwrap_or(t as i64) - s0;
                // a fresh call on the shard alone: position 0, the same W_init, other states redrawn
                let mut fresh = draw(&rule, seed + 77 + j as u64, (1, 2, len as usize, 4, 3), env.kind);
                let piece_in = tokens(&case.x, s0 as usize, len as usize);
                fresh.k = piece_in.k;
                fresh.v = piece_in.v;
                fresh.q = piece_in.q;
                fresh.gates = piece_in.gates;
                for i in 0..lay.n_local {
                    let w = lay.local_state(i) + 3;
                    fresh.state[w] = case.x.state[w].clone();
                }
                fresh.state[lay.pos()].fill(0.0);
                let ft: Vec<Tensor> = fresh.all().iter().map(|a| to_tch(a, env.kind, env.device)).collect();
                let alone = tch::no_grad(|| torch_run(&rule, &ft));
                let tag = format!("{}, shard from token {s0}, {len} tokens, start pos {pos}, seed {seed}", rule.name());
                let piece = from_tch(&whole.y.narrow(2, s0, len))?;
                out.push(Measurement::compare(
                    format!("tch: in sequence vs alone ({tag})"),
                    &piece,
                    &from_tch(&alone.y)?,
                    tol,
                )?);
                let (y_alone_ref, _, _, _) = reference_parts(&rule, &fresh);
                let ref_piece = y_ref.slice(s![.., .., s0 as usize..(s0 + len) as usize, ..]).to_owned().into_dyn();
                out.push(Measurement::compare(
                    format!("reference: in sequence vs alone ({tag})"),
                    &ref_piece,
                    &y_alone_ref,
                    tolerance::ALGEBRAIC_F64,
                )?);
            }
            // the boundary one token later (start position one earlier) changes the outputs after it
            let mut shifted = case.x.clone();
            shifted.state[lay.pos()].fill(((pos + shard - 1) % shard) as f64);
            let st: Vec<Tensor> = shifted.all().iter().map(|a| to_tch(a, env.kind, env.device)).collect();
            let moved = tch::no_grad(|| torch_run(&rule, &st));
            let _ = n_gates;
            out.push(must_differ(
                format!("{}: boundary moved by one token (seed {seed})", rule.name()),
                &from_tch(&moved.y)?,
                &from_tch(&whole.y)?,
            )?);
        }
    }
    Ok(out)
}

/// The global read of token `t` is `V_{ξ(t,C_G)} q_t`: the reference's `V` after the tokens before `t`'s global
/// chunk, applied to `q_t` (an independent computation from the prefix), against tch's global read.
fn global_memory_frozen(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        let (cg, pos, t) = (5usize, 2usize, 17usize);
        let rule = tnt(config(cg, &[1], 4), true);
        let case = Case::new(rule.clone(), seed + 1700, (1, 2, t), pos, env.kind);
        let xt = case.tensors(env, false);
        let o = tch::no_grad(|| torch_run(&rule, &xt));
        let yg = from_tch(o.y_global.as_ref().expect("global read"))?;
        let mut expect = Arr::zeros(yg.raw_dim());
        for h in 0..2 {
            let mut v_start: Option<Array2<f64>> = None;
            for tt in 0..t {
                if (pos + tt) % cg == 0 || v_start.is_none() {
                    v_start = Some(if (pos + tt) % cg == 0 {
                        // V after the prefix of tt tokens (reference on the prefix)
                        let prefix = tokens(&case.x, 0, tt);
                        let st = reference_parts(&rule, &prefix).3;
                        head2(&st[0], 0, h)
                    } else {
                        head2(&case.x.state[2], 0, h) // the carried V_start of the chunk begun before the call
                    });
                }
                let q: ndarray::Array1<f64> = head2(&case.x.q, 0, h).row(tt).to_owned();
                let y: ndarray::Array1<f64> = v_start.as_ref().unwrap().dot(&q);
                expect.slice_mut(s![0, h, tt, ..]).assign(&y);
            }
        }
        out.push(Measurement::compare(
            format!("global read vs V(prefix before the chunk)·q (C_G = {cg}, pos {pos}, T = {t}, seed {seed})"),
            &yg,
            &expect,
            tol,
        )?);
    }
    Ok(out)
}

fn qk_projection_check(env: &CheckEnv) -> Result<Vec<Measurement>> {
    use qk_projection::reference as qr;
    let tol = tolerance::torch_vs_reference(env.kind);
    let mut out = vec![];
    for &seed in &env.seeds {
        let mut r = Draw::new(seed + 2100);
        let (t, d) = (19usize, 4usize);
        // keys of varied norms (the normalisation matters), queries
        let k = round_to_kind(&(r.normal(&[2, t, d], 1.0) * 1.7), env.kind);
        let q = round_to_kind(&r.normal(&[2, t, d], 1.0), env.kind);
        let p0 = round_to_kind(&r.normal(&[2, d, d], 0.3), env.kind);
        for (pos, shard) in [(0usize, 5usize), (3, 5), (2, 64)] {
            // reference: the sequential recurrence, per head
            let mut expect_q = Arr::zeros(q.raw_dim());
            let mut expect_p = Arr::zeros(p0.raw_dim());
            for h in 0..2 {
                let kh = k.index_axis(Axis(0), h).into_dimensionality::<Ix2>()?;
                let qh = q.index_axis(Axis(0), h).into_dimensionality::<Ix2>()?;
                let p0h = p0.index_axis(Axis(0), h).into_dimensionality::<Ix2>()?.to_owned();
                let ps = qr::projectors(kh.view(), &p0h, pos, shard);
                for tt in 0..t {
                    expect_q.slice_mut(s![h, tt, ..]).assign(&qr::project(&ps[tt], qh.row(tt)));
                }
                expect_p.slice_mut(s![h, .., ..]).assign(&ps[t - 1]);
            }
            // tch: block prefix sums between the boundaries, the projector carried
            let (kt, qt) = (to_tch(&k, env.kind, env.device), to_tch(&q, env.kind, env.device));
            let mut p = to_tch(&p0, env.kind, env.device);
            let mut pieces = vec![];
            let mut start = 0usize;
            while start < t {
                if (pos + start) % shard == 0 {
                    p = p.zeros_like();
                }
                let len = (shard - (pos + start) % shard).min(t - start);
                let (y, pn) = qk_projection::torch::prefix_project(
                    &kt.narrow(1, start as i64, len as i64),
                    &qt.narrow(1, start as i64, len as i64),
                    &p,
                );
                pieces.push(y);
                p = pn;
                start += len;
            }
            let tag = format!("S_L = {shard}, pos {pos}, T = {t}, seed {seed}");
            out.push(Measurement::compare(
                format!("P_t q_t block form vs recurrence ({tag})"),
                &from_tch(&Tensor::cat(&pieces, 1))?,
                &expect_q,
                tol,
            )?);
            out.push(Measurement::compare(
                format!("P_T block form vs recurrence ({tag})"),
                &from_tch(&p)?,
                &expect_p,
                tol,
            )?);
        }
        // Eq. 8's explicit double sum == the recurrence from zero without reset; Eq. 9 == Eq. 8 for unit keys
        let kh = k.index_axis(Axis(0), 0).into_dimensionality::<Ix2>()?;
        let qh = q.index_axis(Axis(0), 0).into_dimensionality::<Ix2>()?;
        let ps = qr::projectors(kh.view(), &Array2::zeros((d, d)), 1, 1000);
        let rec = Array2::from_shape_fn((t, d), |(tt, j)| qr::project(&ps[tt], qh.row(tt))[j]);
        let eq8 = qr::project_all_past(kh.view(), qh.view());
        out.push(Measurement::compare(
            format!("Eq. 8 explicit sum vs Eq. 10 recurrence (seed {seed})"),
            &eq8.clone().into_dyn(),
            &rec.into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
        let unit = r.unit_rows(&[t, d]).into_dimensionality::<Ix2>()?;
        out.push(Measurement::compare(
            format!("Eq. 9 (unit keys, no normalisation) vs Eq. 8 (seed {seed})"),
            &qr::project_all_past_unit_keys(unit.view(), qh.view()).into_dyn(),
            &qr::project_all_past(unit.view(), qh.view()).into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
        // orthonormal keys (Gram–Schmidt of 3 drawn vectors in R^4): P is an orthogonal projector, P² = P
        let raw = r.normal(&[3, d], 1.0).into_dimensionality::<Ix2>()?;
        let mut basis: Vec<ndarray::Array1<f64>> = vec![];
        for row in raw.rows() {
            let mut u = row.to_owned();
            for b in &basis {
                u = &u - &(b * b.dot(&u));
            }
            let n = u.dot(&u).sqrt();
            basis.push(u / n);
        }
        let mut p = Array2::zeros((d, d));
        for b in &basis {
            qr::accumulate(&mut p, b.view());
        }
        out.push(Measurement::compare(
            format!("orthonormal keys: P² vs P (seed {seed})"),
            &p.dot(&p).into_dyn(),
            &p.clone().into_dyn(),
            tolerance::ALGEBRAIC_F64,
        )?);
    }
    Ok(out)
}
