// Host side of the spectral scaling, shared by both torch bindings (spectral_scale.cu for CUDA,
// cpu/ops.cpp for the "cpu" backend): the device-independent checks of the arguments of
// torch.ops.sdekit.spectral_scale(z, uy, S, coef?, s, a, c) and the shared (s, a, c) in the data's
// dtype.  Each binding adds its own device and contiguity checks.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include "spectral_scale.cuh"

namespace sdekit {

// z, uy: (B, k); S: (k,); one floating dtype; coef: None or (B, 3) of that dtype.
inline void check_spectral_scale_args(const at::Tensor& z, const at::Tensor& uy, const at::Tensor& S,
                                      const c10::optional<at::Tensor>& coef) {
  TORCH_CHECK(z.dim() == 2 && uy.sizes() == z.sizes() && S.dim() == 1 && S.size(0) == z.size(1),
              "sdekit::spectral_scale: expected z, uy of shape (B, k) and S of shape (k,), got ", z.sizes(), ", ",
              uy.sizes(), ", ", S.sizes());
  TORCH_CHECK(z.scalar_type() == at::kFloat || z.scalar_type() == at::kDouble,
              "sdekit::spectral_scale: expected float32 or float64, got ", z.scalar_type());
  TORCH_CHECK(uy.scalar_type() == z.scalar_type() && S.scalar_type() == z.scalar_type(),
              "sdekit::spectral_scale: z, uy and S must share one dtype");
  if (coef) {
    TORCH_CHECK(coef->scalar_type() == z.scalar_type() && coef->dim() == 2 && coef->size(0) == z.size(0) &&
                    coef->size(1) == 3,
                "sdekit::spectral_scale: coef must be a (B, 3) tensor of the data's dtype");
  }
}

// The scalars (s, a, c) used for every sample when coef is None, converted to the data's dtype
// (as the Triton kernel does).
template <typename T>
SpectralCoef<T> shared_spectral_coef(double s, double a, double c) {
  return SpectralCoef<T>{static_cast<T>(s), static_cast<T>(a), static_cast<T>(c)};
}

}  // namespace sdekit
