//! Memory diagnostics: what the test-time memory of every layer does during training, measured generically from
//! the tensors the layer already has (its rule's state before and after a call, its keys, values and gates), for
//! any [`MemoryRule`], without a method of the rule's own.
//!
//! While [`record_if`] runs a forward pass with recording on, every [`MemoryLayer`](super::MemoryLayer) call also
//! measures, on detached copies (training is not touched: no graph, no random draw, the same numbers):
//!
//! * `memory_norm` `‖M‖` and `memory_update` `‖ΔM‖`: the same two for the memory itself, the state tensors
//!   the read depends on (named in `memory`: `m`; `w1`, `w2`, … of an MLP memory), taken together;
//! * `norm`: `‖X‖_F` of every state tensor `X` (`m`, `s` of a linear memory; `w1`, `w2`, … and their momenta of
//!   an MLP memory) at the end of the call, mean over batch and heads;
//! * `update`: the mean size of one update, `‖X_after − X_before‖_F` per update step (one token, or one chunk of
//!   `chunk_size` tokens for a chunkwise memory, whose update is one step), over the last [`PROBE_STEPS`] update
//!   steps of the call (each replayed with the rule's own forward from the state before it; the replay starts
//!   at a chunk boundary, where one call equals chained calls);
//! * `surprise`: `‖∇_X ℓ‖` over every state tensor the read depends on, with `ℓ = ‖M_X(k_t) − v_t‖²` (the ℓ2
//!   attentional bias, Titans' Eq. 12 loss with scale 1) averaged over the step's tokens and evaluated at the
//!   state before the step — Titans' momentary surprise for Titans' memories; for a rule with another
//!   attentional bias it is still the ℓ2 surprise (the rule's own bias is not exposed by the interface), computed
//!   by autograd through the rule's retrieval;
//! * `gates`: the mean of every gate (`alpha`, `eta`, `theta`, …) over batch, heads and tokens;
//! * `effective_rank`: for a linear memory (a state tensor of shape `[d_v, d_k]`, the first such), the effective
//!   rank `exp(−Σ p_i ln p_i)`, `p_i = σ_i / Σ σ_j` (Roy & Vetterli, 2007) of the final memory, mean over batch and
//!   heads (0 for a zero matrix).
//!
//! A layer called several times in one forward pass (MAC's segments) reports its last call's norms and effective
//! rank, and the mean over all calls of the update size, surprise and gates. The time spent measuring is returned
//! so that throughput can exclude it.

use crate::memory::rule::{GateSpec, MemoryRule};
use crate::memory::ReadMode;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Update steps replayed per layer call (the last ones of the call).
pub const PROBE_STEPS: i64 = 32;

/// JSON has no NaN or infinity, and a diverging memory produces them: they are written as `null` and read
/// back as NaN.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// [`finite_or_null`] for the values of a map.
mod map_finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;
    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, v.is_finite().then_some(*v))))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(m.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
    }
}

/// One memory layer's diagnostics at one logged step (a value that is not finite is written as `null`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LayerDiagnostics {
    /// the layer's variable path, e.g. `block0.memory`
    pub layer: String,
    /// state tensor name → mean `‖X‖_F` at the end of the sequence
    #[serde(with = "map_finite_or_null")]
    pub norm: BTreeMap<String, f64>,
    /// state tensor name → mean `‖ΔX‖_F` per update step
    #[serde(with = "map_finite_or_null")]
    pub update: BTreeMap<String, f64>,
    /// mean `‖∇ℓ‖` (ℓ2 surprise) per update step
    #[serde(with = "finite_or_null")]
    pub surprise: f64,
    /// the state tensors the read depends on (the memory itself: `m`; `w1`, `w2`, … of an MLP memory)
    #[serde(default)]
    pub memory: Vec<String>,
    /// `‖M‖`: the norm of those tensors together, `sqrt(Σ ‖X‖_F²)`, mean over batch and heads
    #[serde(with = "finite_or_null")]
    pub memory_norm: f64,
    /// `‖ΔM‖`: the same for one update step, mean over the replayed steps
    #[serde(with = "finite_or_null")]
    pub memory_update: f64,
    /// gate name → mean value
    #[serde(with = "map_finite_or_null")]
    pub gates: BTreeMap<String, f64>,
    /// effective rank of a linear memory (None for other memories, and when the memory is not finite)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_rank: Option<f64>,
}

/// What [`record_if`] measured: one entry per memory layer (in the order first called), and the seconds spent.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub layers: Vec<LayerDiagnostics>,
    pub seconds: f64,
}

/// A layer's name and update granularity, for the recorder.
#[derive(Debug, Clone)]
pub struct Probe {
    pub label: String,
    pub chunk: usize,
}

#[derive(Default)]
struct Acc {
    last: LayerDiagnostics,
    memory_update: (f64, usize),
    update: BTreeMap<String, (f64, usize)>,
    surprise: (f64, usize),
    gates: BTreeMap<String, (f64, usize)>,
}

#[derive(Default)]
struct Recorder {
    layers: Vec<Acc>,
    seconds: f64,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Whether a forward pass on this thread is being recorded.
pub fn recording() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Runs `work`; when `on`, with recording on (see the module doc).
pub fn record_if<T>(on: bool, work: impl FnOnce() -> T) -> (T, Recorded) {
    if !on {
        return (work(), Recorded::default());
    }
    RECORDER.with(|r| *r.borrow_mut() = Some(Recorder::default()));
    // taken back even if `work` panics (the runner turns a panic into the run's error and goes on)
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RECORDER.with(|r| r.borrow_mut().take());
        }
    }
    let reset = Reset;
    let out = work();
    let rec = RECORDER.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    let mean = |m: &BTreeMap<String, (f64, usize)>| -> BTreeMap<String, f64> {
        m.iter().map(|(k, (s, n))| (k.clone(), s / (*n).max(1) as f64)).collect()
    };
    let layers = rec
        .layers
        .into_iter()
        .map(|a| LayerDiagnostics {
            update: mean(&a.update),
            surprise: a.surprise.0 / a.surprise.1.max(1) as f64,
            memory_update: a.memory_update.0 / a.memory_update.1.max(1) as f64,
            gates: mean(&a.gates),
            ..a.last
        })
        .collect();
    (out, Recorded { layers, seconds: rec.seconds })
}

/// `‖x_bh‖_F²` for every leading `(b, h)`: `[B, H]`.
fn sq_norms(x: &Tensor) -> Tensor {
    x.to_kind(Kind::Double).flatten(2, -1).square().sum_dim_intlist([-1i64].as_slice(), false, Kind::Double)
}

/// Mean over `(b, h)` of `sqrt(Σ_i ‖x_i,bh‖_F²)` over the tensors `xs`.
fn mean_joint_norm(xs: &[Tensor]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let total = xs.iter().map(sq_norms).reduce(|a, b| a + b).expect("not empty");
    total.sqrt().mean(Kind::Double).double_value(&[])
}

/// Mean over the leading `[B, H]` of `‖x_bh‖_F`.
fn mean_norm(x: &Tensor) -> f64 {
    mean_joint_norm(std::slice::from_ref(x))
}

/// Mean over the leading `[B, H]` of the effective rank of `m [B, H, r, c]`.
pub fn effective_rank(m: &Tensor) -> f64 {
    let m = m.to_kind(Kind::Double);
    // singular values from the eigenvalues of M Mᵀ (symmetric, so no SVD driver is needed)
    let gram = m.matmul(&m.transpose(-1, -2));
    if !bool::try_from(gram.isfinite().all()).unwrap_or(false) {
        return f64::NAN;
    }
    let Ok(eig) = gram.f_linalg_eigvalsh("L") else { return f64::NAN };
    let sigma = eig.clamp_min(0.0).sqrt();
    let total = sigma.sum_dim_intlist([-1i64].as_slice(), true, Kind::Double);
    let p = &sigma / total.clamp_min(1e-300);
    // p ln p with 0 ln 0 = 0
    let plogp = &p * p.clamp_min(1e-300).log();
    let h = -plogp.sum_dim_intlist([-1i64].as_slice(), false, Kind::Double);
    let zero = total.squeeze_dim(-1).le(0.0);
    h.exp().masked_fill(&zero, 0.0).mean(Kind::Double).double_value(&[])
}

/// Measures one layer call (see the module doc). `k, v [B, H, T, d]`, gates `[B, H, T]`, states `[B, H, …]`.
/// A failure inside the measurement (a libtorch error on a diverged memory) records nothing for this call and
/// never stops training.
#[allow(clippy::too_many_arguments)]
pub fn observe(
    probe: &Probe,
    rule: &dyn MemoryRule,
    gate_specs: &[GateSpec],
    k: &Tensor,
    v: &Tensor,
    gates: &[Tensor],
    before: &[Tensor],
    after: &[Tensor],
    read: ReadMode,
) {
    let work = || measure(probe, rule, gate_specs, k, v, gates, before, after, read);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
}

#[allow(clippy::too_many_arguments)]
fn measure(
    probe: &Probe,
    rule: &dyn MemoryRule,
    gate_specs: &[GateSpec],
    k: &Tensor,
    v: &Tensor,
    gates: &[Tensor],
    before: &[Tensor],
    after: &[Tensor],
    read: ReadMode,
) {
    let started = std::time::Instant::now();
    let _guard = tch::no_grad_guard();
    let (k, v) = (k.detach(), v.detach());
    let gates: Vec<Tensor> = gates.iter().map(|g| g.detach()).collect();
    let (d_k, d_v) = (k.size()[3] as usize, v.size()[3] as usize);
    let specs = rule.state(d_k, d_v);
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let t = k.size()[2];
    let c = probe.chunk.max(1) as i64;
    let steps = (t + c - 1) / c;
    let first = (steps - PROBE_STEPS).max(0);
    let cut = |x: &Tensor, from: i64, len: i64| x.narrow(2, from, len);
    // the state at the first replayed step
    let mut state: Vec<Tensor> = before.iter().map(|s| s.detach()).collect();
    if first > 0 {
        let n = first * c;
        let g: Vec<Tensor> = gates.iter().map(|g| cut(g, 0, n)).collect();
        state = rule.forward(&cut(&k, 0, n), &cut(&v, 0, n), &cut(&k, 0, n), &g, &state, read).1;
    }
    let mut update = vec![0.0; names.len()];
    let mut surprise = 0.0;
    let mut memory_update = 0.0;
    // which state tensors the read depends on (a defined gradient), found at the first replayed step
    let mut read_by: Option<Vec<bool>> = None;
    let mut replayed = 0usize;
    for j in first..steps {
        let (from, len) = (j * c, c.min(t - j * c));
        let (ks, vs) = (cut(&k, from, len), cut(&v, from, len));
        // ℓ2 surprise at the state before the step: one backward gives every (batch, head)'s gradient
        surprise += tch::with_grad(|| {
            let leaves: Vec<Tensor> =
                state.iter().map(|s| s.detach().to_kind(Kind::Double).set_requires_grad(true)).collect();
            let cast: Vec<Tensor> = leaves.iter().map(|l| l.to_kind(k.kind())).collect();
            let y = rule.retrieve(&ks, &cast);
            let loss = (y.to_kind(Kind::Double) - vs.to_kind(Kind::Double)).square().sum(Kind::Double) / len as f64;
            loss.backward();
            let grads: Vec<Tensor> = leaves.iter().map(|l| l.grad()).collect();
            if read_by.is_none() {
                read_by = Some(grads.iter().map(|g| g.defined()).collect());
            }
            let sq: Vec<Tensor> = grads.iter().filter(|g| g.defined()).map(sq_norms).collect();
            if sq.is_empty() {
                return 0.0;
            }
            Tensor::stack(&sq, 0)
                .sum_dim_intlist([0i64].as_slice(), false, Kind::Double)
                .sqrt()
                .mean(Kind::Double)
                .double_value(&[])
        });
        let g: Vec<Tensor> = gates.iter().map(|g| cut(g, from, len)).collect();
        let next = rule.forward(&ks, &vs, &ks, &g, &state, read).1;
        let deltas: Vec<Tensor> = next.iter().zip(&state).map(|(a, b)| a - b).collect();
        for (i, d) in deltas.iter().enumerate() {
            update[i] += mean_norm(d);
        }
        let read = read_by.as_deref().unwrap_or(&[]);
        let memory: Vec<Tensor> =
            deltas.iter().zip(read).filter(|(_, r)| **r).map(|(d, _)| d.shallow_clone()).collect();
        memory_update += mean_joint_norm(&memory);
        state = next;
        replayed += 1;
    }
    let linear = specs.iter().position(|s| s.shape == vec![d_v, d_k]);
    let read = read_by.unwrap_or_default();
    let memory: Vec<String> = names.iter().zip(&read).filter(|(_, r)| **r).map(|(n, _)| n.clone()).collect();
    let memory_after: Vec<Tensor> = after.iter().zip(&read).filter(|(_, r)| **r).map(|(x, _)| x.detach()).collect();
    let last = LayerDiagnostics {
        layer: probe.label.clone(),
        norm: names.iter().cloned().zip(after.iter().map(|x| mean_norm(&x.detach()))).collect(),
        update: BTreeMap::new(),
        surprise: 0.0,
        memory,
        memory_norm: mean_joint_norm(&memory_after),
        memory_update: 0.0,
        gates: BTreeMap::new(),
        effective_rank: linear.map(|i| effective_rank(&after[i].detach())).filter(|r| r.is_finite()),
    };
    let gate_means: Vec<(String, f64)> = gate_specs
        .iter()
        .zip(&gates)
        .map(|(s, g)| (s.name.to_string(), g.mean(Kind::Double).double_value(&[])))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let Some(rec) = r.as_mut() else { return };
        rec.seconds += seconds;
        let pos = match rec.layers.iter().position(|a| a.last.layer == probe.label) {
            Some(p) => p,
            None => {
                rec.layers.push(Acc::default());
                rec.layers.len() - 1
            }
        };
        let acc = &mut rec.layers[pos];
        acc.last = last;
        for (name, u) in names.iter().zip(&update) {
            let e = acc.update.entry(name.clone()).or_default();
            e.0 += u;
            e.1 += replayed;
        }
        acc.surprise.0 += surprise;
        acc.surprise.1 += replayed;
        acc.memory_update.0 += memory_update;
        acc.memory_update.1 += replayed;
        for (name, m) in gate_means {
            let e = acc.gates.entry(name).or_default();
            e.0 += m;
            e.1 += 1;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::effective_rank;
    use tch::{Kind, Tensor};

    #[test]
    fn effective_rank_of_known_spectra() {
        // diag(1, 1, 1, 0): three equal singular values → 3; a rank-1 outer product → 1; zeros → 0
        let d = Tensor::from_slice(&[1.0f64, 1.0, 1.0, 0.0]).diag(0).reshape([1, 1, 4, 4]);
        assert!((effective_rank(&d) - 3.0).abs() < 1e-9);
        let u = Tensor::from_slice(&[0.3f64, -1.2, 0.7]).reshape([3, 1]);
        let w = Tensor::from_slice(&[2.0f64, 0.5, -0.1, 0.9, 1.1]).reshape([1, 5]);
        assert!((effective_rank(&u.matmul(&w).reshape([1, 1, 3, 5])) - 1.0).abs() < 1e-6);
        assert_eq!(effective_rank(&Tensor::zeros([2, 3, 4, 4], (Kind::Double, tch::Device::Cpu))), 0.0);
        // singular values (3, 1): p = (3/4, 1/4), exp(H) = exp(−¾ ln ¾ − ¼ ln ¼)
        let m = Tensor::from_slice(&[3.0f64, 0.0, 0.0, 1.0]).reshape([1, 1, 2, 2]);
        let want = (-(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln())).exp();
        assert!((effective_rank(&m) - want).abs() < 1e-12);
    }
}
