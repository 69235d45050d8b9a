// Shared by the plain-CUDA headers: functions callable from device code (nvcc) and from
// host C++ (the CPU tests compile the same arithmetic with g++/nvcc for the host).
#pragma once
#include <stdint.h>

#if defined(__CUDACC__)
#define SDEKIT_HD __host__ __device__ __forceinline__
#else
#define SDEKIT_HD inline
#endif

namespace sdekit {

// VEC consecutive elements moved as one aligned load or store (16 bytes for VEC = 16 / sizeof(T));
// kernels use VEC > 1 only when the launcher has checked the pointers' alignment.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Packed {
  T v[VEC];
};

// Host side: may a Packed<T, 16 / sizeof(T)> be loaded from / stored to p?
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace sdekit
