//! Fuzz the checkpoint reader (safetensors header, the `scorelab` metadata JSON, the
//! tensor table) on arbitrary bytes, then load what validates into the demo UNet's
//! shape-checked loader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use score_train::checkpoint::CheckpointFile;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.safetensors");
    if let Ok(ck) = CheckpointFile::from_bytes(path, data.to_vec()) {
        let _ = ck.has("model.");
        let _ = ck.optimizer_bytes();
        let device = score_core::burn::tensor::Device::flex();
        let net = score_nn::mlp::MlpConfig::new(2)
            .with_hidden(4)
            .with_blocks(1)
            .init(&device);
        let _ = ck.load_into(net, "model.", true);
    }
});
