// The "cpu" backend: the SDEKIT_HD arithmetic of sdekit/csrc/*.cuh compiled for the host, as the
// CPU kernels of the ops whose schemas sdekit/kernels/<op>/__init__.py define:
//
//   sdekit::dawsn(x) -> D(x)                                            (dawson.cuh)
//   sdekit::sde_affine_step(out, x, score?, y?, coef, flags?, ...)       (sde_steps.cuh, philox.cuh)
//   sdekit::sde_sample_sq_norms(score, ...) -> (B, 2)
//   sdekit::spectral_scale(z, uy, S, coef?, s, a, c) -> w               (spectral_scale.cuh)
//
// Built by setup.py as the extension sdekit._cpu (importing it registers the kernels) with
// -ffp-contract=off, so the element-wise arithmetic is bitwise the torch reference's (except
// float64 dawsn on AVX-512 and AVX2 + FMA builds: dawson_simd.h, its own table with explicit FMAs).
// Threads (at::parallel_for, torch's OpenMP pool) only above kGrain elements of work, so small
// tensors pay no wake-up.  Hand-vectorised paths (dawson_simd.h, normals_simd.h, written once over
// the vector types of simd.h) on AVX-512 builds (16 floats a vector) and AVX2 + FMA builds (8, e.g.
// -march=x86-64-v3); scalar loops the compiler vectorises otherwise.  dawsn: the vector kernel of
// dawson_simd.h, or an omp simd loop over dawson.cuh.  The normals, a block of groups at a time:
// float32 entirely in registers, a vector's worth of groups at a time (normals_simd.h: Philox, then
// Box-Muller with its own 1-ulp log and sincos); float64 (and float32 without AVX2 + FMA) Philox for
// the block (normals_simd.h's, or a loop the compiler vectorises across groups), then Box-Muller
// with SLEEF's 1-ulp vector log and sincos (Sleef_*_u10, the library of torch's own vectorised CPU
// kernels, exported by libtorch_cpu) on AVX-512 and AVX2 builds, the C library's scalar ones
// otherwise.
#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../dawson.cuh"
#include "dawson_simd.h"
#include "normals_simd.h"
#include "../sde_steps_args.h"
#include "../spectral_scale_args.h"

namespace {

using sdekit::AffineStepArgs;
using sdekit::PhiloxGroup;
using sdekit::Strides4;

constexpr int64_t kGrain = int64_t(1) << 15;  // elements of work below which one thread does it all
constexpr int64_t kBlockGroups = 256;         // Philox groups per block (1024 floats / 512 doubles)

// ------------------------------------------------------------------ vector log, cos, sin
// SLEEF's vector log and sincos (result .x = sin, .y = cos), exported by libtorch_cpu.
#if defined(__AVX512F__)
using VF = __m512;
using VD = __m512d;
#define SDEKIT_SLEEF_F(name) Sleef_##name##f16_u10
#define SDEKIT_SLEEF_D(name) Sleef_##name##d8_u10
#elif defined(__AVX2__)
using VF = __m256;
using VD = __m256d;
#define SDEKIT_SLEEF_F(name) Sleef_##name##f8_u10
#define SDEKIT_SLEEF_D(name) Sleef_##name##d4_u10
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
struct VF2 { VF x, y; };
struct VD2 { VD x, y; };
extern "C" {
VF SDEKIT_SLEEF_F(log)(VF);
VF2 SDEKIT_SLEEF_F(sincos)(VF);
VD SDEKIT_SLEEF_D(log)(VD);
VD2 SDEKIT_SLEEF_D(sincos)(VD);
}

template <typename T> struct SleefVector;  // the vector of T that the SLEEF functions take
template <> struct SleefVector<float> { using V = VF; };
template <> struct SleefVector<double> { using V = VD; };

inline VF vlog(VF v) { return SDEKIT_SLEEF_F(log)(v); }
inline VD vlog(VD v) { return SDEKIT_SLEEF_D(log)(v); }
inline VF2 vsincos(VF v) { VF2 r; auto p = SDEKIT_SLEEF_F(sincos)(v); r.x = p.x; r.y = p.y; return r; }
inline VD2 vsincos(VD v) { VD2 r; auto p = SDEKIT_SLEEF_D(sincos)(v); r.x = p.x; r.y = p.y; return r; }
#endif

// lg[i] = log(u[i]), c[i] = cos(th[i]), s[i] = sin(th[i]) for i < n, n a multiple of 16 (the
// callers pad their blocks).
template <typename T>
void log_sincos(const T* u, const T* th, T* lg, T* c, T* s, int64_t n) {
#if defined(__AVX512F__) || defined(__AVX2__)
  using V = typename SleefVector<T>::V;
  constexpr int L = sizeof(V) / sizeof(T);
  for (int64_t i = 0; i < n; i += L) {
    V v, t;
    std::memcpy(&v, u + i, sizeof(V));
    std::memcpy(&t, th + i, sizeof(V));
    v = vlog(v);
    const auto sc = vsincos(t);
    std::memcpy(lg + i, &v, sizeof(V));
    std::memcpy(s + i, &sc.x, sizeof(V));
    std::memcpy(c + i, &sc.y, sizeof(V));
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    lg[i] = std::log(u[i]);
    c[i] = std::cos(th[i]);
    s[i] = std::sin(th[i]);
  }
#endif
}

template <typename T> constexpr T two_pi();     // as in philox.cuh's philox_box_muller
template <> constexpr float two_pi<float>() { return 6.2831854820251465f; }
template <> constexpr double two_pi<double>() { return 6.283185307179586; }

// w[k][i] = word k of Philox group q0 + i of sample b, i < nq (rounded up to a whole vector of
// groups on AVX-512 and AVX2 + FMA builds).
void philox_words(uint64_t q0, int64_t nq, uint32_t b, uint64_t seed, uint64_t step, uint32_t (*w)[kBlockGroups]) {
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32), t0 = (uint32_t)step, t1 = (uint32_t)(step >> 32);
#if defined(SDEKIT_SIMD)
  constexpr int64_t L = sizeof(VF) / sizeof(float);  // groups a vector
  for (int64_t i = 0; i < nq; i += L) {
    const auto o = sdekit::simd::philox<VF>((uint32_t)(q0 + i), b, t0, t1, k0, k1);
    for (int k = 0; k < 4; ++k) std::memcpy(w[k] + i, &o.v[k], sizeof(VF));
  }
#else
#pragma omp simd
  for (int64_t i = 0; i < nq; ++i) {
    const sdekit::Philox4 o = sdekit::philox4x32_10((uint32_t)(q0 + i), b, t0, t1, k0, k1);
    w[0][i] = o.v[0]; w[1][i] = o.v[1]; w[2][i] = o.v[2]; w[3][i] = o.v[3];
  }
#endif
}

// z[0 .. nq * G) = the normals of groups q0 .. q0 + nq of sample b (nq <= kBlockGroups; z holds
// kBlockGroups * G).  float32 on AVX-512 and AVX2 + FMA builds: normals_simd.h, a vector's worth of
// groups at a time in registers.  Otherwise Philox for all groups (philox_words), then the
// uniforms, then log and sincos on whole vectors (SLEEF), then r (cos, sin).
template <typename T>
void normals_block(uint64_t q0, int64_t nq, uint32_t b, uint64_t seed, uint64_t step, T* z) {
#if defined(SDEKIT_SIMD)
  if constexpr (std::is_same_v<T, float>) {
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32), t0 = (uint32_t)step, t1 = (uint32_t)(step >> 32);
    constexpr int64_t L = sizeof(VF) / sizeof(float);  // groups a vector
    for (int64_t i = 0; i < nq; i += L) sdekit::simd::normals_f32<VF>((uint32_t)(q0 + i), b, t0, t1, k0, k1, z + 4 * i);
    return;
  }
#endif
  constexpr int G = PhiloxGroup<T>::G, P = G / 2;  // Box-Muller pairs per group
  uint32_t w[4][kBlockGroups];
  T u1[kBlockGroups * P], th[kBlockGroups * P], c[kBlockGroups * P], s[kBlockGroups * P];
  philox_words(q0, nq, b, seed, step, w);
#pragma omp simd
  for (int64_t i = 0; i < nq; ++i) {
    const sdekit::Philox4 o = {{w[0][i], w[1][i], w[2][i], w[3][i]}};
    for (int k = 0; k < P; ++k) {
      T v1, v2;
      sdekit::philox_uniforms(o, k, &v1, &v2);
      u1[P * i + k] = v1;
      th[P * i + k] = two_pi<T>() * v2;
    }
  }
  const int64_t n = nq * P, padded = (n + 15) / 16 * 16;  // kBlockGroups * P is a multiple of 16
  for (int64_t i = n; i < padded; ++i) u1[i] = th[i] = T(1);
  log_sincos<T>(u1, th, u1, c, s, padded);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T r = std::sqrt(T(-2) * u1[i]);
    z[2 * i] = r * c[i];
    z[2 * i + 1] = r * s[i];
  }
}

// ---------------------------------------------------------------------------------- affine step
template <typename T, bool HS, bool HY, bool NZ, bool HF, bool CONTIG>
void affine_block(const AffineStepArgs<T>& a, int64_t b, int64_t q0, int64_t q1, bool& bad_s, bool& bad_o) {
  constexpr int G = PhiloxGroup<T>::G;
  const T* cp = a.coef + b * a.coef_sb;
  const T A = cp[0], C = HY ? cp[a.coef_sk] : T(0), S = HS ? cp[2 * a.coef_sk] : T(0),
          Nc = NZ ? cp[3 * a.coef_sk] : T(0);
  T z[kBlockGroups * G];
  if (NZ) normals_block<T>((uint64_t)q0, q1 - q0, (uint32_t)b + a.sample_offset, a.seed, a.step, z);
  const int64_t j0 = q0 * G, j1 = std::min(q1 * G, a.N);
  bool bs = false, bo = false;
  if (CONTIG) {  // inner stride 1 (or one element per sample)
    const T* x = a.x + b * a.sx.sb;
    const T* y = HY ? a.y + b * a.sy.sb : nullptr;
    const T* sc = HS ? a.score + b * a.ss.sb : nullptr;
    T* out = a.out + b * a.so.sb;
#pragma omp simd reduction(|| : bs, bo)
    for (int64_t j = j0; j < j1; ++j) {  // the reference's order: ((A x + C y) + S s) + N z
      T acc = A * x[j];
      if (HY) acc = acc + C * y[j];
      if (HS) {
        acc = acc + S * sc[j];
        if (HF) bs = bs || sdekit::not_finite(sc[j]);
      }
      if (NZ) acc = acc + Nc * z[j - j0];
      if (HF) bo = bo || sdekit::not_finite(acc);
      out[j] = acc;
    }
  } else {
    for (int64_t j = j0; j < j1; ++j) {
      T acc = A * a.x[sdekit::step_offset<false>(b, j, a.D2, a.D3, a.sx)];
      if (HY) acc = acc + C * a.y[sdekit::step_offset<false>(b, j, a.D2, a.D3, a.sy)];
      if (HS) {
        const T sv = a.score[sdekit::step_offset<false>(b, j, a.D2, a.D3, a.ss)];
        acc = acc + S * sv;
        if (HF) bs = bs || sdekit::not_finite(sv);
      }
      if (NZ) acc = acc + Nc * z[j - j0];
      if (HF) bo = bo || sdekit::not_finite(acc);
      a.out[sdekit::step_offset<false>(b, j, a.D2, a.D3, a.so)] = acc;
    }
  }
  bad_s = bad_s || bs;
  bad_o = bad_o || bo;
}

template <typename T, bool HS, bool HY, bool NZ, bool HF, bool CONTIG>
void affine_all(const AffineStepArgs<T>& a, int64_t B) {
  constexpr int G = PhiloxGroup<T>::G;
  const int64_t Q = (a.N + G - 1) / G, per_sample = (Q + kBlockGroups - 1) / kBlockGroups;
  std::atomic<bool> any_s{false}, any_o{false};
  at::parallel_for(0, B * per_sample, std::max<int64_t>(1, kGrain / (kBlockGroups * G)), [&](int64_t u0, int64_t u1) {
    bool bs = false, bo = false;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / per_sample, q0 = (u % per_sample) * kBlockGroups;
      affine_block<T, HS, HY, NZ, HF, CONTIG>(a, b, q0, std::min(Q, q0 + kBlockGroups), bs, bo);
    }
    if (bs) any_s = true;
    if (bo) any_o = true;
  });
  if (HF && any_s) a.flags[0] = 1;
  if (HF && any_o) a.flags[1] = 1;
}

template <typename T>
void affine_dispatch(const AffineStepArgs<T>& a, int64_t B, bool hs, bool hy, bool nz, bool hf, bool contig) {
  const int code = (hs ? 16 : 0) | (hy ? 8 : 0) | (nz ? 4 : 0) | (hf ? 2 : 0) | (contig ? 1 : 0);
  switch (code) {
#define SDEKIT_CASE(c) \
  case c: affine_all<T, bool((c) & 16), bool((c) & 8), bool((c) & 4), bool((c) & 2), bool((c) & 1)>(a, B); break;
#define SDEKIT_CASE4(c) SDEKIT_CASE(c) SDEKIT_CASE(c + 1) SDEKIT_CASE(c + 2) SDEKIT_CASE(c + 3)
    SDEKIT_CASE4(0) SDEKIT_CASE4(4) SDEKIT_CASE4(8) SDEKIT_CASE4(12)
    SDEKIT_CASE4(16) SDEKIT_CASE4(20) SDEKIT_CASE4(24) SDEKIT_CASE4(28)
#undef SDEKIT_CASE4
#undef SDEKIT_CASE
  }
}

void sde_affine_step_cpu(at::Tensor out, const at::Tensor& x, const c10::optional<at::Tensor>& score,
                         const c10::optional<at::Tensor>& y, const at::Tensor& coef,
                         const c10::optional<at::Tensor>& flags, at::IntArrayRef dims, at::IntArrayRef strides,
                         int64_t seed, int64_t step, int64_t sample_offset, bool noise, bool contig) {
  TORCH_CHECK(dims.size() == 3 && strides.size() == 16, "sde_affine_step: dims must have 3 and strides 16 entries");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "sde_affine_step: x must be float32 or float64, got ", x.scalar_type());
  const int64_t B = x.size(0), N = dims[0] * dims[1] * dims[2];
  if (B == 0 || N == 0) return;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sde_affine_step_cpu", [&] {
    using T = scalar_t;
    const AffineStepArgs<T> a =
        sdekit::affine_step_args<T>(out, x, score, y, coef, flags, dims, strides, seed, step, sample_offset);
    affine_dispatch<T>(a, B, score.has_value(), y.has_value(), noise, flags.has_value(), contig);
  });
}

// ------------------------------------------------------------------------------ sample sq norms
// Per sample: sum over blocks (fixed, N-determined) of per-block sums accumulated in double, so the
// result does not depend on the number of threads.
template <typename T, bool CONTIG>
void sq_norms_all(const T* score, T* res, int64_t B, int64_t N, int64_t D2, int64_t D3, const Strides4& ss,
                  uint64_t seed, uint64_t step, uint32_t sample_offset) {
  constexpr int G = PhiloxGroup<T>::G;
  const int64_t Q = (N + G - 1) / G, per_sample = (Q + kBlockGroups - 1) / kBlockGroups;
  std::vector<double> part(B * per_sample * 2);
  at::parallel_for(0, B * per_sample, std::max<int64_t>(1, kGrain / (kBlockGroups * G)), [&](int64_t u0, int64_t u1) {
    T z[kBlockGroups * G];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / per_sample, q0 = (u % per_sample) * kBlockGroups, q1 = std::min(Q, q0 + kBlockGroups);
      normals_block<T>((uint64_t)q0, q1 - q0, (uint32_t)b + sample_offset, seed, step, z);
      const int64_t j0 = q0 * G, j1 = std::min(q1 * G, N);
      double acc_s = 0, acc_z = 0;
#pragma omp simd reduction(+ : acc_s, acc_z)
      for (int64_t j = j0; j < j1; ++j) {
        const double s = score[sdekit::step_offset<CONTIG>(b, j, D2, D3, ss)];
        const double zz = z[j - j0];
        acc_s += s * s;
        acc_z += zz * zz;
      }
      part[2 * u] = acc_s;
      part[2 * u + 1] = acc_z;
    }
  });
  for (int64_t b = 0; b < B; ++b) {
    double acc_s = 0, acc_z = 0;
    for (int64_t p = 0; p < per_sample; ++p) {
      acc_s += part[2 * (b * per_sample + p)];
      acc_z += part[2 * (b * per_sample + p) + 1];
    }
    res[2 * b] = (T)acc_s;
    res[2 * b + 1] = (T)acc_z;
  }
}

at::Tensor sde_sample_sq_norms_cpu(const at::Tensor& score, at::IntArrayRef dims, at::IntArrayRef strides,
                                   int64_t seed, int64_t step, int64_t sample_offset, bool contig) {
  TORCH_CHECK(dims.size() == 3 && strides.size() == 4, "sde_sample_sq_norms: dims must have 3 and strides 4 entries");
  const int64_t B = score.size(0), N = dims[0] * dims[1] * dims[2];
  at::Tensor res = at::zeros({B, 2}, score.options());
  if (B == 0 || N == 0) return res;
  AT_DISPATCH_FLOATING_TYPES(score.scalar_type(), "sde_sample_sq_norms_cpu", [&] {
    const Strides4 ss = sdekit::strides_at(strides, 0);
    if (contig)
      sq_norms_all<scalar_t, true>(score.data_ptr<scalar_t>(), res.data_ptr<scalar_t>(), B, N, dims[1], dims[2], ss,
                                   (uint64_t)seed, (uint64_t)step, (uint32_t)sample_offset);
    else
      sq_norms_all<scalar_t, false>(score.data_ptr<scalar_t>(), res.data_ptr<scalar_t>(), B, N, dims[1], dims[2], ss,
                                    (uint64_t)seed, (uint64_t)step, (uint32_t)sample_offset);
  });
  return res;
}

// ------------------------------------------------------------------------------------- dawsn
template <typename T>
void dawsn_all(const T* x, T* y, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
#if defined(SDEKIT_SIMD)
    if constexpr (std::is_same_v<T, float>) sdekit::dawson::simd::dawsn_simd<VF>(x + i0, y + i0, i1 - i0);
    else sdekit::dawson::simd::dawsn_simd<VD>(x + i0, y + i0, i1 - i0);
#else
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) y[i] = sdekit::dawson::dawsn(x[i]);
#endif
  });
}

at::Tensor dawsn_cpu(const at::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "sdekit::dawsn (CPU): x must be float32 or float64, got ", x.scalar_type());
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::detail::empty_cpu(xc.sizes(), xc.options());  // not through the dispatcher: small calls
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "sdekit_dawsn_cpu", [&] {
    dawsn_all<scalar_t>(xc.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), xc.numel());
  });
  return out;
}

// ---------------------------------------------------------------------------- spectral scale
template <typename T>
void spectral_scale_all(const T* z, const T* uy, const T* S, const T* coef, sdekit::SpectralCoef<T> shared, T* w,
                        int64_t B, int64_t k) {
  at::parallel_for(0, B, std::max<int64_t>(1, kGrain / k), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const sdekit::SpectralCoef<T> cf = coef ? sdekit::SpectralCoef<T>{coef[3 * r], coef[3 * r + 1], coef[3 * r + 2]}
                                              : shared;
      const T *zr = z + r * k, *ur = uy + r * k;
      T* wr = w + r * k;
#pragma omp simd
      for (int64_t i = 0; i < k; ++i) wr[i] = sdekit::spectral_weight(S[i], zr[i], ur[i], cf);
    }
  });
}

at::Tensor spectral_scale_cpu(const at::Tensor& z, const at::Tensor& uy, const at::Tensor& S,
                              const c10::optional<at::Tensor>& coef, double s, double a, double c) {
  sdekit::check_spectral_scale_args(z, uy, S, coef);
  const at::Tensor zc = z.contiguous(), uc = uy.contiguous(), Sc = S.contiguous();
  const at::Tensor cc = coef ? coef->contiguous() : at::Tensor();
  at::Tensor w = at::empty_like(zc, at::MemoryFormat::Contiguous);
  const int64_t B = zc.size(0), k = zc.size(1);
  if (B == 0 || k == 0) return w;
  AT_DISPATCH_FLOATING_TYPES(zc.scalar_type(), "sdekit_spectral_scale_cpu", [&] {
    using T = scalar_t;
    const sdekit::SpectralCoef<T> shared = sdekit::shared_spectral_coef<T>(s, a, c);
    spectral_scale_all<T>(zc.data_ptr<T>(), uc.data_ptr<T>(), Sc.data_ptr<T>(), coef ? cc.data_ptr<T>() : nullptr,
                          shared, w.data_ptr<T>(), B, k);
  });
  return w;
}

}  // namespace

TORCH_LIBRARY_IMPL(sdekit, CPU, m) {
  m.impl("dawsn", &dawsn_cpu);
  m.impl("sde_affine_step", &sde_affine_step_cpu);
  m.impl("sde_sample_sq_norms", &sde_sample_sq_norms_cpu);
  m.impl("spectral_scale", &spectral_scale_cpu);
}

static struct PyModuleDef sdekit_cpu_module = {PyModuleDef_HEAD_INIT, "_cpu", nullptr, -1, nullptr};

// The vector kernels this build carries (``sdekit info`` reports it): "avx512", "avx2" (AVX2 + FMA), or
// "scalar" (the loops over the SDEKIT_HD headers and SLEEF's or the C library's log/sincos).
#if defined(__AVX512F__)
static const char kVectorKernels[] = "avx512";
#elif defined(SDEKIT_SIMD)
static const char kVectorKernels[] = "avx2";
#else
static const char kVectorKernels[] = "scalar";
#endif

PyMODINIT_FUNC PyInit__cpu(void) {
  PyObject* m = PyModule_Create(&sdekit_cpu_module);
  if (m != nullptr && PyModule_AddStringConstant(m, "vector_kernels", kVectorKernels) != 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
