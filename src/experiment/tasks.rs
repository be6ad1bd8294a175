//! The tasks: data generated from a seed (or read from the King James Bible that the set-up script writes),
//! never fetched at run time. Every batch is a pure function of `(seed, split, index)`, so a resumed run
//! sees exactly the batches an uninterrupted one would.
//!
//! Token conventions: `targets[b, t] = IGNORE` marks positions without a loss; the model's logits at
//! position t are scored against `targets[b, t]`.
//!
//! * **MQAR** (multi-query associative recall): `num_pairs` key–value pairs `k₁ v₁ … k_P v_P`, then the keys
//!   again in a random order as queries; the target at each query is its value. Keys come from the lower half
//!   of the vocabulary, values from the upper half; remaining positions are filled with random queries.
//! * **NIAH** (single needle in a haystack): random filler tokens, a needle `MARK key value` at a random depth,
//!   and at the end `MARK key` whose target is `value`. Trained at `seq_len`, evaluated at each of `lengths`.
//! * **Selective copying**: `num_tokens` data tokens scattered among noise tokens, a separator, then
//!   `num_tokens` blank positions whose targets are the data tokens in order.
//! * **LM-char**: bytes of `data/kjv.txt` (one verse per line, written by `scripts/setup.sh`). Split: the first
//!   90 % of the bytes train, the last 10 % (the end of the New Testament) validate. Metric: bits per character.

use super::spec::{TaskKind, TaskSpec};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use tch::{Device, Tensor};

pub const IGNORE: i64 = -100;

/// One batch: `inputs` and `targets` are `[B, T]` int64.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
}

/// Which stream of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Eval,
}

/// A task ready to produce batches.
pub struct Task {
    pub spec: TaskSpec,
    corpus: Option<Arc<Vec<u8>>>,
}

pub const CORPUS_PATH: &str = "data/kjv.txt";

/// `data/kjv.txt` under the current directory, else under the checkout the binary was built from.
pub fn corpus_path() -> std::path::PathBuf {
    let here = std::path::PathBuf::from(CORPUS_PATH);
    if here.exists() {
        return here;
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS_PATH)
}

impl Task {
    pub fn new(spec: &TaskSpec) -> Result<Self> {
        let corpus = if spec.kind == TaskKind::LmChar {
            let bytes = std::fs::read(corpus_path()).with_context(|| {
                format!("{CORPUS_PATH} is missing: run `bash scripts/setup.sh` (it installs Debian's bible-kjv and writes the corpus)")
            })?;
            if bytes.len() < 10_000 {
                bail!("{CORPUS_PATH} is too short ({} bytes): rerun scripts/setup.sh", bytes.len());
            }
            // a window is seq_len + 1 bytes drawn from inside a split; the validation split is the smaller
            let (train, eval) = split_lengths(bytes.len());
            if spec.seq_len + 2 > train.min(eval) {
                bail!(
                    "task.seq_len = {} is too long for {CORPUS_PATH}: its validation split has {eval} bytes, so \
                     seq_len must be at most {}",
                    spec.seq_len,
                    train.min(eval) - 2
                );
            }
            Some(Arc::new(bytes))
        } else {
            None
        };
        Ok(Self { spec: spec.clone(), corpus })
    }

    /// Vocabulary size the model must embed.
    pub fn vocab(&self) -> usize {
        match self.spec.kind {
            TaskKind::LmChar => 256,
            _ => self.spec.vocab,
        }
    }

    fn rng(seed: u64, split: Split, index: u64) -> ChaCha8Rng {
        let stream = match split {
            Split::Train => 1u64,
            Split::Eval => 2u64,
        };
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (stream << 56) ^ index)
    }

    /// Batch number `index` of a split, at sequence length `len`.
    pub fn batch(&self, seed: u64, split: Split, index: u64, batch_size: usize, len: usize, device: Device) -> Batch {
        let mut rng = Self::rng(seed, split, index);
        let mut inputs = Vec::with_capacity(batch_size * len);
        let mut targets = Vec::with_capacity(batch_size * len);
        for _ in 0..batch_size {
            let (i, t) = match self.spec.kind {
                TaskKind::Mqar => mqar(&mut rng, self.spec.vocab, self.spec.num_pairs, len),
                TaskKind::Niah => niah(&mut rng, self.spec.vocab, len),
                TaskKind::SelectiveCopy => selective_copy(&mut rng, self.spec.vocab, self.spec.num_tokens, len),
                TaskKind::LmChar => lm_char(&mut rng, self.corpus.as_ref().unwrap(), split, len),
                TaskKind::Capacity => unreachable!("the capacity task has no batches"),
            };
            inputs.extend(i);
            targets.extend(t);
        }
        let shape = [batch_size as i64, len as i64];
        Batch {
            inputs: Tensor::from_slice(&inputs).reshape(shape).to_device(device),
            targets: Tensor::from_slice(&targets).reshape(shape).to_device(device),
        }
    }
}

fn mqar(rng: &mut ChaCha8Rng, vocab: usize, pairs: usize, len: usize) -> (Vec<i64>, Vec<i64>) {
    let half = (vocab / 2) as i64;
    let mut keys: Vec<i64> = (1..half).collect();
    keys.shuffle(rng);
    let keys: Vec<i64> = keys.into_iter().cycle().take(pairs).collect();
    let values: Vec<i64> = (0..pairs).map(|_| rng.random_range(half..vocab as i64)).collect();
    let mut inp = Vec::with_capacity(len);
    let mut tgt = Vec::with_capacity(len);
    for p in 0..pairs {
        inp.extend([keys[p], values[p]]);
        tgt.extend([IGNORE, IGNORE]);
    }
    let mut order: Vec<usize> = (0..pairs).collect();
    order.shuffle(rng);
    let mut q = 0;
    while inp.len() < len {
        let p = if q < pairs { order[q] } else { rng.random_range(0..pairs) };
        q += 1;
        inp.push(keys[p]);
        tgt.push(values[p]);
    }
    (inp, tgt)
}

fn niah(rng: &mut ChaCha8Rng, vocab: usize, len: usize) -> (Vec<i64>, Vec<i64>) {
    // token 1 is the marker; keys and values from [2, vocab)
    let marker = 1i64;
    let mut inp: Vec<i64> = (0..len).map(|_| rng.random_range(2..vocab as i64)).collect();
    let mut tgt = vec![IGNORE; len];
    let key = rng.random_range(2..vocab as i64);
    let value = rng.random_range(2..vocab as i64);
    let depth = rng.random_range(0..len - 5);
    inp[depth..depth + 3].copy_from_slice(&[marker, key, value]);
    inp[len - 2] = marker;
    inp[len - 1] = key;
    tgt[len - 1] = value;
    (inp, tgt)
}

fn selective_copy(rng: &mut ChaCha8Rng, vocab: usize, n: usize, len: usize) -> (Vec<i64>, Vec<i64>) {
    // 0 = noise, 1 = separator, 2 = blank; data tokens from [3, vocab)
    let body = len - n - 1;
    let mut pos: Vec<usize> = (0..body).collect();
    pos.shuffle(rng);
    let mut pos = pos[..n].to_vec();
    pos.sort();
    let data: Vec<i64> = (0..n).map(|_| rng.random_range(3..vocab as i64)).collect();
    let mut inp = vec![0i64; body];
    for (p, d) in pos.iter().zip(&data) {
        inp[*p] = *d;
    }
    let mut tgt = vec![IGNORE; body];
    inp.push(1);
    tgt.push(IGNORE);
    for d in &data {
        inp.push(2);
        tgt.push(*d);
    }
    (inp, tgt)
}

/// The byte lengths of the training split (first 90 %) and the validation split (the rest).
pub fn split_lengths(corpus_len: usize) -> (usize, usize) {
    let cut = corpus_len * 9 / 10;
    (cut, corpus_len - cut)
}

fn lm_char(rng: &mut ChaCha8Rng, corpus: &[u8], split: Split, len: usize) -> (Vec<i64>, Vec<i64>) {
    let cut = split_lengths(corpus.len()).0;
    let (lo, hi) = match split {
        Split::Train => (0, cut),
        Split::Eval => (cut, corpus.len()),
    };
    let start = rng.random_range(lo..hi - len - 1);
    let window = &corpus[start..start + len + 1];
    let inp = window[..len].iter().map(|&b| b as i64).collect();
    let tgt = window[1..].iter().map(|&b| b as i64).collect();
    (inp, tgt)
}

/// Cross-entropy over non-ignored positions, and the accuracy of the argmax there.
pub fn loss_and_accuracy(logits: &Tensor, targets: &Tensor) -> (Tensor, f64) {
    let v = logits.size()[2];
    let flat_logits = logits.reshape([-1, v]);
    let flat_targets = targets.reshape([-1]);
    let loss = flat_logits.cross_entropy_loss::<Tensor>(&flat_targets, None, tch::Reduction::Mean, IGNORE, 0.0);
    let mask = flat_targets.ne(IGNORE);
    let correct = flat_logits.argmax(-1, false).eq_tensor(&flat_targets).logical_and(&mask);
    let n = mask.sum(tch::Kind::Int64).int64_value(&[]).max(1);
    let acc = correct.sum(tch::Kind::Int64).int64_value(&[]) as f64 / n as f64;
    (loss, acc)
}
