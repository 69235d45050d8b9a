// Host side of the fused sampling steps, shared by both torch bindings (sde_steps.cu for CUDA,
// cpu/ops.cpp for the "cpu" backend): the schema's (dims, strides, ...) arguments unpacked into the
// AffineStepArgs of sde_steps.cuh.  Layout (computed by sdekit/kernels/steps/layout.py): every
// tensor viewed as (B, D1, D2, D3), `dims` = [D1, D2, D3], `strides` = 4 strides per tensor in the
// order out, x, score, y; seed and step are 64-bit words passed as int64 bit patterns.
#pragma once
#include <stdint.h>

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "sde_steps.cuh"

namespace sdekit {

// The 4 strides of tensor k (0 out, 1 x, 2 score, 3 y) in the flat `strides` argument.
inline Strides4 strides_at(at::IntArrayRef s, int k) {
  return Strides4{s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]};
}

// The kernel arguments of torch.ops.sdekit.sde_affine_step; N = D1 D2 D3 elements per sample.
template <typename T>
AffineStepArgs<T> affine_step_args(at::Tensor& out, const at::Tensor& x, const c10::optional<at::Tensor>& score,
                                   const c10::optional<at::Tensor>& y, const at::Tensor& coef,
                                   const c10::optional<at::Tensor>& flags, at::IntArrayRef dims,
                                   at::IntArrayRef strides, int64_t seed, int64_t step, int64_t sample_offset) {
  AffineStepArgs<T> a;
  a.out = out.data_ptr<T>();
  a.x = x.data_ptr<T>();
  a.score = score ? score->data_ptr<T>() : nullptr;
  a.y = y ? y->data_ptr<T>() : nullptr;
  a.coef = coef.data_ptr<T>();
  a.flags = flags ? flags->data_ptr<int32_t>() : nullptr;
  a.N = dims[0] * dims[1] * dims[2];
  a.D2 = dims[1];
  a.D3 = dims[2];
  a.so = strides_at(strides, 0);
  a.sx = strides_at(strides, 1);
  a.ss = strides_at(strides, 2);
  a.sy = strides_at(strides, 3);
  a.coef_sk = coef.stride(0);
  a.coef_sb = coef.size(1) > 1 ? coef.stride(1) : 0;
  a.seed = static_cast<uint64_t>(seed);
  a.step = static_cast<uint64_t>(step);
  a.sample_offset = static_cast<uint32_t>(sample_offset);
  return a;
}

}  // namespace sdekit
