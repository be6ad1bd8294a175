//! Batched plumbing around any [`MemoryRule`], shared by the per-rule checks, `repro eval` and the tests: inputs
//! drawn from the rule's own description, the per-head reference run over `[B, H, …]` arrays, and the tch forward
//! on a flat list of inputs.

use super::rule::{HeadInputs, MemoryRule, StateDraw};
use super::ReadMode;
use crate::tensor::{round_to_kind, stack_heads, Arr, Draw};
use ndarray::{s, ArrayD, Axis, Ix1, Ix2};
use tch::{Kind, Tensor};

/// Drawn batched inputs of a rule: `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, gates `[B, H, T]`, states.
#[derive(Debug, Clone)]
pub struct RuleInputs {
    pub k: Arr,
    pub v: Arr,
    pub q: Arr,
    pub gates: Vec<Arr>,
    pub state: Vec<Arr>,
}

impl RuleInputs {
    /// Every input in one list: k, v, q, the gates, the states.
    pub fn all(&self) -> Vec<&Arr> {
        let mut v = vec![&self.k, &self.v, &self.q];
        v.extend(self.gates.iter());
        v.extend(self.state.iter());
        v
    }
    pub fn all_mut(&mut self) -> Vec<&mut Arr> {
        let mut v = vec![&mut self.k, &mut self.v, &mut self.q];
        v.extend(self.gates.iter_mut());
        v.extend(self.state.iter_mut());
        v
    }
    /// Names matching [`all`](Self::all).
    pub fn names(rule: &dyn MemoryRule, d_k: usize, d_v: usize) -> Vec<String> {
        let mut v: Vec<String> = ["k", "v", "q"].iter().map(|s| s.to_string()).collect();
        v.extend(rule.gates().iter().map(|g| g.name.to_string()));
        v.extend(rule.state(d_k, d_v).iter().map(|s| format!("{}_0", s.name)));
        v
    }
}

/// Draws valid inputs for `rule` (rounded to `kind`).
pub fn draw(
    rule: &dyn MemoryRule,
    seed: u64,
    (b, h, t, d_k, d_v): (usize, usize, usize, usize, usize),
    kind: Kind,
) -> RuleInputs {
    let mut r = Draw::new(seed);
    let k = r.unit_rows(&[b, h, t, d_k]);
    let v = r.normal(&[b, h, t, d_v], 1.0);
    let q = r.unit_rows(&[b, h, t, d_k]);
    let gates = rule.gates().iter().map(|g| r.uniform(&[b, h, t], g.draw.0, g.draw.1.max(g.draw.0 + 1e-12))).collect();
    let state = rule
        .state(d_k, d_v)
        .iter()
        .map(|s| {
            let mut shape = vec![b, h];
            shape.extend(&s.shape);
            match s.draw {
                StateDraw::Normal { scale } => r.normal(&shape, scale.max(0.05)),
                StateDraw::Uniform { lo, hi } => r.uniform(&shape, lo, hi),
            }
        })
        .collect();
    let mut x = RuleInputs { k, v, q, gates, state };
    for a in x.all_mut() {
        *a = round_to_kind(a, kind);
    }
    x
}

/// The reference of every head, restacked `[B, H, …]`: `(y, final states)`.
pub fn reference_batched(rule: &dyn MemoryRule, x: &RuleInputs, read: ReadMode) -> (Arr, Vec<Arr>) {
    let (nb, nh) = (x.k.shape()[0], x.k.shape()[1]);
    let (mut ys, mut states) = (vec![], vec![]);
    for b in 0..nb {
        for h in 0..nh {
            let head = |a: &Arr| a.index_axis(Axis(0), b).index_axis(Axis(0), h).to_owned();
            let inputs = HeadInputs {
                k: head(&x.k).into_dimensionality::<Ix2>().expect("rank 2"),
                v: head(&x.v).into_dimensionality::<Ix2>().expect("rank 2"),
                q: head(&x.q).into_dimensionality::<Ix2>().expect("rank 2"),
                gates: x.gates.iter().map(|g| head(g).into_dimensionality::<Ix1>().expect("rank 1")).collect(),
            };
            let st: Vec<ArrayD<f64>> = x.state.iter().map(head).collect();
            let (y, fin) = rule.reference_forward(&inputs, &st, read);
            ys.push(y);
            states.push(fin);
        }
    }
    let n_state = states[0].len();
    let stacked =
        (0..n_state).map(|i| stack_heads(&states.iter().map(|s| s[i].clone()).collect::<Vec<_>>(), nb, nh)).collect();
    (stack_heads(&ys, nb, nh), stacked)
}

/// The reference retrieval of every head, restacked.
pub fn reference_retrieve_batched(rule: &dyn MemoryRule, x: &RuleInputs) -> Arr {
    let (nb, nh) = (x.k.shape()[0], x.k.shape()[1]);
    let mut ys = vec![];
    for b in 0..nb {
        for h in 0..nh {
            let q = x.q.slice(s![b, h, .., ..]).into_dimensionality::<Ix2>().expect("rank 2");
            let st: Vec<ArrayD<f64>> =
                x.state.iter().map(|a| a.index_axis(Axis(0), b).index_axis(Axis(0), h).to_owned()).collect();
            ys.push(rule.reference_retrieve(q, &st));
        }
    }
    stack_heads(&ys, nb, nh)
}

/// The tch forward on `x` (tensors of `kind` on `device`).
pub fn torch_forward(rule: &dyn MemoryRule, x: &[Tensor], n_gates: usize, read: ReadMode) -> (Tensor, Vec<Tensor>) {
    let (k, v, q) = (&x[0], &x[1], &x[2]);
    rule.forward(k, v, q, &x[3..3 + n_gates], &x[3 + n_gates..], read)
}
