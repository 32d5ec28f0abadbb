//! A small pickle (protocol ≤ 4) interpreter for the object trees that TorchScript
//! archives store in `data.pkl`. It builds values, never calls code: a class becomes a
//! [`Value::Object`] holding its state, `torch._utils._rebuild_tensor_v2` becomes a
//! [`Value::Tensor`] that names its storage, and any opcode outside the supported set is
//! an error naming it. Memoised values are copies, refreshed whenever the container on
//! top of the stack that was memoised is filled (APPEND(S), SETITEM(S), BUILD); this is
//! exact for pickles that finish a container before referring to it again, as
//! TorchScript's writer and Python's `pickle` do. Byte strings are shared (`Arc`), so
//! memoised copies of containers that hold tensor data stay cheap.
//!
//! Also read: plain `pickle.dump` files of PyTorch objects (EDM's snapshots): byte
//! strings, sets, `copyreg._reconstructor` objects (named by their class) and tensors
//! whose storage is pickled inline (`torch.storage._load_from_bytes`), which stay
//! [`Value::Object`]s for the caller to decode.

use std::collections::HashMap;
use std::sync::Arc;

/// A tensor that a pickle refers to: its storage key and its layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage's key (the file `data/<key>` in the archive).
    pub key: String,
    /// The storage class, e.g. `FloatStorage`.
    pub storage: String,
    /// Offset in elements into the storage.
    pub offset: usize,
    /// The tensor's shape.
    pub size: Vec<usize>,
    /// The tensor's strides, in elements.
    pub stride: Vec<usize>,
}

/// A pickled value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A byte string.
    Bytes(Arc<Vec<u8>>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global name (`module`, `name`).
    Global(String, String),
    /// An instance of a class with its state (a dict for modules) or its arguments.
    Object {
        /// `module.name` of its class.
        class: String,
        /// Its state after `BUILD`, or the arguments of `REDUCE`.
        state: Box<Value>,
    },
    /// A persistent id (TorchScript: a storage descriptor).
    Persistent(Box<Value>),
    /// A tensor.
    Tensor(TensorRef),
}

impl Value {
    /// The value under `key` when this is a dict or an object with a dict state.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            Value::Object { state, .. } => state.get(key),
            _ => None,
        }
    }

    fn usizes(&self) -> Option<Vec<usize>> {
        match self {
            Value::Tuple(v) | Value::List(v) => v
                .iter()
                .map(|x| match x {
                    Value::Int(i) => usize::try_from(*i).ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

enum Slot {
    /// A value and the memo key it was stored under, if any.
    V(Value, Option<u32>),
    Mark,
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Value>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self
            .data
            .get(self.at..self.at + n)
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.at.min(self.data.len())..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<Value, String> {
        Ok(Value::Str(
            String::from_utf8_lossy(self.take(n)?).into_owned(),
        ))
    }

    fn pop(&mut self) -> Result<Value, String> {
        match self.stack.pop() {
            Some(Slot::V(v, _)) => Ok(v),
            Some(Slot::Mark) => Err("unexpected mark".into()),
            None => Err("stack underflow".into()),
        }
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        match self.stack.last_mut() {
            Some(Slot::V(v, _)) => Ok(v),
            _ => Err("stack underflow".into()),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Slot::V(v, _)) => items.push(v),
                Some(Slot::Mark) => break,
                None => return Err("no mark on the stack".into()),
            }
        }
        items.reverse();
        Ok(items)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::V(v, None));
    }

    fn put(&mut self, key: u32) -> Result<(), String> {
        let v = match self.stack.last_mut() {
            Some(Slot::V(v, k)) => {
                *k = Some(key);
                v.clone()
            }
            _ => return Err("memoising an empty stack".into()),
        };
        self.memo.insert(key, v);
        Ok(())
    }

    /// After the top container changed, refresh its memoised copy.
    fn refresh(&mut self) {
        if let Some(Slot::V(v, Some(k))) = self.stack.last() {
            self.memo.insert(*k, v.clone());
        }
    }

    fn get(&mut self, key: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo key {key} is not set"))?;
        self.push(v);
        Ok(())
    }

    fn extend(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::List(l) => l.extend(items),
            _ => return Err("APPEND(S) on a non-list".into()),
        }
        self.refresh();
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of items".into());
        }
        let Value::Dict(d) = self.top()? else {
            return Err("SETITEM(S) on a non-dict".into());
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        self.refresh();
        Ok(())
    }

    fn reduce(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Global(module, name) = callable else {
            return Err("REDUCE of a value that is not a global".into());
        };
        let value = match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") if has_persistent_storage(&args) => {
                rebuild_tensor(&args)?
            }
            // Python's default object reduction: name the object by its class.
            ("copyreg", "_reconstructor") => match &args {
                Value::Tuple(a) if matches!(a.first(), Some(Value::Global(..))) => {
                    let Some(Value::Global(m, n)) = a.first() else {
                        unreachable!("matched above")
                    };
                    Value::Object {
                        class: format!("{m}.{n}"),
                        state: Box::new(Value::None),
                    }
                }
                _ => return Err("malformed copyreg._reconstructor arguments".into()),
            },
            ("collections", "OrderedDict") => Value::Dict(Vec::new()),
            // TorchScript's typed containers: build_intlist([0, 3]) is the list itself.
            ("torch.jit._pickle", n) if n.starts_with("build_") => match args {
                Value::Tuple(mut a) if a.len() == 1 => a.remove(0),
                _ => return Err(format!("malformed {n} arguments")),
            },
            _ => Value::Object {
                class: format!("{module}.{name}"),
                state: Box::new(args),
            },
        };
        self.push(value);
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        let state = self.pop()?;
        match self.top()? {
            Value::Object { state: s, .. } => **s = state,
            Value::Dict(d) => {
                if let Value::Dict(items) = state {
                    d.extend(items)
                }
            }
            _ => return Err("BUILD on a value that is not an object".into()),
        }
        self.refresh();
        Ok(())
    }

    fn step(&mut self, op: u8) -> Result<bool, String> {
        match op {
            0x80 => {
                self.take(1)?;
            }
            0x95 => {
                self.take(8)?; // FRAME
            }
            b'.' => return Ok(false),
            _ => {
                if !(self.scalar_op(op)? || self.container_op(op)? || self.reference_op(op)?) {
                    return Err(format!("unsupported opcode 0x{op:02x}"));
                }
            }
        }
        Ok(true)
    }

    /// Marks, constants, integers, floats and strings; `Ok(false)` when `op` is not one of them.
    fn scalar_op(&mut self, op: u8) -> Result<bool, String> {
        match op {
            b'(' => self.stack.push(Slot::Mark),
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'K' => {
                let v = self.uint(1)? as i64;
                self.push(Value::Int(v))
            }
            b'M' => {
                let v = self.uint(2)? as i64;
                self.push(Value::Int(v))
            }
            b'J' => {
                let v = self.uint(4)? as u32 as i32 as i64;
                self.push(Value::Int(v))
            }
            0x8a => {
                let n = self.uint(1)? as usize;
                let b = self.take(n)?.to_vec();
                if n > 8 {
                    // Wider than 64 bits (torch.save's magic number): kept as its
                    // little-endian two's-complement bytes.
                    self.push(Value::Bytes(Arc::new(b)));
                    return Ok(true);
                }
                let mut v = b.iter().rev().fold(0i64, |a, &x| (a << 8) | x as i64);
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                self.push(Value::Int(v))
            }
            b'G' => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "float")?;
                self.push(Value::Float(f64::from_be_bytes(b)))
            }
            b'X' => {
                let n = self.uint(4)? as usize;
                let v = self.text(n)?;
                self.push(v)
            }
            0x8c | b'U' => {
                let n = self.uint(1)? as usize;
                let v = self.text(n)?;
                self.push(v)
            }
            b'T' => {
                let n = self.uint(4)? as usize;
                let v = self.text(n)?;
                self.push(v)
            }
            0x8d => {
                let n = usize::try_from(self.uint(8)?).map_err(|_| "BINUNICODE8 length")?;
                let v = self.text(n)?;
                self.push(v)
            }
            b'C' | b'B' | 0x8e | 0x96 => {
                let width = match op {
                    b'C' => 1,
                    b'B' => 4,
                    _ => 8,
                };
                let n = usize::try_from(self.uint(width)?).map_err(|_| "bytes length")?;
                let b = self.take(n)?.to_vec();
                self.push(Value::Bytes(Arc::new(b)))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts; `Ok(false)` when `op` is not one of them.
    fn container_op(&mut self, op: u8) -> Result<bool, String> {
        match op {
            b')' => self.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                self.push(Value::Tuple(items))
            }
            b']' => self.push(Value::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Value::List(items))
            }
            b'a' => {
                let v = self.pop()?;
                self.extend(vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend(items)?
            }
            b'}' => self.push(Value::Dict(Vec::new())),
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?
            }
            // Sets become lists (EMPTY_SET, ADDITEMS, FROZENSET).
            0x8f => self.push(Value::List(Vec::new())),
            0x90 => {
                let items = self.pop_mark()?;
                self.extend(items)?
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Value::List(items))
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo, globals, objects and persistent ids; `Ok(false)` when `op` is not one of them.
    fn reference_op(&mut self, op: u8) -> Result<bool, String> {
        match op {
            b'q' => {
                let k = self.uint(1)? as u32;
                self.put(k)?
            }
            b'r' => {
                let k = self.uint(4)? as u32;
                self.put(k)?
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.put(k)?
            }
            b'h' => {
                let k = self.uint(1)? as u32;
                self.get(k)?
            }
            b'j' => {
                let k = self.uint(4)? as u32;
                self.get(k)?
            }
            b'c' => {
                let (module, name) = (self.line()?, self.line()?);
                self.push(Value::Global(module, name))
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(m), Value::Str(n)) = (module, name) else {
                    return Err("STACK_GLOBAL of non-strings".into());
                };
                self.push(Value::Global(m, n))
            }
            0x81 => {
                let _args = self.pop()?;
                let Value::Global(m, n) = self.pop()? else {
                    return Err("NEWOBJ of a value that is not a class".into());
                };
                self.push(Value::Object {
                    class: format!("{m}.{n}"),
                    state: Box::new(Value::None),
                })
            }
            b'R' => self.reduce()?,
            b'b' => self.build()?,
            b'Q' => {
                let pid = self.pop()?;
                self.push(Value::Persistent(Box::new(pid)))
            }

            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Whether `_rebuild_tensor_v2`'s storage is a persistent id (an archive's file)
/// rather than a value pickled inline.
fn has_persistent_storage(args: &Value) -> bool {
    matches!(args, Value::Tuple(a) if matches!(a.first(), Some(Value::Persistent(_))))
}

fn rebuild_tensor(args: &Value) -> Result<Value, String> {
    let bad = || "malformed _rebuild_tensor_v2 arguments".to_string();
    let Value::Tuple(a) = args else {
        return Err(bad());
    };
    let (Some(Value::Persistent(pid)), Some(Value::Int(offset)), Some(size), Some(stride)) =
        (a.first(), a.get(1), a.get(2), a.get(3))
    else {
        return Err(bad());
    };
    let Value::Tuple(p) = &**pid else {
        return Err(bad());
    };
    let (Some(Value::Global(_, storage)), Some(Value::Str(key))) = (p.get(1), p.get(2)) else {
        return Err(bad());
    };
    Ok(Value::Tensor(TensorRef {
        key: key.clone(),
        storage: storage.clone(),
        offset: usize::try_from(*offset).map_err(|_| bad())?,
        size: size.usizes().ok_or_else(bad)?,
        stride: stride.usizes().ok_or_else(bad)?,
    }))
}

/// Interpret a pickle, returning the value it builds or a message naming the opcode
/// and byte offset where it failed.
pub fn unpickle(data: &[u8]) -> Result<Value, String> {
    unpickle_prefix(data).map(|(v, _)| v)
}

/// Interpret the pickle at the start of `data` (several may follow each other, as in
/// PyTorch's legacy `torch.save` format): the value and the bytes it took.
pub fn unpickle_prefix(data: &[u8]) -> Result<(Value, usize), String> {
    let mut m = Machine {
        data,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let at = m.at;
        let op = *data.get(at).ok_or("no STOP opcode")?;
        m.at += 1;
        match m.step(op) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(format!("byte {at} (opcode 0x{op:02x}): {e}")),
        }
    }
    Ok((m.pop()?, m.at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_protocol_2_module_tree() {
        // pickle.dumps({'a': [1, 2.5, 'x'], 'b': (True, None, -3, 70000)}, 2), by hand:
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'a', b']', b'(', b'K', 1,
        ];
        p.extend_from_slice(b"G");
        p.extend_from_slice(&2.5f64.to_be_bytes());
        p.extend_from_slice(&[b'X', 1, 0, 0, 0, b'x', b'e', b'X', 1, 0, 0, 0, b'b']);
        p.extend_from_slice(&[0x88, b'N', b'J']);
        p.extend_from_slice(&(-3i32).to_le_bytes());
        p.extend_from_slice(b"J");
        p.extend_from_slice(&70000i32.to_le_bytes());
        p.extend_from_slice(b"tu.");
        // The tuple's MARK: insert it before NEWTRUE.
        let pos = p.iter().position(|&b| b == 0x88).unwrap();
        p.insert(pos, b'(');
        let v = unpickle(&p).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::List(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Str("x".into())
            ]))
        );
        assert_eq!(
            v.get("b"),
            Some(&Value::Tuple(vec![
                Value::Bool(true),
                Value::None,
                Value::Int(-3),
                Value::Int(70000)
            ]))
        );
        // Truncations and unknown opcodes are errors, never panics.
        for cut in 0..p.len() - 1 {
            assert!(unpickle(&p[..cut]).is_err());
        }
        assert!(unpickle(&[0x80, 2, 0xff]).unwrap_err().contains("0xff"));
    }
}
