// Spectral scaling of the DMPS likelihood score (plain CUDA, no torch headers; bound to torch
// in spectral_scale.cu).  For each sample row b and spectral index i < k:
//
//   w[b, i] = S[i] (s_b uy[b, i] - S[i] z[b, i]) / (a_b + c_b S[i]^2),   w = 0 where S[i] = 0,
//
// with a_b = s_b^2 sigma_y^2 and c_b = std_b^2: the diagonal middle of
// (1/s) V S (sigma_y^2 I + (std/s)^2 S^2)^-1 (U^T y - S V^T x / s), multiplied through by s^2
// so that it stays finite as s -> 0.  The torch reference and specification is
// sdekit/kernels/spectral_scale/reference.py (spectral_scale_torch); the Triton kernel (triton.py) evaluates
// the same expression in the same order.
//
// Bytes moved: read z and uy, write w (3 k sizeof(T) per row) plus S (k sizeof(T), shared by
// all rows, so from L2 after the first row).  Rows are blockIdx.y (grid-striding past 65535);
// within a row, threads grid-stride over VEC-element packs (one 16-byte load per array when
// VEC > 1, which the launcher allows only for aligned pointers and k % VEC == 0), then a
// scalar tail.
#pragma once
#include <stdint.h>

#include "common.cuh"

namespace sdekit {

// (s, a, c) of one sample; the kernel reads them from `coef` ((B, 3), row-major) when
// PER_SAMPLE, else uses the shared values passed by argument.
template <typename T>
struct SpectralCoef {
  T s, a, c;
};

template <typename T>
SDEKIT_HD T spectral_weight(T S, T z, T uy, const SpectralCoef<T>& k) {
  // S = 0 gives 0 (also when a = 0, where the formula is 0/0: an unmeasured direction).
  return S == T(0) ? T(0) : S * (k.s * uy - S * z) / (k.a + k.c * (S * S));
}

#if defined(__CUDACC__)
template <typename T, int VEC, bool PER_SAMPLE>
__global__ void spectral_scale_kernel(const T* __restrict__ z, const T* __restrict__ uy, const T* __restrict__ S,
                                      const T* __restrict__ coef, SpectralCoef<T> shared, T* __restrict__ w,
                                      int64_t B, int64_t k) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t nvec = k / VEC;
  const Packed<T, VEC>* Sv = reinterpret_cast<const Packed<T, VEC>*>(S);
  for (int64_t row = blockIdx.y; row < B; row += gridDim.y) {
    const SpectralCoef<T> cf = PER_SAMPLE ? SpectralCoef<T>{coef[3 * row], coef[3 * row + 1], coef[3 * row + 2]}
                                          : shared;
    const int64_t base = row * k;
    const Packed<T, VEC>* zv = reinterpret_cast<const Packed<T, VEC>*>(z + base);
    const Packed<T, VEC>* uv = reinterpret_cast<const Packed<T, VEC>*>(uy + base);
    Packed<T, VEC>* wv = reinterpret_cast<Packed<T, VEC>*>(w + base);
    for (int64_t i = first; i < nvec; i += stride) {
      const Packed<T, VEC> ps = Sv[i], pz = zv[i], pu = uv[i];
      Packed<T, VEC> pw;
#pragma unroll
      for (int j = 0; j < VEC; ++j) pw.v[j] = spectral_weight(ps.v[j], pz.v[j], pu.v[j], cf);
      wv[i] = pw;
    }
    for (int64_t i = nvec * VEC + first; i < k; i += stride)
      w[base + i] = spectral_weight(S[i], z[base + i], uy[base + i], cf);
  }
}
#endif

}  // namespace sdekit
