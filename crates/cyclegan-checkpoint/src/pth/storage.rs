//! Storages and the tensors that view them.

use crate::error::shown;
use crate::pickle::Value;
use candle_core::{DType, Device, Tensor};

/// The element type of a storage (`torch.FloatStorage`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StorageType {
    /// The dtype of the tensors built from it.
    pub dtype: DType,
    /// Bytes per element in the file.
    pub size: usize,
}

impl StorageType {
    /// The storage class `torch.NAME`, if it is one this reader can build tensors from.
    pub fn from_class(name: &str) -> Option<StorageType> {
        let (dtype, size) = match name {
            "FloatStorage" => (DType::F32, 4),
            "DoubleStorage" => (DType::F64, 8),
            "HalfStorage" => (DType::F16, 2),
            "BFloat16Storage" => (DType::BF16, 2),
            "LongStorage" => (DType::I64, 8),
            "IntStorage" => (DType::I32, 4),
            "ShortStorage" => (DType::I16, 2),
            "ByteStorage" => (DType::U8, 1),
            // Booleans are stored one byte each, 0 or 1.
            "BoolStorage" => (DType::U8, 1),
            _ => return None,
        };
        Some(StorageType { dtype, size })
    }

    /// The storage class that holds `dtype`, for writing.
    pub fn class_for(dtype: DType) -> Option<&'static str> {
        Some(match dtype {
            DType::F32 => "FloatStorage",
            DType::F64 => "DoubleStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::I16 => "ShortStorage",
            DType::U8 => "ByteStorage",
            _ => return None,
        })
    }
}

/// A storage a tensor refers to: the persistent id `('storage', type, key, location, numel)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageRef {
    pub key: String,
    pub kind: StorageType,
    /// Elements in the storage, as the persistent id states.
    pub numel: usize,
}

/// The largest tensor built from a smaller storage (by zero strides, as `expand` makes).
const MAX_REPEATED_BYTES: usize = 256 << 20;

/// A tensor to build: a strided view of a storage.
#[derive(Debug, Clone)]
pub(crate) struct TensorSpec {
    pub name: String,
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

fn usize_of(v: &Value, what: &str) -> Result<usize, String> {
    v.as_int()
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| format!("{what} is {}, expected a non-negative int", v.describe()))
}

fn usizes_of(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    v.as_seq()
        .ok_or_else(|| format!("{what} is {}, expected a tuple", v.describe()))?
        .iter()
        .map(|x| usize_of(x, what))
        .collect()
}

/// Parses a storage persistent id. Returns the storage and the extra element offset of a
/// legacy storage view.
fn storage_ref(pid: &Value) -> Result<(StorageRef, usize), String> {
    let parts = match pid {
        Value::Tuple(parts) => parts,
        other => {
            return Err(format!(
                "a persistent id {} where a storage tuple was expected",
                other.describe()
            ))
        }
    };
    if parts.len() < 5 || parts[0].as_str() != Some("storage") {
        return Err(format!(
            "a persistent id of {} items that is not ('storage', type, key, location, numel)",
            parts.len()
        ));
    }
    let class = match &parts[1] {
        Value::Global { module, name } if module == "torch" => name.as_str(),
        // torch >= 2.x for dtypes without a legacy class writes the dtype itself.
        other => {
            return Err(format!(
                "unsupported storage type {}; expected torch.FloatStorage, DoubleStorage, HalfStorage, BFloat16Storage, LongStorage, IntStorage, ShortStorage, ByteStorage or BoolStorage",
                other.describe()
            ))
        }
    };
    let kind = StorageType::from_class(class).ok_or_else(|| {
        format!(
            "unsupported storage type torch.{}; expected torch.FloatStorage, DoubleStorage, HalfStorage, BFloat16Storage, LongStorage, IntStorage, ShortStorage, ByteStorage or BoolStorage",
            shown(class)
        )
    })?;
    let key = match &parts[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("storage key is {}", other.describe())),
    };
    let numel = usize_of(&parts[4], "storage size")?;
    // Legacy storage views: (view_key, offset, view_size).
    let view_offset = match parts.get(5) {
        None | Some(Value::None) => 0,
        Some(Value::Tuple(view)) if view.len() == 3 => usize_of(&view[1], "view offset")?,
        Some(other) => return Err(format!("storage view is {}", other.describe())),
    };
    Ok((StorageRef { key, kind, numel }, view_offset))
}

/// Recognises a pickled tensor; `Ok(None)` for values that are not tensors.
pub(crate) fn tensor_spec(name: &str, value: &Value) -> Result<Option<TensorSpec>, String> {
    let Value::Call { callable, args } = value else {
        return Ok(None);
    };
    let Value::Global {
        module,
        name: function,
    } = callable.as_ref()
    else {
        return Ok(None);
    };
    let args = args.as_seq().unwrap_or(&[]);
    match (module.as_str(), function.as_str()) {
        // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
        // and PyTorch 0.3's _rebuild_tensor(storage, offset, size, stride).
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            if args.len() < 4 {
                return Err(format!(
                    "{function} with {} arguments, expected at least 4",
                    args.len()
                ));
            }
            let pid = match &args[0] {
                Value::Persistent(pid) => pid,
                other => {
                    return Err(format!(
                        "storage argument is {}, expected a persistent id",
                        other.describe()
                    ))
                }
            };
            let (storage, view_offset) = storage_ref(pid)?;
            let offset = usize_of(&args[1], "storage offset")? + view_offset;
            let size = usizes_of(&args[2], "size")?;
            let stride = usizes_of(&args[3], "stride")?;
            if size.len() != stride.len() {
                return Err(format!(
                    "size {size:?} and stride {stride:?} differ in length"
                ));
            }
            Ok(Some(TensorSpec {
                name: name.to_string(),
                storage,
                offset,
                size,
                stride,
            }))
        }
        // nn.Parameter(data, requires_grad, hooks)
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => args
            .first()
            .map_or(Ok(None), |data| tensor_spec(name, data)),
        // Tensor subclasses: _rebuild_from_type_v2(func, type, args, state)
        ("torch._tensor", "_rebuild_from_type_v2") if args.len() >= 3 => {
            let call = Value::Call {
                callable: Box::new(args[0].clone()),
                args: Box::new(args[2].clone()),
            };
            tensor_spec(name, &call)
        }
        ("torch._utils", other) if other.starts_with("_rebuild") => Err(format!(
            "stored with torch._utils.{} (quantized or sparse tensors are not supported)",
            shown(other)
        )),
        _ => Ok(None),
    }
}

impl TensorSpec {
    /// Builds the tensor from its storage's bytes (little-endian).
    pub fn build(&self, storage: &[u8]) -> Result<Tensor, String> {
        let es = self.storage.kind.size;
        let available = storage.len() / es;
        let numel = self
            .size
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("size {:?} has more elements than memory holds", self.size))?;
        let dtype = self.storage.kind.dtype;
        if numel == 0 {
            return Tensor::zeros(self.size.as_slice(), dtype, &Device::Cpu)
                .map_err(|e| e.to_string());
        }
        // The last element the view reaches (`None` beyond any storage).
        let last = self
            .size
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |at, (n, s)| {
                (n - 1).checked_mul(*s).and_then(|d| at.checked_add(d))
            });
        if last.is_none_or(|last| last >= available) {
            let last = last.map_or("2^64 or more".to_string(), |l| l.to_string());
            return Err(format!(
                "size {:?} stride {:?} at offset {} reaches element {last} of a storage of {available}",
                self.size, self.stride, self.offset
            ));
        }
        // More elements than the storage holds repeat some (zero strides): a few bytes of
        // file could otherwise ask for terabytes.
        if numel > available && numel.saturating_mul(es) > MAX_REPEATED_BYTES {
            return Err(format!(
                "size {:?} stride {:?} repeats the {available} elements of its storage into {numel}, more than {} MiB",
                self.size,
                self.stride,
                MAX_REPEATED_BYTES >> 20
            ));
        }
        let contiguous = {
            let mut expected = 1;
            let mut ok = true;
            for (n, s) in self.size.iter().zip(&self.stride).rev() {
                if *n != 1 && *s != expected {
                    ok = false;
                }
                expected *= n;
            }
            ok
        };
        let data: std::borrow::Cow<[u8]> = if contiguous {
            std::borrow::Cow::Borrowed(&storage[self.offset * es..(self.offset + numel) * es])
        } else {
            let mut out = Vec::with_capacity(numel * es);
            let mut index = vec![0usize; self.size.len()];
            for _ in 0..numel {
                let at = self.offset
                    + index
                        .iter()
                        .zip(&self.stride)
                        .map(|(i, s)| i * s)
                        .sum::<usize>();
                out.extend_from_slice(&storage[at * es..(at + 1) * es]);
                for d in (0..index.len()).rev() {
                    index[d] += 1;
                    if index[d] < self.size[d] {
                        break;
                    }
                    index[d] = 0;
                }
            }
            std::borrow::Cow::Owned(out)
        };
        Tensor::from_raw_buffer(&data, dtype, &self.size, &Device::Cpu).map_err(|e| e.to_string())
    }
}

/// Reverses the bytes of every `size`-byte element (for big-endian files).
pub(crate) fn swap_bytes(data: &mut [u8], size: usize) {
    if size > 1 {
        for chunk in data.chunks_exact_mut(size) {
            chunk.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(offset: usize, size: &[usize], stride: &[usize]) -> TensorSpec {
        TensorSpec {
            name: "t".into(),
            storage: StorageRef {
                key: "0".into(),
                kind: StorageType::from_class("FloatStorage").unwrap(),
                numel: 12,
            },
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn storage() -> Vec<u8> {
        (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    #[test]
    fn builds_contiguous_strided_and_offset_views() {
        let s = storage();
        let t = spec(0, &[3, 4], &[4, 1]).build(&s).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap()[2], vec![8., 9., 10., 11.]);
        // The transpose of a 4x3 matrix (column-major).
        let t = spec(0, &[3, 4], &[1, 3]).build(&s).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap()[0], vec![0., 3., 6., 9.]);
        // Every other element from offset 1.
        let t = spec(1, &[5], &[2]).build(&s).unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), vec![1., 3., 5., 7., 9.]);
        // A scalar.
        let t = spec(7, &[], &[]).build(&s).unwrap();
        assert_eq!(t.to_scalar::<f32>().unwrap(), 7.);
        // Beyond the storage.
        let err = spec(1, &[3, 4], &[4, 1]).build(&s).unwrap_err();
        assert!(err.contains("reaches element 12"), "{err}");
        // Repeated elements (a zero stride).
        let t = spec(2, &[2, 3], &[0, 1]).build(&s).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap()[1], vec![2., 3., 4.]);
    }

    /// Sizes, strides and offsets from the file whose arithmetic overflows, or that ask for
    /// far more memory than the storage: an index panic or an allocation abort before.
    #[test]
    fn crafted_views_are_errors() {
        let s = storage();
        let big = (1usize << 63) - 1;
        let cases: [(usize, &[usize], &[usize], &str); 5] = [
            // Strides that sum to 2^64 - 2 wrapped to a view ending at element 0.
            (
                2,
                &[2, 2, 2],
                &[big, big - 100, 100],
                "reaches element 2^64 or more",
            ),
            (2, &[2, 2], &[big, big], "reaches element 2^64 or more"),
            (big, &[3], &[big], "reaches element 2^64 or more"),
            // 2^40 copies of one element: a 4 TiB allocation.
            (
                0,
                &[1 << 40],
                &[0],
                "repeats the 12 elements of its storage",
            ),
            // A size whose product overflows wrapped to 0 elements.
            (
                0,
                &[1 << 32, 1 << 32],
                &[0, 0],
                "more elements than memory holds",
            ),
        ];
        for (offset, size, stride, expected) in cases {
            let err = spec(offset, size, stride).build(&s).unwrap_err();
            assert!(err.contains(expected), "{size:?} {stride:?}: {err}");
        }
    }

    #[test]
    fn swaps_big_endian_elements() {
        let mut b = 1.5f32.to_be_bytes().to_vec();
        swap_bytes(&mut b, 4);
        assert_eq!(f32::from_le_bytes(b.try_into().unwrap()), 1.5);
    }
}
