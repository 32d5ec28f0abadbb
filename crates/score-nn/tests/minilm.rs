//! The MiniLM text encoder against the reference implementation's outputs
//! (`tests/data/minilm_golden.json`, written by `xtask/fixtures/minilm_golden.py`: the
//! ids of Hugging Face's `tokenizers`, the embeddings of sentence-transformers' own
//! model on the same weights). Needs
//! `cargo xtask minilm-setup` (which `.ci/run` runs).

use burn::tensor::Device;
use score_core::tensor::to_vec_f32;
use score_nn::text::{HIDDEN, SEQ_LEN, TextEncoder};

fn golden() -> serde_json::Value {
    let path = format!(
        "{}/tests/data/minilm_golden.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn minilm_matches_the_reference_tokenizer_and_encoder() {
    let g = golden();
    let prompts: Vec<&str> = g["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let enc = TextEncoder::load(None, &Device::flex()).unwrap();
    let out = enc.encode(&prompts).unwrap();
    // Token ids: exactly the reference's, 128 each ([CLS] … [SEP], then [PAD] = 0).
    for (i, want) in g["ids"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(out.ids[i], want, "prompt {i}");
        assert_eq!(out.ids[i].len(), SEQ_LEN);
    }
    // Embeddings: float32 through 6 layers against torch's float32; the bound is
    // 1e-4 (the two differ only in summation order, ~1e-6 relative per layer).
    let pooled = to_vec_f32(out.pooled.clone()).unwrap();
    let d = max_diff(&pooled, &floats(&g["pooled"]));
    eprintln!("pooled embeddings: max |Δ| = {d:.2e}");
    assert!(d <= 1e-4, "pooled embeddings differ by {d}");
    let tokens = to_vec_f32(out.tokens.clone().narrow(0, 3, 1).narrow(1, 0, 4)).unwrap();
    let d = max_diff(&tokens, &floats(&g["tokens_prompt3_first4"]));
    eprintln!("token states: max |Δ| = {d:.2e}");
    assert!(d <= 1e-4, "token states differ by {d}");
    // Unit norm, and similarities that make sense: "a music score of piano" is nearer to
    // "piano score" than to "string quartet".
    let row = |i: usize| &pooled[i * HIDDEN..(i + 1) * HIDDEN];
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!((dot(row(0), row(0)) - 1.0).abs() < 1e-5);
    let (near, far) = (dot(row(0), row(1)), dot(row(0), row(2)));
    assert!(
        near > far + 0.1,
        "cos(piano, piano score) {near} vs cos(piano, quartet) {far}"
    );
}

#[test]
fn a_missing_encoder_is_an_error_naming_the_set_up_command() {
    let dir = tempfile::tempdir().unwrap();
    let err = TextEncoder::load(Some(dir.path()), &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cargo xtask minilm-setup") && err.contains("tokenizer.json"),
        "{err}"
    );
}

/// A tokenizer file whose ids exceed the model's vocabulary (issue 26: the embedding
/// gather went out of bounds and panicked) is refused when loaded, naming the file.
#[test]
fn a_tokenizer_with_ids_past_the_vocabulary_is_refused_by_file() {
    let src = score_nn::text::minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut tok: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("tokenizer.json")).unwrap()).unwrap();
    tok["model"]["vocab"]["hello"] = serde_json::json!(40_000);
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, serde_json::to_vec(&tok).unwrap()).unwrap();
    let err = match TextEncoder::load(Some(dir.path()), &Device::flex()) {
        Ok(_) => panic!("a tokenizer with id 40000 was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("tokenizer.json") && err.contains("40000") && err.contains("30522"),
        "{err}"
    );
}
