// The counter-based normals of sdekit/csrc/philox.cuh on whole vectors, L Philox groups at a time
// (L = 16 on AVX-512, 8 on AVX2 + FMA): the "cpu" backend's fast path for float32 (sdekit/kernels/rng.py
// is the specification).  Written once over the vector types of simd.h; both widths compute the same
// bits, so an AVX2 build draws exactly the normals of an AVX-512 build.
//
//   philox<V>: Philox4x32-10 for the counters (c0 + i, c1, c2, c3), i = 0 .. L-1.  The 32-bit words
//     ride in the low halves of 64-bit lanes (L/2 groups per register, two registers), so each
//     multiply is one vpmuludq giving lo (low half) and hi (>> 32) at once; the upper halves of
//     the lanes carry garbage that no later operation reads (vpmuludq reads the low halves, the
//     xors keep halves apart).  Bitwise the scalar philox4x32_10.
//   log_f32(u), u in [2^-24, 1]: u = 2^k m, m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f),
//     log u = k ln2_hi + (((s (f^2/2 + R(s^2)) + k ln2_lo) - f^2/2) + f), R fdlibm's logf minimax
//     polynomial and ln2 split (e_logf.c).  Within 1 ulp of log u on every float u in the domain.
//   sincos_f32(t), t in [0, 2 pi): n = rint(t 2/pi), r = t - n pi/2 carried as rh + rl (n P1 by an
//     FMA, exact; n P2 exact as P2 has 21 bits, added by TwoSum; n P3 into rl), then on |r| <= pi/4
//       sin r = rh + (rh z P(z) + rl),   cos r = w + (((1 - w) - z/2) - zl/2 - rh rl + z^2 Q(z)),
//     z + zl = rh^2 exactly, w = 1 - z/2, P and Q degree-3 minimax fits (relative, on [0, pi/4]) of
//     (sin r - r)/r^3 and (cos r - 1 + r^2/2)/r^4, then the quadrant's swap and signs.  Within 1 ulp
//     of sin t and cos t on every float t in the domain.
//   normals_f32<V>: the 4 L float32 normals of groups q0 .. q0 + L-1 of one sample, in the layout of
//     philox.cuh: u1 = ((o >> 8) + 1) 2^-24, t = fl(fl(2 pi) u2), r = sqrt(-2 log u1),
//     z[4g + 2k] = r cos t, z[4g + 2k + 1] = r sin t, the four result registers transposed in
//     registers into element order.
//
// The 1-ulp bounds are checked against float64 libm over the whole domains (all 2^24 values of u1 and
// of t), at every width the compiler targets: tests/test_normals_simd.py.  The reference's torch
// log/cos/sin are also within 1 ulp, so a normal differs from the reference's by at most 3 ulp
// (tests/test_kernels_cpu.py).
#pragma once

#include "simd.h"

#if defined(SDEKIT_SIMD)

#include <cstdint>

namespace sdekit {
namespace simd {

template <class V> struct Words { IntOf<V> v[4]; };  // word k of L groups, one group per 32-bit lane

// philox_counters<V>(c0, h): the low halves of the 64-bit lanes of register h (0, 1) of word 0, the
// counters c0 + i of its groups; low_words(a, b): the low halves of the 64-bit lanes of registers
// 0 and 1 of a word, one 32-bit lane per group, groups 0 .. L-1 in order.
template <class V> IntOf<V> philox_counters(uint32_t c0, int h);

#if defined(__AVX512F__)
template <> inline __m512i philox_counters<__m512>(uint32_t c0, int h) {
  return _mm512_add_epi64(_mm512_set1_epi64(c0 + 8u * h), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m512i low_words(__m512i a, __m512i b) {
  return _mm512_permutex2var_epi32(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
}
#endif
#if defined(__AVX2__) && defined(__FMA__)
// groups {0, 1, 4, 5} in register 0 and {2, 3, 6, 7} in register 1: vshufps then takes the low
// halves of two lanes from each register per 128-bit half, leaving groups 0..7 in order.
template <> inline __m256i philox_counters<__m256>(uint32_t c0, int h) {
  return _mm256_add_epi64(_mm256_set1_epi64x(c0 + 2u * h), _mm256_setr_epi64x(0, 1, 4, 5));
}
inline __m256i low_words(__m256i a, __m256i b) {
  return _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), _MM_SHUFFLE(2, 0, 2, 0)));
}
#endif

template <class V>
inline Words<V> philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  using I = IntOf<V>;
  const I M0 = set1_i64<I>(0xD2511F53u), M1 = set1_i64<I>(0xCD9E8D57u);
  I x0[2], x1[2], x2[2], x3[2];
  for (int h = 0; h < 2; ++h) {
    x0[h] = philox_counters<V>(c0, h);
    x1[h] = set1_i64<I>(c1);
    x2[h] = set1_i64<I>(c2);
    x3[h] = set1_i64<I>(c3);
  }
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    const I K0 = set1_i64<I>(k0), K1 = set1_i64<I>(k1);
    for (int h = 0; h < 2; ++h) {
      const I p0 = mul_u32(x0[h], M0), p1 = mul_u32(x2[h], M1);
      const I n0 = xor3(srli64<32>(p1), x1[h], K0);  // hi1 ^ c1 ^ k0
      const I n2 = xor3(srli64<32>(p0), x3[h], K1);  // hi0 ^ c3 ^ k1
      x0[h] = n0; x1[h] = p1; x2[h] = n2; x3[h] = p0;  // lo1, lo0
    }
  }
  return Words<V>{{low_words(x0[0], x0[1]), low_words(x1[0], x1[1]), low_words(x2[0], x2[1]), low_words(x3[0], x3[1])}};
}

template <class V>
inline V log_f32(V u) {
  using I = IntOf<V>;
  I ix = add32(bits(u), set1_i32<I>(0x3f800000 - 0x3f3504f3));
  const I k = sub32(srli32<23>(ix), set1_i32<I>(0x7f));
  ix = add32(bit_and(ix, set1_i32<I>(0x007fffff)), set1_i32<I>(0x3f3504f3));
  const V f = sub(from_bits(ix), set1<V>(1.f));
  const V s = div(f, add(set1<V>(2.f), f));
  const V z = mul(s, s), w = mul(z, z);
  const V t1 = mul(w, fmadd(w, set1<V>(0.24279078841f), set1<V>(0.40000972152f)));
  const V t2 = mul(z, fmadd(w, set1<V>(0.28498786688f), set1<V>(0.66666662693f)));
  const V hfsq = mul(set1<V>(0.5f), mul(f, f));
  const V dk = cvt_f32(k);
  V r = fmadd(s, add(hfsq, add(t2, t1)), mul(dk, set1<V>(9.0580006145e-06f)));
  r = add(sub(r, hfsq), f);
  return fmadd(dk, set1<V>(6.9313812256e-01f), r);
}

template <class V>
inline void sincos_f32(V t, V& sin_t, V& cos_t) {
  using I = IntOf<V>;
  const V n = round_nearest(mul(t, set1<V>(0.6366197466850281f)));
  const V r1 = fnmadd(n, set1<V>(1.5707963705062866f), t);  // t - n P1, exact
  const V q2 = mul(n, set1<V>(4.3711395392165286e-08f));    // -n P2, exact
  const V rh = add(r1, q2);
  const V bv = sub(rh, r1), av = sub(rh, bv);
  V rl = add(sub(r1, av), sub(q2, bv));                    // rh + rl = r1 + q2
  rl = fnmadd(n, set1<V>(5.390302953474238e-15f), rl);     // - n P3
  const V z = mul(rh, rh), zl = fmsub(rh, rh, z);
  const V P = fmadd(fmadd(fmadd(z, set1<V>(2.7250039238424506e-06f), set1<V>(-0.0001984008849831298f)), z,
                          set1<V>(0.008333331905305386f)),
                    z, set1<V>(-0.1666666716337204f));
  const V ps = add(rh, fmadd(mul(z, rh), P, rl));
  const V Q = fmadd(fmadd(fmadd(z, set1<V>(-2.730104426973412e-07f), set1<V>(2.4800601750030182e-05f)), z,
                          set1<V>(-0.00138888880610466f)),
                    z, set1<V>(0.0416666679084301f));
  const V hz = mul(set1<V>(0.5f), z), w = sub(set1<V>(1.f), hz);
  V corr = fnmadd(set1<V>(0.5f), zl, sub(sub(set1<V>(1.f), w), hz));
  corr = fnmadd(rh, rl, corr);
  const V pc = add(w, fmadd(mul(z, z), Q, corr));
  const I q = cvt_i32(n);
  const auto odd = test_bit(q, 1);
  const I two = set1_i32<I>(2);
  const I neg_s = slli32<30>(bit_and(q, two));                                // q = 2, 3
  const I neg_c = slli32<30>(bit_and(add32(q, set1_i32<I>(1)), two));         // q = 1, 2
  sin_t = from_bits(bit_xor(bits(select(odd, pc, ps)), neg_s));
  cos_t = from_bits(bit_xor(bits(select(odd, ps, pc)), neg_c));
}

// Box-Muller on words (w_a, w_b) of L groups: (r cos t, r sin t).
template <class V>
inline void box_muller_f32(IntOf<V> wa, IntOf<V> wb, V& zc, V& zs) {
  using I = IntOf<V>;
  const V two24 = set1<V>(5.9604644775390625e-08f);  // 2^-24
  const V u1 = mul(cvt_f32(add32(srli32<8>(wa), set1_i32<I>(1))), two24);
  const V u2 = mul(cvt_f32(srli32<8>(wb)), two24);
  const V r = sqrt(mul(set1<V>(-2.f), log_f32(u1)));
  V s, c;
  sincos_f32(mul(set1<V>(6.2831854820251465f), u2), s, c);
  zc = mul(r, c);
  zs = mul(r, s);
}

// z[0 .. 4 L) from e_m, whose 128-bit lane j holds the 4 normals of group 4 j + m.
#if defined(__AVX512F__)
inline void store_groups(float* z, __m512 e0, __m512 e1, __m512 e2, __m512 e3) {
  // transpose the 4 x 4 grid of 128-bit lanes
  const __m512 f0 = _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 f1 = _mm512_shuffle_f32x4(e2, e3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 f2 = _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 f3 = _mm512_shuffle_f32x4(e2, e3, _MM_SHUFFLE(3, 2, 3, 2));
  _mm512_storeu_ps(z, _mm512_shuffle_f32x4(f0, f1, _MM_SHUFFLE(2, 0, 2, 0)));
  _mm512_storeu_ps(z + 16, _mm512_shuffle_f32x4(f0, f1, _MM_SHUFFLE(3, 1, 3, 1)));
  _mm512_storeu_ps(z + 32, _mm512_shuffle_f32x4(f2, f3, _MM_SHUFFLE(2, 0, 2, 0)));
  _mm512_storeu_ps(z + 48, _mm512_shuffle_f32x4(f2, f3, _MM_SHUFFLE(3, 1, 3, 1)));
}
#endif
#if defined(__AVX2__) && defined(__FMA__)
inline void store_groups(float* z, __m256 e0, __m256 e1, __m256 e2, __m256 e3) {
  _mm256_storeu_ps(z, _mm256_permute2f128_ps(e0, e1, 0x20));
  _mm256_storeu_ps(z + 8, _mm256_permute2f128_ps(e2, e3, 0x20));
  _mm256_storeu_ps(z + 16, _mm256_permute2f128_ps(e0, e1, 0x31));
  _mm256_storeu_ps(z + 24, _mm256_permute2f128_ps(e2, e3, 0x31));
}
#endif

// z[0 .. 4 L) = the normals of groups q0 .. q0 + L-1 (counter word 0 = q0 + i mod 2^32) of the sample
// with counter word b, at step (t0, t1) and key (k0, k1).
template <class V>
inline void normals_f32(uint32_t q0, uint32_t b, uint32_t t0, uint32_t t1, uint32_t k0, uint32_t k1, float* z) {
  const Words<V> w = philox<V>(q0, b, t0, t1, k0, k1);
  V z0, z1, z2, z3;  // lane g: z[4g], z[4g + 1], z[4g + 2], z[4g + 3]
  box_muller_f32<V>(w.v[0], w.v[1], z0, z1);
  box_muller_f32<V>(w.v[2], w.v[3], z2, z3);
  // 4 x L -> element order: interleave within 128-bit lanes, then order the lanes
  const V a = unpacklo(z0, z1), b_ = unpackhi(z0, z1), c = unpacklo(z2, z3), d = unpackhi(z2, z3);
  store_groups(z, unpacklo64(a, c), unpackhi64(a, c), unpacklo64(b_, d), unpackhi64(b_, d));
}

}  // namespace simd
}  // namespace sdekit

#endif  // SDEKIT_SIMD
