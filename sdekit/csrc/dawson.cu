// torch binding of the Dawson kernel (csrc/dawson.cuh): the op sdekit::dawsn.
//
//   torch.ops.sdekit.dawsn(Tensor x) -> Tensor   (CUDA, float32/float64, any strides)
//
// Only the CUDA kernel is registered here (TORCH_LIBRARY_IMPL); the schema, the fake (meta)
// kernel and the autograd formula are defined once in sdekit/kernels/dawsn/__init__.py.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "dawson.cuh"

namespace {

template <typename T>
void launch_dawsn(const T* x, T* y, int64_t n, cudaStream_t stream) {
  constexpr int threads = 256;
  constexpr int vec = 16 / sizeof(T);
  const bool aligned = sdekit::aligned16(x) && sdekit::aligned16(y);
  int device = 0, sms = 1;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t per_block = int64_t(threads) * (aligned ? vec : 1);
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((n + per_block - 1) / per_block, int64_t(sms) * 32));
  if (aligned)
    sdekit::dawson::dawsn_kernel<T, vec><<<blocks, threads, 0, stream>>>(x, y, n);
  else
    sdekit::dawson::dawsn_kernel<T, 1><<<blocks, threads, 0, stream>>>(x, y, n);
}

at::Tensor dawsn_cuda(const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), "sdekit::dawsn (CUDA): x must be a CUDA tensor, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "sdekit::dawsn (CUDA): x must be float32 or float64, got ", x.scalar_type());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty_like(xc, at::MemoryFormat::Contiguous);
  const int64_t n = xc.numel();
  if (n == 0) return y;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "sdekit_dawsn_cuda", [&] {
    launch_dawsn<scalar_t>(xc.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), n, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(sdekit, CUDA, m) { m.impl("dawsn", &dawsn_cuda); }
