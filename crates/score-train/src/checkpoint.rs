//! Checkpoints: one safetensors file per checkpoint, written atomically.
//!
//! Tensors: `model.<path>` (the trained weights), `ema.<path>` (the EMA weights) and
//! `optimizer` (burn's optimizer record, a burnpack byte string stored as a `U8` tensor,
//! since burn keys optimizer state by parameter id). The header metadata key `scorelab`
//! holds JSON [`CheckpointMeta`]: format version, step, seed (the RNG state: every
//! step's randomness is a function of seed and step), the training configuration, and
//! the parameter ids by path so that the optimizer state finds its parameters again on
//! resume. Any safetensors reader can open the weights.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use score_core::error::{Result, ScoreError};
use score_core::fs::write_atomic;

/// Current checkpoint format version.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata of a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    /// Format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// Optimisation steps completed.
    pub step: usize,
    /// The run seed.
    pub seed: u64,
    /// The training configuration (network, preconditioning, optimiser, data), as JSON.
    pub config: serde_json::Value,
    /// Parameter ids by path, for the optimizer state.
    pub param_ids: BTreeMap<String, u64>,
    /// Free-form numbers (last loss, elapsed time, ...). Non-finite values are left
    /// out when written (JSON has no NaN); a `null` in an older file reads back as NaN.
    #[serde(serialize_with = "finite_stats", deserialize_with = "stats_or_null")]
    pub stats: BTreeMap<String, f64>,
}

impl CheckpointMeta {
    /// The configuration as `T` (a serde struct such as [`crate::train::RunConfig`], or any struct
    /// naming the parts a reader needs; fields it does not name are ignored). An error
    /// names the checkpoint `path` and what did not fit.
    pub fn config_as<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T> {
        T::deserialize(&self.config).map_err(|e| ScoreError::Checkpoint {
            path: path.to_path_buf(),
            detail: format!("configuration: {e}"),
        })
    }

    /// Metadata of the current format with `step`, `seed` and `config`, and no parameter
    /// ids or statistics yet.
    pub fn new(step: usize, seed: u64, config: serde_json::Value) -> Self {
        Self {
            format: FORMAT_VERSION,
            step,
            seed,
            config,
            param_ids: Default::default(),
            stats: Default::default(),
        }
    }
}

/// `into` with the weights of `from` (the same structure), through the checkpoint
/// loader: `into` keeps its device and whether it is trainable (a plain module's weights
/// into a module on an autodiff device give a trainable copy).
pub fn copy_weights<M: Module>(from: &M, into: M) -> Result<M> {
    let bytes = checkpoint_bytes(
        Some(from),
        None,
        None,
        &CheckpointMeta::new(0, 0, serde_json::Value::Null),
    )?;
    CheckpointFile::from_bytes(Path::new("<weights in memory>"), bytes)?
        .load_into(into, "model.", false)
}

fn finite_stats<S: serde::Serializer>(
    stats: &BTreeMap<String, f64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let finite: Vec<_> = stats.iter().filter(|(_, v)| v.is_finite()).collect();
    let mut m = s.serialize_map(Some(finite.len()))?;
    for (k, v) in finite {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

fn stats_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, f64>, D::Error> {
    let raw: BTreeMap<String, Option<f64>> = serde::Deserialize::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    out: Vec<(String, u64, TensorData)>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().without_autodiff().into_data().convert::<f32>();
        self.out.push((self.path.join("."), param.id.val(), data));
    }
}

/// Every float parameter of a module: (path, id, data as f32).
pub fn collect_params<M: Module>(module: &M) -> Vec<(String, u64, TensorData)> {
    let mut c = Collector::default();
    module.visit(&mut c);
    c.out
}

struct Loader<'a> {
    path: Vec<String>,
    prefix: &'a str,
    st: &'a SafeTensors<'a>,
    ids: Option<&'a BTreeMap<String, u64>>,
    error: Option<String>,
    loaded: usize,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let path = self.path.join(".");
        let key = format!("{}{}", self.prefix, path);
        let view = match self.st.tensor(&key) {
            Ok(v) => v,
            Err(_) => {
                self.error = Some(format!("tensor '{key}' is missing"));
                return param;
            }
        };
        let want = param.lazy_shape();
        if view.shape() != want.as_slice() || view.dtype() != Dtype::F32 {
            self.error = Some(format!(
                "tensor '{key}': expected F32 {:?}, found {:?} {:?}",
                want.as_slice(),
                view.dtype(),
                view.shape()
            ));
            return param;
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let device = param.lazy_device();
        let t = Tensor::<D>::from_data(TensorData::new(values, view.shape().to_vec()), &device);
        let id = self
            .ids
            .and_then(|m| m.get(&key).or_else(|| m.get(&path)))
            .map(|&i| ParamId::from(i))
            .unwrap_or(param.id);
        self.loaded += 1;
        param.transform_for_load(t, id)
    }
}

/// A checkpoint read into memory.
pub struct CheckpointFile {
    /// Where it was read from.
    pub path: PathBuf,
    bytes: Vec<u8>,
    /// Its metadata.
    pub meta: CheckpointMeta,
}

/// What a file given as a checkpoint is instead, by its first bytes, when that is a
/// format users mix up with one: the safetensors reader only says its header is bad.
fn other_format(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\x93NUMPY") {
        Some("a .npy array (`sample --noise` and `denoise --x` take those)")
    } else if starts(b"PK\x03\x04") {
        Some(
            "a zip archive (a .npz, or a PyTorch .pt/.pth: `scorelab import` reads EDM and diffusers models)",
        )
    } else if starts(b"\x80") {
        Some("a Python pickle (an EDM network-snapshot .pkl: `scorelab import edm` converts it)")
    } else if starts(b"\x89PNG") || starts(b"\xff\xd8\xff") {
        Some("an image")
    } else {
        None
    }
}

impl CheckpointFile {
    /// Read and validate the header of a checkpoint.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = score_core::fs::read_file(path)?;
        Self::from_bytes(path, bytes)
    }

    /// Validate checkpoint `bytes` read from `path` (named in errors).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let (_, md) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            let detail = match other_format(&bytes) {
                Some(kind) => format!("not a checkpoint: the file is {kind}"),
                None => format!("header: {e}"),
            };
            ScoreError::format(path, "safetensors", detail)
        })?;
        let raw = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get("scorelab"))
            .ok_or_else(|| {
                ScoreError::format(
                    path,
                    "safetensors",
                    "metadata: no 'scorelab' entry (not a scorelab checkpoint)",
                )
            })?;
        let meta: CheckpointMeta = serde_json::from_str(raw).map_err(|e| {
            ScoreError::format(path, "safetensors", format!("metadata 'scorelab': {e}"))
        })?;
        if meta.format != FORMAT_VERSION {
            return Err(ScoreError::format(
                path,
                "safetensors",
                format!("format: version {} is not {FORMAT_VERSION}", meta.format),
            ));
        }
        SafeTensors::deserialize(&bytes)
            .map_err(|e| ScoreError::format(path, "safetensors", e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            meta,
        })
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in read")
    }

    /// Whether the checkpoint holds tensors under `prefix` (`"model."`, `"ema."`).
    pub fn has(&self, prefix: &str) -> bool {
        self.st().names().iter().any(|n| n.starts_with(prefix))
    }

    /// Load the tensors under `prefix` into `module` (whose structure must match),
    /// restoring parameter ids when `restore_ids` is set.
    pub fn load_into<M: Module>(&self, module: M, prefix: &str, restore_ids: bool) -> Result<M> {
        let st = self.st();
        let mut loader = Loader {
            path: Vec::new(),
            prefix,
            st: &st,
            ids: restore_ids.then_some(&self.meta.param_ids),
            error: None,
            loaded: 0,
        };
        let m = module.map(&mut loader);
        if let Some(detail) = loader.error {
            return Err(ScoreError::Checkpoint {
                path: self.path.clone(),
                detail,
            });
        }
        Ok(m)
    }

    /// The optimizer record bytes, when the checkpoint has them.
    pub fn optimizer_bytes(&self) -> Option<Vec<u8>> {
        self.st()
            .tensor("optimizer")
            .ok()
            .map(|v| v.data().to_vec())
    }
}

/// Write a checkpoint: `model` (always), `ema` and the optimizer record bytes when given.
pub fn save_checkpoint<M: Module>(
    path: &Path,
    model: Option<&M>,
    ema: Option<&M>,
    optimizer: Option<&[u8]>,
    meta: &CheckpointMeta,
) -> Result<()> {
    write_atomic(path, &checkpoint_bytes(model, ema, optimizer, meta)?)
}

/// The bytes [`save_checkpoint`] writes, for callers that write several files as one
/// group ([`write_atomic_all`]).
pub fn checkpoint_bytes<M: Module>(
    model: Option<&M>,
    ema: Option<&M>,
    optimizer: Option<&[u8]>,
    meta: &CheckpointMeta,
) -> Result<Vec<u8>> {
    let parts: Vec<Part> = [("model.", model), ("ema.", ema)]
        .into_iter()
        .filter_map(|(prefix, m)| m.map(|m| (prefix.to_string(), collect_params(m))))
        .collect();
    parts_bytes(parts, optimizer, meta)
}

/// A module's parameters under a prefix: (prefix, [(path, id, data)]).
pub type Part = (String, Vec<(String, u64, TensorData)>);

/// A checkpoint of several modules, each under its own prefix (`"path.3."`, …), as
/// bytes: the parameters of every part (from [`collect_params`]), an optional optimizer
/// record and the metadata. Parameter ids are recorded under the parameter's path for
/// `model.` and `ema.` (as [`save_checkpoint`] always has) and under prefix + path for
/// any other prefix.
pub fn parts_bytes(
    parts: Vec<Part>,
    optimizer: Option<&[u8]>,
    meta: &CheckpointMeta,
) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = Vec::new();
    let mut meta = meta.clone();
    for (prefix, params) in parts {
        let plain = prefix == "model." || prefix == "ema.";
        for (p, id, data) in params {
            let key = if plain {
                p.clone()
            } else {
                format!("{prefix}{p}")
            };
            meta.param_ids.insert(key, id);
            let shape = data.shape().to_vec();
            owned.push((
                format!("{prefix}{p}"),
                shape,
                data.into_bytes().to_vec(),
                Dtype::F32,
            ));
        }
    }
    if let Some(b) = optimizer {
        owned.push(("optimizer".into(), vec![b.len()], b.to_vec(), Dtype::U8));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, b, dt)| {
            Ok((
                n.clone(),
                TensorView::new(*dt, s.clone(), b)
                    .map_err(|e| ScoreError::invalid("tensor", e.to_string()))?,
            ))
        })
        .collect::<Result<_>>()?;
    let json =
        serde_json::to_string(&meta).map_err(|e| ScoreError::invalid("metadata", e.to_string()))?;
    let info: HashMap<String, String> = [
        ("scorelab".to_string(), json),
        ("format".to_string(), "pt".to_string()),
    ]
    .into();
    safetensors::serialize(views, Some(info))
        .map_err(|e| ScoreError::invalid("checkpoint", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_stats_round_trip_and_null_reads_as_nan() {
        let meta = CheckpointMeta {
            format: FORMAT_VERSION,
            step: 1,
            seed: 0,
            config: serde_json::json!({}),
            param_ids: Default::default(),
            stats: [("loss".to_string(), f64::NAN), ("t".to_string(), 2.0)].into(),
        };
        let json = serde_json::to_string(&meta).unwrap();
        let back: CheckpointMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stats.get("t"), Some(&2.0));
        assert!(!back.stats.contains_key("loss"), "{json}");
        let old = json.replace(r#""stats":{"t":2.0}"#, r#""stats":{"loss":null,"t":2.0}"#);
        assert_ne!(old, json);
        let back: CheckpointMeta = serde_json::from_str(&old).unwrap();
        assert!(back.stats["loss"].is_nan());
    }

    #[test]
    fn typed_configuration_reads_its_parts_and_names_the_checkpoint_when_one_is_missing() {
        use crate::train::RunConfig;
        let train = crate::train::TrainConfig::default();
        let meta = CheckpointMeta::new(
            3,
            7,
            serde_json::json!({ "train": train, "extra": { "text": 1, "cli": { "data": "x" } } }),
        );
        #[derive(serde::Deserialize)]
        struct Cli {
            data: String,
        }
        #[derive(serde::Deserialize)]
        struct Extra {
            cli: Cli,
        }
        let path = Path::new("run/checkpoint.safetensors");
        let c: RunConfig<Extra> = meta.config_as(path).unwrap();
        assert_eq!(c.extra.cli.data, "x");
        assert_eq!(c.train.batch_size, train.batch_size);
        assert!(c.objective.is_null());
        let bare = CheckpointMeta::new(3, 7, serde_json::json!({ "extra": {} }));
        let e = bare.config_as::<RunConfig>(path).unwrap_err().to_string();
        assert!(
            e.contains("run/checkpoint.safetensors") && e.contains("`train`"),
            "{e}"
        );
    }
}
