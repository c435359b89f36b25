//! Writing the zip format of `torch.save`, loadable with `torch.load(path, weights_only=True)`.

use super::storage::StorageType;
use crate::pickle::Writer;
use crate::CheckpointError;
use candle_core::Tensor;
use std::io::{Cursor, Write};
use std::path::Path;

/// The folder every record of the archive lives in (torch uses the file's stem; any name
/// loads).
const ARCHIVE: &str = "archive";
/// Records are aligned like torch aligns them, so `torch.load(..., mmap=True)` works too.
const ALIGNMENT: u16 = 64;

/// Writes `tensors` to `path` as `torch.save(OrderedDict(tensors), path)` would (zip format),
/// atomically.
pub fn write_pth(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = pth_bytes(tensors).map_err(|e| match e {
        CheckpointError::InvalidArgument(reason) => {
            CheckpointError::InvalidArgument(format!("cannot write {}: {reason}", path.display()))
        }
        other => other,
    })?;
    crate::write_atomic(path, |f| f.write_all(&bytes)).map_err(CheckpointError::write(path))
}

/// The bytes of a zip-format `.pth` file holding `tensors` as an `OrderedDict`.
pub fn pth_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, CheckpointError> {
    let unsupported = |name: &str, t: &Tensor| {
        CheckpointError::InvalidArgument(format!(
            "tensor '{name}' has dtype {:?}, which has no PyTorch storage class",
            t.dtype()
        ))
    };
    // The pickle: OrderedDict([(name, _rebuild_tensor_v2(storage, 0, size, stride, False,
    // OrderedDict())), ...]) with storage = persistent id ('storage', torch.XStorage, 'i',
    // 'cpu', numel).
    let mut p = Writer::new();
    p.global("collections", "OrderedDict");
    p.empty_tuple();
    p.reduce();
    p.mark();
    for (i, (name, t)) in tensors.iter().enumerate() {
        let class = StorageType::class_for(t.dtype()).ok_or_else(|| unsupported(name, t))?;
        let dims = t.dims();
        let mut stride = vec![1usize; dims.len()];
        for d in (0..dims.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * dims[d + 1];
        }
        p.str(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.mark();
        {
            p.mark();
            p.str("storage");
            p.global("torch", class);
            p.str(&i.to_string());
            p.str("cpu");
            p.int(t.elem_count() as i64);
            p.tuple_from_mark();
            p.persistent_id();
        }
        p.int(0);
        p.int_tuple(dims);
        p.int_tuple(&stride);
        p.bool(false);
        p.global("collections", "OrderedDict");
        p.empty_tuple();
        p.reduce();
        p.tuple_from_mark();
        p.reduce();
    }
    p.set_items();
    let pickle = p.finish();

    let zip_error = |e: zip::result::ZipError| CheckpointError::InvalidPth {
        path: Path::new("<output>").to_path_buf(),
        reason: format!("cannot build the zip archive: {e}"),
    };
    let io_error = |e: std::io::Error| zip_error(e.into());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(ALIGNMENT);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file(format!("{ARCHIVE}/data.pkl"), options)
        .map_err(zip_error)?;
    zip.write_all(&pickle).map_err(io_error)?;
    zip.start_file(format!("{ARCHIVE}/byteorder"), options)
        .map_err(zip_error)?;
    zip.write_all(b"little").map_err(io_error)?;
    for (i, (_, t)) in tensors.iter().enumerate() {
        zip.start_file(format!("{ARCHIVE}/data/{i}"), options)
            .map_err(zip_error)?;
        zip.write_all(&tensor_bytes(t)?).map_err(io_error)?;
    }
    zip.start_file(format!("{ARCHIVE}/version"), options)
        .map_err(zip_error)?;
    zip.write_all(b"3\n").map_err(io_error)?;
    Ok(zip.finish().map_err(zip_error)?.into_inner())
}

/// The little-endian bytes of a tensor's elements in row-major order.
fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>, CheckpointError> {
    #[cfg(not(target_endian = "little"))]
    compile_error!("the .pth writer assumes a little-endian host");
    let t = t.to_device(&candle_core::Device::Cpu)?;
    Ok(safetensors::View::data(&&t).into_owned())
}
