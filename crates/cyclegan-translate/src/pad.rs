//! Mirroring an image out to a size multiple, and cropping back.

use candle_core::{Result, Tensor};

/// The source index of each position of an axis of `len` extended to `len + extra` by
/// mirroring (without repeating the edge), continued periodically so any `extra` works.
fn mirror_indices(len: usize, extra: usize) -> Vec<u32> {
    if len == 1 {
        return vec![0; 1 + extra];
    }
    let period = 2 * (len - 1);
    (0..len + extra)
        .map(|i| {
            let r = i % period;
            (if r < len { r } else { period - r }) as u32
        })
        .collect()
}

/// Extends the last two dimensions of `x` at the bottom and right, by reflection, to the next
/// multiple of `multiple` that is at least `min_size`. Fails on a tensor of rank below 2, an
/// empty plane or a `multiple` of 0.
pub fn pad_to_multiple(x: &Tensor, multiple: usize, min_size: usize) -> Result<Tensor> {
    let rank = x.rank();
    if rank < 2 || multiple == 0 {
        candle_core::bail!(
            "pad_to_multiple needs a tensor of rank 2 or more and a multiple of 1 or more, got shape {:?} and multiple {multiple}",
            x.dims()
        );
    }
    let (h, w) = (x.dim(rank - 2)?, x.dim(rank - 1)?);
    if h == 0 || w == 0 {
        candle_core::bail!(
            "pad_to_multiple cannot mirror an empty plane (shape {:?})",
            x.dims()
        );
    }
    let extra = |n: usize| n.max(min_size).div_ceil(multiple) * multiple - n;
    let (eh, ew) = (extra(h), extra(w));
    if eh == 0 && ew == 0 {
        return Ok(x.clone());
    }
    let rows = Tensor::new(mirror_indices(h, eh), x.device())?;
    let cols = Tensor::new(mirror_indices(w, ew), x.device())?;
    x.index_select(&cols, rank - 1)?
        .index_select(&rows, rank - 2)
}

/// The top-left `h x w` of the last two dimensions. Fails on a tensor of rank below 2 or one
/// smaller than `h x w`.
pub fn crop_to(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let rank = x.rank();
    if rank < 2 {
        candle_core::bail!(
            "crop_to needs a tensor of rank 2 or more, got shape {:?}",
            x.dims()
        );
    }
    x.narrow(rank - 2, 0, h)?.narrow(rank - 1, 0, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mirrors_without_repeating_the_edge() {
        assert_eq!(mirror_indices(4, 3), vec![0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(mirror_indices(3, 6), vec![0, 1, 2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(mirror_indices(1, 2), vec![0, 0, 0]);
    }

    #[test]
    fn refuses_what_it_cannot_pad_or_crop() {
        let dev = Device::Cpu;
        let line = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
        assert!(pad_to_multiple(&line, 4, 1).is_err());
        assert!(crop_to(&line, 1, 1).is_err());
        let image = Tensor::zeros((1, 3, 5, 6), candle_core::DType::F32, &dev).unwrap();
        assert!(pad_to_multiple(&image, 0, 1).is_err());
        let empty = Tensor::zeros((1, 3, 0, 6), candle_core::DType::F32, &dev).unwrap();
        assert!(pad_to_multiple(&empty, 4, 1).is_err());
        assert!(crop_to(&image, 6, 6).is_err());
    }

    #[test]
    fn pads_to_the_multiple_and_crops_back() {
        let x = Tensor::arange(0f32, 30.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 5, 6))
            .unwrap();
        let padded = pad_to_multiple(&x, 4, 1).unwrap();
        assert_eq!(padded.dims(), &[1, 1, 8, 8]);
        let back = crop_to(&padded, 5, 6).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(
            pad_to_multiple(&x.narrow(3, 0, 4).unwrap().narrow(2, 0, 4).unwrap(), 4, 1)
                .unwrap()
                .dims(),
            &[1, 1, 4, 4]
        );
    }
}
