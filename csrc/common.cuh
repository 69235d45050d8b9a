// Shared by the plain-CUDA headers: functions callable from device code (nvcc) and from
// host C++ (the CPU tests compile the same arithmetic with g++/nvcc for the host).
#pragma once

#if defined(__CUDACC__)
#define SDEKIT_HD __host__ __device__ __forceinline__
#else
#define SDEKIT_HD inline
#endif
