// The counter-based normals of sdekit/csrc/philox.cuh on whole AVX-512 vectors, 16 Philox groups
// at a time (the "cpu" backend's fast path; sdekit/kernels/rng.py is the specification).
//
//   philox16: Philox4x32-10 for the counters (c0 + i, c1, c2, c3), i = 0..15.  The 32-bit words
//     ride in the low halves of 64-bit lanes (8 groups per register, two registers), so each
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
//   normals16_f32: the 64 float32 normals of groups q0 .. q0 + 15 of one sample, in the layout of
//     philox.cuh: u1 = ((o >> 8) + 1) 2^-24, t = fl(fl(2 pi) u2), r = sqrt(-2 log u1),
//     z[4g + 2k] = r cos t, z[4g + 2k + 1] = r sin t, the four result registers transposed in
//     registers into element order.
//
// The 1-ulp bounds are checked against float64 libm over the whole domains (all 2^24 values of u1 and
// of t): tests/test_normals_avx512.py.  The reference's torch log/cos/sin are also within 1 ulp, so
// a normal differs from the reference's by at most 3 ulp (tests/test_kernels_cpu.py).
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <cstdint>

namespace sdekit {
namespace avx512 {

struct Words16 { __m512i v[4]; };  // word k of groups 0..15, one group per 32-bit lane

inline Words16 philox16(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  const __m512i M0 = _mm512_set1_epi64(0xD2511F53u), M1 = _mm512_set1_epi64(0xCD9E8D57u);
  const __m512i iota = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  __m512i x0[2], x1[2], x2[2], x3[2];
  for (int h = 0; h < 2; ++h) {
    x0[h] = _mm512_add_epi64(_mm512_set1_epi64(c0 + 8u * h), iota);  // low halves: c0 + i (mod 2^32)
    x1[h] = _mm512_set1_epi64(c1);
    x2[h] = _mm512_set1_epi64(c2);
    x3[h] = _mm512_set1_epi64(c3);
  }
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    const __m512i K0 = _mm512_set1_epi64(k0), K1 = _mm512_set1_epi64(k1);
    for (int h = 0; h < 2; ++h) {
      const __m512i p0 = _mm512_mul_epu32(x0[h], M0), p1 = _mm512_mul_epu32(x2[h], M1);
      const __m512i n0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), x1[h], K0, 0x96);  // hi1 ^ c1 ^ k0
      const __m512i n2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), x3[h], K1, 0x96);  // hi0 ^ c3 ^ k1
      x0[h] = n0; x1[h] = p1; x2[h] = n2; x3[h] = p0;                                           // lo1, lo0
    }
  }
  const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  Words16 w;
  w.v[0] = _mm512_permutex2var_epi32(x0[0], low, x0[1]);
  w.v[1] = _mm512_permutex2var_epi32(x1[0], low, x1[1]);
  w.v[2] = _mm512_permutex2var_epi32(x2[0], low, x2[1]);
  w.v[3] = _mm512_permutex2var_epi32(x3[0], low, x3[1]);
  return w;
}

inline __m512 f32(float v) { return _mm512_set1_ps(v); }

inline __m512 log_f32(__m512 u) {
  __m512i ix = _mm512_add_epi32(_mm512_castps_si512(u), _mm512_set1_epi32(0x3f800000 - 0x3f3504f3));
  const __m512i k = _mm512_sub_epi32(_mm512_srli_epi32(ix, 23), _mm512_set1_epi32(0x7f));
  ix = _mm512_add_epi32(_mm512_and_si512(ix, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f3504f3));
  const __m512 f = _mm512_sub_ps(_mm512_castsi512_ps(ix), f32(1.f));
  const __m512 s = _mm512_div_ps(f, _mm512_add_ps(f32(2.f), f));
  const __m512 z = _mm512_mul_ps(s, s), w = _mm512_mul_ps(z, z);
  const __m512 t1 = _mm512_mul_ps(w, _mm512_fmadd_ps(w, f32(0.24279078841f), f32(0.40000972152f)));
  const __m512 t2 = _mm512_mul_ps(z, _mm512_fmadd_ps(w, f32(0.28498786688f), f32(0.66666662693f)));
  const __m512 hfsq = _mm512_mul_ps(f32(0.5f), _mm512_mul_ps(f, f));
  const __m512 dk = _mm512_cvtepi32_ps(k);
  __m512 r = _mm512_fmadd_ps(s, _mm512_add_ps(hfsq, _mm512_add_ps(t2, t1)), _mm512_mul_ps(dk, f32(9.0580006145e-06f)));
  r = _mm512_add_ps(_mm512_sub_ps(r, hfsq), f);
  return _mm512_fmadd_ps(dk, f32(6.9313812256e-01f), r);
}

inline void sincos_f32(__m512 t, __m512& sin_t, __m512& cos_t) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, f32(0.6366197466850281f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r1 = _mm512_fnmadd_ps(n, f32(1.5707963705062866f), t);  // t - n P1, exact
  const __m512 q2 = _mm512_mul_ps(n, f32(4.3711395392165286e-08f));    // -n P2, exact
  const __m512 rh = _mm512_add_ps(r1, q2);
  const __m512 bv = _mm512_sub_ps(rh, r1), av = _mm512_sub_ps(rh, bv);
  __m512 rl = _mm512_add_ps(_mm512_sub_ps(r1, av), _mm512_sub_ps(q2, bv));  // rh + rl = r1 + q2
  rl = _mm512_fnmadd_ps(n, f32(5.390302953474238e-15f), rl);               // - n P3
  const __m512 z = _mm512_mul_ps(rh, rh), zl = _mm512_fmsub_ps(rh, rh, z);
  const __m512 P = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(z, f32(2.7250039238424506e-06f), f32(-0.0001984008849831298f)), z,
                      f32(0.008333331905305386f)),
      z, f32(-0.1666666716337204f));
  const __m512 ps = _mm512_add_ps(rh, _mm512_fmadd_ps(_mm512_mul_ps(z, rh), P, rl));
  const __m512 Q = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(z, f32(-2.730104426973412e-07f), f32(2.4800601750030182e-05f)), z,
                      f32(-0.00138888880610466f)),
      z, f32(0.0416666679084301f));
  const __m512 hz = _mm512_mul_ps(f32(0.5f), z), w = _mm512_sub_ps(f32(1.f), hz);
  __m512 corr = _mm512_fnmadd_ps(f32(0.5f), zl, _mm512_sub_ps(_mm512_sub_ps(f32(1.f), w), hz));
  corr = _mm512_fnmadd_ps(rh, rl, corr);
  const __m512 pc = _mm512_add_ps(w, _mm512_fmadd_ps(_mm512_mul_ps(z, z), Q, corr));
  const __m512i q = _mm512_cvtps_epi32(n);
  const __mmask16 odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
  const __m512i two = _mm512_set1_epi32(2);
  const __m512i neg_s = _mm512_slli_epi32(_mm512_and_si512(q, two), 30);                                 // q = 2, 3
  const __m512i neg_c = _mm512_slli_epi32(_mm512_and_si512(_mm512_add_epi32(q, _mm512_set1_epi32(1)), two), 30);  // q = 1, 2
  sin_t = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_mask_blend_ps(odd, ps, pc)), neg_s));
  cos_t = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_mask_blend_ps(odd, pc, ps)), neg_c));
}

// Box-Muller on words (w_a, w_b) of 16 groups: (r cos t, r sin t).
inline void box_muller16_f32(__m512i wa, __m512i wb, __m512& zc, __m512& zs) {
  const __m512 two24 = f32(5.9604644775390625e-08f);  // 2^-24
  const __m512 u1 = _mm512_mul_ps(
      _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32(wa, 8), _mm512_set1_epi32(1))), two24);
  const __m512 u2 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(wb, 8)), two24);
  const __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(f32(-2.f), log_f32(u1)));
  __m512 s, c;
  sincos_f32(_mm512_mul_ps(f32(6.2831854820251465f), u2), s, c);
  zc = _mm512_mul_ps(r, c);
  zs = _mm512_mul_ps(r, s);
}

// z[0 .. 64) = the normals of groups q0 .. q0 + 15 (counter word 0 = q0 + i mod 2^32) of the sample
// with counter word b, at step (t0, t1) and key (k0, k1).
inline void normals16_f32(uint32_t q0, uint32_t b, uint32_t t0, uint32_t t1, uint32_t k0, uint32_t k1, float* z) {
  const Words16 w = philox16(q0, b, t0, t1, k0, k1);
  __m512 z0, z1, z2, z3;  // lane g: z[4g], z[4g + 1], z[4g + 2], z[4g + 3]
  box_muller16_f32(w.v[0], w.v[1], z0, z1);
  box_muller16_f32(w.v[2], w.v[3], z2, z3);
  // 4 x 16 -> element order: interleave within 128-bit lanes (lane L of e_m = group 4L + m), then
  // transpose the 4 x 4 grid of 128-bit lanes.
  const __m512 a = _mm512_unpacklo_ps(z0, z1), b_ = _mm512_unpackhi_ps(z0, z1);
  const __m512 c = _mm512_unpacklo_ps(z2, z3), d = _mm512_unpackhi_ps(z2, z3);
  const __m512 e0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
  const __m512 e1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
  const __m512 e2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b_), _mm512_castps_pd(d)));
  const __m512 e3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b_), _mm512_castps_pd(d)));
  const __m512 f0 = _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 f1 = _mm512_shuffle_f32x4(e2, e3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 f2 = _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 f3 = _mm512_shuffle_f32x4(e2, e3, _MM_SHUFFLE(3, 2, 3, 2));
  _mm512_storeu_ps(z, _mm512_shuffle_f32x4(f0, f1, _MM_SHUFFLE(2, 0, 2, 0)));
  _mm512_storeu_ps(z + 16, _mm512_shuffle_f32x4(f0, f1, _MM_SHUFFLE(3, 1, 3, 1)));
  _mm512_storeu_ps(z + 32, _mm512_shuffle_f32x4(f2, f3, _MM_SHUFFLE(2, 0, 2, 0)));
  _mm512_storeu_ps(z + 48, _mm512_shuffle_f32x4(f2, f3, _MM_SHUFFLE(3, 1, 3, 1)));
}

}  // namespace avx512
}  // namespace sdekit

#endif  // __AVX512F__
