// Dawson's integral on whole vectors (GCC leaves the scalar loop over sdekit::dawson::eval
// unvectorised: it does not vectorise the Taylor-table loads).  Written once over the vector types of
// simd.h (16 floats / 8 doubles on AVX-512, 8 / 4 on AVX2 + FMA); only the table lookups differ by
// width.
//
//   float32: the arithmetic of sdekit::dawson::eval (sdekit/csrc/dawson.cuh) operation for
//     operation -- the same table (65 rows, h = 1/16), tail rational, select and sign, one IEEE
//     rounding per multiply, add and divide, no FMA -- so the results are bitwise the scalar
//     code's and the torch reference's at both widths.  The lookup of the 8 coefficients of a row:
//       AVX-512: rows 0..63 of a column sit in four registers and are picked by two two-register
//         permutes (vpermt2ps, bits 0-4 of the row) and a blend (bit 5), row 64 by a blend.  No
//         memory access per element.
//       AVX2: a row of the table is one 8-float register; the 8 rows of a vector's elements are
//         loaded (as 16 half-rows) and transposed in registers into the 8 coefficient columns.
//         Faster than 8 vgatherdps or than picking each column out of 8 registers with vpermps
//         (benchmarks/RESULTS.md).
//   float64: the reference's 81-row table costs more to look up than the arithmetic, so other forms,
//     each within the stated 4-ulp bound of the exact value (measured in benchmarks/RESULTS.md,
//     asserted by the tests), not bitwise the reference; Horner steps fused (FMA).  Above the
//     split both widths use the reference's tail with two divisions instead of three,
//               D = (1/(2a)) h,  h = 1 + y (1/2 + y P(y)/Q(y)),  y = (1/a)^2   (a >= 5);
//     below it:
//       AVX-512: D = hi + (s (c_1 + s (c_2 + ... + s c_16)) + lo) around the nearest of 16 grid
//         points x0 = i h, h = 21/64 (i h and s = a - i h exact, |s| <= 0.165), each
//         coefficient's 16 rows in two registers picked by one permute (vpermt2pd);
//       AVX2: no table (its lookups of those rows took half the time: benchmarks/RESULTS.md); every
//         lane evaluates the three forms and selects:
//               D = a P(z)/Q(z),  z = a^2                        (a < 2.25, minimax rational),
//               D = (1/(2a)) h,   h = H(a - 3.625)               (2.25 <= a < 5, h = 2aD as a
//                                                                 degree-28 polynomial),
//         the inner quotient and the tail's P/Q from one division.
//     So the two widths compute different float64 bits (float32: the same).
//
// dawsn_simd<V>(x, y, n): y[i] = D(x[i]) for i < n; the last partial vector through a buffer.
#pragma once

#include "simd.h"

#if defined(SDEKIT_SIMD)

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../dawson_coeffs.h"

namespace sdekit {
namespace dawson {
namespace simd {

using namespace sdekit::simd;

// c[0] + z (c[1] + z (... + z c[N-1])): one rounding per multiply and add (the reference's order) ...
template <class V, int N>
inline V horner_unfused(const float (&c)[N], V z) {
  V acc = set1<V>(c[N - 1]);
  for (int k = N - 2; k >= 0; --k) acc = add(mul(acc, z), set1<V>(c[k]));
  return acc;
}

// ... or one per step (FMA)
template <class V, int N>
inline V horner_fused(const double (&c)[N], V z) {
  V acc = set1<V>(c[N - 1]);
  for (int k = N - 2; k >= 0; --k) acc = fmadd(acc, z, set1<V>(c[k]));
  return acc;
}

// c[0] + z (c[1] + ... + z c[N-1]) as two Horner chains of half the length joined by z^(N/2): where
// nothing else hides the latency of a long chain of dependent FMAs (the AVX2 float64 kernel's
// degree-28 polynomial: 5.3 -> 3.7 ns/element).  For coefficients that fall with the power, so the
// rounding of z^(N/2) lands on a small term.
template <class V, int N>
inline V horner_fused_2(const double (&c)[N], V z) {
  constexpr int K = N / 2;
  V lo = set1<V>(c[K - 1]), hi = set1<V>(c[N - 1]);
  for (int k = K - 2; k >= 0; --k) lo = fmadd(lo, z, set1<V>(c[k]));
  for (int k = N - 2; k >= K; --k) hi = fmadd(hi, z, set1<V>(c[k]));
  V zk = set1<V>(1.0), b = z;  // z^K by squaring
  for (int e = K; e; e >>= 1) {
    if (e & 1) zk = mul(zk, b);
    b = mul(b, b);
  }
  return fmadd(hi, zk, lo);
}

// A column-major coefficient table of dawson_coeffs.h, row-major (for the AVX2 float32 lookup, which
// loads a row's coefficients together).
template <class T, int ROWS, int COLS>
struct RowMajor {
  alignas(64) T row[ROWS][COLS];
  explicit RowMajor(const T* column_major) : row{} {
    for (int i = 0; i < ROWS; ++i)
      for (int k = 0; k < COLS; ++k) row[i][k] = column_major[k * ROWS + i];
  }
};

// The Taylor table at the rows i (a vector of whole numbers): rows = taylor_rows(i), then
// taylor_column(rows, k) = coefficient k of each lane's row.  Float vectors look up the float32 table
// (rows 0 .. 64, 8 coefficients), AVX-512 double vectors the float64 vector table (rows 0 .. 15, 18
// coefficients).  The Horner loops ask for the columns one at a time, highest first, so that a
// lookup that can run per column does so next to its use (fewer registers live).

#if defined(__AVX512F__)
struct Rows512f { __m512i idx; __mmask16 bit5, last; };

inline Rows512f taylor_rows(__m512 i) {
  static_assert(SDEKIT_DAWSON_F32_ROWS == 65, "the float32 lookup holds rows 0..63 in registers plus row 64");
  const __m512i idx = _mm512_cvttps_epi32(i);
  return Rows512f{idx, _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), _mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(64))};
}

inline __m512 taylor_column(const Rows512f& t, int k) {
  const float* c = sdekit_dawson_f32_taylor_host + k * SDEKIT_DAWSON_F32_ROWS;
  const __m512 lo = _mm512_permutex2var_ps(_mm512_loadu_ps(c), t.idx, _mm512_loadu_ps(c + 16));
  const __m512 hi = _mm512_permutex2var_ps(_mm512_loadu_ps(c + 32), t.idx, _mm512_loadu_ps(c + 48));
  return _mm512_mask_blend_ps(t.last, _mm512_mask_blend_ps(t.bit5, lo, hi), _mm512_set1_ps(c[64]));
}

struct Rows512d { __m512i idx; };

inline Rows512d taylor_rows(__m512d i) {
  static_assert(SDEKIT_DAWSON_F64_VEC_ROWS == 16, "the float64 lookup holds 16 rows in two registers");
  return Rows512d{_mm512_castpd_si512(_mm512_add_pd(i, _mm512_set1_pd(0x1p52)))};  // i in the low bits
}

inline __m512d taylor_column(const Rows512d& t, int k) {
  const double* c = sdekit_dawson_f64_vec_taylor_host + k * SDEKIT_DAWSON_F64_VEC_ROWS;
  return _mm512_permutex2var_pd(_mm512_loadu_pd(c), t.idx, _mm512_loadu_pd(c + 8));
}
#endif  // __AVX512F__

#if defined(__AVX2__) && defined(__FMA__)
// [a[0..16 bytes) | b[0..16 bytes)] as one 256-bit value: b broadcast to both halves (a load only)
// and blended, 5% faster on Zen 4 than vinsertf128 from memory (benchmarks/RESULTS.md).
inline __m256 halves(const float* a, const float* b) {
  return _mm256_blend_ps(_mm256_castps128_ps256(_mm_load_ps(a)), _mm256_broadcast_ps(reinterpret_cast<const __m128*>(b)), 0xF0);
}

static const RowMajor<float, SDEKIT_DAWSON_F32_ROWS, SDEKIT_DAWSON_F32_COLS> f32_rows(sdekit_dawson_f32_taylor_host);

// float32: all 8 columns at once, an 8 x 8 transpose of the 8 rows
struct Rows256f { __m256 col[SDEKIT_DAWSON_F32_COLS]; };

inline Rows256f taylor_rows(__m256 i) {
  static_assert(SDEKIT_DAWSON_F32_COLS == 8, "the float32 lookup loads a row as one 8-float register");
  alignas(32) int32_t idx[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(idx), _mm256_cvttps_epi32(i));
  const float* r[8];
  for (int j = 0; j < 8; ++j) r[j] = f32_rows.row[idx[j]];
  Rows256f t;
  for (int h = 0; h < 2; ++h) {  // columns 4h .. 4h + 3: a 4 x 4 transpose in each 128-bit lane
    const __m256 t0 = halves(r[0] + 4 * h, r[4] + 4 * h), t1 = halves(r[1] + 4 * h, r[5] + 4 * h);
    const __m256 t2 = halves(r[2] + 4 * h, r[6] + 4 * h), t3 = halves(r[3] + 4 * h, r[7] + 4 * h);
    const __m256 u0 = unpacklo(t0, t1), u1 = unpackhi(t0, t1), u2 = unpacklo(t2, t3), u3 = unpackhi(t2, t3);
    t.col[4 * h] = unpacklo64(u0, u2);
    t.col[4 * h + 1] = unpackhi64(u0, u2);
    t.col[4 * h + 2] = unpacklo64(u1, u3);
    t.col[4 * h + 3] = unpackhi64(u1, u3);
  }
  return t;
}

inline __m256 taylor_column(const Rows256f& t, int k) { return t.col[k]; }

#endif  // __AVX2__ && __FMA__

template <class V>
inline V dawsn_f32(V x) {
  constexpr int COLS = SDEKIT_DAWSON_F32_COLS;
  const float tp[] = SDEKIT_DAWSON_F32_TAIL_P, tq[] = SDEKIT_DAWSON_F32_TAIL_Q;
  const V sign = set1<V>(-0.0f), zero = set1<V>(0.0f);
  const V a = and_not(sign, x);
  const auto inner = lt(a, set1<V>(SDEKIT_DAWSON_F32_SPLIT));
  // Taylor table around the nearest grid point
  const V ai = select(inner, a, zero);
  const V i = floor(add(mul(ai, set1<V>(1.0f / SDEKIT_DAWSON_F32_STEP)), set1<V>(0.5f)));
  const V s = sub(ai, mul(i, set1<V>(SDEKIT_DAWSON_F32_STEP)));
  const auto t = taylor_rows(i);
  V acc = taylor_column(t, COLS - 1);
  for (int k = COLS - 2; k >= 2; --k) acc = add(mul(acc, s), taylor_column(t, k));
  const V d_inner = add(taylor_column(t, 0), add(mul(acc, s), taylor_column(t, 1)));
  // rational tail
  const V y = div(set1<V>(1.0f), mul(a, a));
  const V r = div(horner_unfused(tp, y), horner_unfused(tq, y));
  const V h = add(set1<V>(1.0f), mul(y, add(set1<V>(0.5f), mul(y, r))));
  const V d_tail = div(mul(set1<V>(0.5f), h), a);
  const V d = select(inner, d_inner, d_tail);
  // the sign of x; x = +-0 and nan pass through as x
  return select(eq_or_unordered(x, zero), x, bit_or(d, bit_and(x, sign)));
}

// float64 tail (a >= 5): h = 1 + y (1/2 + y r), r = P(y)/Q(y), y = (1/a)^2; D = (1/(2a)) h
template <class V>
inline V tail_h(V y, V r) {
  return fmadd(y, fmadd(y, r, set1<V>(0.5)), set1<V>(1.0));
}

// float64 with the Taylor table (AVX-512)
template <class V>
inline V dawsn_f64_taylor(V x) {
  constexpr int COLS = SDEKIT_DAWSON_F64_VEC_COLS;
  const double tp[] = SDEKIT_DAWSON_F64_TAIL_P, tq[] = SDEKIT_DAWSON_F64_TAIL_Q;
  const V sign = set1<V>(-0.0), zero = set1<V>(0.0);
  const V a = and_not(sign, x);
  const auto inner = lt(a, set1<V>(SDEKIT_DAWSON_F64_SPLIT));
  // Taylor series around the nearest of the 16 grid points x0 = i h (i h and s = a - i h exact)
  const V ai = select(inner, a, zero);
  const V i = floor(add(mul(ai, set1<V>(1.0 / SDEKIT_DAWSON_F64_VEC_STEP)), set1<V>(0.5)));
  const V s = sub(ai, mul(i, set1<V>(SDEKIT_DAWSON_F64_VEC_STEP)));
  const auto t = taylor_rows(i);
  V acc = taylor_column(t, COLS - 1);
  for (int k = COLS - 2; k >= 2; --k) acc = fmadd(acc, s, taylor_column(t, k));
  const V d_inner = add(taylor_column(t, 0), fmadd(acc, s, taylor_column(t, 1)));
  // rational tail: two divisions, not three
  const V ia = div(set1<V>(1.0), a);
  const V y = mul(ia, ia);
  const V d_tail = mul(mul(set1<V>(0.5), ia), tail_h(y, div(horner_fused(tp, y), horner_fused(tq, y))));
  const V d = select(inner, d_inner, d_tail);
  return select(eq_or_unordered(x, zero), x, bit_or(d, bit_and(x, sign)));
}

// float64 without a table (AVX2): the three forms on every lane, two divisions (1/a, and one
// quotient that is the inner D or the tail's P/Q)
template <class V>
inline V dawsn_f64_table_free(V x) {
  const double ip[] = SDEKIT_DAWSON_F64_VEC_INNER_P, iq[] = SDEKIT_DAWSON_F64_VEC_INNER_Q;
  const double hm[] = SDEKIT_DAWSON_F64_VEC_MID_H;
  const double tp[] = SDEKIT_DAWSON_F64_TAIL_P, tq[] = SDEKIT_DAWSON_F64_TAIL_Q;
  const V sign = set1<V>(-0.0), zero = set1<V>(0.0);
  const V a = and_not(sign, x);
  const auto inner = lt(a, set1<V>(SDEKIT_DAWSON_F64_VEC_INNER_SPLIT));
  const auto mid = lt(a, set1<V>(SDEKIT_DAWSON_F64_SPLIT));
  const V z = mul(a, a);
  const V ia = div(set1<V>(1.0), a);
  const V y = mul(ia, ia);
  // a P(z)/Q(z) on the inner lanes, P(y)/Q(y) of the tail on the others
  const V q = div(select(inner, mul(a, horner_fused(ip, z)), horner_fused(tp, y)),
                  select(inner, horner_fused(iq, z), horner_fused(tq, y)));
  // h = 2aD: the polynomial in s = a - c (exact: a within a factor 2 of c) or the tail's
  const V h = select(mid, horner_fused_2(hm, sub(a, set1<V>(SDEKIT_DAWSON_F64_VEC_MID_CENTER))), tail_h(y, q));
  const V d = select(inner, q, mul(mul(set1<V>(0.5), ia), h));
  return select(eq_or_unordered(x, zero), x, bit_or(d, bit_and(x, sign)));
}

template <class V, class T>
inline V dawsn(V x) {
  if constexpr (std::is_same_v<T, float>) return dawsn_f32(x);
  else if constexpr (sizeof(V) == 32) return dawsn_f64_table_free(x);  // AVX2
  else return dawsn_f64_taylor(x);
}

// V: the float vector for T = float, the double vector for T = double.
template <class V, class T>
inline void dawsn_simd(const T* x, T* y, int64_t n) {
  constexpr int L = sizeof(V) / sizeof(T);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v;
    std::memcpy(&v, x + i, sizeof(V));
    v = dawsn<V, T>(v);
    std::memcpy(y + i, &v, sizeof(V));
  }
  if (i < n) {
    T buf[L] = {};
    std::memcpy(buf, x + i, (n - i) * sizeof(T));
    V v;
    std::memcpy(&v, buf, sizeof(V));
    v = dawsn<V, T>(v);
    std::memcpy(y + i, &v, (n - i) * sizeof(T));
  }
}

}  // namespace simd
}  // namespace dawson
}  // namespace sdekit

#endif  // SDEKIT_SIMD
