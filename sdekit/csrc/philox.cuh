// Counter-based normal random numbers: Philox4x32-10 + Box-Muller, keyed by (seed, step, sample, element).
//
// A tensor is seen as (B, N); element j of sample b belongs to group q = j / G
// (G = 4 in float, 2 in double), and each group is one Philox call:
//   (o0, o1, o2, o3) = Philox4x32-10(counter = (q, b, step_lo, step_hi), key = (seed_lo, seed_hi))
// where b is the sample's global index (the launchers pass sample_offset + row; rng.py's sample word)
//   float:  (o0, o1) -> z[4q], z[4q+1];  (o2, o3) -> z[4q+2], z[4q+3]
//           u1 = ((o_even >> 8) + 1) 2^-24,  u2 = (o_odd >> 8) 2^-24
//   double: u1 = ((o0 << 21 | o2 >> 11) + 1) 2^-53,  u2 = (o1 << 21 | o3 >> 11) 2^-53
//   r = sqrt(-2 log u1),  (z[G q + 2k], z[G q + 2k + 1]) = r (cos 2 pi u2, sin 2 pi u2)
//
// The torch reference (the specification) is sdekit/kernels/rng.py; the Triton twin lives
// in the same file.  Memory traffic: none (about 100 integer operations per group).
// Plain CUDA, no torch headers: tests compile it with nvcc and run the __host__ path on a
// machine without a GPU.
#pragma once
#include <stdint.h>
#include <math.h>

#include "common.cuh"

namespace sdekit {

struct Philox4 { uint32_t v[4]; };

SDEKIT_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  return a * b;
#else
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
#endif
}

SDEKIT_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                 uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  Philox4 out = {{c0, c1, c2, c3}};
  return out;
}

template <typename T> struct PhiloxGroup;
template <> struct PhiloxGroup<float> { static constexpr int G = 4; };
template <> struct PhiloxGroup<double> { static constexpr int G = 2; };

// The Box-Muller uniforms of pair k of a group (k = 0, 1 in float; the one pair, k = 0, in double):
// u1 in (0, 1] (so log u1 is finite), u2 in [0, 1), exact in their dtype.
SDEKIT_HD void philox_uniforms(const Philox4& o, int k, float* u1, float* u2) {
  *u1 = (float)((o.v[2 * k] >> 8) + 1u) * 5.9604644775390625e-08f;  // 2^-24
  *u2 = (float)(o.v[2 * k + 1] >> 8) * 5.9604644775390625e-08f;
}

SDEKIT_HD void philox_uniforms(const Philox4& o, int, double* u1, double* u2) {
  uint64_t a = (((uint64_t)o.v[0] << 21) | (uint64_t)(o.v[2] >> 11)) + 1ull;
  uint64_t b = ((uint64_t)o.v[1] << 21) | (uint64_t)(o.v[3] >> 11);
  *u1 = (double)a * 1.1102230246251565e-16;  // 2^-53
  *u2 = (double)b * 1.1102230246251565e-16;
}

// Box-Muller on the four words of group q of sample b: writes G normals to z.
SDEKIT_HD void philox_box_muller(const Philox4& o, float* z) {
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    float u1, u2;
    philox_uniforms(o, k, &u1, &u2);
    float r = sqrtf(-2.0f * logf(u1));
    float th = 6.2831854820251465f * u2;
    z[2 * k] = r * cosf(th);
    z[2 * k + 1] = r * sinf(th);
  }
}

SDEKIT_HD void philox_box_muller(const Philox4& o, double* z) {
  double u1, u2;
  philox_uniforms(o, 0, &u1, &u2);
  double r = sqrt(-2.0 * log(u1));
  double th = 6.283185307179586 * u2;
  z[0] = r * cos(th);
  z[1] = r * sin(th);
}

// The G normals of group q of sample b at (seed, step).
template <typename T>
SDEKIT_HD void philox_normal_group(uint64_t q, uint32_t b, uint64_t seed, uint64_t step, T* z) {
  Philox4 o = philox4x32_10((uint32_t)q, b, (uint32_t)step, (uint32_t)(step >> 32),
                            (uint32_t)seed, (uint32_t)(seed >> 32));
  philox_box_muller(o, z);
}

// The normal of element j of sample b (one Philox call per element: for scattered access).
template <typename T>
SDEKIT_HD T philox_normal_at(uint64_t j, uint32_t b, uint64_t seed, uint64_t step) {
  constexpr int G = PhiloxGroup<T>::G;
  T z[G];
  philox_normal_group<T>(j / G, b, seed, step, z);
  return z[j % G];
}

}  // namespace sdekit
