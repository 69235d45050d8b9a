// Dawson's integral on whole AVX-512 vectors (GCC leaves the scalar loop over
// sdekit::dawson::eval unvectorised: it does not vectorise the Taylor-table loads).
//
//   float32: the arithmetic of sdekit::dawson::eval (sdekit/csrc/dawson.cuh) operation for
//     operation -- the same table (65 rows, h = 1/16), tail rational, select and sign, one IEEE
//     rounding per multiply, add and divide, no FMA -- so the results are bitwise the scalar
//     code's and the torch reference's.  Only the lookup differs: rows 0..63 of a column sit in
//     four registers and are picked by two two-register permutes (vpermt2ps, bits 0-4 of the
//     row) and a blend (bit 5), row 64 by a blend.  No memory access per element.
//   float64: the reference's 81-row table needs gathers, which cost more than the arithmetic on
//     the CPUs measured (benchmarks/RESULTS.md), so the same two forms with other constants:
//       a <  5: D = hi + (s (c_1 + s (c_2 + ... + s c_16)) + lo) around the nearest of 16 grid
//               points x0 = i h, h = 21/64 (i h and s = a - i h exact, |s| <= 0.165), each
//               coefficient's 16 rows in two registers picked by one permute (vpermt2pd);
//       a >= 5: the reference's tail with two divisions instead of three, D = (1/(2a)) h,
//               h = 1 + y (1/2 + y P(y)/Q(y)), y = (1/a)^2,
//     Horner steps fused (FMA).  Not bitwise the reference: each within the stated 4-ulp
//     bound of the exact value (measured in benchmarks/RESULTS.md, asserted by the tests).
//
// dawsn_avx512(x, y, n): y[i] = D(x[i]) for i < n; the last partial vector with masked loads
// and stores.
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <cstdint>

#include "../dawson_coeffs.h"

namespace sdekit {
namespace dawson {
namespace avx512 {

template <int N>
inline __m512 horner(const float (&c)[N], __m512 z) {
  __m512 acc = _mm512_set1_ps(c[N - 1]);
  for (int k = N - 2; k >= 0; --k) acc = _mm512_add_ps(_mm512_mul_ps(acc, z), _mm512_set1_ps(c[k]));
  return acc;
}

template <int N>
inline __m512d horner(const double (&c)[N], __m512d z) {
  __m512d acc = _mm512_set1_pd(c[N - 1]);
  for (int k = N - 2; k >= 0; --k) acc = _mm512_fmadd_pd(acc, z, _mm512_set1_pd(c[k]));
  return acc;
}

// Column k of the float32 table at the rows idx (0 <= idx <= 64).
inline __m512 column_f32(int k, __m512i idx, __mmask16 bit5, __mmask16 last) {
  static_assert(SDEKIT_DAWSON_F32_ROWS == 65, "the float32 lookup holds rows 0..63 in registers plus row 64");
  const float* c = sdekit_dawson_f32_taylor_host + k * SDEKIT_DAWSON_F32_ROWS;
  const __m512 lo = _mm512_permutex2var_ps(_mm512_loadu_ps(c), idx, _mm512_loadu_ps(c + 16));
  const __m512 hi = _mm512_permutex2var_ps(_mm512_loadu_ps(c + 32), idx, _mm512_loadu_ps(c + 48));
  return _mm512_mask_blend_ps(last, _mm512_mask_blend_ps(bit5, lo, hi), _mm512_set1_ps(c[64]));
}

inline __m512 dawsn16(__m512 x) {
  constexpr int COLS = SDEKIT_DAWSON_F32_COLS;
  const float tp[] = SDEKIT_DAWSON_F32_TAIL_P, tq[] = SDEKIT_DAWSON_F32_TAIL_Q;
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 a = _mm512_andnot_ps(sign, x);
  const __mmask16 inner = _mm512_cmp_ps_mask(a, _mm512_set1_ps(SDEKIT_DAWSON_F32_SPLIT), _CMP_LT_OQ);
  // Taylor table around the nearest grid point
  const __m512 ai = _mm512_maskz_mov_ps(inner, a);
  const __m512 i = _mm512_roundscale_ps(
      _mm512_add_ps(_mm512_mul_ps(ai, _mm512_set1_ps(1.0f / SDEKIT_DAWSON_F32_STEP)), _mm512_set1_ps(0.5f)),
      _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 s = _mm512_sub_ps(ai, _mm512_mul_ps(i, _mm512_set1_ps(SDEKIT_DAWSON_F32_STEP)));
  const __m512i idx = _mm512_cvttps_epi32(i);
  const __mmask16 bit5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
  const __mmask16 last = _mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(64));
  __m512 acc = column_f32(COLS - 1, idx, bit5, last);
  for (int k = COLS - 2; k >= 2; --k) acc = _mm512_add_ps(_mm512_mul_ps(acc, s), column_f32(k, idx, bit5, last));
  const __m512 d_inner =
      _mm512_add_ps(column_f32(0, idx, bit5, last), _mm512_add_ps(_mm512_mul_ps(acc, s), column_f32(1, idx, bit5, last)));
  // rational tail
  const __m512 y = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(a, a));
  const __m512 r = _mm512_div_ps(horner(tp, y), horner(tq, y));
  const __m512 h = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(y, _mm512_add_ps(_mm512_set1_ps(0.5f), _mm512_mul_ps(y, r))));
  const __m512 d_tail = _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), h), a);
  const __m512 d = _mm512_mask_blend_ps(inner, d_tail, d_inner);
  // the sign of x; x = +-0 and nan pass through as x
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_EQ_UQ);  // zero or nan
  return _mm512_mask_blend_ps(keep, _mm512_or_ps(d, _mm512_and_ps(x, sign)), x);
}

// Coefficient k of the float64 vector table at the rows idx (bits 0-3 of each 64-bit lane).
inline __m512d column_f64(int k, __m512i idx) {
  static_assert(SDEKIT_DAWSON_F64_VEC_ROWS == 16, "the float64 lookup holds 16 rows in two registers");
  const double* c = sdekit_dawson_f64_vec_taylor_host + k * SDEKIT_DAWSON_F64_VEC_ROWS;
  return _mm512_permutex2var_pd(_mm512_loadu_pd(c), idx, _mm512_loadu_pd(c + 8));
}

inline __m512d dawsn8(__m512d x) {
  constexpr int COLS = SDEKIT_DAWSON_F64_VEC_COLS;
  const double tp[] = SDEKIT_DAWSON_F64_TAIL_P, tq[] = SDEKIT_DAWSON_F64_TAIL_Q;
  const __m512d sign = _mm512_set1_pd(-0.0);
  const __m512d a = _mm512_andnot_pd(sign, x);
  const __mmask8 inner = _mm512_cmp_pd_mask(a, _mm512_set1_pd(SDEKIT_DAWSON_F64_SPLIT), _CMP_LT_OQ);
  // Taylor series around the nearest of the 16 grid points x0 = i h (i h and s = a - i h exact)
  const __m512d ai = _mm512_maskz_mov_pd(inner, a);
  const __m512d i = _mm512_roundscale_pd(
      _mm512_add_pd(_mm512_mul_pd(ai, _mm512_set1_pd(1.0 / SDEKIT_DAWSON_F64_VEC_STEP)), _mm512_set1_pd(0.5)),
      _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512d s = _mm512_sub_pd(ai, _mm512_mul_pd(i, _mm512_set1_pd(SDEKIT_DAWSON_F64_VEC_STEP)));
  const __m512i idx = _mm512_castpd_si512(_mm512_add_pd(i, _mm512_set1_pd(0x1p52)));  // i in the low bits
  __m512d acc = column_f64(COLS - 1, idx);
  for (int k = COLS - 2; k >= 2; --k) acc = _mm512_fmadd_pd(acc, s, column_f64(k, idx));
  const __m512d d_inner = _mm512_add_pd(column_f64(0, idx), _mm512_fmadd_pd(acc, s, column_f64(1, idx)));
  // rational tail D = (1/(2a)) (1 + y (1/2 + y P(y)/Q(y))), y = (1/a)^2: two divisions, not three
  const __m512d ia = _mm512_div_pd(_mm512_set1_pd(1.0), a);
  const __m512d y = _mm512_mul_pd(ia, ia);
  const __m512d r = _mm512_div_pd(horner(tp, y), horner(tq, y));
  const __m512d h = _mm512_fmadd_pd(y, _mm512_fmadd_pd(y, r, _mm512_set1_pd(0.5)), _mm512_set1_pd(1.0));
  const __m512d d_tail = _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(0.5), ia), h);
  const __m512d d = _mm512_mask_blend_pd(inner, d_tail, d_inner);
  const __mmask8 keep = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_EQ_UQ);
  return _mm512_mask_blend_pd(keep, _mm512_or_pd(d, _mm512_and_pd(x, sign)), x);
}

inline void dawsn_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, dawsn16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, dawsn16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

inline void dawsn_avx512(const double* x, double* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm512_storeu_pd(y + i, dawsn8(_mm512_loadu_pd(x + i)));
  if (i < n) {
    const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
    _mm512_mask_storeu_pd(y + i, m, dawsn8(_mm512_maskz_loadu_pd(m, x + i)));
  }
}

}  // namespace avx512
}  // namespace dawson
}  // namespace sdekit

#endif  // __AVX512F__
