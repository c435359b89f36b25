//! `ops::configure_threads` makes the calling thread one of rayon's global pool's threads, so
//! that the kernels it calls run their share on it; work that other threads hand to the pool
//! must still run while the caller waits outside it; and candle's element-wise pool is told to
//! sleep between its jobs, which still run. One test: the global pool is made once per process.

use rayon::prelude::*;

#[test]
fn the_caller_joins_the_pool_and_other_threads_work_still_runs() {
    std::env::set_var("RAYON_NUM_THREADS", "2");
    std::env::remove_var("CANDLE_BARRIER_POOL_SPIN_LIMIT");
    assert_eq!(cyclegan_layers::ops::configure_threads(), 2);
    // candle's element-wise pool sleeps between jobs instead of spinning beside rayon's.
    assert_eq!(
        std::env::var("CANDLE_BARRIER_POOL_SPIN_LIMIT").as_deref(),
        Ok("0")
    );
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

    // Large element-wise operations (candle's pool), its thread asleep between them.
    let x = candle_core::Tensor::ones(1 << 20, candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    for _ in 0..3 {
        let y = (x.sqr().unwrap() + 1.0).unwrap().sum_all().unwrap();
        assert_eq!(y.to_scalar::<f32>().unwrap(), 2.0 * (1 << 20) as f32);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
