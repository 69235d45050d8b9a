// Dawson's integral D(x) = exp(-x^2) int_0^x exp(s^2) ds, device arithmetic only
// (no torch includes, so nvcc can compile it on any machine; see
// tests/test_cuda_build.py).  The same arithmetic as the torch reference
// sdekit.special.dawson.dawsn_reference, with a = |x|, t = a^2, y = 1/t:
//
//     r = a < s ? Pi(t)/Qi(t) : Pt(y)/Qt(y)
//     D = copysign(a < s ? a r : (1 + y (1/2 + y r)) / (2a), x)
//
// Both quotients are evaluated in every thread (no divergent branch); the
// coefficients (dawson_coeffs.h, generated) become immediate operands.
#pragma once

#include "dawson_coeffs.h"

#if defined(__CUDACC__)
#define SDEKIT_HD __host__ __device__ __forceinline__
#else
#define SDEKIT_HD inline
#endif

namespace sdekit {
namespace dawson {

template <typename T, int N>
SDEKIT_HD T horner(const T (&c)[N], T z) {
  T acc = c[N - 1];
#pragma unroll
  for (int k = N - 2; k >= 0; --k) acc = acc * z + c[k];
  return acc;
}

template <typename T, int NIP, int NIQ, int NTP, int NTQ>
SDEKIT_HD T eval(T x, T split, const T (&ip)[NIP], const T (&iq)[NIQ], const T (&tp)[NTP],
                 const T (&tq)[NTQ]) {
  const T a = x < T(0) ? -x : x;
  const T t = a * a;
  const T y = T(1) / t;
  const bool inner = a < split;
  const T p = inner ? horner(ip, t) : horner(tp, y);
  const T q = inner ? horner(iq, t) : horner(tq, y);
  const T r = p / q;
  const T d = inner ? a * r : (T(1) + y * (T(0.5) + y * r)) / (a + a);
  // copysign without the math library: x < 0 flips; -0 and nan pass through as x
  if (x == T(0) || x != x) return x;
  return x < T(0) ? -d : d;
}

SDEKIT_HD double dawsn(double x) {
  const double ip[] = SDEKIT_DAWSON_F64_INNER_P, iq[] = SDEKIT_DAWSON_F64_INNER_Q;
  const double tp[] = SDEKIT_DAWSON_F64_TAIL_P, tq[] = SDEKIT_DAWSON_F64_TAIL_Q;
  return eval(x, SDEKIT_DAWSON_F64_SPLIT, ip, iq, tp, tq);
}

SDEKIT_HD float dawsn(float x) {
  const float ip[] = SDEKIT_DAWSON_F32_INNER_P, iq[] = SDEKIT_DAWSON_F32_INNER_Q;
  const float tp[] = SDEKIT_DAWSON_F32_TAIL_P, tq[] = SDEKIT_DAWSON_F32_TAIL_Q;
  return eval(x, SDEKIT_DAWSON_F32_SPLIT, ip, iq, tp, tq);
}

// y[i] = D(x[i]) for i < n, in a grid-stride loop.  With VEC > 1 each thread
// moves VEC consecutive elements as one 16-byte load and store (the launcher
// uses VEC > 1 only when x and y are 16-byte aligned).  Bytes moved: 2 n sizeof(T).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Packed {
  T v[VEC];
};

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
