//! f64 ndarray references of the mixers (Titans, arXiv 2501.00663 v1, §4), one batch element, explicit token
//! and segment loops, written from the readings in [`super`] (not from the tch code). They reuse the
//! equation references: [`super::projections::reference`] (Titans Eq. 11 + §4.4), the gates of the rule
//! ([`GateSpec::value`]), the memory rule's own reference ([`MemoryRule::reference_forward`], e.g. Titans
//! Eqs. 12–15), [`super::attention::reference`] (Eq. 2), [`super::rope::reference`] and
//! [`super::persistent::reference`] (Eq. 19).
//!
//! * LMM: $$o = \mathcal{M}(\tilde x)_{N_p:},\qquad \tilde x = p \,\|\, x$$
//! * MAC, per segment `S` (Eqs. 21–25):
//!   $$h = \mathcal{M}^*_{t-1}(q_S),\quad \tilde S = p\,\|\,h\,\|\,S,\quad y = \mathrm{Attn}(S \to \tilde S),\quad
//!   \mathcal{M}_t = \mathcal{M}_{t-1}(y),\quad o = y \odot \sigma(\mathcal{M}^*_t(y))\ \text{or}\ y + \mathcal{M}^*_t(y)$$
//!   (query `i` of the segment sees all of `p`, and `h_j`, `S_j` for `j ≤ i`).
//! * MAG (Eqs. 26–28): $$y = \text{SW-Attn}^*(\tilde x),\quad o = \mathrm{LN}_y(y) \odot \sigma(\mathrm{LN}_m(\mathcal{M}(\tilde x)))$$
//! * MAL (Eqs. 29–31): $$y = \mathcal{M}(\tilde x),\quad o = \text{SW-Attn}^*(y)$$ (the prefix positions of `y` visible).
//!
//! The memory layer per head `h` (`d = D/H` channels): `k = ℓ2(SiLU(conv(W_K x)))`, `q` alike, `v = SiLU(conv(W_V x))`,
//! gate `g` from row `g·H + h` of the gate layer (`lo + (hi − lo)σ(w x + b)` or pinned), the rule from its initial
//! state (zeros, constant, or the learned `[H, …]`), heads concatenated and projected by `W_O`. Attention rotates
//! queries and keys by their stream positions when RoPE is on (persistent tokens and prefix keys at position 0).

use super::attention::{self, Mask};
use super::persistent;
use super::projections::{self, ProjectionConfig};
use super::spec::{MacCombine, ModelKind};
use crate::memory::rule::{GateSpec, HeadInputs, MemoryRule, StateInit};
use crate::memory::ReadMode;
use ndarray::{concatenate, s, Array1, Array2, ArrayD, ArrayView2, Axis, IxDyn};
use std::sync::Arc;

/// ℓ2-normalisation floor of the models (`blocks::l2_normalize` divides by `max(‖a‖, 1e-6)`).
pub const L2_EPS: f64 = 1e-6;

/// The memory layer's weights. Linear maps are `[out, in]` (`y = W x`).
#[derive(Debug, Clone)]
pub struct MemoryWeights {
    pub wq: Array2<f64>,
    pub wk: Array2<f64>,
    pub wv: Array2<f64>,
    pub wo: Array2<f64>,
    /// depthwise kernels `[D, K]` of q, k, v (tap `K − 1` weighs the current token); `None` = no convolution
    pub conv: Option<[Array2<f64>; 3]>,
    /// `[G·H, D]`: rows of gate `g` at `g·H … (g+1)·H`
    pub gates_w: Array2<f64>,
    pub gates_b: Array1<f64>,
    pub gate_specs: Vec<GateSpec>,
    /// learned initial states `[H, …]` (`None` where the rule starts from zeros or a constant)
    pub init: Vec<Option<ArrayD<f64>>>,
    pub heads: usize,
    pub rule: Arc<dyn MemoryRule>,
}

/// Multi-head attention weights `[D, D]` each, no bias.
#[derive(Debug, Clone)]
pub struct AttentionWeights {
    pub wq: Array2<f64>,
    pub wk: Array2<f64>,
    pub wv: Array2<f64>,
    pub wo: Array2<f64>,
    pub heads: usize,
    /// RoPE's base when attention rotates queries and keys by position
    pub rope_base: Option<f64>,
}

/// LayerNorm over the model dimension with learned gain and bias.
#[derive(Debug, Clone)]
pub struct LayerNormWeights {
    pub gain: Array1<f64>,
    pub bias: Array1<f64>,
    pub eps: f64,
}

/// Everything one block's mixer needs.
#[derive(Debug, Clone)]
pub struct MixerWeights {
    pub kind: ModelKind,
    pub memory: MemoryWeights,
    /// which state LMM/MAG/MAL read
    pub read: ReadMode,
    /// MAC/MAG/MAL
    pub attn: Option<AttentionWeights>,
    /// `N_p × D` (Eq. 19), zero rows when `N_p = 0`
    pub persistent: Array2<f64>,
    /// MAC's segment length
    pub segment: usize,
    /// MAG/MAL's sliding window
    pub window: usize,
    pub combine: MacCombine,
    /// MAG's LayerNorms of the attention and memory branches
    pub ln_y: Option<LayerNormWeights>,
    pub ln_m: Option<LayerNormWeights>,
}

/// One head's memory state: the rule's state tensors.
pub type HeadState = Vec<ArrayD<f64>>;

/// A mixer's output `T × D` and the final state of every head.
#[derive(Debug, Clone)]
pub struct MixerOutput {
    pub o: Array2<f64>,
    pub memory: Vec<HeadState>,
}

pub fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// `y_t = W x_t` for every token (rows), `w` is `[out, in]`.
pub fn linear(x: ArrayView2<f64>, w: ArrayView2<f64>) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), w.nrows()), |(t, o)| (0..x.ncols()).map(|i| w[[o, i]] * x[[t, i]]).sum())
}

/// `LN(x)_t = g ⊙ (x_t − μ_t)/\sqrt{σ_t^2 + ε} + b` per token (biased variance).
pub fn layer_norm(x: ArrayView2<f64>, ln: &LayerNormWeights) -> Array2<f64> {
    let mut out = x.to_owned();
    for mut row in out.rows_mut() {
        let n = row.len() as f64;
        let mu = row.sum() / n;
        let var = row.iter().map(|u| (u - mu) * (u - mu)).sum::<f64>() / n;
        let inv = 1.0 / (var + ln.eps).sqrt();
        for (c, u) in row.iter_mut().enumerate() {
            *u = (*u - mu) * inv * ln.gain[c] + ln.bias[c];
        }
    }
    out
}

fn head_dim(w: &MemoryWeights) -> usize {
    w.wq.nrows() / w.heads
}

fn fresh_states(w: &MemoryWeights) -> Vec<HeadState> {
    let d = head_dim(w);
    let specs = w.rule.state(d, d);
    (0..w.heads)
        .map(|h| {
            specs
                .iter()
                .zip(&w.init)
                .map(|(spec, learned)| match (learned, spec.init) {
                    (Some(a), _) => a.index_axis(Axis(0), h).to_owned(),
                    (None, StateInit::Constant { value }) => ArrayD::from_elem(IxDyn(&spec.shape), value),
                    (None, _) => ArrayD::zeros(IxDyn(&spec.shape)),
                })
                .collect()
        })
        .collect()
}

/// Stream q (0), k (1) or v (2) of head `h` over the whole history `x` (`T × D`), Eq. 11 + §4.4.
fn stream(w: &MemoryWeights, which: usize, x: ArrayView2<f64>, h: usize) -> Array2<f64> {
    let d = head_dim(w);
    let proj = [&w.wq, &w.wk, &w.wv][which];
    let (kernel, conv) = match &w.conv {
        Some(c) => (c[which].ncols(), c[which].slice(s![h * d..(h + 1) * d, ..]).to_owned()),
        None => (0, Array2::zeros((d, 1))),
    };
    let cfg = ProjectionConfig { conv_kernel: kernel, silu: true, l2_normalize: which < 2, eps: L2_EPS };
    projections::reference::project(x, proj.slice(s![h * d..(h + 1) * d, ..]), conv.view(), &cfg)
}

/// Writes tokens `from..` of the history `hist` (`T × D`; the earlier rows only feed the convolution) into the
/// memory, head by head, with the rule's reference, reading with `read`; returns `W_O [y^{(1)} ‖ … ‖ y^{(H)}]`
/// for the new tokens and advances `states`.
pub fn memory_write(
    w: &MemoryWeights,
    hist: ArrayView2<f64>,
    from: usize,
    states: &mut [HeadState],
    read: ReadMode,
) -> Array2<f64> {
    let (t_all, dim) = hist.dim();
    let (d, heads) = (head_dim(w), w.heads);
    let new = hist.slice(s![from.., ..]);
    let mut merged = Array2::zeros((t_all - from, dim));
    for (h, state) in states.iter_mut().enumerate() {
        let rows = |a: Array2<f64>| a.slice(s![from.., ..]).to_owned();
        // gate g of head h: lo + (hi − lo)σ(w_{gH+h}·x + b_{gH+h}), or its pinned value
        let gates = w
            .gate_specs
            .iter()
            .enumerate()
            .map(|(g, spec)| {
                let r = g * heads + h;
                Array1::from_iter(new.rows().into_iter().map(|x| spec.value(w.gates_w.row(r).dot(&x) + w.gates_b[r])))
            })
            .collect();
        let inputs = HeadInputs {
            k: rows(stream(w, 1, hist, h)),
            v: rows(stream(w, 2, hist, h)),
            q: rows(stream(w, 0, hist, h)),
            gates,
        };
        let (y, next) = w.rule.reference_forward(&inputs, state, read);
        merged.slice_mut(s![.., h * d..(h + 1) * d]).assign(&y);
        *state = next;
    }
    linear(merged.view(), w.wo.view())
}

/// Eq. 21: retrieval without update, `h_t = W_O [M^{(1)}(q^{(1)}_t) ‖ …]` for tokens `from..` of `hist`.
pub fn memory_read(w: &MemoryWeights, hist: ArrayView2<f64>, from: usize, states: &[HeadState]) -> Array2<f64> {
    let (t_all, dim) = hist.dim();
    let d = head_dim(w);
    let mut merged = Array2::zeros((t_all - from, dim));
    for (h, st) in states.iter().enumerate() {
        let q = stream(w, 0, hist, h);
        let y = w.rule.reference_retrieve(q.slice(s![from.., ..]), st);
        merged.slice_mut(s![.., h * d..(h + 1) * d]).assign(&y);
    }
    linear(merged.view(), w.wo.view())
}

/// Multi-head Eq. 2 of queries from `xq` over keys/values from `xkv` where `visible(i, j)`, written out; with
/// RoPE, head slices of queries and keys are rotated by `q_pos`, `k_pos` first.
pub fn attend(
    a: &AttentionWeights,
    xq: ArrayView2<f64>,
    xkv: ArrayView2<f64>,
    visible: impl Fn(usize, usize) -> bool,
    q_pos: &[f64],
    k_pos: &[f64],
) -> Array2<f64> {
    let (mut q, mut k, v) = (linear(xq, a.wq.view()), linear(xkv, a.wk.view()), linear(xkv, a.wv.view()));
    let dim = q.ncols();
    let d = dim / a.heads;
    rotate_heads(a, &mut q, q_pos);
    rotate_heads(a, &mut k, k_pos);
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = Array2::zeros((xq.nrows(), dim));
    for h in 0..a.heads {
        let cols = h * d..(h + 1) * d;
        for i in 0..xq.nrows() {
            let seen: Vec<usize> = (0..xkv.nrows()).filter(|&j| visible(i, j)).collect();
            let scores: Vec<f64> =
                seen.iter().map(|&j| cols.clone().map(|c| q[[i, c]] * k[[j, c]]).sum::<f64>() * scale).collect();
            let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|u| (u - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for (&j, ej) in seen.iter().zip(&e) {
                for c in cols.clone() {
                    out[[i, c]] += ej / z * v[[j, c]];
                }
            }
        }
    }
    linear(out.view(), a.wo.view())
}

/// Rotates every head's slice of `x` (`T × D`) by the positions (RoPE), when the attention uses it.
fn rotate_heads(a: &AttentionWeights, x: &mut Array2<f64>, pos: &[f64]) {
    let Some(base) = a.rope_base else { return };
    let d = x.ncols() / a.heads;
    for h in 0..a.heads {
        let c = s![.., h * d..(h + 1) * d];
        let r = super::rope::reference::rotate(x.slice(c), pos, base);
        x.slice_mut(c).assign(&r);
    }
}

/// Eqs. 27/31's SW-Attn*: multi-head Eq. 2 over `x̃ = p ‖ x` (`N_p + T` rows) with window `w` and the first `N_p`
/// positions always visible ([`Mask`]), through the Eq. 2 reference; returns the rows of `x` only. With RoPE the
/// rows of `x` are at positions `0, 1, …` and the `N_p` prefix rows at 0 (not rotated).
pub fn sliding_window(a: &AttentionWeights, xt: ArrayView2<f64>, np: usize, window: usize) -> Array2<f64> {
    let (mut q, mut k, v) = (linear(xt, a.wq.view()), linear(xt, a.wk.view()), linear(xt, a.wv.view()));
    let dim = q.ncols();
    let d = dim / a.heads;
    let pos: Vec<f64> = (0..xt.nrows()).map(|i| if i < np { 0.0 } else { (i - np) as f64 }).collect();
    rotate_heads(a, &mut q, &pos);
    rotate_heads(a, &mut k, &pos);
    let mask = Mask { window: Some(window), prefix: np };
    let mut out = Array2::zeros((xt.nrows(), dim));
    for h in 0..a.heads {
        let c = s![.., h * d..(h + 1) * d];
        let y =
            attention::reference::softmax_attention(q.slice(c), k.slice(c), v.slice(c), 1.0 / (d as f64).sqrt(), mask);
        out.slice_mut(c).assign(&y);
    }
    linear(out.slice(s![np.., ..]), a.wo.view())
}

fn output(o: Array2<f64>, states: Vec<HeadState>) -> MixerOutput {
    MixerOutput { o, memory: states }
}

/// LMM: the memory over `x̃ = p ‖ x` (Eq. 19), outputs at the positions of `x`.
pub fn lmm(w: &MixerWeights, x: ArrayView2<f64>) -> MixerOutput {
    let np = w.persistent.nrows();
    let xt = persistent::reference::prepend(w.persistent.view(), x);
    let mut states = fresh_states(&w.memory);
    let y = memory_write(&w.memory, xt.view(), 0, &mut states, w.read);
    output(y.slice(s![np.., ..]).to_owned(), states)
}

/// MAC, segment by segment (Eqs. 21–25).
pub fn mac(w: &MixerWeights, x: ArrayView2<f64>) -> MixerOutput {
    let attn = w.attn.as_ref().expect("MAC has attention");
    let np = w.persistent.nrows();
    let (t_len, dim) = x.dim();
    let mut states = fresh_states(&w.memory);
    let mut written = Array2::zeros((0, dim));
    let mut o = Array2::zeros((t_len, dim));
    let mut start = 0;
    while start < t_len {
        let c = w.segment.min(t_len - start);
        let end = start + c;
        let seg = x.slice(s![start..end, ..]);
        // Eq. 21: h = M*_{t−1}(q), the memory before this segment's writes
        let h = memory_read(&w.memory, x.slice(s![..end, ..]), start, &states);
        // Eq. 22: S̃ = p ‖ h ‖ S
        let ph = persistent::reference::prepend(w.persistent.view(), h.view());
        let kv = concatenate(Axis(0), &[ph.view(), seg]).expect("same width");
        // Eq. 23: query i sees all of p, and h_j, S_j for j ≤ i
        let visible = |i: usize, j: usize| j < np || (j < np + c && j - np <= i) || (j >= np + c && j - np - c <= i);
        // positions: h_j, S_j at their token's position start + j, p unrotated
        let seg_pos: Vec<f64> = (start..end).map(|i| i as f64).collect();
        let k_pos: Vec<f64> =
            std::iter::repeat_n(0.0, np).chain(seg_pos.iter().copied()).chain(seg_pos.iter().copied()).collect();
        let y = attend(attn, seg, kv.view(), visible, &seg_pos, &k_pos);
        // Eq. 24: write y (its convolution continues over the earlier segments' y); Eq. 25 reads after each write
        written = concatenate(Axis(0), &[written.view(), y.view()]).expect("same width");
        let r = memory_write(&w.memory, written.view(), start, &mut states, ReadMode::AfterWrite);
        let seg_o = match w.combine {
            MacCombine::Gate => &y * &r.mapv(sigmoid),
            MacCombine::Add => &y + &r,
        };
        o.slice_mut(s![start..end, ..]).assign(&seg_o);
        start = end;
    }
    output(o, states)
}

/// MAG (Eqs. 26–28): `o = LN_y(SW-Attn*(x̃)) ⊙ σ(LN_m(M(x̃)))` at the positions of `x`.
pub fn mag(w: &MixerWeights, x: ArrayView2<f64>) -> MixerOutput {
    let np = w.persistent.nrows();
    let xt = persistent::reference::prepend(w.persistent.view(), x);
    let y = sliding_window(w.attn.as_ref().expect("MAG has attention"), xt.view(), np, w.window);
    let mut states = fresh_states(&w.memory);
    let m = memory_write(&w.memory, xt.view(), 0, &mut states, w.read);
    let ly = layer_norm(y.view(), w.ln_y.as_ref().expect("MAG has ln_y"));
    let lm = layer_norm(m.slice(s![np.., ..]), w.ln_m.as_ref().expect("MAG has ln_m"));
    output(&ly * &lm.mapv(sigmoid), states)
}

/// MAL (Eqs. 29–31): `y = M(x̃)`, `o = SW-Attn*(y)` with the outputs at the persistent positions visible.
pub fn mal(w: &MixerWeights, x: ArrayView2<f64>) -> MixerOutput {
    let np = w.persistent.nrows();
    let xt = persistent::reference::prepend(w.persistent.view(), x);
    let mut states = fresh_states(&w.memory);
    let y = memory_write(&w.memory, xt.view(), 0, &mut states, w.read);
    let o = sliding_window(w.attn.as_ref().expect("MAL has attention"), y.view(), np, w.window);
    output(o, states)
}

/// The mixer of `w.kind` on one sequence `x` (`T × D`) from a fresh memory.
pub fn mixer(w: &MixerWeights, x: ArrayView2<f64>) -> MixerOutput {
    match w.kind {
        ModelKind::Lmm => lmm(w, x),
        ModelKind::Mac => mac(w, x),
        ModelKind::Mag => mag(w, x),
        ModelKind::Mal => mal(w, x),
    }
}
