//! EDM's snapshots (`network-snapshot-*.pkl`) read without Python.
//!
//! EDM pickles the whole preconditioned network (`pickle.dump(dict(ema=…, loss_fn=…,
//! augment_pipe=…, dataset_kwargs=…))`). Every EDM class is a
//! `torch_utils.persistence` class: it pickles as
//! `_reconstruct_persistent_obj(meta)`, `meta["state"]` being the module's `__dict__`
//! (`_parameters`, `_buffers`, `_modules`, and the constructor's `_init_kwargs`). A
//! tensor pickles as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
//! …)` with its storage inline: `torch.storage._load_from_bytes(b)`, `b` a legacy
//! `torch.save` stream (five pickles, then per storage an 8-byte element count and the
//! raw little-endian values).
//!
//! The pickle is interpreted by the value-only reader of `score_eval::fid::pickle`:
//! classes become inert records and nothing is executed. Inside the chosen network only
//! the classes a PyTorch module tree consists of are accepted ([`ALLOWED`]); anything
//! else is an error naming where it sits. The network's configuration comes from the
//! inner model's recorded `_init_kwargs` and the wrapper's class name and arguments.

use std::path::Path;

use burn::tensor::Device;

use crate::import::{EdmDescription, ImportedEdm, edm_from_state_dict};
use score_core::error::{Result, ScoreError};
use score_eval::fid::pickle::{Value, unpickle, unpickle_prefix};
use score_nn::edm::{EdmNetConfig, EdmPrecondConfig};
use score_nn::import::{StateDict, f16_to_f32};

/// The classes (by `module.name`) allowed inside an imported network.
pub const ALLOWED: &[&str] = &[
    "torch_utils.persistence._reconstruct_persistent_obj",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch.storage._load_from_bytes",
    "collections.OrderedDict",
    "torch.nn.modules.container.ModuleDict",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.linear.Identity",
    "torch.nn.modules.dropout.Dropout",
    "dnnlib.util.EasyDict",
];

const PERSISTENT: &str = "torch_utils.persistence._reconstruct_persistent_obj";

fn bad(path: &Path, detail: String) -> ScoreError {
    ScoreError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    }
}

/// A module's `__dict__`: the persistent meta's `state`, or a plain object's state.
fn module_state(v: &Value) -> Option<&Value> {
    match v {
        Value::Object { class, state } if class == PERSISTENT => match &**state {
            Value::Tuple(a) => a.first().and_then(|m| m.get("state")),
            _ => None,
        },
        Value::Object { state, .. } => Some(state),
        _ => None,
    }
}

/// EDM's class name of a persistent object (`meta["class_name"]`).
fn persistent_class(v: &Value) -> Option<&str> {
    match v {
        Value::Object { class, state } if class == PERSISTENT => match &**state {
            Value::Tuple(a) => match a.first().and_then(|m| m.get("class_name")) {
                Some(Value::Str(s)) => Some(s),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Every object class inside `v` must be allowed; `at` names where `v` sits.
fn check_classes(v: &Value, at: &str) -> std::result::Result<(), String> {
    match v {
        Value::Object { class, state } => {
            if !ALLOWED.contains(&class.as_str()) {
                return Err(format!("{at}: class {class} is not part of a network"));
            }
            check_classes(state, at)
        }
        Value::Global(m, n) => Err(format!(
            "{at}: a reference to {m}.{n} is not part of a network"
        )),
        Value::Tuple(a) | Value::List(a) => a.iter().try_for_each(|x| check_classes(x, at)),
        Value::Dict(d) => d.iter().try_for_each(|(k, x)| {
            let key = match k {
                Value::Str(s) => format!("{at}.{s}"),
                _ => at.to_string(),
            };
            check_classes(x, &key)
        }),
        _ => Ok(()),
    }
}

/// The float32 values of a storage pickled inline (a legacy `torch.save` stream).
fn storage_values(bytes: &[u8]) -> std::result::Result<Vec<f32>, String> {
    let mut at = 0;
    let mut storage = Value::None;
    for i in 0..5 {
        let (v, used) =
            unpickle_prefix(&bytes[at..]).map_err(|e| format!("storage pickle {i}: {e}"))?;
        at += used;
        if i == 3 {
            storage = v;
        }
    }
    let Value::Persistent(pid) = storage else {
        return Err("storage: no persistent id".into());
    };
    let kind = match &*pid {
        Value::Tuple(p) => match p.get(1) {
            Some(Value::Global(_, n)) => n.clone(),
            _ => return Err("storage: no storage type".into()),
        },
        _ => return Err("storage: malformed id".into()),
    };
    let count = bytes
        .get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("storage: truncated count")? as usize;
    let raw = &bytes[at + 8..];
    let (width, conv): (usize, fn(&[u8]) -> f32) = match kind.as_str() {
        "FloatStorage" => (4, |c| f32::from_le_bytes(c.try_into().expect("4"))),
        "HalfStorage" => (2, |c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        "BFloat16Storage" => (2, |c| {
            f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)
        }),
        "DoubleStorage" => (8, |c| f64::from_le_bytes(c.try_into().expect("8")) as f32),
        other => return Err(format!("storage type {other} is not a float type")),
    };
    if raw.len() != count.saturating_mul(width) {
        return Err(format!(
            "storage: {count} elements of {width} bytes, found {} bytes",
            raw.len()
        ));
    }
    Ok(raw.chunks_exact(width).map(conv).collect())
}

fn usizes(v: Option<&Value>) -> Option<Vec<usize>> {
    match v? {
        Value::Tuple(a) | Value::List(a) => a
            .iter()
            .map(|x| match x {
                Value::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// A tensor (or a parameter wrapping one): (shape, float32 values in row-major order).
fn tensor_of(v: &Value) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let Value::Object { class, state } = v else {
        return Err("not a tensor".into());
    };
    let Value::Tuple(args) = &**state else {
        return Err("malformed tensor arguments".into());
    };
    if class == "torch._utils._rebuild_parameter" {
        return tensor_of(args.first().ok_or("parameter without data")?);
    }
    if class != "torch._utils._rebuild_tensor_v2" {
        return Err(format!("class {class} is not a tensor"));
    }
    let bytes = match args.first() {
        Some(Value::Object { class, state }) if class == "torch.storage._load_from_bytes" => {
            match &**state {
                Value::Tuple(a) => match a.first() {
                    Some(Value::Bytes(b)) => b.clone(),
                    _ => return Err("storage without bytes".into()),
                },
                _ => return Err("storage without bytes".into()),
            }
        }
        _ => return Err("tensor without an inline storage".into()),
    };
    let data = storage_values(&bytes)?;
    let offset = match args.get(1) {
        Some(Value::Int(o)) => usize::try_from(*o).map_err(|_| "negative offset")?,
        _ => return Err("tensor without an offset".into()),
    };
    let (size, stride) = (usizes(args.get(2)), usizes(args.get(3)));
    let (Some(size), Some(stride)) = (size, stride) else {
        return Err("tensor without size and stride".into());
    };
    Ok((size.clone(), gather(&data, offset, &size, &stride)?))
}

/// The elements of a strided view, in row-major order; every index checked.
fn gather(
    data: &[f32],
    offset: usize,
    size: &[usize],
    stride: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    if size.len() != stride.len() {
        return Err("size and stride differ in length".into());
    }
    let n: usize = size.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; size.len()];
    for _ in 0..n {
        let at = offset + idx.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(*data.get(at).ok_or("a view reaches past its storage")?);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < size[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// Collect the `_parameters` and `_buffers` of a module tree under `prefix`.
fn collect(v: &Value, prefix: &str, sd: &mut StateDict) -> std::result::Result<(), String> {
    let state = module_state(v).ok_or_else(|| format!("{prefix}: not a module"))?;
    for field in ["_parameters", "_buffers"] {
        if let Some(Value::Dict(items)) = state.get(field) {
            for (k, t) in items {
                let Value::Str(name) = k else { continue };
                if matches!(t, Value::None) {
                    continue;
                }
                let key = format!("{prefix}{name}");
                let tensor = tensor_of(t).map_err(|e| format!("{key}: {e}"))?;
                sd.tensors.insert(key, tensor);
            }
        }
    }
    if let Some(Value::Dict(children)) = state.get("_modules") {
        for (k, child) in children {
            if let (Value::Str(name), false) = (k, matches!(child, Value::None)) {
                collect(child, &format!("{prefix}{name}."), sd)?;
            }
        }
    }
    Ok(())
}

/// A pickled value as JSON (for the recorded keyword arguments).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.clone()),
        Value::Tuple(a) | Value::List(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Dict(d) => J::Object(
            d.iter()
                .filter_map(|(k, x)| match k {
                    Value::Str(s) => Some((s.clone(), to_json(x))),
                    _ => None,
                })
                .collect(),
        ),
        Value::Object { state, .. } => to_json(state),
        _ => J::Null,
    }
}

/// The wrapper's preconditioning from its class name and recorded arguments.
fn precond_of(
    class: &str,
    kwargs: &serde_json::Value,
) -> std::result::Result<EdmPrecondConfig, String> {
    let keep: &[&str] = match class {
        "EDMPrecond" => &["sigma_data"],
        "VPPrecond" => &["beta_d", "beta_min", "M", "epsilon_t"],
        "VEPrecond" => &["sigma_min", "sigma_max"],
        "iDDPMPrecond" => &["C_1", "C_2", "M"],
        other => {
            return Err(format!(
                "{other} is not one of EDM's preconditioning classes"
            ));
        }
    };
    let mut obj = serde_json::Map::new();
    obj.insert("class_name".into(), class.into());
    for k in keep {
        if let Some(v) = kwargs.get(*k) {
            obj.insert((*k).into(), v.clone());
        }
    }
    serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| format!("{class}: {e}"))
}

/// Read the network `key` (`ema`) of an EDM snapshot and load it.
pub fn import_edm_pickle(path: &Path, key: &str, device: &Device) -> Result<ImportedEdm> {
    let bytes = score_core::fs::read_file(path)?;
    let root = unpickle(&bytes).map_err(|e| bad(path, format!("not a readable pickle: {e}")))?;
    let net = root
        .get(key)
        .filter(|v| !matches!(v, Value::None))
        .ok_or_else(|| {
            bad(
                path,
                format!("no network under '{key}' (EDM snapshots hold 'ema')"),
            )
        })?;
    check_classes(net, key).map_err(|e| bad(path, e))?;
    let class = persistent_class(net)
        .ok_or_else(|| bad(path, format!("'{key}' is not an EDM (persistent) network")))?;
    let state = module_state(net).ok_or_else(|| bad(path, format!("'{key}': no state")))?;
    let kwargs = to_json(state.get("_init_kwargs").unwrap_or(&Value::None));
    let precond = precond_of(class, &kwargs).map_err(|e| bad(path, format!("{key}: {e}")))?;
    let model = state
        .get("_modules")
        .and_then(|m| m.get("model"))
        .ok_or_else(|| bad(path, format!("{key}: no inner model")))?;
    let network = network_of(model).map_err(|e| bad(path, format!("{key}.model: {e}")))?;
    let mut sd = StateDict {
        source: path.to_path_buf(),
        ..StateDict::default()
    };
    collect(net, "", &mut sd).map_err(|e| bad(path, e))?;
    edm_from_state_dict(&sd, EdmDescription { network, precond }, device)
}

/// The inner network's configuration from its recorded `_init_kwargs` and class.
fn network_of(model: &Value) -> std::result::Result<EdmNetConfig, String> {
    let class = persistent_class(model).ok_or("not an EDM (persistent) network")?;
    let state = module_state(model).ok_or("no state")?;
    let mut kwargs = to_json(
        state
            .get("_init_kwargs")
            .ok_or("no recorded _init_kwargs")?,
    );
    let obj = kwargs.as_object_mut().ok_or("_init_kwargs is not a dict")?;
    obj.insert("model_type".into(), class.into());
    serde_json::from_value(kwargs).map_err(|e| format!("{class} arguments: {e}"))
}
