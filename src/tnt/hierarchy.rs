//! TNT (arXiv 2511.07343 v1) §4.1.1 Eqs. 5–7 and Appendix E Eqs. 13–15: the hierarchical memory — one global
//! memory updated chunkwise with large chunks `C_G`, and `N` local memories updated chunkwise with small chunks
//! `C_{L_i}` and reset to a learned `W^{(i)}_init` at every shard boundary (every `S_L` tokens); the output is the
//! global read plus every local read of the Q-K-projected query (Eq. 15).
//!
//! Both levels are Titans' chunkwise memory (`crate::titans::chunkwise`, Eqs. 16–18: gradients at the chunk-start
//! state, momentum and forgetting token by token; TNT's printed equations are the special case `η = α = 0`, i.e.
//! the layer settings `momentum: false, forgetting: false`, App. D allows both). In project form (1-based tokens,
//! linear memories `d_v × d_k`, `ℓ = c‖Mk − v‖²`, `s(t) = C⌊(t−1)/C⌋`):
//! $$V_{(n+1)C_G}=V_{nC_G}-\sum_{t=nC_G+1}^{(n+1)C_G}\theta_t\nabla\ell(V_{nC_G};k_t,v_t)\qquad\text{(Eq. 5 / 13, corrected)}$$
//! $$W^{(i)}_t=W^{(i)}_{s_i(t)}-\sum_{\tau=s_i(t)+1}^{t}\theta^{(i)}_\tau\nabla\ell(W^{(i)}_{s_i(t)};k_\tau,v_\tau),\quad W^{(i)}_{rS_L}=W^{(i)}_{\rm init}\qquad\text{(Eq. 6 / 14, corrected)}$$
//! $$o_t=V_{\xi(t,C_G)}\,q_t+\sum_{i=1}^{N}W^{(i)}_t\,P_t\,q_t\qquad\text{(Eq. 7 / 15)}$$
//! Corrections (catalog §5): Eq. 5's mixed `n`/`k` indices and inclusive upper bound; Eq. 6's `W_{t−1} − Σ_{τ=ξ}^{t}`
//! double count (the base is the chunk-start state) and reset index (`t ≡ 0` → the shard's first token, as
//! Appendix C; every token is written exactly once); Eq. 14's `W^{(i−1)}_t` → `W^{(i)}_{t−1}` (independent local
//! memories). With momentum/forgetting the sums become Titans' Eqs. 16–18 per level. The global read uses the
//! state *before* the current global chunk (`V_{ξ(t,C_G)}`: frozen inside a global chunk); the local reads are after
//! the token's write. At a shard start the local memory, its momentum and the projector `P` restart (`W = W_init`,
//! `S = 0`, `P = 0`); `S_L` must be a multiple of every `C_{L_i}` so shard starts are chunk starts. All local
//! memories share `q, k, v` and the shard length; each has its own gates (catalog §8's project default).
//!
//! State carries across calls, including the position in the stream (a per-head scalar state `pos`, kept modulo
//! `lcm(C_G, S_L)`), the chunk-start states the frozen gradients are taken at (`V_start`, `W_start`) and the
//! projector: one call equals two chained calls split anywhere (mid-chunk and mid-shard included).
//!
//! [`reference`]: token by token in f64, the recurrences written out. [`torch`]: batched; the full shards of a call
//! run **in parallel** (shards as a batch dimension, each from `W_init`: TNT's context parallelism), local chunks in
//! Titans' matrix form, the global memory one matrix step per global chunk.

/// The hierarchy's sizes and switches.
#[derive(Debug, Clone, PartialEq)]
pub struct TntConfig {
    /// `C_G`, the global memory's chunk
    pub global_chunk: usize,
    /// `C_{L_i}`, one per local memory
    pub local_chunks: Vec<usize>,
    /// `S_L`, the shard length (local memories and projector restart every `S_L` tokens)
    pub shard: usize,
    /// the Q-K projection of the local reads (Eq. 7); false = the "w/o Q-K projection" ablation
    pub qk_projection: bool,
    /// the global memory (Eq. 5); false = the "w/o global memory" ablation
    pub global_memory: bool,
    /// `c` in `ℓ = c‖Mk − v‖²`
    pub loss_scale: f64,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl TntConfig {
    /// Sizes that make sense: positive chunks, shard a multiple of every local chunk, at least one memory.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.global_chunk >= 1, "tnt: global chunk (chunk_size) must be at least 1");
        anyhow::ensure!(!self.local_chunks.is_empty(), "tnt: local_chunks must list at least one local memory");
        anyhow::ensure!(self.shard >= 1, "tnt: shard must be at least 1");
        for &c in &self.local_chunks {
            anyhow::ensure!(c >= 1, "tnt: local_chunks entries must be at least 1 (got {c})");
            anyhow::ensure!(
                self.shard % c == 0,
                "tnt: shard {} must be a multiple of every local chunk (got local chunk {c}); shard starts must be chunk starts",
                self.shard
            );
        }
        anyhow::ensure!(
            self.loss_scale.is_finite() && self.loss_scale > 0.0,
            "tnt: loss_scale must be a positive number (got {})",
            self.loss_scale
        );
        Ok(())
    }
    /// The period of the position state, `lcm(C_G, S_L)` (every `C_{L_i}` divides `S_L`).
    pub fn period(&self) -> usize {
        self.global_chunk / gcd(self.global_chunk, self.shard) * self.shard
    }
    pub fn layout(&self) -> Layout {
        Layout { global: self.global_memory, n_local: self.local_chunks.len() }
    }
}

/// Where each gate and state tensor sits in the flat lists of the memory interface (plumbing shared by both
/// implementations; no arithmetic). Gates: the global memory's `(α, η, θ)` when present, then each local's.
/// States: `v, s_v, v_start` when the global memory is present, then `pos`, `proj`, then per local
/// `w, s, w_start, w_init`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub global: bool,
    pub n_local: usize,
}

impl Layout {
    pub fn n_gates(&self) -> usize {
        3 * (self.global as usize + self.n_local)
    }
    /// first gate of local `i`
    pub fn local_gate(&self, i: usize) -> usize {
        3 * (self.global as usize + i)
    }
    pub fn pos(&self) -> usize {
        if self.global {
            3
        } else {
            0
        }
    }
    pub fn proj(&self) -> usize {
        self.pos() + 1
    }
    /// first state of local `i` (`w`, then `s`, `w_start`, `w_init`)
    pub fn local_state(&self, i: usize) -> usize {
        self.pos() + 2 + 4 * i
    }
    pub fn n_states(&self) -> usize {
        self.pos() + 2 + 4 * self.n_local
    }
}

/// Token by token, f64, one head.
pub mod reference {
    use super::TntConfig;
    use crate::tnt::qk_projection::reference as qk;
    use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

    /// `(α_t, η_t, θ_t)` of one memory.
    #[derive(Debug, Clone)]
    pub struct Gates {
        pub alpha: Array1<f64>,
        pub eta: Array1<f64>,
        pub theta: Array1<f64>,
    }

    /// The global memory: `V`, its momentum, and `V_{ξ}` (the state at the current global chunk's start).
    #[derive(Debug, Clone, PartialEq)]
    pub struct GlobalState {
        pub v: Array2<f64>,
        pub s: Array2<f64>,
        pub v_start: Array2<f64>,
    }

    /// One local memory: `W`, its momentum, the chunk-start state, and the learned reset value `W_init`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LocalState {
        pub w: Array2<f64>,
        pub s: Array2<f64>,
        pub w_start: Array2<f64>,
        pub w_init: Array2<f64>,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct State {
        /// tokens seen so far, modulo `lcm(C_G, S_L)`
        pub pos: usize,
        pub global: Option<GlobalState>,
        /// the Q-K projector `P` of the current shard
        pub proj: Array2<f64>,
        pub locals: Vec<LocalState>,
    }

    /// Outputs of a call: `o` and its parts, and the state after the last token.
    #[derive(Debug, Clone)]
    pub struct Trace {
        pub y: Array2<f64>,
        /// `V_{ξ(t,C_G)} q_t` (zeros without the global memory)
        pub y_global: Array2<f64>,
        /// `W^{(i)}_t P_t q_t` per local memory
        pub y_local: Vec<Array2<f64>>,
        pub state: State,
    }

    /// One Titans step with the gradient frozen at `base`: `u = 2c(base k − v)kᵀ`, `S ← ηS − θu`,
    /// `M ← (1 − α)M + S`.
    #[allow(clippy::too_many_arguments)]
    fn step(
        m: &mut Array2<f64>,
        s: &mut Array2<f64>,
        base: &Array2<f64>,
        k: ArrayView1<f64>,
        v: ArrayView1<f64>,
        (alpha, eta, theta): (f64, f64, f64),
        c: f64,
    ) {
        let e = base.dot(&k) - v;
        for i in 0..m.nrows() {
            for j in 0..m.ncols() {
                let u = 2.0 * c * e[i] * k[j];
                s[[i, j]] = eta * s[[i, j]] - theta * u;
                m[[i, j]] = (1.0 - alpha) * m[[i, j]] + s[[i, j]];
            }
        }
    }

    /// The hierarchy over `k, q [T, d_k]`, `v [T, d_v]` from `state`.
    pub fn forward(
        cfg: &TntConfig,
        k: ArrayView2<f64>,
        v: ArrayView2<f64>,
        q: ArrayView2<f64>,
        global_gates: Option<&Gates>,
        local_gates: &[Gates],
        state: &State,
    ) -> Trace {
        assert_eq!(local_gates.len(), cfg.local_chunks.len(), "one gate set per local memory");
        let (t_len, d_v) = (k.nrows(), v.ncols());
        let mut st = state.clone();
        let mut y_global = Array2::zeros((t_len, d_v));
        let mut y_local = vec![Array2::zeros((t_len, d_v)); cfg.local_chunks.len()];
        for t in 0..t_len {
            let p = st.pos;
            // Eq. 5: the global memory, one frozen-gradient chunk of C_G tokens at a time
            if let (Some(g), Some(gates)) = (st.global.as_mut(), global_gates) {
                if p % cfg.global_chunk == 0 {
                    g.v_start = g.v.clone();
                }
                // Eq. 7, first term: read V_{ξ(t, C_G)}, the state before the current global chunk
                y_global.row_mut(t).assign(&g.v_start.dot(&q.row(t)));
                let base = g.v_start.clone();
                step(
                    &mut g.v,
                    &mut g.s,
                    &base,
                    k.row(t),
                    v.row(t),
                    (gates.alpha[t], gates.eta[t], gates.theta[t]),
                    cfg.loss_scale,
                );
            }
            // Eq. 6 / Appendix C: the shard's first token restarts the local memories and the projector
            if p % cfg.shard == 0 {
                st.proj.fill(0.0);
                for l in st.locals.iter_mut() {
                    l.w = l.w_init.clone();
                    l.s.fill(0.0);
                }
            }
            qk::accumulate(&mut st.proj, k.row(t));
            let qt = if cfg.qk_projection { qk::project(&st.proj, q.row(t)) } else { q.row(t).to_owned() };
            for (i, (l, gates)) in st.locals.iter_mut().zip(local_gates).enumerate() {
                if p % cfg.local_chunks[i] == 0 {
                    l.w_start = l.w.clone();
                }
                let base = l.w_start.clone();
                step(
                    &mut l.w,
                    &mut l.s,
                    &base,
                    k.row(t),
                    v.row(t),
                    (gates.alpha[t], gates.eta[t], gates.theta[t]),
                    cfg.loss_scale,
                );
                // Eq. 7 / 15: local read after the write, of the projected query
                y_local[i].row_mut(t).assign(&l.w.dot(&qt));
            }
            st.pos = (p + 1) % cfg.period();
        }
        let mut y = y_global.clone();
        for yl in &y_local {
            y = y + yl;
        }
        Trace { y, y_global, y_local, state: st }
    }
}

/// Batched over `[B, H]`; full shards in parallel.
pub mod torch {
    use super::{Layout, TntConfig};
    use crate::titans::chunkwise::torch::coefficients;
    use crate::tnt::qk_projection::torch as qk;
    use tch::Tensor;

    /// Outputs `[B, H, T, d_v]`, the parts, and the state after the last token (in [`Layout`] order).
    #[derive(Debug)]
    pub struct Outputs {
        pub y: Tensor,
        pub y_global: Option<Tensor>,
        pub y_local: Vec<Tensor>,
        pub state: Vec<Tensor>,
    }

    /// The position of a batch: the `pos` state, which must be the same for every sequence and head.
    pub fn position(pos: &Tensor, period: usize) -> usize {
        let lo = pos.min().double_value(&[]);
        let hi = pos.max().double_value(&[]);
        assert!(hi - lo < 0.5, "tnt: every sequence of a batch must be at the same stream position (got {lo}..{hi})");
        (lo.round().max(0.0) as usize) % period
    }

    /// Titans' chunkwise recurrence (Eqs. 16–18) over one segment `k, v, qt [.., L, d]`, gates `[.., L]`, from
    /// `(w, s)` with the gradients frozen at `w_start` for the first `c − phase` tokens (the rest of a chunk
    /// begun in an earlier segment), then at every chunk start. Returns the after-write reads `W_t q̃_t` and
    /// `(w, s, w_start)` after the segment.
    #[allow(clippy::too_many_arguments)]
    pub fn chunkwise_segment(
        k: &Tensor,
        v: &Tensor,
        qt: &Tensor,
        gates: (&Tensor, &Tensor, &Tensor),
        (w, s, w_start): (Tensor, Tensor, Tensor),
        phase: usize,
        chunk: usize,
        loss_scale: f64,
    ) -> (Tensor, (Tensor, Tensor, Tensor)) {
        let t_len = k.size()[k.dim() - 2];
        let (mut w, mut s, mut w_start) = (w, s, w_start);
        let mut ys = vec![];
        let mut start = 0i64;
        let mut off = phase as i64;
        let c = chunk as i64;
        let two_c = 2.0 * loss_scale;
        while start < t_len {
            if off == 0 {
                w_start = w.shallow_clone();
            }
            let len = (c - off).min(t_len - start);
            let g = |x: &Tensor| x.narrow(-1, start, len);
            let co = coefficients(&g(gates.0), &g(gates.1), &g(gates.2));
            let (kc, vc, qc) = (k.narrow(-2, start, len), v.narrow(-2, start, len), qt.narrow(-2, start, len));
            // errors at the frozen base, rows are tokens: E = K W_startᵀ − V
            let e = kc.matmul(&w_start.transpose(-1, -2)) - &vc;
            // reads after the write of token τ: rows r = 1 … len of the coefficients
            let beta_r = co.beta.narrow(-1, 1, len).unsqueeze(-1);
            let rho_r = co.rho.narrow(-1, 1, len).unsqueeze(-1);
            let gamma_r = co.gamma.narrow(-2, 1, len);
            let y = beta_r * qc.matmul(&w.transpose(-1, -2)) + rho_r * qc.matmul(&s.transpose(-1, -2))
                - (qc.matmul(&kc.transpose(-1, -2)) * gamma_r).matmul(&e) * two_c;
            ys.push(y);
            let scalar = |x: &Tensor| x.select(-1, len).unsqueeze(-1).unsqueeze(-1);
            let g_end = co.gamma.select(-2, len).unsqueeze(-1);
            let sg_end = co.s_gamma.select(-2, len).unsqueeze(-1);
            let w_new =
                scalar(&co.beta) * &w + scalar(&co.rho) * &s - (&e * g_end).transpose(-1, -2).matmul(&kc) * two_c;
            let s_new = scalar(&co.p) * &s - (&e * sg_end).transpose(-1, -2).matmul(&kc) * two_c;
            w = w_new;
            s = s_new;
            off = (off + len) % c;
            start += len;
        }
        (Tensor::cat(&ys, -2), (w, s, w_start))
    }

    /// The global memory (Eq. 5) over `[B, H, T, …]` from `(v, s, v_start)` at stream position `pos`: reads
    /// `V_{ξ(t,C_G)} q_t` and one frozen-gradient matrix step per global chunk.
    #[allow(clippy::too_many_arguments)]
    fn global_memory(
        cfg: &TntConfig,
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        gates: (&Tensor, &Tensor, &Tensor),
        (mut m, mut s, mut m_start): (Tensor, Tensor, Tensor),
        pos: usize,
    ) -> (Tensor, (Tensor, Tensor, Tensor)) {
        let t_len = k.size()[2];
        let c = cfg.global_chunk as i64;
        let two_c = 2.0 * cfg.loss_scale;
        let mut off = (pos % cfg.global_chunk) as i64;
        let mut start = 0i64;
        let mut ys = vec![];
        while start < t_len {
            if off == 0 {
                m_start = m.shallow_clone();
            }
            let len = (c - off).min(t_len - start);
            let g = |x: &Tensor| x.narrow(-1, start, len);
            let co = coefficients(&g(gates.0), &g(gates.1), &g(gates.2));
            let (kc, vc, qc) = (k.narrow(2, start, len), v.narrow(2, start, len), q.narrow(2, start, len));
            // Eq. 7, first term: every token of the chunk reads the chunk-start state
            ys.push(qc.matmul(&m_start.transpose(-1, -2)));
            let e = kc.matmul(&m_start.transpose(-1, -2)) - &vc;
            let scalar = |x: &Tensor| x.select(-1, len).unsqueeze(-1).unsqueeze(-1);
            let g_end = co.gamma.select(-2, len).unsqueeze(-1);
            let sg_end = co.s_gamma.select(-2, len).unsqueeze(-1);
            let m_new =
                scalar(&co.beta) * &m + scalar(&co.rho) * &s - (&e * g_end).transpose(-1, -2).matmul(&kc) * two_c;
            let s_new = scalar(&co.p) * &s - (&e * sg_end).transpose(-1, -2).matmul(&kc) * two_c;
            m = m_new;
            s = s_new;
            off = (off + len) % c;
            start += len;
        }
        if ys.is_empty() {
            return (q.matmul(&m_start.transpose(-1, -2)), (m, s, m_start));
        }
        (Tensor::cat(&ys, 2), (m, s, m_start))
    }

    /// `[B, H, n·L, …]` → `[B, H, n, L, …]`.
    fn shards(x: &Tensor, n: i64, l: i64) -> Tensor {
        let mut shape = x.size();
        shape[2] = l;
        shape.insert(2, n);
        x.reshape(shape.as_slice())
    }
    /// `[B, H, n, L, …]` → `[B, H, n·L, …]`.
    fn unshard(x: &Tensor) -> Tensor {
        let mut shape = x.size();
        let l = shape.remove(3);
        shape[2] *= l;
        x.reshape(shape.as_slice())
    }
    /// A per-head state `[B, H, …]` repeated for `n` shards `[B, H, n, …]`.
    fn per_shard(x: &Tensor, n: i64) -> Tensor {
        let mut shape = x.size();
        shape.insert(2, n);
        x.unsqueeze(2).expand(shape.as_slice(), false)
    }

    /// The hierarchy (see the module doc) on `k, q [B, H, T, d_k]`, `v [B, H, T, d_v]`, gates `[B, H, T]` and
    /// states in [`Layout`] order.
    pub fn forward(cfg: &TntConfig, k: &Tensor, v: &Tensor, q: &Tensor, gates: &[Tensor], state: &[Tensor]) -> Outputs {
        let lay: Layout = cfg.layout();
        assert_eq!(gates.len(), lay.n_gates(), "tnt: gate count");
        assert_eq!(state.len(), lay.n_states(), "tnt: state count");
        let t_len = k.size()[2];
        let pos = position(&state[lay.pos()], cfg.period());
        let mut out_state: Vec<Tensor> = state.iter().map(|s| s.shallow_clone()).collect();

        // the global memory
        let y_global = lay.global.then(|| {
            let (y, (m, s, m0)) = global_memory(
                cfg,
                k,
                v,
                q,
                (&gates[0], &gates[1], &gates[2]),
                (state[0].shallow_clone(), state[1].shallow_clone(), state[2].shallow_clone()),
                pos,
            );
            out_state[0] = m;
            out_state[1] = s;
            out_state[2] = m0;
            y
        });

        // the local memories: the rest of the current shard with the carried states, then all full shards at
        // once (a batch dimension, each from W_init), then the last partial shard
        let n_local = cfg.local_chunks.len();
        let lg = |i: usize| (&gates[lay.local_gate(i)], &gates[lay.local_gate(i) + 1], &gates[lay.local_gate(i) + 2]);
        let w_init: Vec<Tensor> = (0..n_local).map(|i| state[lay.local_state(i) + 3].shallow_clone()).collect();
        let mut locals: Vec<(Tensor, Tensor, Tensor)> = (0..n_local)
            .map(|i| {
                let j = lay.local_state(i);
                (state[j].shallow_clone(), state[j + 1].shallow_clone(), state[j + 2].shallow_clone())
            })
            .collect();
        let mut proj = state[lay.proj()].shallow_clone();
        let mut y_local: Vec<Vec<Tensor>> = (0..n_local).map(|_| vec![]).collect();
        let project = |kk: &Tensor, qq: &Tensor, p0: &Tensor| {
            let (qt, p) = qk::prefix_project(kk, qq, p0);
            (if cfg.qk_projection { qt } else { qq.shallow_clone() }, p)
        };
        let shard = cfg.shard as i64;
        let mut start = 0i64;
        let phase = (pos % cfg.shard) as i64;
        if phase != 0 && t_len > 0 {
            let len = (shard - phase).min(t_len);
            let (kk, vv, qq) = (k.narrow(2, 0, len), v.narrow(2, 0, len), q.narrow(2, 0, len));
            let (qt, p) = project(&kk, &qq, &proj);
            proj = p;
            for i in 0..n_local {
                let g = lg(i);
                let gs = (&g.0.narrow(2, 0, len), &g.1.narrow(2, 0, len), &g.2.narrow(2, 0, len));
                let ph = pos % cfg.local_chunks[i];
                let st = std::mem::replace(&mut locals[i], (Tensor::new(), Tensor::new(), Tensor::new()));
                let (y, st) = chunkwise_segment(&kk, &vv, &qt, gs, st, ph, cfg.local_chunks[i], cfg.loss_scale);
                y_local[i].push(y);
                locals[i] = st;
            }
            start = len;
        }
        let rest = t_len - start;
        let n_full = rest / shard;
        let tail = rest % shard;
        let fresh = |w0: &Tensor| (w0.shallow_clone(), w0.zeros_like(), w0.shallow_clone());
        if n_full > 0 {
            let sh = |x: &Tensor| shards(&x.narrow(2, start, n_full * shard), n_full, shard);
            let (kk, vv, qq) = (sh(k), sh(v), sh(q));
            let (qt, p) = project(&kk, &qq, &per_shard(&proj.zeros_like(), n_full));
            proj = p.select(2, n_full - 1);
            for i in 0..n_local {
                let g = lg(i);
                let gs = (&sh(g.0), &sh(g.1), &sh(g.2));
                let w0 = per_shard(&w_init[i], n_full);
                let (y, (w, s, ws)) =
                    chunkwise_segment(&kk, &vv, &qt, gs, fresh(&w0), 0, cfg.local_chunks[i], cfg.loss_scale);
                y_local[i].push(unshard(&y));
                locals[i] = (w.select(2, n_full - 1), s.select(2, n_full - 1), ws.select(2, n_full - 1));
            }
            start += n_full * shard;
        }
        if tail > 0 {
            let (kk, vv, qq) = (k.narrow(2, start, tail), v.narrow(2, start, tail), q.narrow(2, start, tail));
            let (qt, p) = project(&kk, &qq, &proj.zeros_like());
            proj = p;
            for i in 0..n_local {
                let g = lg(i);
                let gs = (&g.0.narrow(2, start, tail), &g.1.narrow(2, start, tail), &g.2.narrow(2, start, tail));
                let (y, st) =
                    chunkwise_segment(&kk, &vv, &qt, gs, fresh(&w_init[i]), 0, cfg.local_chunks[i], cfg.loss_scale);
                y_local[i].push(y);
                locals[i] = st;
            }
        }
        let d_v = v.size()[3];
        let empty = || Tensor::zeros([k.size()[0], k.size()[1], 0, d_v], (k.kind(), k.device()));
        let y_local: Vec<Tensor> =
            y_local.into_iter().map(|parts| if parts.is_empty() { empty() } else { Tensor::cat(&parts, 2) }).collect();
        let mut y = match &y_global {
            Some(g) => g.shallow_clone(),
            None => y_local[0].zeros_like(),
        };
        for yl in &y_local {
            y = y + yl;
        }
        for (i, (w, s, ws)) in locals.into_iter().enumerate() {
            let j = lay.local_state(i);
            out_state[j] = w;
            out_state[j + 1] = s;
            out_state[j + 2] = ws;
        }
        out_state[lay.proj()] = proj;
        let new_pos = ((pos + t_len as usize) % cfg.period()) as f64;
        out_state[lay.pos()] = state[lay.pos()].detach().zeros_like() + new_pos;
        Outputs { y, y_global, y_local, state: out_state }
    }
}
