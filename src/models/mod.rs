//! The models, paper-neutral: LMM alone, MAC (memory as a context, Titans arXiv 2501.00663 v1 Eqs. 21–25), MAG
//! (memory as a gate, Eqs. 26–28) and MAL (memory as a layer, Eqs. 29–31), as pre-norm residual blocks
//! `x + Mixer(LN(x))`, `x + FFN(LN(x))` over token embeddings, trainable with autograd through the inner loop.
//! The memory of every block is any [`crate::memory::rule::MemoryRule`] (Titans' linear or deep memory, a
//! MIRAS configuration, Moneta, Yaad, Memora, a preset, …), chosen by `model.memory` and resolved by
//! `crate::memories`; this module names no paper's rule.
//!
//! Readings chosen where v1 is ambiguous (config fields in `model`):
//! * Persistent memory (Eq. 19): each mixer owns `N_p` learned tokens `p` (`persistent_tokens`).
//!   LMM/MAG/MAL prepend them to the sequence (`x̃ = p ‖ x`, Eqs. 26, 29) and drop their outputs; MAC puts them in
//!   front of every segment (Eq. 22).
//! * MAC: segments of `segment_len` tokens. `h = M*_{t−1}(q)` reads the memory left by earlier segments (Eq. 21);
//!   attention (Eq. 23) runs over `p ‖ h ‖ S` with queries at the segment positions only; to stay causal, token i
//!   sees all of `p`, and `h_j`, `x_j` only for `j ≤ i` (h_j is computed from x_j). The memory is then written with
//!   the attention output `y` (Eq. 24) and read after each write; Eq. 25's ⊗ is `mac_combine`: `gate`,
//!   `o = y ⊙ σ(M*_t(y))` (default), or `add`, `o = y + M*_t(y)`.
//! * MAG: sliding-window attention with the persistent prefix always visible (Eq. 27) and the memory over
//!   `x̃` (read after write), combined as `o = LN(y) ⊙ σ(LN(M(x̃)))` with learnable LayerNorm gains (Eq. 28:
//!   "normalise both branches with learnable vector weights, then a non-linearity").
//! * MAL: the memory over `x̃`, then sliding-window attention on its output (Eqs. 30–31), prefix visible.
//! * Positions (`model.attention.positions`, default `rope`): v1 gives attention no position information, and
//!   without any MAC and MAL cannot tell which position of the window a memory read belongs to (on the
//!   quickstart MQAR both stayed at chance). Queries and keys are rotated by their stream positions
//!   ([`rope`]); persistent tokens and always-visible prefix keys are not rotated.
//! * State carry (`forward_with_state`): every model carries its memory state (with the convolution tails)
//!   and its stream position across calls; MAG and MAL also carry the sliding window's last `window − 1`
//!   inputs and the prefix keys, so one call equals chained calls (MAC: at segment boundaries). Persistent
//!   tokens enter on the first call only.
//!
//! * Feed-forward (`model.cms`, optional): every block's `x + FFN(LN(x))` becomes a Continuum Memory System whose
//!   levels learn in context from the next-token loss ([`cms`]; Nested Learning arXiv 2512.24695 v1, Eqs. 70–74
//!   and Hope's output chain, Eq. 97): the model then runs its input in chunks of the smallest period, with an
//!   inner gradient step after each (also under `no_grad`), and carries the fast weights in `LayerState`.
//!
//! [`reference`] is the f64 ndarray reference of every mixer (explicit token and segment loops over the
//! equation references and the rule's own reference); `MemoryLm::mixer_weights` / `MemoryLm::mixer_forward`
//! expose one block's weights and mixer so that the checks (`titans_model_*`, `memory_in_model_*`) compare the
//! two.

pub mod attention;
pub mod blocks;
pub mod checks;
pub mod cms;
pub mod diagnostics;
pub mod lm;
pub mod memory_layer;
pub mod persistent;
pub mod projections;
pub mod reference;
pub mod rope;
pub mod spec;

pub use lm::{LanguageModel, MemoryLm, ModelState};
