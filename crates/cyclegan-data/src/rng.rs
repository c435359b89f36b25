//! Randomness derived from (seed, epoch, index), so that every batch is the same whatever the
//! number of workers, their scheduling, or where a run was resumed.
//!
//! Each stream is a ChaCha8 generator keyed by the seed, a purpose tag, the epoch and the item
//! index (distinct keys give independent streams). Bounded integers and the permutation use
//! fixed algorithms written here (not `rand`'s distributions, which may change between
//! versions), so the streams depend only on ChaCha8's output, which is specified.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator handed to [`Dataset::load`](crate::Dataset::load).
pub type ItemRng = ChaCha8Rng;

const PURPOSE_PERMUTATION: u64 = 0x7065_726d; // "perm"
const PURPOSE_ITEM: u64 = 0x6974_656d; // "item"

fn stream(seed: u64, purpose: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([seed, purpose, epoch, index]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// The generator for item `index` of `epoch`: it draws the B partner (unless serial) and the
/// crops and flips of both images.
pub fn item_rng(seed: u64, epoch: u64, index: usize) -> ItemRng {
    stream(seed, PURPOSE_ITEM, epoch, index as u64)
}

/// A uniform integer in `0..n` (`n > 0`), Lemire's multiply-and-reject method.
pub(crate) fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// A uniform integer in `0..=max`.
pub(crate) fn up_to(rng: &mut impl RngCore, max: u32) -> u32 {
    below(rng, u64::from(max) + 1) as u32
}

/// A fair coin.
pub(crate) fn coin(rng: &mut impl RngCore) -> bool {
    rng.next_u64() >> 63 == 1
}

/// The order in which epoch `epoch` visits a dataset of `len` items: a uniform permutation
/// (Fisher-Yates) when `shuffle`, else `0..len`.
pub fn epoch_order(seed: u64, epoch: u64, len: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng = stream(seed, PURPOSE_PERMUTATION, epoch, 0);
        for i in (1..len).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_permutations_and_depend_on_seed_and_epoch() {
        let p = epoch_order(7, 1, 100, true);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(p, epoch_order(7, 1, 100, true));
        assert_ne!(p, epoch_order(7, 2, 100, true));
        assert_ne!(p, epoch_order(8, 1, 100, true));
        assert_eq!(epoch_order(7, 1, 5, false), vec![0, 1, 2, 3, 4]);
        assert!(epoch_order(7, 1, 0, true).is_empty());
    }

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut rng = item_rng(1, 2, 3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[below(&mut rng, 7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(up_to(&mut rng, 0), 0);
        let heads = (0..10_000).filter(|_| coin(&mut rng)).count();
        assert!((4700..5300).contains(&heads), "{heads}");
    }

    #[test]
    fn streams_are_fixed_by_their_key() {
        // Pins the key layout and the shuffle: changing either would silently change what a
        // resumed run sees compared with the run it resumes.
        assert_eq!(item_rng(42, 1, 0).next_u64(), 4667065427112453033);
        assert_eq!(
            epoch_order(0, 1, 10, true),
            vec![4, 1, 9, 6, 7, 5, 3, 2, 8, 0]
        );
        assert_ne!(item_rng(42, 1, 0).next_u64(), item_rng(42, 1, 1).next_u64());
        assert_ne!(item_rng(42, 1, 0).next_u64(), item_rng(42, 2, 0).next_u64());
    }
}
