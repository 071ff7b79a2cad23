/* Vector operations of the kernel, one branch per instruction set it is built for.
 *
 * One source, several targets: the compiler's own macros pick the branch
 * (-march=native on an AVX-512 CPU, or -mavx512f, defines __AVX512F__; -mavx2 -mfma
 * defines __AVX2__ and __FMA__; 64-bit ARM always has NEON). The kernel is written
 * with these operations only, so every target computes the same thing in the same
 * order: each product is a fused multiply-add in float32 and each sum runs over k
 * in sequence, and the variants give the same bits. What differs is the register
 * tile: MR rows x NV vectors for real products and MRC rows x NVC vectors (times
 * re and im) for complex bins, sized so that the accumulators, the loaded row of B
 * and the broadcast fit the target's register file.
 */
#ifndef HG_SIMD_H
#define HG_SIMD_H

#if defined(__AVX512F__)
#include <immintrin.h>
#define HG_VARIANT "avx512"
#define VL 16 /* floats per vector */
#define MR 12 /* 12 x 2 accumulators of 32 zmm registers */
#define NV 2
#define MRC 6 /* 6 x 2 x (re, im) accumulators */
#define NVC 2
typedef __m512 vf;
static inline vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void v_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf v_zero(void) { return _mm512_setzero_ps(); }
static inline vf v_set1(float x) { return _mm512_set1_ps(x); }
static inline vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }   /* c + a b */
static inline vf v_fnmadd(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); } /* c - a b */

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HG_VARIANT "avx2"
#define VL 8
#define MR 6 /* 6 x 2 accumulators + 2 loads + 1 broadcast of 16 ymm registers */
#define NV 2
#define MRC 6 /* 6 x 1 x (re, im) accumulators + 2 loads + 2 broadcasts */
#define NVC 1
typedef __m256 vf;
static inline vf v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void v_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf v_zero(void) { return _mm256_setzero_ps(); }
static inline vf v_set1(float x) { return _mm256_set1_ps(x); }
static inline vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf v_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf v_fnmadd(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }

#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define HG_VARIANT "neon"
#define VL 4
#define MR 6 /* 6 x 4 accumulators + 4 loads + 1 broadcast of 32 registers */
#define NV 4
#define MRC 6 /* 6 x 2 x (re, im) accumulators + 4 loads + 2 broadcasts */
#define NVC 2
typedef float32x4_t vf;
static inline vf v_load(const float *p) { return vld1q_f32(p); }
static inline void v_store(float *p, vf v) { vst1q_f32(p, v); }
static inline vf v_zero(void) { return vdupq_n_f32(0.f); }
static inline vf v_set1(float x) { return vdupq_n_f32(x); }
static inline vf v_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf v_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf v_div(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf v_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf v_max(vf a, vf b) { return vmaxq_f32(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static inline vf v_fnmadd(vf a, vf b, vf c) { return vfmsq_f32(c, a, b); }
#endif

#ifdef HG_VARIANT
#define HG_SIMD 1
#else
#define HG_VARIANT ""
#endif

#endif /* HG_SIMD_H */
