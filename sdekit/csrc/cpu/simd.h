// One name per vector operation for the two x86 widths the "cpu" backend's hand-vectorised kernels
// are written for, so that each algorithm (normals_simd.h, dawson_simd.h) is written once, as a
// template over the float vector type V:
//
//   AVX-512:       V = __m512 (16 floats) / __m512d (8 doubles), masks __mmask16 / __mmask8;
//   AVX2 + FMA:    V = __m256 (8 floats)  / __m256d (4 doubles), masks the all-ones lanes of a
//                  compare (__m256 / __m256d).
//
// Every function is one intrinsic (or two where AVX2 lacks the AVX-512 instruction: xor3, test_bit),
// with IEEE semantics per lane, so an algorithm computes the same bits at both widths.  Names:
// fmadd(a, b, c) = a b + c, fnmadd(a, b, c) = c - a b, fmsub(a, b, c) = a b - c (one rounding);
// select(m, a, b) = m ? a : b per lane; IntOf<V> is the integer vector of V's width.
#pragma once

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define SDEKIT_SIMD 1

#include <immintrin.h>

#include <cstdint>
#include <utility>

namespace sdekit {
namespace simd {

template <class V> V set1(float v);
template <class V> V set1(double v);
template <class I> I set1_i32(int32_t v);
template <class I> I set1_i64(int64_t v);

#if defined(__AVX512F__)
template <> inline __m512 set1<__m512>(float v) { return _mm512_set1_ps(v); }
template <> inline __m512d set1<__m512d>(double v) { return _mm512_set1_pd(v); }
template <> inline __m512i set1_i32<__m512i>(int32_t v) { return _mm512_set1_epi32(v); }
template <> inline __m512i set1_i64<__m512i>(int64_t v) { return _mm512_set1_epi64(v); }

inline __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
inline __m512 sub(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
inline __m512 mul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
inline __m512 div(__m512 a, __m512 b) { return _mm512_div_ps(a, b); }
inline __m512 sqrt(__m512 a) { return _mm512_sqrt_ps(a); }
inline __m512 fmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
inline __m512 fnmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }
inline __m512 fmsub(__m512 a, __m512 b, __m512 c) { return _mm512_fmsub_ps(a, b, c); }
inline __m512 bit_and(__m512 a, __m512 b) { return _mm512_and_ps(a, b); }
inline __m512 bit_or(__m512 a, __m512 b) { return _mm512_or_ps(a, b); }
inline __m512 bit_xor(__m512 a, __m512 b) { return _mm512_xor_ps(a, b); }
inline __m512 and_not(__m512 a, __m512 b) { return _mm512_andnot_ps(a, b); }  // ~a & b
inline __m512 round_nearest(__m512 a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline __m512 floor(__m512 a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
inline __mmask16 lt(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline __mmask16 eq_or_unordered(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_UQ); }
inline __m512 select(__mmask16 m, __m512 a, __m512 b) { return _mm512_mask_blend_ps(m, b, a); }
inline __m512i cvt_i32(__m512 a) { return _mm512_cvtps_epi32(a); }     // round to nearest
inline __m512i cvtt_i32(__m512 a) { return _mm512_cvttps_epi32(a); }   // truncate
inline __m512 cvt_f32(__m512i a) { return _mm512_cvtepi32_ps(a); }
inline __m512i bits(__m512 a) { return _mm512_castps_si512(a); }
inline __m512 from_bits(__m512i a) { return _mm512_castsi512_ps(a); }
inline __m512i add32(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
inline __m512i sub32(__m512i a, __m512i b) { return _mm512_sub_epi32(a, b); }
inline __m512i add64(__m512i a, __m512i b) { return _mm512_add_epi64(a, b); }
inline __m512i bit_and(__m512i a, __m512i b) { return _mm512_and_si512(a, b); }
inline __m512i bit_xor(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
inline __m512i xor3(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi64(a, b, c, 0x96); }
template <int N> inline __m512i srli32(__m512i a) { return _mm512_srli_epi32(a, N); }
template <int N> inline __m512i slli32(__m512i a) { return _mm512_slli_epi32(a, N); }
template <int N> inline __m512i srli64(__m512i a) { return _mm512_srli_epi64(a, N); }
inline __m512i mul_u32(__m512i a, __m512i b) { return _mm512_mul_epu32(a, b); }  // low words, 64-bit products
inline __mmask16 test_bit(__m512i a, int32_t bit) { return _mm512_test_epi32_mask(a, _mm512_set1_epi32(bit)); }
inline __mmask16 eq32(__m512i a, __m512i b) { return _mm512_cmpeq_epi32_mask(a, b); }
inline __m512 unpacklo(__m512 a, __m512 b) { return _mm512_unpacklo_ps(a, b); }
inline __m512 unpackhi(__m512 a, __m512 b) { return _mm512_unpackhi_ps(a, b); }
inline __m512 unpacklo64(__m512 a, __m512 b) { return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))); }
inline __m512 unpackhi64(__m512 a, __m512 b) { return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))); }

inline __m512d add(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
inline __m512d sub(__m512d a, __m512d b) { return _mm512_sub_pd(a, b); }
inline __m512d mul(__m512d a, __m512d b) { return _mm512_mul_pd(a, b); }
inline __m512d div(__m512d a, __m512d b) { return _mm512_div_pd(a, b); }
inline __m512d fmadd(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
inline __m512d bit_and(__m512d a, __m512d b) { return _mm512_and_pd(a, b); }
inline __m512d bit_or(__m512d a, __m512d b) { return _mm512_or_pd(a, b); }
inline __m512d and_not(__m512d a, __m512d b) { return _mm512_andnot_pd(a, b); }
inline __m512d floor(__m512d a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
inline __mmask8 lt(__m512d a, __m512d b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
inline __mmask8 eq_or_unordered(__m512d a, __m512d b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_UQ); }
inline __m512d select(__mmask8 m, __m512d a, __m512d b) { return _mm512_mask_blend_pd(m, b, a); }
inline __m512i bits(__m512d a) { return _mm512_castpd_si512(a); }
#endif  // __AVX512F__

#if defined(__AVX2__) && defined(__FMA__)
template <> inline __m256 set1<__m256>(float v) { return _mm256_set1_ps(v); }
template <> inline __m256d set1<__m256d>(double v) { return _mm256_set1_pd(v); }
template <> inline __m256i set1_i32<__m256i>(int32_t v) { return _mm256_set1_epi32(v); }
template <> inline __m256i set1_i64<__m256i>(int64_t v) { return _mm256_set1_epi64x(v); }

inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m256 sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
inline __m256 mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
inline __m256 div(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }
inline __m256 sqrt(__m256 a) { return _mm256_sqrt_ps(a); }
inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256 fnmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fnmadd_ps(a, b, c); }
inline __m256 fmsub(__m256 a, __m256 b, __m256 c) { return _mm256_fmsub_ps(a, b, c); }
inline __m256 bit_and(__m256 a, __m256 b) { return _mm256_and_ps(a, b); }
inline __m256 bit_or(__m256 a, __m256 b) { return _mm256_or_ps(a, b); }
inline __m256 bit_xor(__m256 a, __m256 b) { return _mm256_xor_ps(a, b); }
inline __m256 and_not(__m256 a, __m256 b) { return _mm256_andnot_ps(a, b); }
inline __m256 round_nearest(__m256 a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline __m256 floor(__m256 a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
inline __m256 lt(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline __m256 eq_or_unordered(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_EQ_UQ); }
inline __m256 select(__m256 m, __m256 a, __m256 b) { return _mm256_blendv_ps(b, a, m); }
inline __m256i cvt_i32(__m256 a) { return _mm256_cvtps_epi32(a); }
inline __m256i cvtt_i32(__m256 a) { return _mm256_cvttps_epi32(a); }
inline __m256 cvt_f32(__m256i a) { return _mm256_cvtepi32_ps(a); }
inline __m256i bits(__m256 a) { return _mm256_castps_si256(a); }
inline __m256 from_bits(__m256i a) { return _mm256_castsi256_ps(a); }
inline __m256i add32(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
inline __m256i sub32(__m256i a, __m256i b) { return _mm256_sub_epi32(a, b); }
inline __m256i add64(__m256i a, __m256i b) { return _mm256_add_epi64(a, b); }
inline __m256i bit_and(__m256i a, __m256i b) { return _mm256_and_si256(a, b); }
inline __m256i bit_xor(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
inline __m256i xor3(__m256i a, __m256i b, __m256i c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
template <int N> inline __m256i srli32(__m256i a) { return _mm256_srli_epi32(a, N); }
template <int N> inline __m256i slli32(__m256i a) { return _mm256_slli_epi32(a, N); }
template <int N> inline __m256i srli64(__m256i a) { return _mm256_srli_epi64(a, N); }
inline __m256i mul_u32(__m256i a, __m256i b) { return _mm256_mul_epu32(a, b); }
inline __m256 test_bit(__m256i a, int32_t bit) {
  const __m256i b = _mm256_set1_epi32(bit);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(a, b), b));
}
inline __m256 eq32(__m256i a, __m256i b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
inline __m256 unpacklo(__m256 a, __m256 b) { return _mm256_unpacklo_ps(a, b); }
inline __m256 unpackhi(__m256 a, __m256 b) { return _mm256_unpackhi_ps(a, b); }
inline __m256 unpacklo64(__m256 a, __m256 b) { return _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b))); }
inline __m256 unpackhi64(__m256 a, __m256 b) { return _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b))); }

inline __m256d add(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
inline __m256d sub(__m256d a, __m256d b) { return _mm256_sub_pd(a, b); }
inline __m256d mul(__m256d a, __m256d b) { return _mm256_mul_pd(a, b); }
inline __m256d div(__m256d a, __m256d b) { return _mm256_div_pd(a, b); }
inline __m256d fmadd(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
inline __m256d bit_and(__m256d a, __m256d b) { return _mm256_and_pd(a, b); }
inline __m256d bit_or(__m256d a, __m256d b) { return _mm256_or_pd(a, b); }
inline __m256d and_not(__m256d a, __m256d b) { return _mm256_andnot_pd(a, b); }
inline __m256d floor(__m256d a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
inline __m256d lt(__m256d a, __m256d b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
inline __m256d eq_or_unordered(__m256d a, __m256d b) { return _mm256_cmp_pd(a, b, _CMP_EQ_UQ); }
inline __m256d select(__m256d m, __m256d a, __m256d b) { return _mm256_blendv_pd(b, a, m); }
inline __m256i bits(__m256d a) { return _mm256_castpd_si256(a); }
#endif  // __AVX2__ && __FMA__

template <class V> using IntOf = decltype(bits(std::declval<V>()));

}  // namespace simd
}  // namespace sdekit

#endif  // SDEKIT_SIMD
