// Torch binding of the spectral scaling kernel of spectral_scale.cuh (equation and bytes there).
//
//   torch.ops.sdekit.spectral_scale(Tensor z, Tensor uy, Tensor S, Tensor? coef, float s, float a,
//                                   float c) -> Tensor w
//
// z, uy: (B, k) contiguous; S: (k,) contiguous; all CUDA, one dtype (float32 or float64).
// coef: (B, 3) contiguous (s, a, c) per sample, or None to use the scalars s, a, c for every
// sample (converted to the data's dtype, as the Triton kernel does).  The Python launcher
// (sdekit/kernels/spectral_scale/cuda.py) makes the inputs contiguous and builds coef; the schema
// is defined once in sdekit/kernels/spectral_scale/__init__.py.
#include <algorithm>
#include <cstdint>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "spectral_scale_args.h"

namespace {

template <typename T, int VEC, bool PER_SAMPLE>
void launch_spectral_scale(const at::Tensor& z, const at::Tensor& uy, const at::Tensor& S, const T* coef,
            sdekit::SpectralCoef<T> shared, at::Tensor& w, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t B = z.size(0), k = z.size(1);
  const int64_t units = std::max<int64_t>(1, k / VEC);
  const int64_t bx = std::min<int64_t>((units + kThreads - 1) / kThreads, int64_t(1) << 20);
  const dim3 grid(static_cast<unsigned>(bx), static_cast<unsigned>(std::min<int64_t>(B, 65535)));
  sdekit::spectral_scale_kernel<T, VEC, PER_SAMPLE><<<grid, kThreads, 0, stream>>>(
      z.data_ptr<T>(), uy.data_ptr<T>(), S.data_ptr<T>(), coef, shared, w.data_ptr<T>(), B, k);
}

at::Tensor spectral_scale_cuda(const at::Tensor& z, const at::Tensor& uy, const at::Tensor& S,
                               const c10::optional<at::Tensor>& coef, double s, double a, double c) {
  TORCH_CHECK(z.is_cuda() && uy.is_cuda() && S.is_cuda(), "sdekit::spectral_scale: z, uy, S must be CUDA tensors");
  sdekit::check_spectral_scale_args(z, uy, S, coef);
  TORCH_CHECK(z.is_contiguous() && uy.is_contiguous() && S.is_contiguous(),
              "sdekit::spectral_scale: z, uy and S must be contiguous");
  TORCH_CHECK(!coef || (coef->is_cuda() && coef->is_contiguous()),
              "sdekit::spectral_scale: coef must be a contiguous CUDA tensor");
  const c10::cuda::CUDAGuard guard(z.device());
  at::Tensor w = at::empty_like(z);
  if (z.numel() == 0) return w;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "sdekit_spectral_scale", [&] {
    using T = scalar_t;
    constexpr int V = 16 / sizeof(T);
    const sdekit::SpectralCoef<T> shared = sdekit::shared_spectral_coef<T>(s, a, c);
    const T* cp = coef ? coef->data_ptr<T>() : nullptr;
    const bool vec = z.size(1) % V == 0 && sdekit::aligned16(z.data_ptr()) && sdekit::aligned16(uy.data_ptr()) &&
                     sdekit::aligned16(S.data_ptr()) && sdekit::aligned16(w.data_ptr());
    if (vec && cp) launch_spectral_scale<T, V, true>(z, uy, S, cp, shared, w, stream);
    else if (vec) launch_spectral_scale<T, V, false>(z, uy, S, cp, shared, w, stream);
    else if (cp) launch_spectral_scale<T, 1, true>(z, uy, S, cp, shared, w, stream);
    else launch_spectral_scale<T, 1, false>(z, uy, S, cp, shared, w, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return w;
}

}  // namespace

TORCH_LIBRARY_IMPL(sdekit, CUDA, m) { m.impl("spectral_scale", &spectral_scale_cuda); }
