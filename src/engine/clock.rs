//! Where a step's time goes, for the benchmark (`bench/run.mjs`'s shares): milliseconds of each
//! phase, summed over the steps, on a monotonic clock (`performance.now()` in the browser, whose
//! resolution is 5 µs on a cross-origin isolated page, as the benchmark's is; `Instant` natively).

/// Milliseconds spent in each phase of the steps so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// The products forward with their epilogues, and the inputs and masks they read.
    pub forward: f64,
    /// Each loss with its gradient.
    pub loss: f64,
    /// The products backward, the activations' gradients and the checks on the gradient.
    pub backward: f64,
    /// Adam's pass (in place, or its proposal and their commit).
    pub optimizer: f64,
}

/// Laps of the clock: each `lap` is the milliseconds since the last one (or the start).
pub struct Stopwatch(f64);

impl Stopwatch {
    pub fn start() -> Self {
        Self(now_ms())
    }

    pub fn lap(&mut self) -> f64 {
        let t = now_ms();
        let lap = t - self.0;
        self.0 = t;
        lap
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn now_ms() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e3
}

/// `performance.now()` of the page or worker (0 where there is none).
#[cfg(target_arch = "wasm32")]
fn now_ms() -> f64 {
    use wasm_bindgen::{JsCast, JsValue};
    thread_local! {
        static NOW: Option<(js_sys::Function, JsValue)> = {
            let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok().filter(|p| p.is_object());
            perf.and_then(|p| Some((js_sys::Reflect::get(&p, &"now".into()).ok()?.dyn_into().ok()?, p)))
        };
    }
    NOW.with(|n| n.as_ref().and_then(|(now, perf)| now.call0(perf).ok()).and_then(|v| v.as_f64()).unwrap_or(0.0))
}
