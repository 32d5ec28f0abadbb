//! PyTorch state dicts into burn modules: named tensors (float32, float16, bfloat16 or
//! float64 in a safetensors file, or handed over by the pickle reader) loaded into a
//! module whose parameter paths map to the state dict's keys, every shape checked, a
//! missing or left-over tensor an error naming its key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use score_core::error::{Result, ScoreError};

/// A state dict: float tensors by key, as float32 `(shape, values)`.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// The tensors.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Where they came from (for error messages).
    pub source: PathBuf,
}

/// IEEE half precision to single (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            let f = (f << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (f << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// The values of one safetensors view as float32, or `None` for a non-float dtype.
fn view_values(v: &safetensors::tensor::TensorView<'_>) -> Option<Vec<f32>> {
    use safetensors::Dtype;
    let d = v.data();
    Some(match v.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => return None,
    })
}

impl StateDict {
    /// Read the float tensors of a safetensors file; other dtypes are an error naming
    /// the key.
    pub fn read_safetensors(path: &Path) -> Result<Self> {
        let bytes = score_core::fs::read_file(path)?;
        Self::from_safetensors(&bytes, path)
    }

    /// [`Self::read_safetensors`] on bytes already read from `source`.
    pub fn from_safetensors(bytes: &[u8], source: &Path) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(source, format!("not a safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, v) in st.tensors() {
            let values = view_values(&v).ok_or_else(|| {
                bad(
                    source,
                    format!("tensor '{name}': dtype {:?}, expected a float", v.dtype()),
                )
            })?;
            tensors.insert(name, (v.shape().to_vec(), values));
        }
        Ok(Self {
            tensors,
            source: source.to_path_buf(),
        })
    }

    /// The tensors whose keys start with `prefix`, with it removed.
    pub fn strip_prefix(&self, prefix: &str) -> Self {
        let tensors = self
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect();
        Self {
            tensors,
            source: self.source.clone(),
        }
    }

    /// One tensor by key, or an error naming it.
    pub fn get(&self, key: &str) -> Result<&(Vec<usize>, Vec<f32>)> {
        self.tensors
            .get(key)
            .ok_or_else(|| bad(&self.source, format!("tensor '{key}' is missing")))
    }
}

fn bad(source: &Path, detail: String) -> ScoreError {
    ScoreError::Checkpoint {
        path: source.to_path_buf(),
        detail,
    }
}

/// Loads a module's float parameters from a state dict through a key map.
struct Loader<'a, K: Fn(&str) -> String> {
    path: Vec<String>,
    sd: &'a StateDict,
    key: K,
    used: BTreeSet<String>,
    error: Option<String>,
}

impl<K: Fn(&str) -> String> ModuleMapper for Loader<'_, K> {
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
        let key = (self.key)(&self.path.join("."));
        let Some((shape, values)) = self.sd.tensors.get(&key) else {
            self.error = Some(format!("tensor '{key}' is missing"));
            return param;
        };
        let want = param.lazy_shape();
        if shape.as_slice() != want.as_slice() {
            self.error = Some(format!(
                "tensor '{key}': shape {shape:?}, the network expects {:?}",
                want.as_slice()
            ));
            return param;
        }
        self.used.insert(key);
        let device = param.lazy_device();
        let t = Tensor::<D>::from_data(TensorData::new(values.clone(), shape.clone()), &device);
        let id = param.id;
        param.transform_for_load(t, id)
    }
}

/// Load every float parameter of `module` from `sd`: the parameter at burn path `p`
/// takes the tensor `key(p)`. A missing key or a shape mismatch is an error naming the
/// key; so is a tensor of `sd` that no parameter took, unless `extra_ok(key)`.
pub fn load_state_dict<M: Module, K: Fn(&str) -> String>(
    module: M,
    sd: &StateDict,
    key: K,
    extra_ok: impl Fn(&str) -> bool,
) -> Result<M> {
    let mut loader = Loader {
        path: Vec::new(),
        sd,
        key,
        used: BTreeSet::new(),
        error: None,
    };
    let module = module.map(&mut loader);
    if let Some(detail) = loader.error {
        return Err(bad(&sd.source, detail));
    }
    let extra: Vec<&String> = sd
        .tensors
        .keys()
        .filter(|k| !loader.used.contains(*k) && !extra_ok(k))
        .collect();
    if let Some(first) = extra.first() {
        return Err(bad(
            &sd.source,
            format!(
                "tensor '{first}' matches no parameter of the network ({} such tensors): wrong architecture or configuration?",
                extra.len()
            ),
        ));
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    /// Every finite half value against its exact decimal: normals, subnormals, ±0,
    /// ±inf. The conversion is exact, so equality is the bound.
    #[test]
    fn half_to_single_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }
}
