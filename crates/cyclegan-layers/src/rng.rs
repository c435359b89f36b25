//! Seedable random number generation whose state can be saved and restored.
//!
//! candle's CPU random generator cannot be seeded, so every random decision of this project
//! (weight init, dropout masks, the image pool, data shuffling) draws from a [`SeededRng`].

use std::sync::{Arc, Mutex};

/// The project's random generator: ChaCha8, serialisable with serde so a training run can be
/// resumed with exactly the same random stream.
pub type SeededRng = rand_chacha::ChaCha8Rng;

/// A [`SeededRng`] seeded with `seed` (for [`init_weights`](crate::init_weights), without
/// importing `rand`'s `SeedableRng`).
pub fn seeded_rng(seed: u64) -> SeededRng {
    use rand::SeedableRng;
    SeededRng::seed_from_u64(seed)
}

/// A [`SeededRng`] shared between the layers of one network (its dropout layers).
#[derive(Clone, Debug)]
pub struct SharedRng(Arc<Mutex<SeededRng>>);

impl SharedRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self::from_rng(seeded_rng(seed))
    }

    /// Shares an existing generator (for example one restored from a checkpoint).
    pub fn from_rng(rng: SeededRng) -> Self {
        Self(Arc::new(Mutex::new(rng)))
    }

    /// Runs `f` with exclusive access to the generator.
    pub fn with<T>(&self, f: impl FnOnce(&mut SeededRng) -> T) -> T {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// A copy of the generator's current state, for checkpoints.
    pub fn snapshot(&self) -> SeededRng {
        self.with(|rng| rng.clone())
    }

    /// Replaces the generator's state, when resuming from a checkpoint.
    pub fn restore(&self, rng: SeededRng) {
        self.with(|current| *current = rng);
    }
}

impl Default for SharedRng {
    fn default() -> Self {
        Self::new(0)
    }
}
