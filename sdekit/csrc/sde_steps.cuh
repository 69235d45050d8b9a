// Fused sampling steps (plain CUDA, no torch headers; bound to torch in sde_steps.cu).
//
//   affine_step:     x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)
//   sample_sq_norms: part[b, p] = (sum score[b]^2, sum z[b]^2) over the groups of block p
//
// Every sdekit update (Euler-Maruyama, reverse diffusion, Langevin, exponential integrator,
// probability flow) is one affine_step with coefficients computed by the solver; z are the
// counter-based normals of philox.cuh.  Bytes moved by affine_step: read x, score, y once,
// write x_out once (4 * numel * sizeof(T); 3 without y), plus 4 coefficients per sample.
// sample_sq_norms reads score once and writes 2 numbers per block.
//
// Each thread handles whole generator groups (G = 4 floats or 2 doubles: one Philox call),
// grid-striding over the groups of its sample (blockIdx.y).  Tensors are (B, D1, D2, D3) with
// per-tensor strides; CONTIG means inner stride 1 everywhere, VEC additionally that groups
// are 16-byte aligned, so a group moves as one 16-byte Packed<T, G> (common.cuh).
// The torch reference and specification is sdekit/kernels/steps/reference.py; the host build of
// step_offset and not_finite is the "cpu" backend (cpu/ops.cpp).
#pragma once
#include <stdint.h>
#include "philox.cuh"

namespace sdekit {

struct Strides4 { int64_t sb, s1, s2, s3; };

template <typename T>
struct AffineStepArgs {
  T* out; const T* x; const T* score; const T* y; const T* coef; int32_t* flags;
  int64_t N, D2, D3;
  Strides4 so, sx, ss, sy;
  int64_t coef_sk, coef_sb;
  uint64_t seed, step;
  uint32_t sample_offset;  // global index of sample 0: row b draws the normals of sample sample_offset + b
};

template <bool CONTIG>
SDEKIT_HD int64_t step_offset(int64_t b, int64_t j, int64_t D2, int64_t D3, const Strides4& s) {
  if (CONTIG) return b * s.sb + j * s.s3;
  int64_t i3 = j % D3, r = j / D3;
  return b * s.sb + (r / D2) * s.s1 + (r % D2) * s.s2 + i3 * s.s3;
}

template <typename T>
SDEKIT_HD bool not_finite(T v) { return !((v - v) == T(0)); }

#if defined(__CUDACC__)
template <typename T, bool HAS_SCORE, bool HAS_Y, bool NOISE, bool HAS_FLAGS, bool CONTIG, bool VEC>
__global__ void affine_step_kernel(AffineStepArgs<T> a) {
  constexpr int G = PhiloxGroup<T>::G;
  const uint32_t b = blockIdx.y;
  const T* cp = a.coef + (int64_t)b * a.coef_sb;
  const T A = cp[0];
  const T C = HAS_Y ? cp[a.coef_sk] : T(0);
  const T S = HAS_SCORE ? cp[2 * a.coef_sk] : T(0);
  const T Nc = NOISE ? cp[3 * a.coef_sk] : T(0);
  const int64_t Q = (a.N + G - 1) / G;
  bool bad_s = false, bad_o = false;
  // The launcher gives each thread one group, so the loop runs once: unrolling it only made
  // nvcc write the unrolled copies' outputs with scalar stores (PTX: 3 st.global.v4, 8 st.global.f32).
#pragma unroll 1
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < Q; q += (int64_t)gridDim.x * blockDim.x) {
    T z[G];
    if (NOISE) philox_normal_group<T>((uint64_t)q, b + a.sample_offset, a.seed, a.step, z);
    if (VEC) {
      // A group moves as one 16-byte Packed value, built in registers (a local array
      // reinterpreted as float4 let nvcc split some stores into scalar ones).
      using P = Packed<T, G>;
      const int64_t j = q * G;
      const P xv = *reinterpret_cast<const P*>(a.x + b * a.sx.sb + j);
      P yv{}, sv{}, ov;
      if (HAS_Y) yv = *reinterpret_cast<const P*>(a.y + b * a.sy.sb + j);
      if (HAS_SCORE) sv = *reinterpret_cast<const P*>(a.score + b * a.ss.sb + j);
#pragma unroll
      for (int k = 0; k < G; ++k) {
        T acc = A * xv.v[k];
        if (HAS_Y) acc += C * yv.v[k];
        if (HAS_SCORE) acc += S * sv.v[k];
        if (NOISE) acc += Nc * z[k];
        ov.v[k] = acc;
        if (HAS_FLAGS) { bad_o |= not_finite(acc); if (HAS_SCORE) bad_s |= not_finite(sv.v[k]); }
      }
      *reinterpret_cast<P*>(a.out + b * a.so.sb + j) = ov;
    } else {
#pragma unroll
      for (int k = 0; k < G; ++k) {
        const int64_t j = q * G + k;
        if (j >= a.N) break;
        T acc = A * a.x[step_offset<CONTIG>(b, j, a.D2, a.D3, a.sx)];
        if (HAS_Y) acc += C * a.y[step_offset<CONTIG>(b, j, a.D2, a.D3, a.sy)];
        if (HAS_SCORE) {
          const T s = a.score[step_offset<CONTIG>(b, j, a.D2, a.D3, a.ss)];
          acc += S * s;
          if (HAS_FLAGS) bad_s |= not_finite(s);
        }
        if (NOISE) acc += Nc * z[k];
        if (HAS_FLAGS) bad_o |= not_finite(acc);
        a.out[step_offset<CONTIG>(b, j, a.D2, a.D3, a.so)] = acc;
      }
    }
  }
  if (HAS_FLAGS) {
    // Benign race: every writer stores 1.
    if (__syncthreads_or(bad_s) && threadIdx.x == 0) a.flags[0] = 1;
    if (__syncthreads_or(bad_o) && threadIdx.x == 0) a.flags[1] = 1;
  }
}

// Deterministic per-block partial sums (fixed launch shape, fixed reduction tree).  VEC as in
// affine_step_kernel: a group is read as one 16-byte value.
template <typename T, bool CONTIG, int THREADS, bool VEC = false>
__global__ void sample_sq_norms_kernel(const T* score, T* part, int64_t N, int64_t D2, int64_t D3,
                                       Strides4 ss, uint64_t seed, uint64_t step, uint32_t sample_offset) {
  constexpr int G = PhiloxGroup<T>::G;
  const uint32_t b = blockIdx.y;
  const int64_t Q = (N + G - 1) / G;
  T acc_s = 0, acc_z = 0;
  for (int64_t q = (int64_t)blockIdx.x * THREADS + threadIdx.x; q < Q; q += (int64_t)gridDim.x * THREADS) {
    T z[G];
    philox_normal_group<T>((uint64_t)q, b + sample_offset, seed, step, z);
    if (VEC) {
      const Packed<T, G> sv = *reinterpret_cast<const Packed<T, G>*>(score + b * ss.sb + q * G);
#pragma unroll
      for (int k = 0; k < G; ++k) {
        acc_s += sv.v[k] * sv.v[k];
        acc_z += z[k] * z[k];
      }
    } else {
#pragma unroll
      for (int k = 0; k < G; ++k) {
        const int64_t j = q * G + k;
        if (j >= N) break;
        const T s = score[step_offset<CONTIG>(b, j, D2, D3, ss)];
        acc_s += s * s;
        acc_z += z[k] * z[k];
      }
    }
  }
  __shared__ T sh_s[THREADS], sh_z[THREADS];
  sh_s[threadIdx.x] = acc_s;
  sh_z[threadIdx.x] = acc_z;
  __syncthreads();
  for (int w = THREADS / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) { sh_s[threadIdx.x] += sh_s[threadIdx.x + w]; sh_z[threadIdx.x] += sh_z[threadIdx.x + w]; }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    T* p = part + ((int64_t)b * gridDim.x + blockIdx.x) * 2;
    p[0] = sh_s[0];
    p[1] = sh_z[0];
  }
}
#endif  // __CUDACC__

}  // namespace sdekit
