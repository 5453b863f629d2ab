//! Four f32 lanes: wasm's v128 in the browser, a plain array elsewhere (what the native tests
//! run), and what the engine computes on them besides products: `exp` and `ln_1p` as polynomials
//! (wasm has no instruction for either; the scalar ones are libm calls of about 15 ns each), so
//! that the VAE's loss, an exponential and a logarithm per pixel, runs four pixels at a time.
//!
//! Both implementations do the same operations in the same order, so the native tests check the
//! arithmetic the browser runs (to the last bit where the build has no fused multiply-add).

/// Four f32 lanes.
pub trait Lanes: Copy {
    fn splat(x: f32) -> Self;
    /// # Safety
    /// `p..p + 4` must be readable.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p..p + 4` must be writable.
    unsafe fn store(self, p: *mut f32);
    /// self + a·b (fused where the build has relaxed SIMD: products only)
    fn madd(self, a: Self, b: Self) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn abs(self) -> Self;
    /// Each lane rounded to the nearest integer, ties to even.
    fn nearest(self) -> Self;
    /// 2ⁿ for lanes that hold integers n from −126 to 127.
    fn exp2_int(self) -> Self;
    /// Lanes of `a` where self ≥ 0, of `b` elsewhere.
    fn select_nonneg(self, a: Self, b: Self) -> Self;
    /// −1, 0 or 1 (0 at 0, where `f32::signum` would give 1).
    fn sign(self) -> Self;
    /// [Σ a₀, Σ a₁, Σ a₂, Σ a₃]: each vector's lanes summed, the four sums as one vector.
    fn sum4(a: [Self; 4]) -> Self;
    /// The 4 × 4 matrix whose rows are `a`, transposed: lane l of row r becomes lane r of row l.
    fn transpose4(a: [Self; 4]) -> [Self; 4];

    /// The lanes as an array.
    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        let mut out = [0f32; 4];
        // SAFETY: `out` holds four floats.
        unsafe { self.store(out.as_mut_ptr()) };
        out
    }

    /// An array as lanes.
    #[inline(always)]
    fn from_array(a: [f32; 4]) -> Self {
        // SAFETY: `a` holds four floats.
        unsafe { Self::load(a.as_ptr()) }
    }

    /// eˣ for x ≤ 0 (Cephes' `expf`: x = n·ln 2 + r, |r| ≤ ½ ln 2, eʳ by a degree-6 polynomial,
    /// within 2 ulp of eˣ); below −87 it gives e⁻⁸⁷ (1.6e-38), not a subnormal.
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        let x = self.max(Self::splat(-87.0));
        let n = x.mul(Self::splat(std::f32::consts::LOG2_E)).nearest();
        // ln 2 in two parts, the first exact in a few bits, so n·C1 is exact
        let r = x.sub(n.mul(Self::splat(0.693_359_4))).sub(n.mul(Self::splat(-2.121_944_4e-4)));
        let mut p = Self::splat(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = p.mul(r).add(Self::splat(c));
        }
        p.mul(r.mul(r)).add(r).add(Self::splat(1.0)).mul(n.exp2_int())
    }

    /// ln(1 + x) for 0 ≤ x ≤ 1: 2·atanh(s) with s = x / (2 + x) ≤ ⅓, its odd series to s¹³
    /// (truncation under 2e-8 relative), so small x keep their precision.
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        let s = self.div(self.add(Self::splat(2.0)));
        let z = s.mul(s);
        let mut p = Self::splat(1.0 / 13.0);
        for c in [1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
            p = p.mul(z).add(Self::splat(c));
        }
        p.mul(s).mul(Self::splat(2.0))
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type V4 = [f32; 4];

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
impl Lanes for [f32; 4] {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        std::ptr::read_unaligned(p as *const [f32; 4])
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        std::ptr::write_unaligned(p as *mut [f32; 4], self)
    }
    #[inline(always)]
    fn madd(self, a: Self, b: Self) -> Self {
        std::array::from_fn(|l| self[l] + a[l] * b[l])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        std::array::from_fn(|l| self[l] + o[l])
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        std::array::from_fn(|l| self[l] - o[l])
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        std::array::from_fn(|l| self[l] * o[l])
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        std::array::from_fn(|l| self[l] / o[l])
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // wasm's pmax: o where self < o, else self (so a NaN in self stays)
        std::array::from_fn(|l| if self[l] < o[l] { o[l] } else { self[l] })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        std::array::from_fn(|l| self[l].abs())
    }
    #[inline(always)]
    fn nearest(self) -> Self {
        std::array::from_fn(|l| self[l].round_ties_even())
    }
    #[inline(always)]
    fn exp2_int(self) -> Self {
        std::array::from_fn(|l| f32::from_bits(((self[l] as i32 + 127) << 23) as u32))
    }
    #[inline(always)]
    fn select_nonneg(self, a: Self, b: Self) -> Self {
        std::array::from_fn(|l| if self[l] >= 0.0 { a[l] } else { b[l] })
    }
    #[inline(always)]
    fn sign(self) -> Self {
        std::array::from_fn(|l| (self[l] > 0.0) as i32 as f32 - (self[l] < 0.0) as i32 as f32)
    }
    #[inline(always)]
    fn sum4(a: [Self; 4]) -> Self {
        // the pairs in the order the v128 shuffles add them, so both round alike
        std::array::from_fn(|l| (a[l][0] + a[l][2]) + (a[l][1] + a[l][3]))
    }
    #[inline(always)]
    fn transpose4(a: [Self; 4]) -> [Self; 4] {
        std::array::from_fn(|l| std::array::from_fn(|r| a[r][l]))
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type V4 = core::arch::wasm32::v128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl Lanes for core::arch::wasm32::v128 {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        core::arch::wasm32::f32x4_splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        core::arch::wasm32::v128_load(p as *const Self)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        core::arch::wasm32::v128_store(p as *mut Self, self)
    }
    #[inline(always)]
    fn madd(self, a: Self, b: Self) -> Self {
        // One fused multiply-add where the build has relaxed SIMD (rounding once, or twice where
        // the CPU has no FMA: relaxed_madd may do either); a multiply, then an add, otherwise.
        #[cfg(target_feature = "relaxed-simd")]
        return core::arch::wasm32::f32x4_relaxed_madd(a, b, self);
        #[cfg(not(target_feature = "relaxed-simd"))]
        core::arch::wasm32::f32x4_add(self, core::arch::wasm32::f32x4_mul(a, b))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        core::arch::wasm32::f32x4_add(self, o)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        core::arch::wasm32::f32x4_sub(self, o)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        core::arch::wasm32::f32x4_mul(self, o)
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        core::arch::wasm32::f32x4_div(self, o)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // pmax: lanes of NaN are not produced from finite inputs, and a NaN step is refused anyway.
        core::arch::wasm32::f32x4_pmax(self, o)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        core::arch::wasm32::f32x4_abs(self)
    }
    #[inline(always)]
    fn nearest(self) -> Self {
        core::arch::wasm32::f32x4_nearest(self)
    }
    #[inline(always)]
    fn exp2_int(self) -> Self {
        use core::arch::wasm32::{i32x4_add, i32x4_shl, i32x4_splat, i32x4_trunc_sat_f32x4};
        i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(self), i32x4_splat(127)), 23)
    }
    #[inline(always)]
    fn select_nonneg(self, a: Self, b: Self) -> Self {
        use core::arch::wasm32::{f32x4_ge, v128_bitselect};
        v128_bitselect(a, b, f32x4_ge(self, Self::splat(0.0)))
    }
    #[inline(always)]
    fn sign(self) -> Self {
        use core::arch::wasm32::{f32x4_convert_i32x4, f32x4_gt, f32x4_lt, i32x4_sub};
        // a comparison's lanes are −1 (true) or 0 as integers: (x < 0) − (x > 0) is the sign
        let zero = Self::splat(0.0);
        f32x4_convert_i32x4(i32x4_sub(f32x4_lt(self, zero), f32x4_gt(self, zero)))
    }
    #[inline(always)]
    fn sum4(a: [Self; 4]) -> Self {
        use core::arch::wasm32::{f32x4_add, i32x4_shuffle};
        // [a0₀+a0₂, a1₀+a1₂, a0₁+a0₃, a1₁+a1₃], likewise for a2, a3; then the halves added.
        let s01 = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a[0], a[1]), i32x4_shuffle::<2, 6, 3, 7>(a[0], a[1]));
        let s23 = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a[2], a[3]), i32x4_shuffle::<2, 6, 3, 7>(a[2], a[3]));
        f32x4_add(i32x4_shuffle::<0, 1, 4, 5>(s01, s23), i32x4_shuffle::<2, 3, 6, 7>(s01, s23))
    }
    #[inline(always)]
    fn transpose4(a: [Self; 4]) -> [Self; 4] {
        use core::arch::wasm32::i32x4_shuffle;
        // rows 0 and 1 interleaved, and 2 and 3 (each pair's lanes 0, 1 and 2, 3); then halves
        let (t0, t1) = (i32x4_shuffle::<0, 4, 1, 5>(a[0], a[1]), i32x4_shuffle::<2, 6, 3, 7>(a[0], a[1]));
        let (t2, t3) = (i32x4_shuffle::<0, 4, 1, 5>(a[2], a[3]), i32x4_shuffle::<2, 6, 3, 7>(a[2], a[3]));
        [
            i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
            i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
            i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
            i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
        ]
    }
}
