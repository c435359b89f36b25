//! `ops::configure_threads` makes the calling thread one of rayon's global pool's threads, so
//! that the kernels it calls run their share on it; work that other threads hand to the pool
//! must still run while the caller waits outside it. One test: the global pool is made once per
//! process.

use rayon::prelude::*;

#[test]
fn the_caller_joins_the_pool_and_other_threads_work_still_runs() {
    std::env::set_var("RAYON_NUM_THREADS", "2");
    assert_eq!(cyclegan_layers::ops::configure_threads(), 2);
    assert_eq!(
        rayon::current_thread_index(),
        Some(0),
        "the caller is pool thread 0"
    );
    assert_eq!(rayon::current_num_threads(), 2);

    // A kernel's shares: both threads take part, and the result is the serial one.
    let ran_on: Vec<usize> = (0..64)
        .into_par_iter()
        .with_max_len(1)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            rayon::current_thread_index().expect("runs on a pool thread")
        })
        .collect();
    assert!(
        ran_on.contains(&0) && ran_on.contains(&1),
        "shares ran on {ran_on:?}"
    );

    // Another thread's parallel work (the translator's decoding thread) finishes while the
    // caller blocks outside the pool: the pool's other thread runs it.
    let sum = std::thread::spawn(|| (1..=1000u64).into_par_iter().sum::<u64>())
        .join()
        .expect("the other thread's work runs");
    assert_eq!(sum, 500_500);
}
