// Dawson's integral D(x) = exp(-x^2) int_0^x exp(s^2) ds, device arithmetic only
// (no torch includes, so nvcc can compile it on any machine; see
// tests/test_cuda_build.py).  The same arithmetic as the torch reference
// sdekit.kernels.dawsn.reference.dawsn_reference, with a = |x|:
//
//   a <  split: i = floor(a / h + 1/2), s = a - i h,
//               D = hi_i + (s (c1_i + s (c2_i + ... + s cK_i)) + lo_i)   (Taylor table)
//   a >= split: y = 1/a^2, D = (1 + y (1/2 + y P(y)/Q(y))) / (2a)       (rational tail)
//   D(x) = copysign(D, x)
//
// Both branches are evaluated in every thread (no divergence); the table
// (dawson_coeffs.h, generated) is a few kB of read-only global memory that stays
// in L1, the tail coefficients become immediate operands.
#pragma once

#include <cmath>

#include "dawson_coeffs.h"

#include "common.cuh"

namespace sdekit {
namespace dawson {

template <typename T, int N>
SDEKIT_HD T horner(const T (&c)[N], T z) {
  T acc = c[N - 1];
#pragma unroll
  for (int k = N - 2; k >= 0; --k) acc = acc * z + c[k];
  return acc;
}

template <typename T>
SDEKIT_HD T load(const T* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}

// IEEE division, except float on the device: __fdividef (2 ulp; 0 for huge
// divisors, which is the limit y -> 0 wanted here).
template <typename T>
SDEKIT_HD T fast_div(T a, T b) { return a / b; }

#if defined(__CUDA_ARCH__)
template <>
__device__ __forceinline__ float fast_div<float>(float a, float b) { return __fdividef(a, b); }
#endif

template <typename T, int ROWS, int COLS, int NTP, int NTQ>
SDEKIT_HD T eval(T x, T split, T step, const T* tab, const T (&tp)[NTP], const T (&tq)[NTQ]) {
  const T a = x < T(0) ? -x : x;
  const bool inner = a < split;
  // Taylor table around the nearest grid point (i, x0 = i h and s are exact)
  const T ai = inner ? a : T(0);
  const T i = std::floor(ai * (T(1) / step) + T(0.5));
  const T s = ai - i * step;
  const int idx = (int)i;
  T acc = load(tab + (COLS - 1) * ROWS + idx);
#pragma unroll
  for (int k = COLS - 2; k >= 2; --k) acc = acc * s + load(tab + k * ROWS + idx);
  const T d_inner = load(tab + idx) + (acc * s + load(tab + ROWS + idx));
  // rational tail
  // y and r tolerate a fast division: their errors reach D damped by y/2 <= 1/32
  // and y^2 T / h <= 0.003; the last division is IEEE.
  const T y = fast_div(T(1), a * a);
  const T r = fast_div(horner(tp, y), horner(tq, y));
  const T d_tail = (T(0.5) * (T(1) + y * (T(0.5) + y * r))) / a;  // h / (2a), 2a may overflow
  const T d = inner ? d_inner : d_tail;
  // copysign without the math library: x < 0 flips; -0 and nan pass through as x
  if (x == T(0) || x != x) return x;
  return x < T(0) ? -d : d;
}

SDEKIT_HD double dawsn(double x) {
#if defined(__CUDA_ARCH__)
  const double* tab = sdekit_dawson_f64_taylor_device;
#else
  const double* tab = sdekit_dawson_f64_taylor_host;
#endif
  const double tp[] = SDEKIT_DAWSON_F64_TAIL_P, tq[] = SDEKIT_DAWSON_F64_TAIL_Q;
  return eval<double, SDEKIT_DAWSON_F64_ROWS, SDEKIT_DAWSON_F64_COLS>(
      x, SDEKIT_DAWSON_F64_SPLIT, SDEKIT_DAWSON_F64_STEP, tab, tp, tq);
}

SDEKIT_HD float dawsn(float x) {
#if defined(__CUDA_ARCH__)
  const float* tab = sdekit_dawson_f32_taylor_device;
#else
  const float* tab = sdekit_dawson_f32_taylor_host;
#endif
  const float tp[] = SDEKIT_DAWSON_F32_TAIL_P, tq[] = SDEKIT_DAWSON_F32_TAIL_Q;
  return eval<float, SDEKIT_DAWSON_F32_ROWS, SDEKIT_DAWSON_F32_COLS>(
      x, SDEKIT_DAWSON_F32_SPLIT, SDEKIT_DAWSON_F32_STEP, tab, tp, tq);
}

// y[i] = D(x[i]) for i < n, in a grid-stride loop.  With VEC > 1 each thread
// moves VEC consecutive elements as one 16-byte load and store (the launcher
// uses VEC > 1 only when x and y are 16-byte aligned).  Bytes moved: 2 n sizeof(T).
#if defined(__CUDACC__)
template <typename T, int VEC>
__global__ void dawsn_kernel(const T* __restrict__ x, T* __restrict__ y, long long n) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long nvec = n / VEC;
  const Packed<T, VEC>* xv = reinterpret_cast<const Packed<T, VEC>*>(x);
  Packed<T, VEC>* yv = reinterpret_cast<Packed<T, VEC>*>(y);
  for (long long i = first; i < nvec; i += stride) {
    Packed<T, VEC> p = xv[i];
#pragma unroll
    for (int k = 0; k < VEC; ++k) p.v[k] = dawsn(p.v[k]);
    yv[i] = p;
  }
  for (long long i = nvec * VEC + first; i < n; i += stride) y[i] = dawsn(x[i]);
}
#endif

}  // namespace dawson
}  // namespace sdekit
