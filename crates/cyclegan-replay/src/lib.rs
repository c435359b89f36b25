//! The CycleGAN image pool: a replay buffer of generated images for the discriminators.
//!
//! Shrivastava et al. (2017) update the discriminator with a history of generated images
//! rather than only the newest; the reference keeps 50. [`ImagePool::query`] follows the
//! reference's `ImagePool.query` exactly, per image of the batch:
//! - while fewer than `size` images are stored, store the image and return it;
//! - afterwards, with probability 1/2 return a uniformly chosen stored image and store the new
//!   one in its place, otherwise return the new image.
//!
//! A size of 0 disables the pool. Randomness comes from a seedable ChaCha8 generator, and the
//! whole state (images and generator) can be taken out and put back for exact resumption.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cyclegan_replay::ImagePool;
//!
//! let mut pool = ImagePool::new(2, 0);
//! let fake = |v: f32| Tensor::full(v, (1, 3, 4, 4), &Device::Cpu);
//! // The first `size` images are stored and returned as they are.
//! assert_eq!(pool.query(&fake(1.0)?)?.mean_all()?.to_scalar::<f32>()?, 1.0);
//! assert_eq!(pool.query(&fake(2.0)?)?.mean_all()?.to_scalar::<f32>()?, 2.0);
//! // Then each query returns the new image or, half of the time, a stored one.
//! let v = pool.query(&fake(3.0)?)?.mean_all()?.to_scalar::<f32>()?;
//! assert!([1.0, 2.0, 3.0].contains(&v));
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The replay buffer (see the crate documentation).
#[derive(Debug, Clone)]
pub struct ImagePool {
    size: usize,
    images: Vec<Tensor>,
    rng: ChaCha8Rng,
}

impl ImagePool {
    /// An empty pool of `size` images (0 disables it) drawing from a generator seeded by `seed`.
    pub fn new(size: usize, seed: u64) -> Self {
        Self::from_parts(size, Vec::new(), ChaCha8Rng::seed_from_u64(seed))
    }

    /// A pool restored from its parts (see [`ImagePool::images`] and [`ImagePool::rng`]).
    /// Images beyond `size` are dropped.
    pub fn from_parts(size: usize, mut images: Vec<Tensor>, rng: ChaCha8Rng) -> Self {
        images.truncate(size);
        Self { size, images, rng }
    }

    /// The pool's capacity.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The stored images, each `[1, C, H, W]`, in slot order.
    pub fn images(&self) -> &[Tensor] {
        &self.images
    }

    /// The generator's current state.
    pub fn rng(&self) -> &ChaCha8Rng {
        &self.rng
    }

    /// Returns a batch of the same shape as `images` (`[N, C, H, W]`), drawn from the history as
    /// described in the crate documentation. The result is detached from any graph.
    pub fn query(&mut self, images: &Tensor) -> Result<Tensor> {
        let images = images.detach();
        if self.size == 0 {
            return Ok(images);
        }
        let mut out = Vec::with_capacity(images.dim(0)?);
        for i in 0..images.dim(0)? {
            let image = images.narrow(0, i, 1)?.copy()?;
            if self.images.len() < self.size {
                self.images.push(image.clone());
                out.push(image);
            } else if self.rng.random::<f64>() > 0.5 {
                let slot = self.rng.random_range(0..self.size);
                out.push(std::mem::replace(&mut self.images[slot], image));
            } else {
                out.push(image);
            }
        }
        Tensor::cat(&out, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    fn image(value: f32) -> Tensor {
        Tensor::full(value, (1, 1, 2, 2), &Device::Cpu).unwrap()
    }

    fn value(t: &Tensor, i: usize) -> f32 {
        t.i((i, 0, 0, 0)).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn size_zero_returns_the_input() {
        let mut pool = ImagePool::new(0, 1);
        let out = pool.query(&image(3.0)).unwrap();
        assert_eq!(value(&out, 0), 3.0);
        assert!(pool.images().is_empty());
    }

    #[test]
    fn fills_up_returning_each_new_image() {
        let mut pool = ImagePool::new(3, 1);
        for v in 0..3 {
            assert_eq!(value(&pool.query(&image(v as f32)).unwrap(), 0), v as f32);
        }
        assert_eq!(pool.images().len(), 3);
    }

    #[test]
    fn once_full_returns_history_about_half_the_time_and_keeps_its_size() {
        let mut pool = ImagePool::new(4, 7);
        for v in 0..4 {
            pool.query(&image(v as f32)).unwrap();
        }
        let mut from_history = 0;
        let trials = 2000;
        for v in 4..4 + trials {
            let new = v as f32;
            let out = value(&pool.query(&image(new)).unwrap(), 0);
            if out != new {
                from_history += 1;
                assert!(out < new, "a returned history image must be an older one");
            }
            assert_eq!(pool.images().len(), 4);
            // The new image is always in the pool or was returned.
            let stored: Vec<f32> = pool.images().iter().map(|t| value(t, 0)).collect();
            assert!(out == new || stored.contains(&new));
        }
        let share = from_history as f64 / trials as f64;
        assert!((share - 0.5).abs() < 0.05, "history share {share}");
    }

    #[test]
    fn batches_are_processed_image_by_image() {
        let mut pool = ImagePool::new(2, 3);
        let batch = Tensor::cat(&[image(1.0), image(2.0), image(3.0)], 0).unwrap();
        let out = pool.query(&batch).unwrap();
        assert_eq!(out.dims(), &[3, 1, 2, 2]);
        assert_eq!((value(&out, 0), value(&out, 1)), (1.0, 2.0));
        assert_eq!(pool.images().len(), 2);
    }

    #[test]
    fn restored_state_continues_identically() {
        let mut a = ImagePool::new(3, 11);
        for v in 0..10 {
            a.query(&image(v as f32)).unwrap();
        }
        let mut b = ImagePool::from_parts(a.size(), a.images().to_vec(), a.rng().clone());
        for v in 10..50 {
            let x = image(v as f32);
            assert_eq!(
                value(&a.query(&x).unwrap(), 0),
                value(&b.query(&x).unwrap(), 0)
            );
        }
    }

    #[test]
    fn same_seed_same_choices() {
        let run = |seed| {
            let mut pool = ImagePool::new(2, seed);
            (0..30)
                .map(|v| value(&pool.query(&image(v as f32)).unwrap(), 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
