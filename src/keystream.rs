//! The trainer's random streams (ChaCha12, rand_chacha's) and their keystream in bulk: a GAN step
//! at batch 128 takes 75,000 words of 64 bits for its dropout, and one `next_u64` at a time
//! rand_chacha's portable code (it has SIMD for x86 only) spent about 1.7 ms of a step on them in
//! the tab. `fill_u64` computes the same words four ChaCha blocks at a time, one block in each
//! lane of a 4 × 32-bit vector (wasm's v128 where the build has simd128), and moves the stream past
//! them, so a seed gives the same draws, natively and in the browser, as before.

use anyhow::{ensure, Result};
use rand_chacha::rand_core::RngCore;

/// Each of the trainer's random streams (its shuffles and noise; its dropout): ChaCha12, what
/// rand's `StdRng` is, named so that a stream's position can be read and set (a run's file keeps
/// it).
pub type Stream = rand_chacha::ChaCha12Rng;

/// `out.len()` words from `rng`, each what `rng.next_u64()` would give in turn, and `rng` moved
/// past them. The first 32 (four blocks' worth: every lane) and the last are checked against
/// rand_chacha's own, two refills of its buffer: the vector code the browser runs has no native
/// test of its own, and a step on wrong draws would still train.
pub fn fill_u64(rng: &mut Stream, out: &mut [u64]) -> Result<()> {
    let start = rng.get_word_pos();
    let key = rng.get_seed();
    let key: [u32; 8] = std::array::from_fn(|i| u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]));
    let stream = rng.get_stream();
    // The keystream is 32-bit words, block b's 16 at 16·b; a u64 is two in turn, the first low.
    let mut block = (start / 16) as u64;
    let mut skip = (start % 16) as usize;
    let mut words = [0u32; 64];
    let mut pending: Option<u32> = None;
    let mut filled = 0;
    while filled < out.len() {
        four_blocks(&key, block, stream, &mut words);
        for &w in &words[skip..] {
            match pending.take() {
                None => pending = Some(w),
                Some(low) => {
                    out[filled] = u64::from(low) | u64::from(w) << 32;
                    filled += 1;
                    if filled == out.len() {
                        break;
                    }
                }
            }
        }
        block = block.wrapping_add(4);
        skip = 0;
    }
    let mut check = rng.clone();
    rng.set_word_pos(start + 2 * out.len() as u128);
    let first = out.len().min(32);
    let last = out.len().saturating_sub(1).max(first);
    for i in (0..first).chain(last..out.len()) {
        let at = start + 2 * i as u128;
        if i == last {
            check.set_word_pos(at);
        }
        let want = check.next_u64();
        ensure!(out[i] == want, "the random stream's word at {at} came out {:#x}, not ChaCha12's {want:#x}", out[i]);
    }
    Ok(())
}

/// Four lanes of 32 bits, lane b for block b, with wrapping arithmetic: wasm's v128 where the build
/// has simd128 (the compiler left the plain arrays' rotations scalar there), a plain array elsewhere.
#[derive(Clone, Copy)]
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
struct U32x4([u32; 4]);

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
impl U32x4 {
    #[inline(always)]
    fn new(lanes: [u32; 4]) -> Self {
        Self(lanes)
    }
    #[inline(always)]
    fn lanes(self) -> [u32; 4] {
        self.0
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::array::from_fn(|l| self.0[l].wrapping_add(o.0[l])))
    }
    /// (self ^ o) rotated left by r bits.
    #[inline(always)]
    fn xor_rotl(self, o: Self, r: u32) -> Self {
        Self(std::array::from_fn(|l| (self.0[l] ^ o.0[l]).rotate_left(r)))
    }
}

#[derive(Clone, Copy)]
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
struct U32x4(std::arch::wasm32::v128);

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl U32x4 {
    #[inline(always)]
    fn new(l: [u32; 4]) -> Self {
        Self(std::arch::wasm32::u32x4(l[0], l[1], l[2], l[3]))
    }
    #[inline(always)]
    fn lanes(self) -> [u32; 4] {
        use std::arch::wasm32::u32x4_extract_lane as lane;
        [lane::<0>(self.0), lane::<1>(self.0), lane::<2>(self.0), lane::<3>(self.0)]
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::arch::wasm32::u32x4_add(self.0, o.0))
    }
    /// (self ^ o) rotated left by r bits.
    #[inline(always)]
    fn xor_rotl(self, o: Self, r: u32) -> Self {
        use std::arch::wasm32::{u32x4_shl, u32x4_shr, v128_or, v128_xor};
        let x = v128_xor(self.0, o.0);
        Self(v128_or(u32x4_shl(x, r), u32x4_shr(x, 32 - r)))
    }
}

/// ChaCha12's blocks `block`..`block + 4` of `stream` under `key` (rand_chacha's layout: the four
/// constants, the key, a 64-bit block counter, the 64-bit stream), their 64 words in order.
fn four_blocks(key: &[u32; 8], block: u64, stream: u64, out: &mut [u32; 64]) {
    let counters: [u64; 4] = std::array::from_fn(|b| block.wrapping_add(b as u64));
    let constants = [0x6170_7865u32, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
    let init: [U32x4; 16] = std::array::from_fn(|w| match w {
        0..4 => U32x4::new([constants[w]; 4]),
        4..12 => U32x4::new([key[w - 4]; 4]),
        12 => U32x4::new(counters.map(|c| c as u32)),
        13 => U32x4::new(counters.map(|c| (c >> 32) as u32)),
        14 => U32x4::new([stream as u32; 4]),
        _ => U32x4::new([(stream >> 32) as u32; 4]),
    });
    let mut x = init;
    let quarter = |x: &mut [U32x4; 16], a: usize, b: usize, c: usize, d: usize| {
        x[a] = x[a].add(x[b]);
        x[d] = x[d].xor_rotl(x[a], 16);
        x[c] = x[c].add(x[d]);
        x[b] = x[b].xor_rotl(x[c], 12);
        x[a] = x[a].add(x[b]);
        x[d] = x[d].xor_rotl(x[a], 8);
        x[c] = x[c].add(x[d]);
        x[b] = x[b].xor_rotl(x[c], 7);
    };
    // 12 rounds: 6 of columns then diagonals
    for _ in 0..6 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for (w, (x, init)) in x.iter().zip(&init).enumerate() {
        for (b, word) in x.add(*init).lanes().into_iter().enumerate() {
            out[16 * b + w] = word;
        }
    }
}
