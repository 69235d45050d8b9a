// Torch bindings of the fused sampling steps of sde_steps.cuh (equations and bytes moved there).
//
//   torch.ops.sdekit.sde_affine_step(out, x, score?, y?, coef, flags?, dims, strides, seed, step, sample_offset,
//                                    noise, contig)
//       out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step), in place on `out`
//       (z[b]: the normals of the global sample sample_offset + b)
//   torch.ops.sdekit.sde_sample_sq_norms(score, dims, strides, seed, step, sample_offset, contig) -> (B, 2)
//
// The schemas are defined once in sdekit/kernels/steps/__init__.py, which validates the arguments;
// the Python launcher (sdekit/kernels/steps/cuda.py) computes the
// (B, D1, D2, D3) layout: `dims` = [D1, D2, D3], `strides` = 4 strides per tensor (out, x, score, y),
// and calls these ops on chunks of at most 65535 samples (one grid row each), each with its first
// sample's global index as `sample_offset`.
// seed and step are 64-bit words passed as int64 bit patterns.
#include <algorithm>

#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "sde_steps_args.h"

namespace {

using sdekit::AffineStepArgs;
using sdekit::Strides4;

constexpr int kThreads = 256;

template <typename T, bool HS, bool HY, bool NZ, bool HF>
void launch_affine(const AffineStepArgs<T>& a, dim3 grid, cudaStream_t st, bool contig, bool vec) {
  if (vec) sdekit::affine_step_kernel<T, HS, HY, NZ, HF, true, true><<<grid, kThreads, 0, st>>>(a);
  else if (contig) sdekit::affine_step_kernel<T, HS, HY, NZ, HF, true, false><<<grid, kThreads, 0, st>>>(a);
  else sdekit::affine_step_kernel<T, HS, HY, NZ, HF, false, false><<<grid, kThreads, 0, st>>>(a);
}

template <typename T>
void dispatch_affine(const AffineStepArgs<T>& a, dim3 grid, cudaStream_t st, bool hs, bool hy, bool nz, bool hf,
                     bool contig, bool vec) {
  int code = (hs ? 8 : 0) | (hy ? 4 : 0) | (nz ? 2 : 0) | (hf ? 1 : 0);
  switch (code) {
#define SDEKIT_CASE(c) \
  case c: launch_affine<T, bool(c & 8), bool(c & 4), bool(c & 2), bool(c & 1)>(a, grid, st, contig, vec); break;
    SDEKIT_CASE(0) SDEKIT_CASE(1) SDEKIT_CASE(2) SDEKIT_CASE(3) SDEKIT_CASE(4) SDEKIT_CASE(5) SDEKIT_CASE(6)
    SDEKIT_CASE(7) SDEKIT_CASE(8) SDEKIT_CASE(9) SDEKIT_CASE(10) SDEKIT_CASE(11) SDEKIT_CASE(12) SDEKIT_CASE(13)
    SDEKIT_CASE(14) SDEKIT_CASE(15)
#undef SDEKIT_CASE
  }
}

void sde_affine_step(at::Tensor out, const at::Tensor& x, const c10::optional<at::Tensor>& score,
                     const c10::optional<at::Tensor>& y, const at::Tensor& coef, const c10::optional<at::Tensor>& flags,
                     at::IntArrayRef dims, at::IntArrayRef strides, int64_t seed, int64_t step,
                     int64_t sample_offset, bool noise, bool contig) {
  TORCH_CHECK(x.is_cuda() && out.is_cuda() && coef.is_cuda(), "sde_affine_step: tensors must be CUDA tensors");
  TORCH_CHECK(dims.size() == 3 && strides.size() == 16, "sde_affine_step: dims must have 3 and strides 16 entries");
  TORCH_CHECK(x.size(0) <= 65535, "sde_affine_step: batch exceeds 65535");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), N = dims[0] * dims[1] * dims[2];
  if (B == 0 || N == 0) return;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sde_affine_step", [&] {
    using T = scalar_t;
    constexpr int G = sdekit::PhiloxGroup<T>::G;
    const AffineStepArgs<T> a =
        sdekit::affine_step_args<T>(out, x, score, y, coef, flags, dims, strides, seed, step, sample_offset);
    bool vec = contig && N % G == 0;
    const Strides4* ss[4] = {&a.so, &a.sx, &a.ss, &a.sy};
    const void* ps[4] = {a.out, a.x, a.score, a.y};
    for (int k = 0; k < 4; ++k)
      if (ps[k]) vec = vec && sdekit::aligned16(ps[k]) && ((ss[k]->sb * (int64_t)sizeof(T)) % 16 == 0);
    const int64_t Q = (N + G - 1) / G;
    const int64_t bx = std::min<int64_t>((Q + kThreads - 1) / kThreads, 1 << 30);
    dim3 grid((unsigned)bx, (unsigned)B);
    dispatch_affine<T>(a, grid, c10::cuda::getCurrentCUDAStream(), score.has_value(), y.has_value(), noise,
                       flags.has_value(), contig, vec);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor sde_sample_sq_norms(const at::Tensor& score, at::IntArrayRef dims, at::IntArrayRef strides, int64_t seed,
                               int64_t step, int64_t sample_offset, bool contig) {
  TORCH_CHECK(score.is_cuda(), "sde_sample_sq_norms: score must be a CUDA tensor");
  TORCH_CHECK(score.size(0) <= 65535, "sde_sample_sq_norms: batch exceeds 65535");
  const c10::cuda::CUDAGuard guard(score.device());
  const int64_t B = score.size(0), N = dims[0] * dims[1] * dims[2];
  constexpr int kNormThreads = 256;
  // Fixed block count per sample (depends on N only): the sums are deterministic.
  const int64_t P = std::max<int64_t>(1, std::min<int64_t>((N + 4 * kNormThreads - 1) / (4 * kNormThreads), 1024));
  at::Tensor part = at::zeros({B, P, 2}, score.options());
  if (B == 0 || N == 0) return part.sum(1);
  AT_DISPATCH_FLOATING_TYPES(score.scalar_type(), "sde_sample_sq_norms", [&] {
    using T = scalar_t;
    constexpr int G = sdekit::PhiloxGroup<T>::G;
    dim3 grid((unsigned)P, (unsigned)B);
    Strides4 ss = sdekit::strides_at(strides, 0);
    auto st = c10::cuda::getCurrentCUDAStream();
    const T* s = score.data_ptr<T>();
    const bool vec = contig && N % G == 0 && sdekit::aligned16(s) && (ss.sb * (int64_t)sizeof(T)) % 16 == 0;
    auto launch = [&](auto kernel) {
      kernel<<<grid, kNormThreads, 0, st>>>(s, part.data_ptr<T>(), N, dims[1], dims[2], ss, (uint64_t)seed,
                                            (uint64_t)step, (uint32_t)sample_offset);
    };
    if (vec) launch(sdekit::sample_sq_norms_kernel<T, true, kNormThreads, true>);
    else if (contig) launch(sdekit::sample_sq_norms_kernel<T, true, kNormThreads>);
    else launch(sdekit::sample_sq_norms_kernel<T, false, kNormThreads>);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return part.sum(1);
}

}  // namespace

TORCH_LIBRARY_IMPL(sdekit, CUDA, m) {
  m.impl("sde_affine_step", &sde_affine_step);
  m.impl("sde_sample_sq_norms", &sde_sample_sq_norms);
}
