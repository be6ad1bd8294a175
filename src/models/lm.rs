//! A token-level model built from memory blocks (LMM, MAC, MAG, MAL); see the module above for the readings
//! of Titans §4, and [`MemoryLayer`] for the memory, which is any [`MemoryRule`].

use super::blocks::{Attention, FeedForward};
use super::cms::{self, Cms, CmsSpec, CmsState};
use super::memory_layer::{MemoryLayer, MemoryState};
use super::reference::{LayerNormWeights, MixerWeights};
use super::spec::{MacCombine, ModelKind, ModelSpec, Positions};
use crate::memory::rule::MemoryRule;
use crate::memory::ReadMode;
use anyhow::Result;
use std::sync::Arc;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// What the training loop needs of a model: logits for a batch of token sequences.
pub trait LanguageModel: std::fmt::Debug {
    /// Logits `[B, T, V]` for tokens `[B, T]`.
    fn forward(&self, tokens: &Tensor) -> Tensor;
    /// One line for logs and manifests.
    fn describe(&self) -> String;
}

#[derive(Debug)]
enum Mixer {
    Lmm { memory: MemoryLayer },
    Mac { memory: MemoryLayer, attn: Attention, segment: i64, combine: MacCombine },
    Mag { memory: MemoryLayer, attn: Attention, window: i64, ln_y: nn::LayerNorm, ln_m: nn::LayerNorm },
    Mal { memory: MemoryLayer, attn: Attention, window: i64 },
}

impl Mixer {
    fn memory(&self) -> &MemoryLayer {
        match self {
            Mixer::Lmm { memory }
            | Mixer::Mac { memory, .. }
            | Mixer::Mag { memory, .. }
            | Mixer::Mal { memory, .. } => memory,
        }
    }
}

/// A block's feed-forward sub-layer: the ordinary MLP, or a CMS that learns in context (`model.cms`).
#[derive(Debug)]
enum Ffn {
    Plain(FeedForward),
    Cms(Cms),
}

#[derive(Debug)]
struct Block {
    ln1: nn::LayerNorm,
    ln2: nn::LayerNorm,
    mixer: Mixer,
    ffn: Ffn,
    /// N_p persistent tokens `[N_p, D]` (Titans Eq. 19), absent when N_p = 0
    persistent: Option<Tensor>,
}

/// What one block carries from one call to the next: the memory (and its convolution tails), the attention's
/// always-visible prefix keys (MAG: the persistent tokens; MAL: the memory's outputs at their positions), the
/// last `window − 1` attention inputs (MAG/MAL's sliding window reaches back into the previous call), and the
/// number of tokens already seen (the RoPE position of the next token); with `model.cms`, the CMS's fast weights,
/// accumulators and token count (and, in the last block, the logits awaiting the next call's first token).
#[derive(Debug)]
pub struct LayerState {
    pub memory: MemoryState,
    pub prefix_keys: Option<Tensor>,
    pub window_tail: Option<Tensor>,
    pub position: i64,
    pub cms: Option<CmsState>,
}

impl LayerState {
    /// Cuts the graph behind every carried tensor except the CMS's (whose fast weights the logits awaiting their
    /// target still depend on).
    fn detach(&mut self) {
        let cut = |t: &mut Option<Tensor>| *t = t.as_ref().map(Tensor::detach);
        self.memory.tensors = self.memory.tensors.iter().map(Tensor::detach).collect();
        cut(&mut self.memory.tail);
        cut(&mut self.memory.read_tail);
        cut(&mut self.prefix_keys);
        cut(&mut self.window_tail);
    }
}

/// Per-layer state carried between calls.
pub type ModelState = Vec<LayerState>;

/// Embedding → blocks → LayerNorm → vocabulary logits.
#[derive(Debug)]
pub struct MemoryLm {
    embed: nn::Embedding,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
    head: nn::Linear,
    kind: ModelKind,
    read: ReadMode,
    rule: Arc<dyn MemoryRule>,
    cms: Option<CmsSpec>,
}

impl MemoryLm {
    /// Builds the model; every block's memory layer runs `rule` (see `crate::memories::build`).
    pub fn new(p: &nn::Path, spec: &ModelSpec, vocab: usize, rule: Arc<dyn MemoryRule>) -> Self {
        let d = spec.dim as i64;
        let h = spec.heads as i64;
        let rope = match spec.attention.positions {
            Positions::Rope => Some(spec.attention.rope_base),
            Positions::None => None,
        };
        let blocks = (0..spec.layers)
            .map(|i| {
                let bp = p / format!("block{i}");
                let memory = MemoryLayer::new(&(&bp / "memory"), d, h, &spec.memory, rule.clone());
                let attn = || Attention::new(&(&bp / "attn"), d, h, rope);
                let mixer = match spec.kind {
                    ModelKind::Lmm => Mixer::Lmm { memory },
                    ModelKind::Mac => {
                        Mixer::Mac { memory, attn: attn(), segment: spec.segment_len as i64, combine: spec.mac_combine }
                    }
                    ModelKind::Mag => Mixer::Mag {
                        memory,
                        attn: attn(),
                        window: spec.window as i64,
                        ln_y: nn::layer_norm(&bp / "ln_y", vec![d], Default::default()),
                        ln_m: nn::layer_norm(&bp / "ln_m", vec![d], Default::default()),
                    },
                    ModelKind::Mal => Mixer::Mal { memory, attn: attn(), window: spec.window as i64 },
                };
                let persistent = (spec.persistent_tokens > 0).then(|| {
                    bp.var(
                        "persistent",
                        &[spec.persistent_tokens as i64, d],
                        nn::Init::Randn { mean: 0.0, stdev: 0.02 },
                    )
                });
                Block {
                    ln1: nn::layer_norm(&bp / "ln1", vec![d], Default::default()),
                    ln2: nn::layer_norm(&bp / "ln2", vec![d], Default::default()),
                    mixer,
                    ffn: match &spec.cms {
                        None => Ffn::Plain(FeedForward::new(&(&bp / "ffn"), d)),
                        Some(c) => Ffn::Cms(Cms::new(&(&bp / "cms"), d, c)),
                    },
                    persistent,
                }
            })
            .collect();
        Self {
            embed: nn::embedding(p / "embed", vocab as i64, d, Default::default()),
            blocks,
            ln_f: nn::layer_norm(p / "ln_f", vec![d], Default::default()),
            head: nn::linear(p / "head", d, vocab as i64, Default::default()),
            kind: spec.kind,
            read: spec.memory.read,
            rule,
            cms: spec.cms.clone(),
        }
    }

    /// Logits `[B, T, V]` for tokens `[B, T]`.
    pub fn forward(&self, tokens: &Tensor) -> Tensor {
        self.run(tokens, None).0
    }

    /// Like [`forward`](Self::forward) but starting from (and returning) the state of every block, so that a
    /// long sequence can be processed in pieces: one call equals chained calls (MAC: pieces of whole segments).
    pub fn forward_with_state(&self, tokens: &Tensor, state: Option<ModelState>) -> Result<(Tensor, ModelState)> {
        anyhow::ensure!(tokens.dim() == 2, "tokens must be [B, T], got shape {:?}", tokens.size());
        if let Some(s) = &state {
            anyhow::ensure!(
                s.len() == self.blocks.len(),
                "state has {} layers, the model {}",
                s.len(),
                self.blocks.len()
            );
        }
        Ok(self.run(tokens, state))
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    pub fn rule(&self) -> &Arc<dyn MemoryRule> {
        &self.rule
    }

    /// Block `layer`'s CMS (with `model.cms`).
    pub fn cms(&self, layer: usize) -> Option<&Cms> {
        match &self.blocks[layer].ffn {
            Ffn::Cms(c) => Some(c),
            Ffn::Plain(_) => None,
        }
    }

    /// The mixer of block `layer` alone on its input `x [B, T, D]` (what the block feeds it: `LN₁` of the
    /// residual stream), from a fresh state: returns the mixer output `[B, T, D]` and the memory layer's final
    /// state tensors `[B, H, …]`. The checks compare it with [`crate::models::reference::mixer`].
    pub fn mixer_forward(&self, layer: usize, x: &Tensor) -> (Tensor, Vec<Tensor>) {
        let (o, st) = self.blocks[layer].mix(x, None, self.read);
        (o, st.memory.tensors)
    }

    /// The weights of block `layer`'s mixer as f64 arrays, for the reference.
    pub fn mixer_weights(&self, layer: usize) -> Result<MixerWeights> {
        let block = &self.blocks[layer];
        let d = block.mixer.memory().weights()?;
        let dim = d.wq.ncols();
        let persistent = match &block.persistent {
            Some(p) => super::blocks::matrix(p)?,
            None => ndarray::Array2::zeros((0, dim)),
        };
        let ln = |l: &nn::LayerNorm| -> Result<LayerNormWeights> {
            Ok(LayerNormWeights {
                gain: super::blocks::vector(l.ws.as_ref().expect("affine LayerNorm"))?,
                bias: super::blocks::vector(l.bs.as_ref().expect("affine LayerNorm"))?,
                eps: nn::LayerNormConfig::default().eps,
            })
        };
        let mut w = MixerWeights {
            kind: self.kind,
            memory: d,
            read: self.read,
            attn: None,
            persistent,
            segment: 0,
            window: 0,
            combine: MacCombine::Gate,
            ln_y: None,
            ln_m: None,
        };
        match &block.mixer {
            Mixer::Lmm { .. } => {}
            Mixer::Mac { attn, segment, combine, .. } => {
                w.attn = Some(attn.weights()?);
                w.segment = *segment as usize;
                w.combine = *combine;
            }
            Mixer::Mag { attn, window, ln_y, ln_m, .. } => {
                w.attn = Some(attn.weights()?);
                w.window = *window as usize;
                w.ln_y = Some(ln(ln_y)?);
                w.ln_m = Some(ln(ln_m)?);
            }
            Mixer::Mal { attn, window, .. } => {
                w.attn = Some(attn.weights()?);
                w.window = *window as usize;
            }
        }
        Ok(w)
    }

    fn run(&self, tokens: &Tensor, state: Option<ModelState>) -> (Tensor, ModelState) {
        match &self.cms {
            Some(spec) if spec.lr > 0.0 && tokens.size()[1] > 0 => self.run_in_context(tokens, state, spec),
            _ => {
                let (logits, mut states) = self.run_blocks(tokens, state);
                // static CMS (η = 0): nothing to learn, only the token count moves
                for (block, st) in self.blocks.iter().zip(states.iter_mut()) {
                    if let (Ffn::Cms(c), Some(cs)) = (&block.ffn, st.cms.as_mut()) {
                        c.advance(cs, tokens.size()[1], false, false);
                    }
                }
                (logits, states)
            }
        }
    }

    /// Embedding → blocks → head on `tokens` with the given state (the CMS's fast weights as they are).
    fn run_blocks(&self, tokens: &Tensor, state: Option<ModelState>) -> (Tensor, ModelState) {
        let mut x = self.embed.forward(tokens);
        let batch = tokens.size()[0];
        let mut states = state.map(|s| s.into_iter().map(Some).collect::<Vec<_>>()).unwrap_or_default();
        states.resize_with(self.blocks.len(), || None);
        let mut out_states = vec![];
        for (block, mut st) in self.blocks.iter().zip(states) {
            let cms_state = st.as_mut().and_then(|s| s.cms.take());
            let (mixed, mut new_state) = block.mix(&block.ln1.forward(&x), st, self.read);
            x = x + mixed;
            let u = block.ln2.forward(&x);
            x = match &block.ffn {
                Ffn::Plain(ffn) => &x + ffn.forward(&u),
                Ffn::Cms(c) => {
                    let cs = cms_state.unwrap_or_else(|| c.initial_state(batch));
                    // x ← x + (CMS(LN₂ x) − LN₂ x): the levels' total increment joins the residual stream
                    let y = c.forward(&u, &cs);
                    new_state.cms = Some(cs);
                    &x + (y - &u)
                }
            };
            out_states.push(new_state);
        }
        (self.head.forward(&self.ln_f.forward(&x)), out_states)
    }

    /// The model with `model.cms` learning in context (see [`super::cms`]): chunks of `C_min` tokens (aligned to
    /// the tokens seen so far, so that chained calls equal one call); after each chunk, the summed next-token
    /// cross-entropy of its positions whose next token is known, its gradient with respect to every block's fast
    /// weights accumulated (`η·g`), and every level whose period divides the token count updated. The last
    /// position's logits wait in the state for the next call's first token. Runs under `with_grad` even when the
    /// caller does not; then logits come back detached and carried states are cut at chunk ends.
    fn run_in_context(&self, tokens: &Tensor, state: Option<ModelState>, spec: &CmsSpec) -> (Tensor, ModelState) {
        let outer_grad = grad_enabled();
        let create_graph = spec.second_order && outer_grad;
        let (t, c_min) = (tokens.size()[1], spec.chunk());
        tch::with_grad(|| {
            let mut state = state;
            // the previous call's last position meets its target: complete its chunk's inner loss
            if let Some(st) = state.as_mut() {
                let waiting = st.last_mut().and_then(|s| s.cms.as_mut()).and_then(|c| c.awaiting_target.take());
                if let Some(logits) = waiting {
                    let loss = cms::summed_cross_entropy(&logits.unsqueeze(1), &tokens.narrow(1, 0, 1));
                    self.inner_step(st, &loss, create_graph);
                    self.advance(st, 0, true, !outer_grad);
                }
            }
            let mut outs = vec![];
            let mut pos = 0;
            while pos < t {
                let seen = state.as_ref().and_then(|s| s[0].cms.as_ref()).map_or(0, |c| c.tokens);
                let len = (c_min - seen % c_min).min(t - pos);
                if seen % c_min == 0 {
                    // a new chunk uses its own graph node of every fast weight: its inner gradient is the
                    // gradient through this chunk's uses only, not through earlier chunks that held the same value
                    for cs in state.iter_mut().flatten().filter_map(|s| s.cms.as_mut()) {
                        Cms::new_chunk(cs);
                    }
                }
                let (logits, mut st) = self.run_blocks(&tokens.narrow(1, pos, len), state.take());
                let end = pos + len;
                // 𝓛 = Σ_t CE(logits_t, x_{t+1}) over the chunk's positions whose next token is in the input
                let known = if end < t { len } else { len - 1 };
                if known > 0 {
                    let targets = tokens.narrow(1, pos + 1, known);
                    let loss = cms::summed_cross_entropy(&logits.narrow(1, 0, known), &targets);
                    self.inner_step(&mut st, &loss, create_graph);
                }
                if end == t {
                    if let Some(c) = st.last_mut().and_then(|s| s.cms.as_mut()) {
                        c.awaiting_target = Some(logits.select(1, len - 1));
                    }
                }
                self.advance(&mut st, len, end < t, !outer_grad);
                if !outer_grad && (seen + len) % c_min == 0 {
                    st.iter_mut().for_each(LayerState::detach);
                }
                outs.push(if outer_grad { logits } else { logits.detach() });
                state = Some(st);
                pos = end;
            }
            (Tensor::cat(&outs, 1), state.expect("at least one chunk"))
        })
    }

    /// Accumulates `η ∇𝓛` for the fast weights of every block's CMS.
    fn inner_step(&self, state: &mut ModelState, loss: &Tensor, create_graph: bool) {
        let mut cmses = vec![];
        let mut states = vec![];
        for (block, st) in self.blocks.iter().zip(state.iter_mut()) {
            if let (Ffn::Cms(c), Some(cs)) = (&block.ffn, st.cms.as_mut()) {
                cmses.push(c);
                states.push(cs);
            }
        }
        cms::accumulate(&cmses, &mut states, loss, create_graph);
    }

    /// Counts `n` tokens in every block's CMS and applies the levels that are due (when `complete`).
    fn advance(&self, state: &mut ModelState, n: i64, complete: bool, leaves: bool) {
        for (block, st) in self.blocks.iter().zip(state.iter_mut()) {
            if let (Ffn::Cms(c), Some(cs)) = (&block.ffn, st.cms.as_mut()) {
                c.advance(cs, n, complete, leaves);
            }
        }
    }
}

/// Whether autograd records operations here (false under `tch::no_grad`).
fn grad_enabled() -> bool {
    let probe = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    (&probe * 2.0).requires_grad()
}

impl LanguageModel for MemoryLm {
    fn forward(&self, tokens: &Tensor) -> Tensor {
        MemoryLm::forward(self, tokens)
    }
    fn describe(&self) -> String {
        let base = format!("{} with {} blocks, memory {}", self.kind.name(), self.blocks.len(), self.rule.name());
        match &self.cms {
            Some(c) => format!("{base}, {}", c.describe()),
            None => base,
        }
    }
}

/// Positions `start, start + 1, …` (`n` of them) as a float tensor on `like`'s device.
fn positions(start: i64, n: i64, like: &Tensor) -> Tensor {
    Tensor::arange_start(start, start + n, (Kind::Double, like.device()))
}

impl Block {
    /// `[p ‖ x]` along time (Titans Eqs. 19, 26, 29).
    fn with_prefix(&self, x: &Tensor) -> (Tensor, i64) {
        match &self.persistent {
            Some(p) => {
                let b = x.size()[0];
                let pe = p.unsqueeze(0).expand([b, -1, -1], false);
                (Tensor::cat(&[pe, x.shallow_clone()], 1), p.size()[0])
            }
            None => (x.shallow_clone(), 0),
        }
    }

    fn mix(&self, x: &Tensor, state: Option<LayerState>, read: ReadMode) -> (Tensor, LayerState) {
        let t = x.size()[1];
        let first = state.is_none();
        let (memory_state, prefix_keys, tail, position) = match state {
            Some(s) => (Some(s.memory), s.prefix_keys, s.window_tail, s.position),
            None => (None, None, None, 0),
        };
        // x̃ = p ‖ x (Eqs. 19, 26, 29) on the first call; later calls continue the same sequence
        let (xt, np) = if first { self.with_prefix(x) } else { (x.shallow_clone(), 0) };
        let layer = |memory, prefix_keys, window_tail| LayerState {
            memory,
            prefix_keys,
            window_tail,
            position: position + t,
            cms: None,
        };
        match &self.mixer {
            Mixer::Lmm { memory } => {
                let (y, st) = memory.forward(&xt, memory_state, read);
                (y.narrow(1, np, t), layer(st, None, None))
            }
            Mixer::Mag { memory, attn, window, ln_y, ln_m } => {
                let prefix_keys = if first { (np > 0).then(|| xt.narrow(1, 0, np)) } else { prefix_keys };
                // Eq. 27: y = SW-Attn*(x̃); Eq. 28: o = y ⊗ M(x̃)
                let (y, tail) = windowed_attention(attn, x, prefix_keys.as_ref(), tail.as_ref(), *window, position);
                let (m, st) = memory.forward(&xt, memory_state, read);
                let o = ln_y.forward(&y) * ln_m.forward(&m.narrow(1, np, t)).sigmoid();
                (o, layer(st, prefix_keys, tail))
            }
            Mixer::Mal { memory, attn, window } => {
                // Eq. 30: y = M(x̃); Eq. 31: o = SW-Attn(y)
                let (y_all, st) = memory.forward(&xt, memory_state, read);
                let prefix_keys = if first { (np > 0).then(|| y_all.narrow(1, 0, np)) } else { prefix_keys };
                let y = y_all.narrow(1, np, t);
                let (o, tail) = windowed_attention(attn, &y, prefix_keys.as_ref(), tail.as_ref(), *window, position);
                (o, layer(st, prefix_keys, tail))
            }
            Mixer::Mac { memory, attn, segment, combine } => {
                let (o, st) = self.mac(x, memory, attn, *segment, *combine, memory_state, position);
                (o, layer(st, None, None))
            }
        }
    }

    /// MAC, segment by segment (Titans Eqs. 21–25); `position` is the stream position of `x`'s first token.
    #[allow(clippy::too_many_arguments)]
    fn mac(
        &self,
        x: &Tensor,
        memory: &MemoryLayer,
        attn: &Attention,
        segment: i64,
        combine: MacCombine,
        state: Option<MemoryState>,
        position: i64,
    ) -> (Tensor, MemoryState) {
        let (b, t, d) = (x.size()[0], x.size()[1], x.size()[2]);
        let mut st = state.unwrap_or_else(|| memory.initial_state(b, d, x.kind(), x.device()));
        let np = self.persistent.as_ref().map_or(0, |p| p.size()[0]);
        let mut outs = vec![];
        let mut start = 0;
        while start < t {
            let c = segment.min(t - start);
            let xs = x.narrow(1, start, c);
            // Eq. 21: h = M*_{t−1}(q), the memory before this segment's writes
            let h = memory.read(&xs, &mut st);
            // Eq. 22: S̃ = p ‖ h ‖ S
            let (ph, _) = self.with_prefix(&h);
            let kv = Tensor::cat(&[ph, xs.shallow_clone()], 1);
            // Eq. 23: attention with queries at the segment positions; causal over h and S
            let i = Tensor::arange(c, (Kind::Int64, x.device())).unsqueeze(1);
            let j = Tensor::arange(c, (Kind::Int64, x.device())).unsqueeze(0);
            let causal = j.le_tensor(&i);
            let pinned = Tensor::ones([c, np], (Kind::Bool, x.device()));
            let mask = Tensor::cat(&[pinned, causal.shallow_clone(), causal], 1);
            // positions: h_j and S_j at their token's stream position, p unrotated (position 0)
            let seg_pos = positions(position + start, c, x);
            let k_pos = Tensor::cat(
                &[Tensor::zeros([np], (Kind::Double, x.device())), seg_pos.shallow_clone(), seg_pos.shallow_clone()],
                0,
            );
            let y = attn.forward(&xs, &kv, &mask, &seg_pos, &k_pos);
            // Eq. 24: write y into the memory; Eq. 25: o = y ⊗ M*_t(y), read after each write
            let (r, new_st) = memory.forward(&y, Some(st), ReadMode::AfterWrite);
            st = new_st;
            outs.push(match combine {
                MacCombine::Gate => &y * r.sigmoid(),
                MacCombine::Add => &y + r,
            });
            start += c;
        }
        (Tensor::cat(&outs, 1), st)
    }
}

/// Sliding-window attention of the new inputs `x [B, t, D]` over `prefix ‖ tail ‖ x`: the prefix keys are always
/// visible (Titans Eq. 27's SW-Attn*) and carry no position, and query i sees the tail and new positions j with
/// `j ≤ i` and `i − j < window` (counted across the call boundary); `position` is the stream position of `x`'s
/// first token. Returns the outputs and the new tail (the last `window − 1` inputs).
fn windowed_attention(
    attn: &Attention,
    x: &Tensor,
    prefix: Option<&Tensor>,
    tail: Option<&Tensor>,
    window: i64,
    position: i64,
) -> (Tensor, Option<Tensor>) {
    let t = x.size()[1];
    let l = tail.map_or(0, |p| p.size()[1]);
    let np = prefix.map_or(0, |p| p.size()[1]);
    let history = match tail {
        Some(p) => Tensor::cat(&[p.shallow_clone(), x.shallow_clone()], 1),
        None => x.shallow_clone(),
    };
    let keys = match prefix {
        Some(p) => Tensor::cat(&[p.shallow_clone(), history.shallow_clone()], 1),
        None => history.shallow_clone(),
    };
    let device = x.device();
    let i = (Tensor::arange(t, (Kind::Int64, device)) + l).unsqueeze(1);
    let j = Tensor::arange(l + t, (Kind::Int64, device)).unsqueeze(0);
    let near = j.le_tensor(&i).logical_and(&(&i - &j).lt(window));
    let visible = Tensor::cat(&[Tensor::ones([t, np], (Kind::Bool, device)), near], 1);
    let q_pos = positions(position, t, x);
    let k_pos = Tensor::cat(&[Tensor::zeros([np], (Kind::Double, device)), positions(position - l, l + t, x)], 0);
    let out = attn.forward(x, &keys, &visible, &q_pos, &k_pos);
    let keep = (window - 1).min(l + t);
    let new_tail = (keep > 0).then(|| history.narrow(1, l + t - keep, keep));
    (out, new_tail)
}
