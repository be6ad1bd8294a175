//! Checks for Nested Learning's preconditioned optimizers (Eqs. 38, 46–47), Appendix B's memory optimizers
//! (Eqs. 103–105) and §4.3's orthogonal-task argument (Eq. 45). Same quadratics and tolerances as
//! `super::checks` (f64 reference vs tch: `tolerance::torch_vs_reference`, 1e-10 in f64 and 1e-5 in f32; the
//! iterates are smooth functions of the inputs, so f32 only adds its rounding).

use super::appendix_b::{self, Value};
use super::checks::{stack2, Problem};
use super::optimizers::reference as opt_ref;
use super::preconditioned;
use crate::check::{CheckEnv, Measurement};
use crate::optim::{self, OptimizerSpec};
use crate::tensor::{errors, from_tch, round_to_kind, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::{ensure, Result};
use ndarray::{Array2, Ix2};
use tch::{nn, Tensor};

fn stack_tch(xs: &[Tensor]) -> Result<Arr> {
    from_tch(&Tensor::stack(xs, 0))
}

/// The problem's `H`, `W*`, `W_0` as tensors of the dtype under test.
fn tensors(env: &CheckEnv, p: &Problem) -> (Tensor, Tensor, Tensor) {
    let t = |a: &Array2<f64>| to_tch(&a.clone().into_dyn(), env.kind, env.device);
    (t(&p.q.h), t(&p.q.w_star), t(&p.w0))
}

/// Eq. 38 with the Hessian's action as preconditioner == Newton's closed form; one step of η = 1 lands on `W*`.
fn preconditioned_gd(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let tol = tolerance::torch_vs_reference(env.kind);
    for &seed in &env.seeds {
        let p = Problem::draw(seed, env.kind, 0.2, 0.9);
        let (h, w_star, w0) = tensors(env, &p);
        let ws = preconditioned::torch::newton(&w0, &h, &w_star, &p.lrs);
        let closed = preconditioned::reference::newton_closed_form(&p.q, &p.w0, &p.lrs);
        out.push(Measurement::compare(
            format!("W_t, P(g) = gH (seed {seed})"),
            &stack_tch(&ws)?,
            &stack2(&closed),
            tol,
        )?);
        let one = preconditioned::torch::newton(&w0, &h, &w_star, &[1.0]);
        out.push(Measurement::compare(
            format!("one step at eta = 1 reaches W* (seed {seed})"),
            &from_tch(&one[0])?,
            &p.q.w_star.clone().into_dyn(),
            tol,
        )?);
    }
    Ok(out)
}

/// Eqs. 46–47: tch (inner gradient of Eq. 46 by autograd) == the f64 loop (`P g` by hand), with and without the
/// forget gate; `P = I` == Eq. 33's momentum; a non-identity `P` changes the iterates.
fn preconditioned_momentum(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let tol = tolerance::torch_vs_reference(env.kind);
    for &seed in &env.seeds {
        let p = Problem::draw(seed, env.kind, 0.01, 0.05);
        let (h, w_star, w0) = tensors(env, &p);
        let r = p.w0.nrows();
        // a random symmetric positive-definite P = AᵀA/r + ½I
        let mut d = Draw::new(seed ^ 0x5eed);
        let a = d.normal(&[r, r], 1.0).into_dimensionality::<Ix2>()?;
        let pm = round_to_kind(&(a.t().dot(&a) / r as f64 + Array2::<f64>::eye(r) * 0.5).into_dyn(), env.kind)
            .into_dimensionality::<Ix2>()?;
        let pt = to_tch(&pm.clone().into_dyn(), env.kind, env.device);
        for alpha in [1.0, 0.8] {
            let ws = preconditioned::torch::preconditioned_momentum(&w0, &h, &w_star, &pt, alpha, &p.lrs);
            let reference = preconditioned::reference::preconditioned_momentum(&p.q, &p.w0, &pm, alpha, &p.lrs);
            out.push(Measurement::compare(
                format!("W_t, random SPD P, alpha = {alpha} (seed {seed})"),
                &stack_tch(&ws)?,
                &stack2(&reference),
                tol,
            )?);
            let plain = opt_ref::momentum(&p.q, &p.w0, alpha, &p.lrs, 0.0);
            let e = errors(&stack2(&plain), &stack2(&reference))?;
            ensure!(e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE, "P did nothing ({:.2e})", e.rel_rmse);
        }
        let eye = Tensor::eye(r as i64, (env.kind, env.device));
        let ws = preconditioned::torch::preconditioned_momentum(&w0, &h, &w_star, &eye, 0.9, &p.lrs);
        out.push(Measurement::compare(
            format!("P = I is Eq. 33 momentum (seed {seed})"),
            &stack_tch(&ws)?,
            &stack2(&opt_ref::momentum(&p.q, &p.w0, 0.9, &p.lrs, 0.0)),
            tol,
        )?);
    }
    Ok(out)
}

/// Eqs. 103–105: the closed forms with running sums (tch) == W − η m* with m* solved from Eq. 101 at every step
/// (f64); Eq. 104's printed factor η β₂ differs from the argmin (the erratum), the corrected η/β₂ does not.
fn memory_optimizers(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let mut out = vec![];
    let tol = tolerance::torch_vs_reference(env.kind);
    let beta = 0.8;
    for &seed in &env.seeds {
        for (value, name, lo, hi) in
            [(Value::SumOfSquares, "Eq. 104", 0.005, 0.02), (Value::RootSumOfSquares, "Eq. 105", 0.02, 0.08)]
        {
            let p = Problem::draw(seed, env.kind, lo, hi);
            let (h, w_star, w0) = tensors(env, &p);
            let ws = appendix_b::torch::closed_form(&w0, &h, &w_star, beta, value, &p.lrs, false);
            let reference = appendix_b::reference::memory_optimizer(&p.q, &p.w0, value, &p.lrs);
            out.push(Measurement::compare(
                format!("{name}: W_t, running sums vs argmin of Eq. 101 (seed {seed})"),
                &stack_tch(&ws)?,
                &stack2(&reference),
                tol,
            )?);
            // the iterates descend (g = +∇L)
            let first = p.q.loss(&p.w0);
            let last = p.q.loss(reference.last().expect("steps"));
            ensure!(last < first, "{name}: the loss rose from {first:.4} to {last:.4}");
            if value == Value::SumOfSquares {
                let printed = appendix_b::torch::closed_form(&w0, &h, &w_star, beta, value, &p.lrs, true);
                let e = errors(&stack_tch(&printed)?, &stack2(&reference))?;
                ensure!(
                    e.rel_rmse > tolerance::MIN_RELATIVE_DIFFERENCE,
                    "Eq. 104's printed eta*beta2 matched the argmin ({:.2e}); the erratum note would be wrong",
                    e.rel_rmse
                );
            }
        }
    }
    Ok(out)
}

/// Eq. 45: momentum (`S ← β S − λ g`, β = 0.9) fed one gradient per orthogonal task: the share of the momentum
/// held by the last `n` tasks, read from the tch optimizer's last step `S_N = W_N − W_{N−1}`, equals
/// `(1 − βⁿ)/(1 − β^N)`; the smallest `n` holding 50 % and 99 % are 7 and 44 (the text says 6 and 43).
fn orthogonal_tasks(env: &CheckEnv) -> Result<Vec<Measurement>> {
    let (rows, cols, beta) = (8i64, 25i64, 0.9);
    let n_tasks = (rows * cols) as usize;
    let vs = nn::VarStore::new(env.device);
    let mut w = vs.root().zeros("w", &[rows, cols]);
    let mut vs = vs;
    vs.set_kind(env.kind);
    tch::no_grad(|| w.copy_(&w.zeros_like()));
    let mut opt = optim::build(&OptimizerSpec::Momentum { beta }, &vs)?;
    // task i's gradient is the unit direction u_i (orthonormal: one entry each, in a seeded order)
    let mut d = Draw::new(env.seeds[0]);
    let mut order: Vec<usize> = (0..n_tasks).collect();
    for i in (1..n_tasks).rev() {
        order.swap(i, d.usize_in(0, i + 1));
    }
    let mut before = w.copy();
    for &e in &order {
        let u = Tensor::zeros([rows * cols], (env.kind, env.device));
        let _ = u.get(e as i64).fill_(1.0);
        before = w.detach().copy();
        let loss = (&w * u.view([rows, cols])).sum(env.kind);
        loss.backward();
        opt.update(1.0, 0.0);
    }
    let s = from_tch(&(&w - &before).view([-1]))?;
    // weight of task i = |⟨S, u_i⟩|, newest first
    let weights: Vec<f64> = order.iter().rev().map(|&e| s[[e]].abs()).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let share: Vec<f64> = weights
        .iter()
        .map(|w| {
            acc += w;
            acc / total
        })
        .collect();
    let closed: Vec<f64> = (1..=n_tasks).map(|n| opt_ref::momentum_task_share(beta, n, n_tasks)).collect();
    let first = |xs: &[f64], level: f64| xs.iter().position(|&x| x >= level).map(|i| i + 1);
    ensure!(
        first(&share, 0.5) == Some(7) && first(&share, 0.99) == Some(44),
        "the last {:?} / {:?} tasks hold 50 % / 99 % of the momentum; 7 / 44 expected",
        first(&share, 0.5),
        first(&share, 0.99)
    );
    let v = |x: Vec<f64>| ndarray::Array1::from(x).into_dyn();
    Ok(vec![Measurement::compare(
        format!("share of the last n of {n_tasks} tasks (50 %: n = 7, 99 %: n = 44)"),
        &v(share),
        &v(closed),
        tolerance::torch_vs_reference(env.kind),
    )?])
}

pub fn checks() -> Vec<crate::check::Check> {
    use crate::check::Check;
    vec![
        Check { name: "nl_preconditioned_gd", summary: "Eq. 38 with P(g) = gH (tch solve) == Newton's closed form W* + prod(1 - eta)(W_0 - W*); eta = 1 reaches W*", run: preconditioned_gd },
        Check { name: "nl_preconditioned_momentum", summary: "Eqs. 46-47: tch (inner gradient of <m g^T, P> by autograd) == f64 loop with P g by hand, random SPD P, alpha 1 and 0.8; P = I == Eq. 33", run: preconditioned_momentum },
        Check { name: "nl_memory_optimizers", summary: "Eqs. 103-105: running-sum closed forms (tch) == W - eta m* with m* the argmin of Eq. 101 each step (f64); printed eta*beta2 of Eq. 104 differs", run: memory_optimizers },
        Check { name: "nl_momentum_orthogonal_tasks", summary: "Eq. 45: share of momentum held by the last n orthogonal tasks (tch momentum) == 1 - beta^n; 50 % / 99 % need 7 / 44 tasks", run: orthogonal_tasks },
    ]
}
