//! Titans (arXiv 2501.00663 v1) §3.2, Eqs. 16–18: the parallel (chunkwise, "mini-batch") form of the memory
//! update, in the consistent form recorded with its corrections in `papers/titans.yaml` (Eqs. 16–18).
//!
//! Chunk size `C` (the paper's `b`). Chunk `c` covers tokens `t'+1 … t'+C`, `t' = C(c−1)`; inside the chunk
//! **every gradient is taken at the chunk-start state** `M_{t'}` while momentum and forgetting still run token
//! by token (this *defines* the chunked model; `C = 1` is the sequential rule of Eqs. 13–14, and for `C > 1` it
//! is a different function of the inputs, not an approximation error):
//! $$u_i = \nabla\ell(M_{t'}; k_i, v_i),\qquad S_t = \eta_t S_{t-1} - \theta_t u_t\ \text{(Eq. 18)},\qquad
//!   M_t = (1-\alpha_t) M_{t-1} + S_t.$$
//! Writing `τ` for the position inside the chunk, with products over ranges (never ratios of small products)
//! $$D_{\tau j} = \prod_{m=j+1}^{\tau}(1-\alpha_m),\quad H_{\tau i} = \prod_{m=i+1}^{\tau}\eta_m,\quad
//!   \beta_\tau = D_{\tau 0},\quad P_\tau = H_{\tau 0},$$
//! $$\rho_\tau = \sum_{j=1}^{\tau} D_{\tau j} P_j,\qquad
//!   \Gamma_{\tau i} = \theta_i \sum_{j=i}^{\tau} D_{\tau j} H_{j i}\ \ (i \ge 1),$$
//! the states of the chunk are (Eq. 16 corrected: restarts per chunk, `t' = C⌊(t−1)/C⌋`, momentum included)
//! $$M_\tau = \beta_\tau M_{t'} + \rho_\tau S_{t'} - \sum_{i\le\tau} \Gamma_{\tau i}\,u_i,\qquad
//!   S_\tau = P_\tau S_{t'} - \sum_{i\le\tau}\theta_i H_{\tau i}\,u_i .$$
//! For the linear memory `u_i = 2c\,e_i k_i^\top` with `E = M_{t'}K - V`, so (Eq. 17 corrected: keys and values
//! distinct, factor 2 written, the weights between the error matrix and `Kᵀ`)
//! $$\sum_i \theta_i\frac{\beta_C}{\beta_i}\nabla\ell(M_{t'}; k_i, v_i)\Big|_{\eta=0} = 2c\,E\,\mathrm{diag}(\Gamma_{C\cdot})K^\top,$$
//! and all read-after-write outputs of the chunk at once:
//! $$Y = \mathrm{diag}(\beta)\,(Q M_{t'}^\top) + \mathrm{diag}(\rho)\,(Q S_{t'}^\top) - 2c\,\big((Q K^\top)\odot\Gamma\big)E$$
//! (rows are tokens). Read-before-write uses the rows `τ − 1` of the same coefficients.
//!
//! For the MLP memory the per-token gradients `u_i` at `M_{t'}` are computed in one batched autograd call
//! (each token gets its own copy of the chunk-start weights, so `∂Σ_iℓ_i/∂W_i = ∇ℓ_i`: per-sample gradients
//! via batched matmuls, no loop over tokens), the same scalar `Γ` mixes them for every weight matrix, and every
//! read `M_τ(q_τ)` uses the materialised `M_τ` (exact read-after-write semantics, not read-after-chunk).
//!
//! A sequence whose length is not a multiple of `C` ends with a shorter chunk. State `(M, S)` carries across
//! calls: two chained calls split at a multiple of `C` equal one call.
//!
//! [`reference`]: the mini-batch semantics written token by token in f64 (frozen gradients, explicit loop).
//! [`torch`]: the closed form above, batched, differentiable by autograd.

pub use crate::memory::ReadMode;

/// The f64 reference: token by token, the gradient of every token taken at the state saved at its chunk's
/// start.
pub mod reference {
    use super::ReadMode;
    use crate::titans::linear_memory::reference::Inputs as LinearInputs;
    use crate::titans::mlp_memory::reference::{apply, inner_grad, Inputs as MlpInputs, Trace as MlpTrace};
    use crate::titans::mlp_memory::MlpConfig;
    use ndarray::Array2;

    /// `(y, M_T, S_T)` of the linear memory under mini-batch semantics with chunk size `chunk`.
    pub fn linear_forward(
        inp: &LinearInputs,
        chunk: usize,
        loss_scale: f64,
        read: ReadMode,
    ) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        assert!(chunk >= 1, "chunk size must be at least 1");
        let (t_len, d_v, d_k) = (inp.k.nrows(), inp.m0.nrows(), inp.m0.ncols());
        let mut m = inp.m0.clone();
        let mut s = inp.s0.clone();
        let mut m_start = m.clone();
        let mut y = Array2::zeros((t_len, d_v));
        for t in 0..t_len {
            if t % chunk == 0 {
                // t' = C⌊(t−1)/C⌋ (1-based): the state just before this chunk
                m_start = m.clone();
            }
            // Eq. 18: u_t = ∇ℓ(M_{t'}; k_t, v_t) = 2c (M_{t'}k_t − v_t) k_tᵀ, frozen at the chunk start
            let e: Vec<f64> = (0..d_v)
                .map(|i| (0..d_k).map(|j| m_start[[i, j]] * inp.k[[t, j]]).sum::<f64>() - inp.v[[t, i]])
                .collect();
            let m_prev = m.clone();
            for i in 0..d_v {
                for j in 0..d_k {
                    let u = 2.0 * loss_scale * e[i] * inp.k[[t, j]];
                    // Eq. 18: S_t = η_t S_{t−1} − θ_t u_t
                    s[[i, j]] = inp.eta[t] * s[[i, j]] - inp.theta[t] * u;
                    // Eq. 13: M_t = (1 − α_t) M_{t−1} + S_t
                    m[[i, j]] = (1.0 - inp.alpha[t]) * m[[i, j]] + s[[i, j]];
                }
            }
            let read_from = if read == ReadMode::AfterWrite { &m } else { &m_prev };
            y.row_mut(t).assign(&read_from.dot(&inp.q.row(t)));
        }
        (y, m, s)
    }

    /// The MLP memory under mini-batch semantics (hand-backprop gradients at the chunk-start weights).
    pub fn mlp_forward(inp: &MlpInputs, cfg: &MlpConfig, chunk: usize, loss_scale: f64, read: ReadMode) -> MlpTrace {
        assert!(chunk >= 1, "chunk size must be at least 1");
        let t_len = inp.k.nrows();
        let mut y = Array2::zeros((t_len, inp.v.ncols()));
        let mut m = inp.m0.clone();
        let mut s = inp.s0.clone();
        let mut m_start = m.clone();
        for t in 0..t_len {
            if t % chunk == 0 {
                m_start = m.clone();
            }
            let u = inner_grad(&m_start, cfg, inp.k.row(t), inp.v.row(t), loss_scale);
            let m_prev = m.clone();
            for l in 0..m.len() {
                s[l] = &s[l] * inp.eta[t] - &u[l] * inp.theta[t];
                m[l] = &m[l] * (1.0 - inp.alpha[t]) + &s[l];
            }
            let read_from = if read == ReadMode::AfterWrite { &m } else { &m_prev };
            y.row_mut(t).assign(&apply(read_from, cfg, inp.q.row(t)));
        }
        MlpTrace { y, m_final: m, s_final: s }
    }
}

/// The closed form, batched over `[B, H]` (and over chunks for the gate coefficients).
pub mod torch {
    use super::ReadMode;
    use crate::titans::linear_memory::torch::Outputs;
    use crate::titans::mlp_memory::torch::{apply_per_token, autograd_grads, Outputs as MlpOutputs};
    use crate::titans::mlp_memory::MlpConfig;
    use tch::{Kind, Tensor};

    /// The chunk's decay/momentum coefficients for gates `[.., C]` (any leading dims), indexed by the state
    /// position `r = 0 … C` (state after `r` tokens of the chunk) and the token `i = 1 … C` (stored at `i − 1`).
    #[derive(Debug)]
    pub struct Coefficients {
        /// `β_r = Π_{m≤r}(1 − α_m)`, `[.., C+1]`
        pub beta: Tensor,
        /// `P_r = Π_{m≤r} η_m`, `[.., C+1]`
        pub p: Tensor,
        /// `ρ_r = Σ_{j≤r} (β_r/β_j) P_j`, `[.., C+1]`
        pub rho: Tensor,
        /// `Γ_{r i} = θ_i Σ_{j=i}^{r} D_{rj} H_{ji}`, the weight of `u_i` in `M_r`, `[.., C+1, C]`
        pub gamma: Tensor,
        /// `θ_i H_{r i}`, the weight of `u_i` in `S_r`, `[.., C+1, C]`
        pub s_gamma: Tensor,
    }

    /// Builds the coefficients with products over ranges: `D` and `H` are cumulative products down the rows
    /// of matrices holding the gate below the diagonal and 1 elsewhere (no logs, no divisions, exact zeros).
    pub fn coefficients(alpha: &Tensor, eta: &Tensor, theta: &Tensor) -> Coefficients {
        let (kind, device) = (alpha.kind(), alpha.device());
        let c = *alpha.size().last().unwrap();
        let n = c + 1;
        let mut lead = alpha.size();
        lead.pop();
        let mut first_shape = lead.clone();
        first_shape.push(1);
        let zero = Tensor::zeros(first_shape.as_slice(), (kind, device));
        // a_0 = 0, η_0 = 0 are never used (the r > j mask excludes row 0)
        let a = Tensor::cat(&[&zero, alpha], -1);
        let e = Tensor::cat(&[&zero, eta], -1);
        let idx = Tensor::arange(n, (Kind::Int64, device));
        let strict = idx.unsqueeze(1).gt_tensor(&idx.unsqueeze(0)); // r > j
        let lower = idx.unsqueeze(1).ge_tensor(&idx.unsqueeze(0)).to_kind(kind); // r ≥ j
        let mut full = lead.clone();
        full.push(n);
        full.push(n);
        let ones = Tensor::ones(full.as_slice(), (kind, device));
        // D_{rj} = Π_{m=j+1}^{r} (1 − α_m) for r ≥ j, else 0
        let one_minus_a: Tensor = a.ones_like() - &a;
        let d = one_minus_a.unsqueeze(-1).expand(full.as_slice(), false).where_self(&strict, &ones).cumprod(-2, kind)
            * &lower;
        // H_{ri} = Π_{m=i+1}^{r} η_m for r ≥ i, else 0
        let h = e.unsqueeze(-1).expand(full.as_slice(), false).where_self(&strict, &ones).cumprod(-2, kind) * &lower;
        let beta = d.select(-1, 0);
        let p = h.select(-1, 0);
        // K_{ri} = Σ_{j=1}^{r} D_{rj} H_{ji}: column j = 0 of D dropped (the sum starts at the first token)
        let col_mask = idx.ge(1).to_kind(kind);
        let kmat = (d * col_mask).matmul(&h);
        let rho = kmat.select(-1, 0);
        let th = theta.unsqueeze(-2);
        let gamma = kmat.narrow(-1, 1, c) * &th;
        let s_gamma = h.narrow(-1, 1, c) * &th;
        Coefficients { beta, p, rho, gamma, s_gamma }
    }

    /// One chunk's coefficients selected from a batch of chunks (`select(dim, index)` on every field).
    fn pick(co: &Coefficients, dim: i64, index: i64) -> Coefficients {
        Coefficients {
            beta: co.beta.select(dim, index),
            p: co.p.select(dim, index),
            rho: co.rho.select(dim, index),
            gamma: co.gamma.select(dim, index),
            s_gamma: co.s_gamma.select(dim, index),
        }
    }

    /// Splits `[B, H, T]` gates into the coefficients of the full chunks (`[B, H, N, ...]`, computed at once)
    /// and of the shorter tail chunk, if any.
    pub(crate) fn all_coefficients(
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        chunk: i64,
    ) -> (Option<Coefficients>, Option<Coefficients>) {
        let (b, h, t) = (alpha.size()[0], alpha.size()[1], alpha.size()[2]);
        let n_full = t / chunk;
        let tail = t - n_full * chunk;
        let full = (n_full > 0).then(|| {
            let r = |g: &Tensor| g.narrow(2, 0, n_full * chunk).reshape([b, h, n_full, chunk]);
            coefficients(&r(alpha), &r(eta), &r(theta))
        });
        let last = (tail > 0).then(|| {
            let r = |g: &Tensor| g.narrow(2, n_full * chunk, tail);
            coefficients(&r(alpha), &r(eta), &r(theta))
        });
        (full, last)
    }

    pub(crate) fn chunk_coefficients(
        full: &Option<Coefficients>,
        last: &Option<Coefficients>,
        index: i64,
        n_full: i64,
    ) -> Coefficients {
        if index < n_full {
            pick(full.as_ref().unwrap(), 2, index)
        } else {
            let l = last.as_ref().unwrap();
            Coefficients {
                beta: l.beta.shallow_clone(),
                p: l.p.shallow_clone(),
                rho: l.rho.shallow_clone(),
                gamma: l.gamma.shallow_clone(),
                s_gamma: l.s_gamma.shallow_clone(),
            }
        }
    }

    /// Eqs. 16–18's chunk loop, shared by every chunkwise form: splits `[B, H, T]` gates into chunks of `chunk`
    /// (the last one shorter), calls `step(start, len, coefficients)` on each in order (the caller carries its
    /// state in the closure) and concatenates the per-chunk outputs along time; `T = 0` gives `[B, H, 0, d_v]`.
    pub(crate) fn over_chunks(
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        chunk: usize,
        d_v: i64,
        mut step: impl FnMut(i64, i64, &Coefficients) -> Tensor,
    ) -> Tensor {
        assert!(chunk >= 1, "chunk size must be at least 1");
        let chunk = chunk as i64;
        let t_len = alpha.size()[2];
        let n_full = t_len / chunk;
        let (full, last) = all_coefficients(alpha, eta, theta, chunk);
        let mut ys = vec![];
        let (mut start, mut index) = (0, 0);
        while start < t_len {
            let len = chunk.min(t_len - start);
            ys.push(step(start, len, &chunk_coefficients(&full, &last, index, n_full)));
            start += len;
            index += 1;
        }
        if ys.is_empty() {
            Tensor::zeros([alpha.size()[0], alpha.size()[1], 0, d_v], (alpha.kind(), alpha.device()))
        } else {
            Tensor::cat(&ys, 2)
        }
    }

    /// Eqs. 16–18 for the linear memory, chunk by chunk in matrix form. Shapes as
    /// [`crate::titans::linear_memory::torch::forward`]; `chunk = 1` is the sequential rule.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        m0: &Tensor,
        s0: &Tensor,
        chunk: usize,
        loss_scale: f64,
        read: ReadMode,
    ) -> Outputs {
        let mut m = m0.shallow_clone();
        let mut s = s0.shallow_clone();
        let y = over_chunks(alpha, eta, theta, chunk, v.size()[3], |start, len, co| {
            let (kc, vc, qc) = (k.narrow(2, start, len), v.narrow(2, start, len), q.narrow(2, start, len));
            // errors at the chunk start, rows are tokens: E = K M_{t'}ᵀ − V
            let e = kc.matmul(&m.transpose(-1, -2)) - &vc;
            // rows of the coefficients that the reads use: r = τ (after write) or τ − 1 (before)
            let off = if read == ReadMode::AfterWrite { 1 } else { 0 };
            let beta_r = co.beta.narrow(-1, off, len).unsqueeze(-1);
            let rho_r = co.rho.narrow(-1, off, len).unsqueeze(-1);
            let gamma_r = co.gamma.narrow(-2, off, len);
            // Y = diag(β)(Q M_{t'}ᵀ) + diag(ρ)(Q S_{t'}ᵀ) − 2c ((Q Kᵀ) ⊙ Γ) E
            let y = beta_r * qc.matmul(&m.transpose(-1, -2)) + rho_r * qc.matmul(&s.transpose(-1, -2))
                - (qc.matmul(&kc.transpose(-1, -2)) * gamma_r).matmul(&e) * (2.0 * loss_scale);
            // end of chunk, Eq. 17 (corrected) with momentum:
            // M_C = β_C M_{t'} + ρ_C S_{t'} − 2c Eᵀ diag(Γ_{C·}) K,  S_C = P_C S_{t'} − 2c Eᵀ diag(θ_i H_{Ci}) K
            let g_end = co.gamma.select(-2, len).unsqueeze(-1);
            let sg_end = co.s_gamma.select(-2, len).unsqueeze(-1);
            let scalar = |x: &Tensor| x.select(-1, len).unsqueeze(-1).unsqueeze(-1);
            let m_new = scalar(&co.beta) * &m + scalar(&co.rho) * &s
                - (&e * g_end).transpose(-1, -2).matmul(&kc) * (2.0 * loss_scale);
            let s_new = scalar(&co.p) * &s - (&e * sg_end).transpose(-1, -2).matmul(&kc) * (2.0 * loss_scale);
            m = m_new;
            s = s_new;
            y
        });
        Outputs { y, m_final: m, s_final: s }
    }

    /// Per-token gradients at shared weights, in one autograd call: `params[l]` `[B, H, rows, cols]`,
    /// `k [B, H, N, d_k]`, `v [B, H, N, d_v]`; returns `u[l]` `[B, H, N, rows, cols]` with
    /// `u[l][.., i, :, :] = ∇_{W^{(l)}} c‖M(k_i) − v_i‖²`.
    pub fn per_token_grads(params: &[Tensor], cfg: &MlpConfig, k: &Tensor, v: &Tensor, loss_scale: f64) -> Vec<Tensor> {
        let n = k.size()[2];
        // one copy of the weights per token: the loss of token i only touches copy i
        let copies: Vec<Tensor> = params
            .iter()
            .map(|p| {
                let mut shape = p.size();
                shape.insert(2, n);
                p.unsqueeze(2).expand(shape.as_slice(), false).contiguous()
            })
            .collect();
        let upstream = k.requires_grad() || v.requires_grad();
        autograd_grads(
            &copies,
            |w| {
                let e = apply_per_token(w, cfg, k) - v;
                (e.square() * loss_scale).sum(e.kind())
            },
            upstream,
        )
    }

    /// `Σ_i weights[.., r, i] · u[.., i, ...]` for every `r`: `[.., R, N] × [.., N, rows, cols] → [.., R, rows, cols]`.
    fn mix(weights: &Tensor, u: &Tensor) -> Tensor {
        let s = u.size();
        let (b, h, n, rows, cols) = (s[0], s[1], s[2], s[3], s[4]);
        let r = weights.size()[2];
        weights.matmul(&u.reshape([b, h, n, rows * cols])).reshape([b, h, r, rows, cols])
    }

    /// Eqs. 16–18 for the MLP memory: per-token gradients at the chunk start (batched), states of the chunk
    /// materialised from the coefficients, reads with the materialised weights. Shapes as
    /// [`crate::titans::mlp_memory::torch::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn mlp_forward(
        k: &Tensor,
        v: &Tensor,
        q: &Tensor,
        alpha: &Tensor,
        eta: &Tensor,
        theta: &Tensor,
        m0: &[Tensor],
        s0: &[Tensor],
        cfg: &MlpConfig,
        chunk: usize,
        loss_scale: f64,
        read: ReadMode,
    ) -> MlpOutputs {
        let mut m: Vec<Tensor> = m0.iter().map(|p| p.shallow_clone()).collect();
        let mut s: Vec<Tensor> = s0.iter().map(|p| p.shallow_clone()).collect();
        let off = if read == ReadMode::AfterWrite { 1 } else { 0 };
        let y = over_chunks(alpha, eta, theta, chunk, v.size()[3], |start, len, co| {
            let (kc, vc, qc) = (k.narrow(2, start, len), v.narrow(2, start, len), q.narrow(2, start, len));
            // Eq. 18: u_i = ∇ℓ(M_{t'}; k_i, v_i) for every token of the chunk at once
            let u = per_token_grads(&m, cfg, &kc, &vc, loss_scale);
            let bc = |x: &Tensor| x.unsqueeze(-1).unsqueeze(-1);
            let mut states = vec![];
            let mut m_new = vec![];
            let mut s_new = vec![];
            for l in 0..m.len() {
                // M_τ = β_τ M_{t'} + ρ_τ S_{t'} − Σ_i Γ_{τi} u_i for the states the reads use
                let m0l = m[l].unsqueeze(2);
                let s0l = s[l].unsqueeze(2);
                states.push(
                    bc(&co.beta.narrow(-1, off, len)) * &m0l + bc(&co.rho.narrow(-1, off, len)) * &s0l
                        - mix(&co.gamma.narrow(-2, off, len), &u[l]),
                );
                // end of chunk
                let end = |x: &Tensor| x.narrow(-1, len, 1).unsqueeze(-1).unsqueeze(-1);
                m_new.push(
                    (end(&co.beta) * &m0l + end(&co.rho) * &s0l - mix(&co.gamma.narrow(-2, len, 1), &u[l]))
                        .squeeze_dim(2),
                );
                s_new.push((end(&co.p) * &s0l - mix(&co.s_gamma.narrow(-2, len, 1), &u[l])).squeeze_dim(2));
            }
            // Eq. 15 with the materialised M_τ of every token
            let y = apply_per_token(&states, cfg, &qc);
            m = m_new;
            s = s_new;
            y
        });
        MlpOutputs { y, m_final: m, s_final: s }
    }
}
