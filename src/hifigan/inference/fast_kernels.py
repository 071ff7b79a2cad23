"""C source of the fused fast-convolution kernel, compiled at first use by `fast_native`.

Kept as a string so that it ships inside the package like any module.
"""

SOURCE = r"""/* Fused short-block FFT convolution for HiFi-GAN synthesis on AVX-512 CPUs.
 *
 * One call computes, for a range of frames of one stride-1 Conv1d layer,
 *   out[t] = base[t] + bias + conv(leaky_relu(src))[t]
 * on time-major [time, channels] float32 sequences, by overlap-save with a
 * real DFT of length N done as small matrix products:
 *   analysis   X_f = A (N x N) . lrelu(frame_f) (N x C_in)        per frame
 *   mixing     Y_g = X_g . W_g                                     per DFT bin group
 *   synthesis  out rows = S (hop x N) . Y_f (N x C_out)            per frame
 * Everything of a chunk of frames stays in L2; only the input, the base and
 * the output touch memory. All products use one 12 x 32 (or 12 x 16)
 * register-tile kernel with fused multiply-adds in float32.
 *
 * Rows outside the valid examples (gaps between batch items, the tail) are
 * written as zero, so they stay the next layer's zero padding.
 * Single-threaded: the caller runs disjoint frame ranges on several threads.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR 12

typedef struct {
    int c_in, c_out;        /* channels (multiples of 16) */
    int n, hop, dil;        /* DFT length, outputs per frame, dilation */
    int ngroups;
    const int *g_start;     /* first transform row of each group */
    const int *g_size;      /* 1 (real bin) or 2 (re, im of a complex bin) */
    const float *const *g_weight; /* size 1: packed [panels][c_in][w]; size 2 (complex bin): the
                                     compact Hr then Hi, each [panels][c_in][w] (see kernc32) */
    const int *g_panel;     /* panel width of each group (32 or 16) */
    const float *analysis;  /* [n][n] */
    const float *synthesis; /* [hop][n] */
    const float *bias;      /* [c_out] or NULL */
    float slope;            /* leaky ReLU slope applied to src */
    int bf16;               /* mix in bfloat16 (spectra and weights rounded, float32 sums) */
    const uint16_t *const *g_weight16; /* bf16 weights, packed [panels][K/2][w][2] */
} hg_conv;

typedef struct {
    long gap, stride, length, batch; /* valid rows: gap + b*stride + [0, length) */
} hg_layout;

int hg_has_avx512(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}

int hg_has_bf16(void) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
    return 1;
#else
    return 0;
#endif
}

#ifdef __AVX512F__

/* Sums over long K run in blocks of KB, each added to the output: rounding error then grows
 * with KB + K / KB terms instead of K (as in blocked BLAS), keeping the path as accurate as
 * direct convolution. */
#define KB 64

static inline void store(float *p, __m512 v, int acc) {
    _mm512_storeu_ps(p, acc ? _mm512_add_ps(_mm512_loadu_ps(p), v) : v);
}

/* C[i][0:32] (+)= sum_k A[i][k] * B[k][0:32] for i < mr; B optionally leaky-ReLU'd on load. */
#define DEFINE_KERNEL32(NAME, LRELU)                                                        \
static void NAME(int mr, int K, const float *A, long lda, const float *B, long ldb,         \
                 float slope, float *C, long ldc, int acc) {                                 \
    __m512 c0[MR], c1[MR];                                                                  \
    const float *a[MR];                                                                     \
    for (int i = 0; i < MR; i++) {                                                          \
        a[i] = A + (long)(i < mr ? i : mr - 1) * lda;                                       \
        c0[i] = _mm512_setzero_ps();                                                        \
        c1[i] = _mm512_setzero_ps();                                                        \
    }                                                                                       \
    const __m512 s = _mm512_set1_ps(slope);                                                 \
    (void)s;                                                                                \
    for (int k = 0; k < K; k++) {                                                           \
        __m512 b0 = _mm512_loadu_ps(B + (long)k * ldb);                                     \
        __m512 b1 = _mm512_loadu_ps(B + (long)k * ldb + 16);                                \
        if (LRELU) {                                                                        \
            b0 = _mm512_max_ps(b0, _mm512_mul_ps(b0, s));                                   \
            b1 = _mm512_max_ps(b1, _mm512_mul_ps(b1, s));                                   \
        }                                                                                   \
        _Pragma("GCC unroll 12")                                                            \
        for (int i = 0; i < MR; i++) {                                                      \
            __m512 av = _mm512_set1_ps(a[i][k]);                                            \
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);                                         \
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);                                         \
        }                                                                                   \
    }                                                                                       \
    for (int i = 0; i < mr; i++) {                                                          \
        store(C + (long)i * ldc, c0[i], acc);                                               \
        store(C + (long)i * ldc + 16, c1[i], acc);                                          \
    }                                                                                       \
}

#define DEFINE_KERNEL16(NAME, LRELU)                                                        \
static void NAME(int mr, int K, const float *A, long lda, const float *B, long ldb,         \
                 float slope, float *C, long ldc, int acc) {                                 \
    __m512 c0[MR];                                                                          \
    const float *a[MR];                                                                     \
    for (int i = 0; i < MR; i++) {                                                          \
        a[i] = A + (long)(i < mr ? i : mr - 1) * lda;                                       \
        c0[i] = _mm512_setzero_ps();                                                        \
    }                                                                                       \
    const __m512 s = _mm512_set1_ps(slope);                                                 \
    (void)s;                                                                                \
    for (int k = 0; k < K; k++) {                                                           \
        __m512 b0 = _mm512_loadu_ps(B + (long)k * ldb);                                     \
        if (LRELU) b0 = _mm512_max_ps(b0, _mm512_mul_ps(b0, s));                            \
        _Pragma("GCC unroll 12")                                                            \
        for (int i = 0; i < MR; i++)                                                        \
            c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i][k]), b0, c0[i]);                     \
    }                                                                                       \
    for (int i = 0; i < mr; i++) store(C + (long)i * ldc, c0[i], acc);                      \
}

DEFINE_KERNEL32(kern32, 0)
DEFINE_KERNEL32(kern32_lrelu, 1)
DEFINE_KERNEL16(kern16, 0)
DEFINE_KERNEL16(kern16_lrelu, 1)

/* A complex DFT bin from its compact weights: for output columns j of one panel,
 *   Cr[i][j] = sum_k Ar[i][k] Hr[k][j] - Ai[i][k] Hi[k][j]
 *   Ci[i][j] = sum_k Ar[i][k] Hi[k][j] + Ai[i][k] Hr[k][j]
 * (the 2x2 real block [[Hr, Hi], [-Hi, Hr]] without storing it: half the weight memory). */
#define MRC 6
#define DEFINE_COMPLEX(NAME, W)                                                             \
static void NAME(int mr, int K, const float *Ar, const float *Ai, long lda, const float *Br,\
                 const float *Bi, float *Cr, float *Ci, long ldc, int acc) {                 \
    __m512 r0[MRC], r1[MRC], i0[MRC], i1[MRC];                                              \
    const float *ar[MRC], *ai[MRC];                                                         \
    for (int i = 0; i < MRC; i++) {                                                         \
        const long row = (long)(i < mr ? i : mr - 1) * lda;                                 \
        ar[i] = Ar + row;                                                                   \
        ai[i] = Ai + row;                                                                   \
        r0[i] = r1[i] = i0[i] = i1[i] = _mm512_setzero_ps();                                \
    }                                                                                       \
    for (int k = 0; k < K; k++) {                                                           \
        const __m512 hr0 = _mm512_loadu_ps(Br + (long)k * W);                               \
        const __m512 hi0 = _mm512_loadu_ps(Bi + (long)k * W);                               \
        const __m512 hr1 = W == 32 ? _mm512_loadu_ps(Br + (long)k * W + 16) : hr0;         \
        const __m512 hi1 = W == 32 ? _mm512_loadu_ps(Bi + (long)k * W + 16) : hi0;         \
        _Pragma("GCC unroll 6")                                                             \
        for (int i = 0; i < MRC; i++) {                                                     \
            const __m512 xr = _mm512_set1_ps(ar[i][k]), xi = _mm512_set1_ps(ai[i][k]);      \
            r0[i] = _mm512_fnmadd_ps(xi, hi0, _mm512_fmadd_ps(xr, hr0, r0[i]));             \
            i0[i] = _mm512_fmadd_ps(xi, hr0, _mm512_fmadd_ps(xr, hi0, i0[i]));              \
            if (W == 32) {                                                                  \
                r1[i] = _mm512_fnmadd_ps(xi, hi1, _mm512_fmadd_ps(xr, hr1, r1[i]));         \
                i1[i] = _mm512_fmadd_ps(xi, hr1, _mm512_fmadd_ps(xr, hi1, i1[i]));          \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    for (int i = 0; i < mr; i++) {                                                          \
        store(Cr + (long)i * ldc, r0[i], acc);                                              \
        store(Ci + (long)i * ldc, i0[i], acc);                                              \
        if (W == 32) {                                                                      \
            store(Cr + (long)i * ldc + 16, r1[i], acc);                                     \
            store(Ci + (long)i * ldc + 16, i1[i], acc);                                     \
        }                                                                                   \
    }                                                                                       \
}
DEFINE_COMPLEX(kernc32, 32)
DEFINE_COMPLEX(kernc16, 16)

#ifdef __AVX512BF16__
/* C[i][0:W] = sum over k-pairs of A[i][2kk:2kk+2] . B[kk][j][0:2]: bf16 pairs, float32 sums.
 * A rows are bf16 with K contiguous; B is one packed panel [K/2][W][2]. */
#define DEFINE_BF16(NAME, W)                                                                \
static void NAME(int mr, int K2, const uint16_t *A, long lda, const uint16_t *B,            \
                 float *C, long ldc) {                                                       \
    __m512 c0[MR], c1[MR];                                                                  \
    const uint32_t *a[MR];                                                                  \
    for (int i = 0; i < MR; i++) {                                                          \
        a[i] = (const uint32_t *)(A + (long)(i < mr ? i : mr - 1) * lda);                   \
        c0[i] = _mm512_setzero_ps();                                                        \
        c1[i] = _mm512_setzero_ps();                                                        \
    }                                                                                       \
    for (int kk = 0; kk < K2; kk++) {                                                       \
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(B + (long)kk * 2 * W));   \
        __m512bh b1 = b0;                                                                   \
        if (W == 32) b1 = (__m512bh)_mm512_loadu_si512((const void *)(B + (long)kk * 2 * W + 32)); \
        _Pragma("GCC unroll 12")                                                            \
        for (int i = 0; i < MR; i++) {                                                      \
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i][kk]);                      \
            c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);                                        \
            if (W == 32) c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);                           \
        }                                                                                   \
    }                                                                                       \
    for (int i = 0; i < mr; i++) {                                                          \
        _mm512_storeu_ps(C + (long)i * ldc, c0[i]);                                         \
        if (W == 32) _mm512_storeu_ps(C + (long)i * ldc + 16, c1[i]);                       \
    }                                                                                       \
}
DEFINE_BF16(kern32_bf16, 32)
DEFINE_BF16(kern16_bf16, 16)

/* float32 -> bfloat16, round to nearest even (count a multiple of 16). */
static void to_bf16(const float *src, uint16_t *dst, long count) {
    for (long i = 0; i < count; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
}
#endif


/* C (M x ncols) = A (M x K) . B (K x ncols), B rows at stride ldb (plain, not packed). */
static void gemm_plain(int M, int K, int ncols, const float *A, long lda, const float *B, long ldb,
                       int lrelu, float slope, float *C, long ldc) {
    int j = 0;
    for (; j + 32 <= ncols; j += 32)
        for (int i = 0; i < M; i += MR)
            (lrelu ? kern32_lrelu : kern32)(M - i < MR ? M - i : MR, K, A + (long)i * lda, lda,
                                           B + j, ldb, slope, C + (long)i * ldc + j, ldc, 0);
    for (; j < ncols; j += 16)
        for (int i = 0; i < M; i += MR)
            (lrelu ? kern16_lrelu : kern16)(M - i < MR ? M - i : MR, K, A + (long)i * lda, lda,
                                           B + j, ldb, slope, C + (long)i * ldc + j, ldc, 0);
}

static inline int row_valid(const hg_layout *lay, long t) {
    long r = t - lay->gap;
    if (r < 0 || r >= lay->batch * lay->stride) return 0;
    return (r % lay->stride) < lay->length;
}

/* Frames [f0, f0 + nf) of `phase`: see the file comment. Scratch: X, Y [nf][n][c], tile [MR][32]. */
static void conv_chunk(const hg_conv *cv, const hg_layout *lay, const float *src0, float *out,
                       const float *base, int phase, long f0, int nf, float *X, float *Y, float *tile) {
    const int n = cv->n, hop = cv->hop, d = cv->dil, ci = cv->c_in, co = cv->c_out;
    /* analysis: X[f] (n x ci) = A . lrelu(frame f), frame rows at stride d*ci */
    for (int f = 0; f < nf; f++) {
        const float *frame = src0 + ((f0 + f) * (long)hop * d + phase) * ci;
        gemm_plain(n, n, ci, cv->analysis, n, frame, (long)d * ci, 1, cv->slope,
                   X + (long)f * n * ci, ci);
    }
    /* mixing: per group, Y[:, g] (nf x size*co) = X[:, g] (nf x size*ci) . W_g */
#ifdef __AVX512BF16__
    if (cv->bf16) {
        uint16_t *Xb = (uint16_t *)(X + (long)nf * n * ci);  /* second half of the X scratch */
        to_bf16(X, Xb, (long)nf * n * ci);
        for (int g = 0; g < cv->ngroups; g++) {
            const int K = cv->g_size[g] * ci, ncols = cv->g_size[g] * co, w = cv->g_panel[g];
            const uint16_t *A = Xb + (long)cv->g_start[g] * ci;
            float *C = Y + (long)cv->g_start[g] * co;
            const long lda = (long)n * ci, ldc = (long)n * co;
            for (int j = 0; j < ncols; j += w) {
                const uint16_t *B = cv->g_weight16[g] + (long)j * K;
                for (int i = 0; i < nf; i += MR) {
                    int mr = nf - i < MR ? nf - i : MR;
                    if (w == 32) kern32_bf16(mr, K / 2, A + i * lda, lda, B, C + i * ldc + j, ldc);
                    else kern16_bf16(mr, K / 2, A + i * lda, lda, B, C + i * ldc + j, ldc);
                }
            }
        }
    } else
#endif
    for (int g = 0; g < cv->ngroups; g++) {
        const int K = cv->g_size[g] * ci, ncols = cv->g_size[g] * co, w = cv->g_panel[g];
        const float *A = X + (long)cv->g_start[g] * ci;
        float *C = Y + (long)cv->g_start[g] * co;
        const long lda = (long)n * ci, ldc = (long)n * co;
        if (cv->g_size[g] == 2) {  /* compact complex weights: Hr panels, then Hi panels */
            for (int j = 0; j < co; j += w) {
                const float *Br = cv->g_weight[g] + (long)j * ci;
                const float *Bi = cv->g_weight[g] + (long)co * ci + (long)j * ci;
                for (int i = 0; i < nf; i += MRC) {
                    int mr = nf - i < MRC ? nf - i : MRC;
                    float *cr = C + i * ldc + j, *cc = C + i * ldc + co + j;
                    for (int k0 = 0; k0 < ci; k0 += KB) {
                        const int kb = ci - k0 < KB ? ci - k0 : KB;
                        const float *ar = A + i * lda + k0, *ai = A + i * lda + ci + k0;
                        const float *br = Br + (long)k0 * w, *bi = Bi + (long)k0 * w;
                        if (w == 32) kernc32(mr, kb, ar, ai, lda, br, bi, cr, cc, ldc, k0 > 0);
                        else kernc16(mr, kb, ar, ai, lda, br, bi, cr, cc, ldc, k0 > 0);
                    }
                }
            }
            continue;
        }
        for (int j = 0; j < ncols; j += w) {
            const float *B = cv->g_weight[g] + (long)j * K;
            for (int i = 0; i < nf; i += MR) {
                int mr = nf - i < MR ? nf - i : MR;
                for (int k0 = 0; k0 < K; k0 += KB) {
                    const int kb = K - k0 < KB ? K - k0 : KB;
                    const float *a = A + i * lda + k0, *b = B + (long)k0 * w;
                    if (w == 32) kern32(mr, kb, a, lda, b, w, 0.f, C + i * ldc + j, ldc, k0 > 0);
                    else kern16(mr, kb, a, lda, b, w, 0.f, C + i * ldc + j, ldc, k0 > 0);
                }
            }
        }
    }
    /* synthesis: rows i of frame f are time (f0+f)*hop*d + phase + i*d */
    for (int f = 0; f < nf; f++) {
        const float *Yf = Y + (long)f * n * co;
        const long t0 = (f0 + f) * (long)hop * d + phase;
        for (int j = 0; j < co; j += 32) {
            const int w = co - j >= 32 ? 32 : 16;
            for (int i0 = 0; i0 < hop; i0 += MR) {
                const int mr = hop - i0 < MR ? hop - i0 : MR;
                if (w == 32) kern32(mr, n, cv->synthesis + (long)i0 * n, n, Yf + j, co, 0.f, tile, 32, 0);
                else kern16(mr, n, cv->synthesis + (long)i0 * n, n, Yf + j, co, 0.f, tile, 32, 0);
                for (int i = 0; i < mr; i++) {
                    const long t = t0 + (long)(i0 + i) * d;
                    float *dst = out + t * co + j;
                    const float *bs = base ? base + t * co + j : NULL;
                    if (row_valid(lay, t)) {
                        const float *v = tile + i * 32;
                        for (int e = 0; e < w; e++) {
                            float y = v[e] + (cv->bias ? cv->bias[j + e] : 0.f);
                            dst[e] = bs ? bs[e] + y : y;
                        }
                    } else {
                        memset(dst, 0, sizeof(float) * w);
                    }
                }
            }
        }
    }
}

/* Per-thread scratch kept between calls: fresh allocations of a few MB would be
 * page-faulted in on every call (the caller's threads are long-lived). */
static __thread float *scratch_buffers[3];
static __thread size_t scratch_sizes[3];

static float *scratch(int which, size_t bytes) {
    if (scratch_sizes[which] < bytes) {
        free(scratch_buffers[which]);
        size_t rounded = (bytes + 4095) / 4096 * 4096;
        scratch_buffers[which] = aligned_alloc(64, rounded);
        scratch_sizes[which] = scratch_buffers[which] ? rounded : 0;
    }
    return scratch_buffers[which];
}

#endif /* __AVX512F__ */

int hg_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Tasks [task0, task1) of (phase-major) chunks of `chunk` frames, `frames` frames per phase,
 * on `threads` OpenMP threads (built with OpenMP: the same runtime and threads as PyTorch's;
 * without, the caller runs disjoint task ranges on its own threads).
 * src0 points at the input row of time -padding. Returns 0, -1 (no memory), -2 (no bf16). */
int hg_fft_conv(const hg_conv *cv, const hg_layout *lay, const float *src0, float *out,
                const float *base, long frames, int chunk, long task0, long task1, int threads) {
#ifdef __AVX512F__
    if (cv->bf16 && !hg_has_bf16()) return -2;
    const long chunks = (frames + chunk - 1) / chunk;
    /* X holds the float32 spectra, then (bf16 mode) their bfloat16 copy: 1.5x */
    const size_t xs = sizeof(float) * ((size_t)chunk * cv->n * (size_t)cv->c_in * 3 / 2);
    const size_t ys = sizeof(float) * (size_t)chunk * cv->n * (size_t)cv->c_out;
    int failed = 0;
    (void)threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : failed)
    for (long task = task0; task < task1; task++) {
        float *X = scratch(0, xs), *Y = scratch(1, ys), *tile = scratch(2, sizeof(float) * MR * 32);
        if (!X || !Y || !tile) {
            failed = 1;
            continue;
        }
        const int phase = (int)(task / chunks);
        const long f0 = (task % chunks) * chunk;
        const int nf = (int)(frames - f0 < chunk ? frames - f0 : chunk);
        conv_chunk(cv, lay, src0, out, base, phase, f0, nf, X, Y, tile);
    }
    return failed ? -1 : 0;
#else
    (void)cv; (void)lay; (void)src0; (void)out; (void)base; (void)frames; (void)chunk; (void)task0;
    (void)task1; (void)threads;
    return -1;
#endif
}
"""
