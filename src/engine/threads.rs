//! The engine's threads. In the threaded wasm build (feature `threads`: `+atomics`, a shared
//! memory, `pkg/threads/`) they are a rayon pool of Web Workers, started by the training worker
//! through `start_threads` (wasm-bindgen-rayon); in every other build there is one thread and
//! these functions run their work where they are called. Natively `join` is rayon's too, so the
//! tests can run the split products on real threads; the native engine's products are the `gemm`
//! crate's, whole (`count` is 1 there).
//!
//! A step runs inside the pool (`in_pool`), so that the halves of its products (`join`) pass
//! between pool threads that are awake, instead of each half waking the pool from outside it.

#[cfg(all(target_arch = "wasm32", feature = "threads"))]
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads in the started pool; 0 until `started` (rayon must not be touched before then:
/// wasm-bindgen-rayon builds its global pool, and rayon would otherwise build one of its own).
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
static POOL: AtomicUsize = AtomicUsize::new(0);

/// Records that the pool of `n` threads is running (after `initThreadPool(n)` resolved).
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
pub fn started(n: usize) {
    POOL.store(n, Ordering::Release);
}

/// How many threads a step's products are split across: the pool's size, or 1.
pub fn count() -> usize {
    #[cfg(all(target_arch = "wasm32", feature = "threads"))]
    return POOL.load(Ordering::Acquire).max(1);
    #[cfg(not(all(target_arch = "wasm32", feature = "threads")))]
    1
}

/// `f()` on a pool thread where a pool runs (the caller waits), else here.
///
/// While `f` runs, every other pool thread stays awake taking the halves its products hand out
/// (`rayon::yield_now` in a loop) instead of going to sleep between products: woken through
/// `Atomics.notify` for each of a step's few large products, a sleeping thread came too late to
/// pay for its half at the page's batch (A/B in the tab, VAE at batch 32 on 2 threads: 1.09 times
/// as fast by the median step, 1.19 by the tenth percentile; batch 128 1.10 and 1.21). The
/// wakers are spawned before `f` starts, so they are the first jobs a thread steals (stealing is
/// oldest first): the thread running `f` never takes one while `f` waits on it. They end with
/// `f`, so between steps the threads sleep as before.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(all(target_arch = "wasm32", feature = "threads"))]
    if count() > 1 {
        let done = std::sync::atomic::AtomicBool::new(false);
        return rayon::scope(|s| {
            for _ in 1..count() {
                s.spawn(|_| {
                    while !done.load(Ordering::Acquire) {
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            std::hint::spin_loop();
                        }
                    }
                });
            }
            let r = f();
            done.store(true, Ordering::Release);
            r
        });
    }
    f()
}

/// `(a(), b())`: side by side where `parallel` (and there are threads), else one after the other.
pub fn join_if<A: Send, B: Send>(parallel: bool, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if parallel {
        join(a, b)
    } else {
        (a(), b())
    }
}

/// `(a(), b())`, side by side where there are threads.
pub fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    return rayon::join(a, b);
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    (a(), b())
}
