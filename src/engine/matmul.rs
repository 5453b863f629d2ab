//! The matrix products of a layer, C [m, n] (+)= A [m, k] · B [k, n], with the forward's bias,
//! activation and dropout fused into the store (the epilogue).
//!
//! Every operand is f32 with its own strides (A is read at `a[i·a.rs + p·a.cs]`), so the three
//! products a linear layer needs are one routine with its operands plain or transposed:
//!   forward   Y  = X · Wᵀ   (A = X, B = Wᵀ: W read along its rows, the dot-product form)
//!   backward  dX = dY · W   (A = dY, B = W)
//!             dW = dYᵀ · X  (A = dYᵀ: rs 1, cs out; B = X)
//!
//! Two implementations: `blocked` (register tiles over four-lane vectors, 6 rows × 8 columns of
//! broadcast products over a packed A (5 × 8 in the plain simd128 build), 4 × 8 over A in place, or 2 × 4 of dot products where A
//! has its zeros skipped: wasm simd128 in the browser, plain arrays natively, where the tests
//! check it against `reference`) and, natively, the `gemm` crate (AVX2 and FMA where the CPU has
//! them), which is what native training runs on. `multiply` picks the one for the target.
//!
//! A layer's input may be a minibatch of digits, 81% zeros: marked so (`skipping_zeros`), the
//! blocked product leaves out the steps of k that would only add zeros, which takes the VAE's
//! first layer's two products to about two fifths of their work.

use super::lanes::{Lanes, V4};

/// An operand's place and strides: element (i, p) is `data[i·rs + p·cs]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
    /// Worth looking for runs of zeros in (`skipping_zeros`).
    pub zeros: bool,
}

impl<'a> Strided<'a> {
    /// A row-major matrix whose rows are `rs` apart.
    pub fn rows(data: &'a [f32], rs: usize) -> Self {
        Self { data, rs, cs: 1, zeros: false }
    }

    /// The transpose of a row-major matrix whose rows are `rs` apart.
    pub fn transposed(data: &'a [f32], rs: usize) -> Self {
        Self { data, rs: 1, cs: rs, zeros: false }
    }

    /// The same operand, marked as one that may be mostly zeros (a layer's input: 81% of MNIST's
    /// pixels are exactly 0). The blocked product then skips the steps of k where a tile's part
    /// of it is all zeros, where at least a quarter of them are: the forward's X·Wᵀ (X as A, by
    /// runs of 4 along a row pair) and dW = dYᵀ·X (X as B, by the batch's rows a panel of 8
    /// columns is 0 in). A skipped term is an exact 0 times a finite value, so C is the same, bar
    /// the sign of a zero. (Times ±∞ or NaN it would be NaN, which the step's check refuses
    /// anyway: such a value reaches the loss or the gradient by other terms too.)
    pub fn skipping_zeros(self) -> Self {
        Self { zeros: true, ..self }
    }

    /// As A of a product over k: still marked only where its first row is worth skipping zeros in
    /// (the dot-product form's runs of 4 along k: `Steps::looks_sparse`).
    fn settled(self, k: usize) -> Self {
        let k4 = k - k % 4;
        // (an A of no rows may hold no values: then there is nothing to look at)
        let zeros = self.zeros && self.cs == 1 && k4 > 0 && self.data.len() >= k4 && Steps::looks_sparse(&self.data[..k4], 4);
        Self { zeros, ..self }
    }
}

/// What the store does with A·B.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Add C's current values (accumulate into it) instead of overwriting.
    pub accumulate: bool,
    /// b [n], added to every row.
    pub bias: Option<&'a [f32]>,
    pub act: Act,
    /// [m, n] row-major (row stride n): multiplied in after the activation (inverted dropout).
    pub mask: Option<&'a [f32]>,
}

/// An activation applied in the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Act {
    #[default]
    None,
    Relu,
    /// LeakyReLU(x) = max(x, 0.2·x)
    Leaky,
}

pub const LEAK: f32 = 0.2;

impl Act {
    /// As wasm's `f32x4.pmax` takes the larger (the vector store's), so a NaN stays NaN on every
    /// path and its step is refused (`f32::max` would give the other operand).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        let pmax = |a: f32, b: f32| if a < b { b } else { a };
        match self {
            Act::None => x,
            Act::Relu => pmax(x, 0.0),
            Act::Leaky => pmax(x, LEAK * x),
        }
    }
}

/// The checks every implementation relies on: each index it will read or write is in bounds.
fn check(m: usize, n: usize, k: usize, a: &Strided, b: &Strided, c: &[f32], c_rs: usize, e: &Epilogue) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(n <= c_rs && (m - 1) * c_rs + n <= c.len(), "C [{m}, {n}] does not fit {} values at row stride {c_rs}", c.len());
    if k > 0 {
        assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len(), "A [{m}, {k}] does not fit {} values", a.data.len());
        assert!((k - 1) * b.rs + (n - 1) * b.cs < b.data.len(), "B [{k}, {n}] does not fit {} values", b.data.len());
        // (the tiles' k loops end where A's pointer reaches k columns on)
        assert!(a.cs > 0, "A [{m}, {k}] with its columns 0 apart");
    }
    if let Some(bias) = e.bias {
        assert!(bias.len() >= n, "bias of {} for {n} columns", bias.len());
    }
    if let Some(mask) = e.mask {
        assert!(mask.len() >= m * n, "mask of {} for [{m}, {n}]", mask.len());
    }
}

/// C [m, n] (row stride `c_rs`) ← epilogue(A·B). In the browser either B's rows are contiguous
/// (cs 1), or A's rows and B's columns are (the dot-product form); its rows are split across the
/// engine's threads where there are several (`threads::count`).
#[allow(clippy::too_many_arguments)]
pub fn multiply(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue) {
    #[cfg(target_arch = "wasm32")]
    split_rows(super::threads::count(), m, n, k, a, b, c, c_rs, e, blocked);
    #[cfg(not(target_arch = "wasm32"))]
    with_gemm_crate(m, n, k, a, b, c, c_rs, e);
}

/// A product's signature, for `split_rows`'s kernel.
pub type Kernel = fn(usize, usize, usize, Strided, Strided, &mut [f32], usize, Epilogue);

/// Products smaller than this (m·n·k multiply-adds, about 40 µs of one core's wasm SIMD at 25
/// GFLOP/s) run whole: handing half of one to another thread costs about as much as it saves.
pub const MIN_SPLIT_WORK: usize = 1 << 19;

/// `kernel`'s product with C's rows split into `parts` bands of whole register tiles (multiples
/// of 4 rows), run side by side (`threads::join`): each band reads its own rows of A and of the
/// mask and writes its own rows of C, so the bands share nothing they write. Rows, not columns:
/// every product a step makes has at least 8 rows where it is large enough to split (the batch,
/// or a layer's outputs for dW), and a band of rows is one contiguous run of C.
#[allow(clippy::too_many_arguments)]
pub fn split_rows(parts: usize, m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue, kernel: Kernel) {
    // Whether A's zeros are skipped decides the form of the forward (`blocked`), so it is decided
    // once, from the whole product's first row: bands that chose apart would sum apart.
    split_bands(parts, m, n, k, a.settled(k), b, c, c_rs, e, kernel);
}

#[allow(clippy::too_many_arguments)]
fn split_bands(parts: usize, m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue, kernel: Kernel) {
    // (saturating: usize is 32 bits in wasm, and a large batch's m·n·k can pass 2³²)
    if parts <= 1 || m < 2 * MR || m.saturating_mul(n).saturating_mul(k) < MIN_SPLIT_WORK {
        return kernel(m, n, k, a, b, c, c_rs, e);
    }
    check(m, n, k, &a, &b, c, c_rs, &e);
    // The first parts / 2 bands above, the rest below, each side's rows in proportion.
    let upper = parts / 2;
    let mid = ((m * upper / parts).div_ceil(MR) * MR).clamp(MR, m - MR);
    let (c_upper, c_lower) = c.split_at_mut(mid * c_rs);
    let a_lower = Strided { data: &a.data[mid * a.rs..], ..a };
    let e_lower = Epilogue { mask: e.mask.map(|mask| &mask[mid * n..]), ..e };
    super::threads::join(
        || split_bands(upper, mid, n, k, a, b, c_upper, c_rs, e, kernel),
        || split_bands(parts - upper, m - mid, n, k, a_lower, b, c_lower, c_rs, e_lower, kernel),
    );
}

/// The product the plain way, one dot product per element in f64: the tests' reference.
#[allow(clippy::too_many_arguments)]
pub fn reference(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue) {
    check(m, n, k, &a, &b, c, c_rs, &e);
    for i in 0..m {
        for j in 0..n {
            let mut s: f64 = if e.accumulate { c[i * c_rs + j] as f64 } else { 0.0 };
            s += e.bias.map_or(0.0, |b| b[j] as f64);
            for p in 0..k {
                s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
            }
            c[i * c_rs + j] = finish(s as f32, i, j, n, &e);
        }
    }
}

#[inline(always)]
fn finish(v: f32, i: usize, j: usize, n: usize, e: &Epilogue) -> f32 {
    let v = e.act.apply(v);
    e.mask.map_or(v, |m| v * m[i * n + j])
}

/// The `gemm` crate's product, then the epilogue in a pass over C (still in cache).
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
fn with_gemm_crate(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue) {
    check(m, n, k, &a, &b, c, c_rs, &e);
    if m == 0 || n == 0 {
        return;
    }
    let mut read_dst = e.accumulate;
    if let Some(bias) = e.bias {
        for i in 0..m {
            let row = &mut c[i * c_rs..i * c_rs + n];
            if e.accumulate {
                row.iter_mut().zip(bias).for_each(|(c, b)| *c += b);
            } else {
                row.copy_from_slice(&bias[..n]);
            }
        }
        read_dst = true;
    }
    if k > 0 {
        // SAFETY: `check` proved every index gemm reads (A, B) or writes (C) is inside its slice,
        // and C does not alias A or B (it is borrowed mutably).
        unsafe {
            gemm::gemm(
                m, n, k,
                c.as_mut_ptr(), 1, c_rs as isize, read_dst,
                a.data.as_ptr(), a.cs as isize, a.rs as isize,
                b.data.as_ptr(), b.cs as isize, b.rs as isize,
                1.0, 1.0, false, false, false,
                gemm::Parallelism::None,
            );
        }
    } else if !read_dst {
        (0..m).for_each(|i| c[i * c_rs..i * c_rs + n].fill(0.0));
    }
    if e.act != Act::None || e.mask.is_some() {
        for i in 0..m {
            for j in 0..n {
                let v = &mut c[i * c_rs + j];
                *v = finish(*v, i, j, n, &e);
            }
        }
    }
}

/// Rows of C per register tile over A in place, and four-lane vectors across it (8 columns).
const MR: usize = 4;
const NV: usize = 2;
const NR: usize = 4 * NV;
/// Rows of C per register tile over a packed A: 12 accumulators, B's two vectors and one
/// broadcast of A take 15 of x64's 16 vector registers (V8 keeps the last as its scratch), and a
/// step of k is 26 instructions of V8's code for its 12 multiply-adds, where 4 rows took 20 for 8
/// (relaxed SIMD, and natively, where the tests run the tiles). Without relaxed SIMD a
/// multiply-add is a multiply and an add, whose product takes a register of its own: 6 rows
/// spilled an accumulator a step, and the plain binary ran 1.37 times slower than on 4 rows
/// (Node, the GAN's products), so that build packs by 5.
#[cfg(any(target_feature = "relaxed-simd", not(target_arch = "wasm32")))]
const PR: usize = 6;
#[cfg(all(target_arch = "wasm32", not(target_feature = "relaxed-simd")))]
const PR: usize = 5;

/// The register-blocked product: column panels of 8 (B's panel stays in L1 while every row
/// block of A streams past it), `PR` rows at a time where A is packed, else 4; tiles at the right
/// edge narrow to one vector, then to scalars, and the bottom edge takes the rows left.
#[allow(clippy::too_many_arguments)]
pub fn blocked(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue) {
    check(m, n, k, &a, &b, c, c_rs, &e);
    if k > 0 && b.cs != 1 {
        assert!(a.cs == 1 && b.rs == 1, "the blocked product reads B's rows, or A's rows and B's columns, as vectors");
        // B read along its columns (the forward's Wᵀ): dot products where A's zeros are skipped
        // (they skip runs of 4 along a pair of rows, far more than a block of rows has in
        // common) or C is too narrow for a panel; otherwise B's panels are copied transposed
        // (`copy_panel`) and the broadcast tiles below take them, as they take B's rows.
        if a.zeros || n < NR {
            return blocked_dot(m, n, k, a, b, c, c_rs, e);
        }
    }
    // A read down its columns (dYᵀ, rows `cs` apart in memory) would take a new cache line for
    // every step of k, at strides (512 or 256 floats) that map them all onto a few cache sets:
    // such an A is first packed, `PR` rows at a time, into [k][PR] blocks read in order.
    // (A whose rows lie within 64 floats of each other, as a convolution's dYᵀ with its channels
    // apart, reads its four rows from one or two lines per step of k: no copy needed.)
    // A read along its rows (dY for dX, X for the forward) is packed too where at least 8 panels
    // of B read it: the tile then takes its `PR` values a step at constant offsets from one
    // pointer (`tile`). Packed, A is [k][PR] blocks of `PR` rows.
    let packed = k > 16 && (a.rs < a.cs && a.cs > 64 || a.cs == 1 && m > MR && n >= 8 * NR);
    // (m, n > 0: `check` bounds the operands only then)
    let b_sparse = b.zeros && m > 0 && n > 0 && k > 0 && Steps::looks_sparse(&b.data[..n], NR);
    SCRATCH.with_borrow_mut(|Scratch { pack, panel, steps }| {
        let a = if packed {
            pack_rows(m, k, &a, pack);
            Strided { data: pack.as_slice(), rs: 1, cs: PR, zeros: false }
        } else {
            a
        };
        // Row i of A: packed, block i / PR starts at PR·k·(i / PR) and its rows are 1 apart.
        let at = |i: usize| if packed { (Strided { data: &a.data[i * k..], ..a }, 0) } else { (a, i) };
        // The columns the panel's copy holds (two panels' worth where no panel has a list of
        // steps: a cache line's 16 floats, each line of B read once).
        let mut copied = 0..0;
        let mut j = 0;
        while j < n {
            let width = if n - j >= NR { NR } else if n - j >= 4 { 4 } else { n - j };
            // The steps of k where B's panel [k, j..j + width] is not all zeros, where they are few.
            steps.clear();
            if b_sparse && width >= 4 {
                steps.push(k, |p| !all_zeros(&b.data[p * b.rs + j..p * b.rs + j + width]));
            }
            let ks = steps.get(0);
            // B's panel copied to [k][width] where more than one block of A's rows reads it: in
            // place its rows lie a row of B apart (784 or 512 floats), strides that map them onto a
            // few of L1's sets, so each block read them from L2 again. (Only the steps listed, where
            // there is a list: the others are not read.) B read along its columns is always
            // copied: the tiles read a step's columns as one vector.
            let (b, bj) = if (m > MR || b.cs != 1) && width >= 4 {
                if !(copied.start <= j && j + width <= copied.end) {
                    let span = if !b_sparse && n - j >= 2 * NR { 2 * NR } else { width };
                    copy_panel(k, j, span, &b, ks, panel);
                    copied = j..j + span;
                }
                (Strided { data: panel.as_slice(), rs: copied.len(), cs: 1, zeros: false }, j - copied.start)
            } else {
                (b, j)
            };
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(if packed { PR } else { MR });
                let (a, ai) = at(i);
                // SAFETY: `check` bounds every index of the tile [i, i + rows) × [j, j + width), the
                // packed A holds every row of A, and the copied panel every step of k the tile takes.
                // (A packed block's last rows, 1 to PR − 2 of them, take the tiles over A in place,
                // at the packed strides. Both SIMD builds instantiate as many tiles, PR's and PR −
                // 1's, since their binaries share one JS glue, which numbers their functions.)
                unsafe {
                    match (width, rows) {
                        (NR, PR) if packed => tile::<PR, NV, true>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (NR, r) if packed && r == PR - 1 => tile::<{ PR - 1 }, NV, true>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (NR, 4) => tile::<4, NV, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (NR, 3) => tile::<3, NV, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (NR, 2) => tile::<2, NV, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (NR, _) => tile::<1, NV, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (4, PR) if packed => tile::<PR, 1, true>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (4, r) if packed && r == PR - 1 => tile::<{ PR - 1 }, 1, true>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (4, 4) => tile::<4, 1, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (4, 3) => tile::<3, 1, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (4, 2) => tile::<2, 1, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        (4, _) => tile::<1, 1, false>(ai, i, bj, j, n, k, ks, &a, &b, c, c_rs, &e),
                        _ => scalar_tile(ai, i, j, rows, width, n, k, &a, &b, c, c_rs, &e),
                    }
                }
                i += rows;
            }
            j += width;
        }
    });
}

/// B's columns j..j + width at every step of k, or at the steps `ks` lists, into `panel` as
/// [k][width] (step p at p·width).
fn copy_panel(k: usize, j: usize, width: usize, b: &Strided, ks: Option<&[u32]>, panel: &mut Vec<f32>) {
    if panel.len() < k * width {
        panel.resize(k * width, 0.0);
    }
    if b.cs != 1 {
        // B's columns run along k (rows of W), four at a time. (`width` is a multiple of 4 here,
        // and such a B has no lists.)
        debug_assert!(width.is_multiple_of(4) && b.rs == 1 && ks.is_none());
        for c0 in (0..width).step_by(4) {
            let cols: [&[f32]; 4] = std::array::from_fn(|q| &b.data[(j + c0 + q) * b.cs..][..k]);
            interleave4(cols, k, &mut panel[..k * width], width, c0);
        }
        return;
    }
    // (four lanes at a time: `width` is a multiple of 4, and a slice copy of a width known only
    // at run time is a call of memcpy a step)
    debug_assert!(width.is_multiple_of(4));
    let mut copy = |p: usize| {
        let from = &b.data[p * b.rs + j..p * b.rs + j + width];
        for (to, from) in panel[p * width..(p + 1) * width].chunks_exact_mut(4).zip(from.chunks_exact(4)) {
            // SAFETY: both chunks hold 4 values.
            unsafe { V4::load(from.as_ptr()).store(to.as_mut_ptr()) }
        }
    };
    match ks {
        Some(ks) => ks.iter().for_each(|&p| copy(p as usize)),
        None => (0..k).for_each(copy),
    }
}

/// A thread's buffers for the blocked product, kept between products so a step allocates nothing.
#[derive(Default)]
struct Scratch {
    /// The packed copy of A.
    pack: Vec<f32>,
    /// The copy of B's panel (for the dot-product form, its four columns run by run).
    panel: Vec<f32>,
    /// The steps of k each tile takes where it skips zeros.
    steps: Steps,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Lists of steps of k, one a tile (a panel of B's columns, or a pair of A's rows): those where
/// the tile's part of the operand is not all zeros, or none (every step) where over three
/// quarters of the steps are such.
#[derive(Default)]
struct Steps {
    all: Vec<u32>,
    /// Each list's range in `all`, or None.
    lists: Vec<Option<(usize, usize)>>,
}

impl Steps {
    /// A list is kept where at most this share of the steps is left: a listed step costs an index
    /// read that a counted one does not.
    const KEPT_AT_MOST: f64 = 0.75;

    /// Whether `kept` of `count` steps are few enough for a list.
    fn few(kept: usize, count: usize) -> bool {
        kept as f64 <= Self::KEPT_AT_MOST * count as f64
    }

    /// Whether an operand whose first row is `row` is worth the lists: that row's runs of `width`
    /// not all zeros are few. (A layer's input that is not a minibatch of digits, a hidden
    /// layer's or the GAN's images on −1 to 1, is then not looked through.)
    fn looks_sparse(row: &[f32], width: usize) -> bool {
        let runs = row.chunks(width);
        let count = runs.len();
        Self::few(runs.filter(|run| !all_zeros(run)).count(), count)
    }

    fn clear(&mut self) {
        self.all.clear();
        self.lists.clear();
    }

    /// The next tile's list: the steps of 0..count where `taken(step)`.
    fn push(&mut self, count: usize, taken: impl Fn(usize) -> bool) {
        let start = self.all.len();
        self.all.extend((0..count).filter(|&p| taken(p)).map(|p| p as u32));
        if Self::few(self.all.len() - start, count) {
            self.lists.push(Some((start, self.all.len())));
        } else {
            self.all.truncate(start);
            self.lists.push(None);
        }
    }

    /// Tile t's list (None where it takes every step, or has no list).
    fn get(&self, t: usize) -> Option<&[u32]> {
        self.lists.get(t).copied().flatten().map(|(a, b)| &self.all[a..b])
    }
}

/// Whether every value is ±0 (its bits but the sign all clear).
#[inline(always)]
fn all_zeros(xs: &[f32]) -> bool {
    xs.iter().fold(0u32, |any, x| any | x.to_bits()) << 1 == 0
}

/// A [m, k] into blocks of `PR` rows, each [k][PR] (row i, column p at PR·k·(i / PR) + PR·p +
/// i mod PR; a last block of fewer rows padded with zeros).
fn pack_rows(m: usize, k: usize, a: &Strided, pack: &mut Vec<f32>) {
    let len = m.div_ceil(PR) * PR * k;
    if pack.len() < len {
        pack.resize(len, 0.0);
    }
    for (block, out) in pack[..len].chunks_exact_mut(PR * k).enumerate() {
        let (first, rows) = (PR * block, (m - PR * block).min(PR));
        if rows < PR {
            out.fill(0.0);
        }
        if a.rs == 1 && rows == PR {
            // A's columns contiguous (dYᵀ for dW): each step's `PR` values are one run of A
            for (p, step) in out.chunks_exact_mut(PR).enumerate() {
                let from = first + p * a.cs;
                step.copy_from_slice(&a.data[from..from + PR]);
            }
        } else if a.cs == 1 && rows == PR {
            // A's rows contiguous (dY for dX, X for the forward): the first four rows into the
            // first four places of each step, the rows after them one value at a time
            let row = |r: usize| &a.data[(first + r) * a.rs..][..k];
            interleave4(std::array::from_fn(row), k, out, PR, 0);
            for r in 4..PR {
                for (p, &x) in row(r).iter().enumerate() {
                    out[p * PR + r] = x;
                }
            }
        } else {
            for p in 0..k {
                for r in 0..rows {
                    out[p * PR + r] = a.data[(first + r) * a.rs + p * a.cs];
                }
            }
        }
    }
}

/// Four runs of k values each (rows of A, or columns of B along k) into `out` as steps of k
/// `stride` apart: value p of run q at p·stride + at + q. Four steps of k at a time, transposed
/// in registers; k's last k mod 4 steps one value at a time.
fn interleave4(runs: [&[f32]; 4], k: usize, out: &mut [f32], stride: usize, at: usize) {
    let k4 = k - k % 4;
    assert!(runs.iter().all(|run| run.len() >= k) && at + 4 <= stride && (k == 0 || (k - 1) * stride + at + 4 <= out.len()));
    for p in (0..k4).step_by(4) {
        // SAFETY: each run holds k ≥ p + 4 values, and `out` the 4 values from (p + q)·stride +
        // at on for every q < 4 (asserted above).
        unsafe {
            let columns = V4::transpose4(runs.map(|run| V4::load(run.as_ptr().add(p))));
            for (q, column) in columns.iter().enumerate() {
                column.store(out.as_mut_ptr().add((p + q) * stride + at));
            }
        }
    }
    for p in k4..k {
        for (q, run) in runs.iter().enumerate() {
            out[p * stride + at + q] = run[p];
        }
    }
}

/// C[i.., j..] for R rows and V vectors of columns (of C's n), accumulated in registers over all
/// of k (or the steps `ks` lists), from A's rows ai.. (A may be a packed block: `PACKED`, then its
/// strides are the constants 1 and `PR`) and B's columns bj.. (B may be a copied panel).
///
/// Over all of k, each operand is one pointer moved on a step at a time, and a step's values
/// lie at constant offsets from it where A is packed: V8 folds a constant offset into the
/// load's address, but adds two of wasm's i32 values with an instruction of its own, which a
/// step of k indexed from its start would take for every load. (The build turns LLVM's loop
/// strength reduction off, which would turn the pointers back into one index and those
/// additions: `scripts/build-wasm.sh`.)
///
/// A function of its own, not inlined: inlined into `blocked`, beside its other tiles, LLVM kept
/// the accumulators of a tile of 5 or 6 rows in memory, a store after every multiply-add.
///
/// # Safety
/// The tile and the A rows and B columns it reads must be in bounds (`check`), and `ks`'s steps
/// below k.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const V: usize, const PACKED: bool>(
    ai: usize, i: usize, bj: usize, j: usize, n: usize, k: usize, ks: Option<&[u32]>, a: &Strided, b: &Strided, c: &mut [f32], c_rs: usize,
    e: &Epilogue,
) {
    let (a_rs, a_cs) = if PACKED { (1, PR) } else { (a.rs, a.cs) };
    let (ap, bp) = (a.data.as_ptr().add(ai * a_rs), b.data.as_ptr().add(bj));
    // one step of k: A's column at `acol`, B's row at `brow`
    #[inline(always)]
    unsafe fn step<const R: usize, const V: usize>(acc: [[V4; V]; R], acol: *const f32, a_rs: usize, brow: *const f32) -> [[V4; V]; R] {
        let bv: [V4; V] = std::array::from_fn(|v| V4::load(brow.add(4 * v)));
        std::array::from_fn(|r| {
            let av = V4::splat(*acol.add(r * a_rs));
            std::array::from_fn(|v| acc[r][v].madd(av, bv[v]))
        })
    }
    let mut acc = [[V4::splat(0.0); V]; R];
    match ks {
        Some(ks) => {
            for &p in ks {
                acc = step(acc, ap.add(p as usize * a_cs), a_rs, bp.add(p as usize * b.rs));
            }
        }
        None => {
            // (wrapping: past the last step the pointers may leave A and B, never to be read)
            let (mut acol, mut brow) = (ap, bp);
            let end = ap.wrapping_add(k * a_cs);
            while acol != end {
                acc = step(acc, acol, a_rs, brow);
                acol = acol.wrapping_add(a_cs);
                brow = brow.wrapping_add(b.rs);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            store(x, i + r, j + 4 * v, n, c, c_rs, e);
        }
    }
}

/// C[i, j..j + 4] ← the epilogue of the four sums in `x`.
///
/// # Safety
/// C's row i must hold columns j..j + 4, and the bias and mask (if any) those columns.
#[inline(always)]
unsafe fn store(mut x: V4, i: usize, j: usize, n: usize, c: &mut [f32], c_rs: usize, e: &Epilogue) {
    let at = c.as_mut_ptr().add(i * c_rs + j);
    if e.accumulate {
        x = x.add(V4::load(at));
    }
    if let Some(bias) = e.bias {
        x = x.add(V4::load(bias.as_ptr().add(j)));
    }
    x = match e.act {
        Act::None => x,
        Act::Relu => x.max(V4::splat(0.0)),
        Act::Leaky => x.max(x.mul(V4::splat(LEAK))),
    };
    if let Some(mask) = e.mask {
        x = x.mul(V4::load(mask.as_ptr().add(i * n + j)));
    }
    x.store(at);
}

/// Rows of A and of B per tile of the dot-product form.
const DOT_ROWS: usize = 2;

/// C = A·B where A's rows and B's columns both run contiguously along k (the forward's X·Wᵀ, W
/// in PyTorch's [out, in] layout), where A's zeros are skipped or C is narrower than a panel
/// (`blocked` takes the others; public for the tests, which hold its two ways, with the zeros
/// skipped and without, to each other): each tile holds 2 rows of A against 4 columns of B as eight
/// vectors of partial dot products over k, summed across lanes at the end (`sum4`), so C's four
/// columns are stored as one vector. k's last k mod 4 terms and C's last n mod 4 columns go scalar.
///
/// Columns outer: a block's four columns of B (four rows of W, 12.5 KB at k = 784) stay in L1
/// while every row of A passes them; rows outer would stream the whole of B (a layer's W, over a
/// megabyte, from L3 or memory) once for every pair of rows.
#[allow(clippy::too_many_arguments)]
pub fn blocked_dot(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue) {
    check(m, n, k, &a, &b, c, c_rs, &e);
    assert!(k == 0 || a.cs == 1 && b.rs == 1, "the dot-product form reads A's rows and B's columns as vectors");
    let (n4, k4) = (n - n % 4, k - k % 4);
    SCRATCH.with_borrow_mut(|Scratch { steps, panel, .. }| {
        if panel.len() < 4 * k4 {
            panel.resize(4 * k4, 0.0);
        }
        // Each pair of A's rows: the runs of 4 along k where either row is not all zeros, where
        // they are few (a step here is 4 of k; `dot_tile` takes k's last k mod 4 apart). A pair of
        // digits' rows of 784 pixels has about 77 such runs of 196.
        steps.clear();
        if a.settled(k).zeros && m > 0 && n4 > 0 {
            for i in (0..m).step_by(DOT_ROWS) {
                let rows = i..(i + DOT_ROWS).min(m);
                let run = |r: usize, q: usize| &a.data[r * a.rs + 4 * q..r * a.rs + 4 * q + 4];
                steps.push(k4 / 4, |q| rows.clone().any(|r| !all_zeros(run(r, q))));
            }
        }
        for j in (0..n4).step_by(4) {
            // B's four columns copied run by run, run q's four vectors at 16q: the tile reads
            // them at constant offsets from one pointer (as `tile` reads a packed A; 12.5 KB at
            // k = 784, a copy of each of B's values once a product)
            for q in 0..k4 / 4 {
                for col in 0..4 {
                    let from = (j + col) * b.cs + 4 * q;
                    panel[16 * q + 4 * col..][..4].copy_from_slice(&b.data[from..from + 4]);
                }
            }
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(DOT_ROWS);
                let runs = steps.get(i / DOT_ROWS);
                // SAFETY: `check` bounds the rows of A and the columns of B and C the tile reads,
                // and the runs are below k4 / 4.
                unsafe {
                    if rows == DOT_ROWS {
                        dot_tile::<DOT_ROWS>(i, j, n, k, runs, &a, &b, panel, c, c_rs, &e)
                    } else {
                        dot_tile::<1>(i, j, n, k, runs, &a, &b, panel, c, c_rs, &e)
                    }
                }
                i += rows;
            }
        }
    });
    if n4 < n {
        scalar_tile(0, 0, n4, m, n - n4, n, k, &a, &b, c, c_rs, &e);
    }
}

/// C[i..i + R, j..j + 4] as dot products of A's rows with B's columns, over every run of 4
/// along k, or over the runs `runs` lists (run q is k's 4q..4q + 4); the runs' products read B's
/// four columns from `packed` (run q at 16q), k's last k mod 4 terms from B itself.
///
/// # Safety
/// As `tile`; A's rows and B's columns contiguous along k (a.cs = b.rs = 1); `runs` below k / 4;
/// `packed` holds B's columns j..j + 4 for every run.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile<const R: usize>(
    i: usize, j: usize, n: usize, k: usize, runs: Option<&[u32]>, a: &Strided, b: &Strided, packed: &[f32], c: &mut [f32],
    c_rs: usize, e: &Epilogue,
) {
    let k4 = k - k % 4;
    let arow: [*const f32; R] = std::array::from_fn(|r| a.data.as_ptr().add((i + r) * a.rs));
    let bcol: [*const f32; 4] = std::array::from_fn(|q| b.data.as_ptr().add((j + q) * b.cs));
    let mut acc = [[V4::splat(0.0); 4]; R];
    // one run: A's rows at `at`, B's four vectors at `bp`
    let mut run = |at: [*const f32; R], bp: *const f32| {
        let bv: [V4; 4] = std::array::from_fn(|q| V4::load(bp.add(4 * q)));
        for r in 0..R {
            let av = V4::load(at[r]);
            for q in 0..4 {
                acc[r][q] = acc[r][q].madd(av, bv[q]);
            }
        }
    };
    let bp = packed.as_ptr();
    match runs {
        Some(runs) => runs.iter().for_each(|&q| run(arow.map(|p| p.add(4 * q as usize)), bp.add(16 * q as usize))),
        None => {
            let (mut at, mut bp) = (arow, bp);
            let end = bp.add(4 * k4);
            while bp != end {
                run(at, bp);
                at = at.map(|p| p.add(4));
                bp = bp.add(16);
            }
        }
    }
    for r in 0..R {
        let mut tail = [0f32; 4];
        for (q, t) in tail.iter_mut().enumerate() {
            for p in k4..k {
                *t += *arow[r].add(p) * *bcol[q].add(p);
            }
        }
        let x = V4::sum4(acc[r]).add(V4::load(tail.as_ptr()));
        store(x, i + r, j, n, c, c_rs, e);
    }
}

/// A narrow tile (fewer than 4 columns left), one scalar at a time.
#[allow(clippy::too_many_arguments)]
fn scalar_tile(
    ai: usize, i0: usize, j0: usize, rows: usize, cols: usize, n: usize, k: usize, a: &Strided, b: &Strided, c: &mut [f32], c_rs: usize,
    e: &Epilogue,
) {
    for (r, i) in (i0..i0 + rows).enumerate() {
        for j in j0..j0 + cols {
            let mut s = 0f32;
            for p in 0..k {
                s += a.data[(ai + r) * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
            }
            if e.accumulate {
                s += c[i * c_rs + j];
            }
            s += e.bias.map_or(0.0, |b| b[j]);
            let s = e.act.apply(s);
            c[i * c_rs + j] = e.mask.map_or(s, |m| s * m[i * n + j]);
        }
    }
}
