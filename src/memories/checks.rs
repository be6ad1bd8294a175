//! One check per memory of the catalogue, derived from the rule's description alone ([`MemoryRule`]): nothing
//! here is written per rule.
//!
//! For each rule (sequential, and chunkwise with C = 3 where the rule has a chunkwise form), on inputs drawn
//! from the rule's own ranges (unit-norm keys and queries, gates on [`GateSpec::draw`], states by
//! [`StateSpec::draw`]) with odd sizes (`B = 2, H = 2, T = 7`, `d_k = 4 ≠ d_v = 3` unless the rule needs them
//! equal):
//! * tch forward vs the f64 reference: outputs `y` and every final state, each read mode the rule defines;
//! * retrieval (`M*(q)` without update) vs the reference;
//! * state carry: one call equals two chained calls split at a chunk boundary;
//! * outer gradients: tch autograd of a random projection `L = ⟨R_y, y⟩ + Σ⟨R_s, s_T⟩` with respect to every
//!   key, value, query, gate and initial state, against central finite differences of the f64 reference;
//! * the rule inside a model: LMM and MAC mixers built around the rule (gates from the layer, learned initial
//!   states, RoPE attention) against the models' f64 reference ([`crate::models::reference::mixer`]).

use super::{build, examples};
use crate::check::{Check, CheckEnv, Measurement};
use crate::memory::batched::{draw, reference_batched, reference_retrieve_batched, torch_forward, RuleInputs};
use crate::memory::rule::MemoryRule;
use crate::memory::ReadMode;
use crate::models::spec::{MemorySpec, ModelKind, ModelSpec};
use crate::models::MemoryLm;
use crate::tensor::{from_tch, inner, round_to_kind, stack_heads, to_tch, Arr, Draw};
use crate::tolerance;
use anyhow::{Context, Result};
use ndarray::{ArrayD, Axis, Ix2, IxDyn};
use std::sync::Arc;
use tch::{nn, Tensor};

fn read_modes(rule: &dyn MemoryRule) -> Vec<ReadMode> {
    if rule.reads_before_write() {
        vec![ReadMode::AfterWrite, ReadMode::BeforeWrite]
    } else {
        vec![ReadMode::AfterWrite]
    }
}

/// Sizes of the drawn problems: `d_k ≠ d_v` unless the rule needs them equal.
fn sizes(rule: &dyn MemoryRule, t: usize) -> (usize, usize, usize, usize, usize) {
    if rule.validate_dims(4, 3).is_ok() {
        (2, 2, t, 4, 3)
    } else {
        (2, 2, t, 3, 3)
    }
}

/// The whole check of one catalogue entry (see the module doc).
pub fn rule_check(env: &CheckEnv, example: &str) -> Result<Vec<Measurement>> {
    let (_, yaml) =
        examples().into_iter().find(|(n, _)| *n == example).with_context(|| format!("no example `{example}`"))?;
    let mut out = vec![];
    for chunk in [1usize, 3] {
        let spec = MemorySpec { chunk_size: chunk, ..MemorySpec::with_rule(yaml) };
        let rule = match build(&spec, 3) {
            Ok(r) => r,
            Err(_) if chunk > 1 => continue, // sequential-only rules
            Err(e) => return Err(e),
        };
        // a rule whose own f64 function is ill-conditioned is compared in f32 at the bound its conditioning allows
        let ill = rule.ill_conditioned_in_f32() && env.kind != tch::Kind::Double;
        let tol = if ill { tolerance::TORCH_F32_ILL_CONDITIONED } else { tolerance::torch_vs_reference(env.kind) };
        let gtol = if ill { tolerance::TORCH_F32_ILL_CONDITIONED } else { tolerance::gradient_vs_reference(env.kind) };
        let gtol = match rule.f32_gradient_tolerance() {
            Some(bound) if env.kind != tch::Kind::Double => gtol.max(bound),
            _ => gtol,
        };
        let n_gates = rule.gates().len();
        for &seed in &env.seeds {
            let seed = seed + 7 * chunk as u64;
            for read in read_modes(rule.as_ref()) {
                let tag = format!("chunk {chunk}, {}, seed {seed}", read.name());
                // forward: outputs and every final state
                let x = draw(rule.as_ref(), seed, sizes(rule.as_ref(), 7), env.kind);
                let (y_ref, st_ref) = reference_batched(rule.as_ref(), &x, read);
                let xt: Vec<Tensor> = x.all().iter().map(|a| to_tch(a, env.kind, env.device)).collect();
                let (y, st) = tch::no_grad(|| torch_forward(rule.as_ref(), &xt, n_gates, read));
                out.push(Measurement::compare(format!("y ({tag})"), &from_tch(&y)?, &y_ref, tol)?);
                let names = rule.state(x.k.shape()[3], x.v.shape()[3]);
                for ((s, r), spec) in st.iter().zip(&st_ref).zip(&names) {
                    out.push(Measurement::compare(format!("{}_T ({tag})", spec.name), &from_tch(s)?, r, tol)?);
                }
                // state carry: T = 7 split after 3 tokens (a chunk boundary for C = 1 and 3)
                let first: Vec<Tensor> = xt
                    .iter()
                    .enumerate()
                    .map(|(i, a)| if i < 3 + n_gates { a.narrow(2, 0, 3) } else { a.shallow_clone() })
                    .collect();
                let (y1, st1) = tch::no_grad(|| torch_forward(rule.as_ref(), &first, n_gates, read));
                let mut second: Vec<Tensor> = xt[..3 + n_gates].iter().map(|a| a.narrow(2, 3, 4)).collect();
                second.extend(st1);
                let (y2, st2) = tch::no_grad(|| torch_forward(rule.as_ref(), &second, n_gates, read));
                let chained = from_tch(&Tensor::cat(&[y1, y2], 2))?;
                out.push(Measurement::compare(format!("chained calls y ({tag})"), &chained, &from_tch(&y)?, tol)?);
                out.push(Measurement::compare(
                    format!("chained calls state ({tag})"),
                    &from_tch(&st2[0])?,
                    &from_tch(&st[0])?,
                    tol,
                )?);
            }
            // retrieval without update
            let x = draw(rule.as_ref(), seed + 1, sizes(rule.as_ref(), 5), env.kind);
            let xt: Vec<Tensor> = x.state.iter().map(|a| to_tch(a, env.kind, env.device)).collect();
            let r = rule.retrieve(&to_tch(&x.q, env.kind, env.device), &xt);
            out.push(Measurement::compare(
                format!("retrieve M*(q) (chunk {chunk}, seed {seed})"),
                &from_tch(&r)?,
                &reference_retrieve_batched(rule.as_ref(), &x),
                tol,
            )?);
            // outer gradients against central finite differences of the reference
            out.extend(gradient_check(rule.as_ref(), env, seed + 2, chunk, gtol)?);
        }
        out.extend(in_model_check(env, &spec, chunk)?);
    }
    Ok(out)
}

/// tch autograd of `L = ⟨R_y, y⟩ + Σ⟨R_s, s_T⟩` vs central finite differences of the same `L` on the reference.
fn gradient_check(
    rule: &dyn MemoryRule,
    env: &CheckEnv,
    seed: u64,
    chunk: usize,
    tol: f64,
) -> Result<Vec<Measurement>> {
    let read = ReadMode::AfterWrite;
    let dims = (1, 2, 5, sizes(rule, 5).3, sizes(rule, 5).4);
    let x = draw(rule, seed, dims, env.kind);
    let n_gates = rule.gates().len();
    let (y0, st0) = reference_batched(rule, &x, read);
    let mut r = Draw::new(seed ^ 0x5eed);
    let ry = r.normal(y0.shape(), 1.0);
    let rs: Vec<Arr> = st0.iter().map(|a| r.normal(a.shape(), 1.0)).collect();
    let loss_ref = |x: &RuleInputs| -> f64 {
        let (y, st) = reference_batched(rule, x, read);
        inner(&ry, &y) + st.iter().zip(&rs).map(|(a, b)| inner(b, a)).sum::<f64>()
    };
    // tch side
    let xt: Vec<Tensor> = x.all().iter().map(|a| to_tch(a, env.kind, env.device).set_requires_grad(true)).collect();
    let (y, st) = torch_forward(rule, &xt, n_gates, read);
    let mut l = (y * to_tch(&ry, env.kind, env.device)).sum(env.kind);
    for (s, w) in st.iter().zip(&rs) {
        l += (s * to_tch(w, env.kind, env.device)).sum(env.kind);
    }
    let grads = Tensor::run_backward(&[l], &xt.iter().collect::<Vec<_>>(), false, false);
    let names = RuleInputs::names(rule, dims.3, dims.4);
    let mut out = vec![];
    let base = x.clone();
    for (i, g) in grads.iter().enumerate() {
        let fd = {
            let h = tolerance::FD_STEP;
            let mut xp = base.clone();
            let n = xp.all()[i].len();
            let mut grad = vec![0.0; n];
            for (j, gj) in grad.iter_mut().enumerate() {
                let x0 = xp.all_mut()[i].as_slice_memory_order().unwrap()[j];
                xp.all_mut()[i].as_slice_memory_order_mut().unwrap()[j] = x0 + h;
                let fp = loss_ref(&xp);
                xp.all_mut()[i].as_slice_memory_order_mut().unwrap()[j] = x0 - h;
                let fm = loss_ref(&xp);
                xp.all_mut()[i].as_slice_memory_order_mut().unwrap()[j] = x0;
                *gj = (fp - fm) / (2.0 * h);
            }
            ArrayD::from_shape_vec(IxDyn(base.all()[i].shape()), grad)?
        };
        let ours = if g.defined() { from_tch(g)? } else { Arr::zeros(fd.raw_dim()) };
        // FD of the f64 reference carries its own error (FINITE_DIFFERENCE); the bound is the larger of the two
        let bound = tol.max(tolerance::FINITE_DIFFERENCE_CHAIN);
        out.push(Measurement::compare(
            format!("dL/d{} (chunk {chunk}, seed {seed}) vs FD", names[i]),
            &ours,
            &fd,
            bound,
        )?);
    }
    Ok(out)
}

/// The rule inside LMM and MAC mixers (D = 10, H = 2, d = 5, N_p = 2, T = 7, θ_max = 0.1; gate biases, learned
/// initial states and persistent tokens moved off their initialisation) against the models' f64 reference.
fn in_model_check(env: &CheckEnv, memory: &MemorySpec, chunk: usize) -> Result<Vec<Measurement>> {
    // θ_max = 0.1 keeps every rule's recurrence bounded over the 9 tokens; at 0.5 Moneta's ℓ3 step (error squared)
    // drives its MAC state to 1e24 in f64 too, where comparing precisions measures nothing
    let memory = MemorySpec { max_lr: Some(0.1), ..memory.clone() };
    let rule: Arc<dyn MemoryRule> = build(&memory, 5)?;
    let conditioned = rule.ill_conditioned_in_f32() && env.kind != tch::Kind::Double;
    let tol = if conditioned { tolerance::TORCH_F32_ILL_CONDITIONED } else { tolerance::torch_vs_reference(env.kind) };
    let mut out = vec![];
    for kind in [ModelKind::Lmm, ModelKind::Mac] {
        let spec = ModelSpec {
            kind,
            dim: 10,
            heads: 2,
            layers: 1,
            persistent_tokens: 2,
            segment_len: 4,
            window: 4,
            memory: memory.clone(),
            mac_combine: Default::default(),
            attention: Default::default(),
            cms: None,
        };
        let rule = rule.clone();
        let seed = env.seeds[0];
        let (vs, model) = crate::tensor::with_torch_seed(seed, || {
            let mut vs = nn::VarStore::new(env.device);
            let model = MemoryLm::new(&vs.root(), &spec, 5, rule);
            vs.set_kind(env.kind);
            (vs, model)
        });
        let mut r = Draw::new(seed + 77);
        for (name, var) in vs.variables() {
            if name.contains("gates.bias") || name.contains("init_") || name.contains("persistent") {
                let shape: Vec<usize> = var.size().iter().map(|&s| s as usize).collect();
                let noise = to_tch(&r.normal(&shape, 0.3), env.kind, env.device);
                tch::no_grad(|| {
                    let _ = var.shallow_clone().f_add_(&noise).expect("in-place add");
                });
            }
        }
        let x = round_to_kind(&r.normal(&[1, 7, 10], 1.0), env.kind);
        let (o, st) = tch::no_grad(|| model.mixer_forward(0, &to_tch(&x, env.kind, env.device)));
        let w = model.mixer_weights(0)?;
        let xr = x.index_axis(Axis(0), 0).into_dimensionality::<Ix2>()?;
        let refr = crate::models::reference::mixer(&w, xr.view());
        let tag = format!("{} mixer, chunk {chunk}", kind.name());
        out.push(Measurement::compare(
            format!("in model: o ({tag})"),
            &from_tch(&o.squeeze_dim(0))?,
            &refr.o.into_dyn(),
            tol,
        )?);
        for (i, s) in st.iter().enumerate() {
            let heads: Vec<ArrayD<f64>> = refr.memory.iter().map(|h| h[i].clone()).collect();
            let stacked = stack_heads(&heads, 1, heads.len());
            out.push(Measurement::compare(format!("in model: state {i} ({tag})"), &from_tch(s)?, &stacked, tol)?);
        }
    }
    Ok(out)
}

macro_rules! rule_checks {
    ($($fn_name:ident => $example:literal, $check:literal, $summary:literal;)*) => {
        $(fn $fn_name(env: &CheckEnv) -> Result<Vec<Measurement>> { rule_check(env, $example) })*
        /// One check per catalogue entry, by the names the registries use.
        pub fn checks() -> Vec<Check> {
            vec![$(Check { name: $check, summary: $summary, run: $fn_name }),*]
        }
    };
}

rule_checks! {
    check_titans_linear => "titans-linear", "memory_titans_linear", "memory interface, Titans linear memory (sequential and C = 3): tch vs reference (y, states, retrieval, chained calls), autograd vs FD of the reference, inside LMM/MAC vs the model reference";
    check_titans_mlp => "titans-mlp", "memory_titans_mlp", "memory interface, Titans deep memory L_M = 2 (SiLU; sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_titans_mlp_gelu => "titans-mlp-gelu", "memory_titans_mlp_gelu", "memory interface, Titans deep memory with exact GELU (titans-pytorch's MemoryMLP activation): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_miras_framework => "miras-framework-huber-momentum", "memory_miras_framework", "memory interface, MIRAS framework (Huber bias, local+global retention, momentum): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_miras_framework_mlp => "miras-framework-mlp", "memory_miras_framework_mlp", "memory interface, MIRAS §5.3 MLP memory x + LN(W1 GELU(W2 x)) (ℓ2, decayed): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_moneta => "moneta", "memory_moneta", "memory interface, Moneta (p = 3, q = 4; sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_yaad => "yaad", "memory_yaad", "memory interface, Yaad (sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_memora => "memora", "memory_memora", "memory interface, Memora (sequential and C = 3 with the lag token): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_linear_attention => "preset-linear-attention", "memory_preset_linear_attention", "memory interface, preset linear-attention: tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_retnet => "preset-retnet", "memory_preset_retnet", "memory interface, preset retnet (γ = 1 − 2⁻⁵): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_mamba2 => "preset-mamba2", "memory_preset_mamba2", "memory interface, preset mamba2 (A = −1, Δ_t learned): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_deltanet => "preset-deltanet", "memory_preset_deltanet", "memory interface, preset deltanet: tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_gated_deltanet => "preset-gated-deltanet", "memory_preset_gated_deltanet", "memory interface, preset gated-deltanet: tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_longhorn => "preset-longhorn", "memory_preset_longhorn", "memory interface, preset longhorn: tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_ttt_linear => "preset-ttt-linear", "memory_preset_ttt_linear", "memory interface, preset ttt-linear: tch vs reference, autograd vs FD, inside LMM/MAC";
    check_atlas_omega_linear => "atlas-omega-linear", "memory_atlas_omega_linear", "memory interface, ATLAS Omega rule, linear memory, c = 3, p = 2 (sequential and C = 3 with the window halo): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_atlas_omeganet => "atlas-omeganet", "memory_atlas_omeganet", "memory interface, ATLAS OmegaNet: Omega rule on a 2-layer MLP memory, c = 2, p = 2 (sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_atlas_atlas_linear => "atlas-atlas-linear", "memory_atlas_atlas_linear", "memory interface, ATLAS Atlas (Omega + Muon NS-5), linear memory, c = 3, p = 2 (sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_atlas_atlas_deep => "atlas-atlas-deep", "memory_atlas_atlas_deep", "memory interface, ATLAS Atlas with a 2-layer MLP memory (NS-5 per weight matrix), c = 2, p = 2 (sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_atlas_swla => "atlas-swla", "memory_atlas_swla", "memory interface, ATLAS SWLA (dot-product bias over a window c = 3, p = 2, linear memory; sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_atlas_dla_deep => "atlas-dla-deep", "memory_atlas_dla_deep", "memory interface, ATLAS deep DLA / DeepTransformer (Eqs. 19, 25, 50: dot-product bias, c = 1, φ* truncated at degree 2, 2-layer MLP memory; sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_tnt => "tnt", "memory_tnt", "memory interface, TNT hierarchy (C_G = 1 and 3, local memories C_L = 2 and 1, S_L = 4, Q-K projection): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_nl_hope => "nl-hope", "memory_nl_hope", "memory interface, NL self-modifying Titans (Hope's inner system): key, value and main residual SiLU MLP memories (expansion 1) with self-generated targets, layer-wise DGD with decay (sequential and C = 3; before-write in the model): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_nl_hope_adaptive_q_gd => "nl-hope-adaptive-q-gd", "memory_nl_hope_adaptive_q_gd", "memory interface, NL self-modifying Titans as Eqs. 79–82 with the Table 6 ablation w/o DGD: key, value and query GELU MLP memories, shared target v, each memory keyed by its own output (the printed Eq. 80), plain GD with decay (sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_nl_hope_linear_dot => "nl-hope-linear-dot", "memory_nl_hope_linear_dot", "memory interface, NL self-modifying Titans with linear memories and the dot-product objective (Eq. 92, sign corrected), adaptive key, the layer's unnormalised value (sequential and C = 3): tch vs reference, autograd vs FD, inside LMM/MAC";
    check_preset_titans_lmm => "preset-titans-lmm", "memory_preset_titans_lmm", "memory interface, preset titans-lmm: tch vs reference, autograd vs FD, inside LMM/MAC";
}
