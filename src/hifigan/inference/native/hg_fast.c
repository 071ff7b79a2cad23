/* Fused short-block FFT convolution for HiFi-GAN synthesis on CPUs with AVX-512,
 * AVX2 + FMA or 64-bit ARM NEON (hg_simd.h picks the vector code at compile time).
 *
 * One call computes, for a range of frames of one stride-1 Conv1d layer,
 *   out[t] = base[t] + bias + conv(leaky_relu(src))[t]
 * on time-major [time, channels] float32 sequences, by overlap-save with a
 * real DFT of length N done as small matrix products:
 *   analysis   X_f = A (N x N) . lrelu(frame_f) (N x C_in)        per frame
 *   mixing     Y_g = X_g . W_g                                     per DFT bin group
 *   synthesis  out rows = S (hop x N) . Y_f (N x C_out)            per frame
 * Everything of a chunk of frames stays in L2; only the input, the base and
 * the output touch memory. All products use one register-tile kernel (MR rows
 * of 16 or 32 columns) with fused multiply-adds in float32.
 *
 * Rows outside the valid examples (gaps between batch items, the tail) are
 * written as zero, so they stay the next layer's zero padding.
 * The structures are declared in hg_fast.h, which is their one definition.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hg_fast.h"
#include "hg_simd.h"

/* ---- the layout table Python checks its ctypes mirrors against ---------------------- */

typedef struct {
    const char *structure, *field;
    long offset, size;
} hg_field_info;

#define HG_CONV_ENTRY(type, name) {"hg_conv", #name, (long)offsetof(hg_conv, name), (long)sizeof(((hg_conv *)0)->name)},
#define HG_LAYOUT_ENTRY(type, name) \
    {"hg_layout", #name, (long)offsetof(hg_layout, name), (long)sizeof(((hg_layout *)0)->name)},

static const hg_field_info hg_fields[] = {
    {"hg_conv", "", 0, (long)sizeof(hg_conv)},
    HG_CONV_FIELDS(HG_CONV_ENTRY)
    {"hg_layout", "", 0, (long)sizeof(hg_layout)},
    HG_LAYOUT_FIELDS(HG_LAYOUT_ENTRY)
};

int hg_field(int index, const char **structure, const char **field, long *offset, long *size) {
    if (index < 0 || index >= (int)(sizeof(hg_fields) / sizeof(hg_fields[0]))) return 0;
    *structure = hg_fields[index].structure;
    *field = hg_fields[index].field;
    *offset = hg_fields[index].offset;
    *size = hg_fields[index].size;
    return 1;
}

/* ---- what this build is ---------------------------------------------------------------- */

const char *hg_variant(void) { return HG_VARIANT; }

int hg_cpu_supported(void) {
#if defined(__x86_64__) || defined(__i386__)
    int ok = 1;
    __builtin_cpu_init();
#ifdef __AVX512F__
    ok = ok && __builtin_cpu_supports("avx512f");
#endif
#ifdef __AVX2__
    ok = ok && __builtin_cpu_supports("avx2");
#endif
#ifdef __FMA__
    ok = ok && __builtin_cpu_supports("fma");
#endif
    return ok;
#else
    return 1; /* 64-bit ARM: NEON is part of the architecture */
#endif
}

int hg_has_bf16(void) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
    return 1;
#else
    return 0;
#endif
}

int hg_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#ifdef HG_SIMD

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Sums over long K run in blocks of KB, each added to the output: rounding error then grows
 * with KB + K / KB terms instead of K (as in blocked BLAS), keeping the path as accurate as
 * direct convolution. */
#define KB 64

ALWAYS_INLINE void store(float *p, vf v, int acc) { v_store(p, acc ? v_add(v_load(p), v) : v); }

/* How a tile of a layer's output is written (synthesis): row i of the tile is one time step,
 * valid (bit i of `valid`) -> y = (sum + bias) + base, else 0 (a gap or the tail); with
 * `accumulate` the row becomes out + y, and with a nonzero `divisor` that divided by it (the
 * resblock fusion's sum and average, in the order PyTorch would add and divide); with
 * `activate`, leaky_relu(that, after): the next layer's input, so that no pass is needed. The bias and
 * base pointers are at the tile's first column; base rows have the output's row stride. */
typedef struct {
    const float *bias, *base;
    unsigned valid;
    int accumulate;
    float divisor;
    int activate;  /* then the next layer's leaky ReLU, of slope `after` */
    float after;
} hg_epilogue;

/* The accumulate / divisor / activation part of an output row's value (see hg_epilogue). */
ALWAYS_INLINE vf finish(vf y, const float *dst, const hg_epilogue *e) {
    if (e->accumulate) y = v_add(v_load(dst), y);
    if (e->divisor != 0.f) y = v_div(y, v_set1(e->divisor));
    if (e->activate) y = v_max(y, v_mul(y, v_set1(e->after)));
    return y;
}

/* One register tile: C[i][0:nv VL] (+)= sum_k A[i][k] B[k][0:nv VL] for i < rows (a
 * compile-time constant after inlining: see ROWS_SWITCH); B optionally leaky-ReLU'd on load. */
ALWAYS_INLINE void tile(const int nv, const int lrelu, const int rows, int K, const float *A, long lda,
                        const float *B, long ldb, float slope, float *C, long ldc, int acc,
                        const hg_epilogue *out) {
    vf c[MR][NV];
    const float *a[MR];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
        a[i] = A + (long)i * lda;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) c[i][v] = v_zero();
    }
    const vf s = v_set1(slope);
    for (int k = 0; k < K; k++) {
        vf b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            b[v] = v_load(B + (long)k * ldb + v * VL);
            if (lrelu) b[v] = v_max(b[v], v_mul(b[v], s));
        }
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            const vf av = v_set1(a[i][k]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) c[i][v] = v_fmadd(av, b[v], c[i][v]);
        }
    }
    if (out) { /* a layer's output rows: the epilogue fused into the tile's stores */
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            float *dst = C + (long)i * ldc;
            if (!((out->valid >> i) & 1u)) {
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) v_store(dst + v * VL, v_zero());
                continue;
            }
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                vf y = c[i][v];
                if (out->bias) y = v_add(y, v_load(out->bias + v * VL));
                if (out->base) y = v_add(v_load(out->base + (long)i * ldc + v * VL), y);
                v_store(dst + v * VL, finish(y, dst + v * VL, out));
            }
        }
        return;
    }
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) store(C + (long)i * ldc + v * VL, c[i][v], acc);
    }
}

/* Calls CALL(r) with r = mr as a constant, so that a tile of fewer rows than MR (the short
 * edges: 8-row Winograd analysis, 6- or 26-row synthesis, the last frames of a chunk) does
 * only the work of its rows instead of repeating one row up to MR. */
#define ROWS_CASE(r, CALL, MAX) case r: if (r <= MAX) { CALL(r); } break;
#define ROWS_SWITCH(mr, MAX, CALL)                                                          \
    switch (mr) {                                                                           \
        ROWS_CASE(1, CALL, MAX) ROWS_CASE(2, CALL, MAX) ROWS_CASE(3, CALL, MAX)             \
        ROWS_CASE(4, CALL, MAX) ROWS_CASE(5, CALL, MAX) ROWS_CASE(6, CALL, MAX)             \
        ROWS_CASE(7, CALL, MAX) ROWS_CASE(8, CALL, MAX) ROWS_CASE(9, CALL, MAX)             \
        ROWS_CASE(10, CALL, MAX) ROWS_CASE(11, CALL, MAX) ROWS_CASE(12, CALL, MAX)          \
        default: break;                                                                     \
    }

/* C[i][0:W] (+)= sum_k A[i][k] * B[k][0:W] for a panel of W (16 or 32) columns: register
 * tiles of up to NV vectors side by side. */
ALWAYS_INLINE void panel(const int W, const int lrelu, int mr, int K, const float *A, long lda,
                         const float *B, long ldb, float slope, float *C, long ldc, int acc,
                         const hg_epilogue *out) {
    const int nv = W / VL < NV ? W / VL : NV;
    for (int j = 0; j < W; j += nv * VL) {
        hg_epilogue shifted, *o = NULL;
        if (out) { /* the same epilogue, its column pointers moved to column j */
            shifted = *out;
            if (shifted.bias) shifted.bias += j;
            if (shifted.base) shifted.base += j;
            o = &shifted;
        }
#define TILE_CALL(r) tile(nv, lrelu, r, K, A, lda, B + j, ldb, slope, C + j, ldc, acc, o)
        ROWS_SWITCH(mr, MR, TILE_CALL)
#undef TILE_CALL
    }
}

#define DEFINE_PANEL(NAME, W, LRELU)                                                        \
    static void NAME(int mr, int K, const float *A, long lda, const float *B, long ldb,    \
                     float slope, float *C, long ldc, int acc) {                            \
        panel(W, LRELU, mr, K, A, lda, B, ldb, slope, C, ldc, acc, NULL);                   \
    }
DEFINE_PANEL(kern32, 32, 0)
DEFINE_PANEL(kern32_lrelu, 32, 1)
DEFINE_PANEL(kern16, 16, 0)
DEFINE_PANEL(kern16_lrelu, 16, 1)

/* Synthesis straight into the layer's output: rows of C at stride ldc, written as `out` says. */
#define DEFINE_OUT_PANEL(NAME, W)                                                           \
    static void NAME(int mr, int K, const float *A, long lda, const float *B, long ldb,    \
                     float *C, long ldc, const hg_epilogue *out) {                          \
        panel(W, 0, mr, K, A, lda, B, ldb, 0.f, C, ldc, 0, out);                            \
    }
DEFINE_OUT_PANEL(kern32_out, 32)
DEFINE_OUT_PANEL(kern16_out, 16)

/* A complex DFT bin from its compact weights: for output columns j of one tile,
 *   Cr[i][j] = sum_k Ar[i][k] Hr[k][j] - Ai[i][k] Hi[k][j]
 *   Ci[i][j] = sum_k Ar[i][k] Hi[k][j] + Ai[i][k] Hr[k][j]
 * (the 2x2 real block [[Hr, Hi], [-Hi, Hr]] without storing it: half the weight memory). */
ALWAYS_INLINE void ctile(const int nv, const int rows, int K, const float *Ar, const float *Ai, long lda,
                         const float *Br, const float *Bi, long ldb, float *Cr, float *Ci, long ldc,
                         int acc) {
    vf re[MRC][NVC], im[MRC][NVC];
    const float *ar[MRC], *ai[MRC];
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
        const long row = (long)i * lda;
        ar[i] = Ar + row;
        ai[i] = Ai + row;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) re[i][v] = im[i][v] = v_zero();
    }
    for (int k = 0; k < K; k++) {
        vf hr[NVC], hi[NVC];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            hr[v] = v_load(Br + (long)k * ldb + v * VL);
            hi[v] = v_load(Bi + (long)k * ldb + v * VL);
        }
#pragma GCC unroll 8
        for (int i = 0; i < rows; i++) {
            const vf xr = v_set1(ar[i][k]), xi = v_set1(ai[i][k]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                re[i][v] = v_fnmadd(xi, hi[v], v_fmadd(xr, hr[v], re[i][v]));
                im[i][v] = v_fmadd(xi, hr[v], v_fmadd(xr, hi[v], im[i][v]));
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            store(Cr + (long)i * ldc + v * VL, re[i][v], acc);
            store(Ci + (long)i * ldc + v * VL, im[i][v], acc);
        }
    }
}

/* One panel of W columns (rows of Br, Bi at stride W): tiles of up to NVC vectors. */
ALWAYS_INLINE void cpanel(const int W, int mr, int K, const float *Ar, const float *Ai, long lda,
                          const float *Br, const float *Bi, float *Cr, float *Ci, long ldc, int acc) {
    const int nv = W / VL < NVC ? W / VL : NVC;
    for (int j = 0; j < W; j += nv * VL) {
#define CTILE_CALL(r) ctile(nv, r, K, Ar, Ai, lda, Br + j, Bi + j, W, Cr + j, Ci + j, ldc, acc)
        ROWS_SWITCH(mr, MRC, CTILE_CALL)
#undef CTILE_CALL
    }
}

static void kernc32(int mr, int K, const float *Ar, const float *Ai, long lda, const float *Br,
                    const float *Bi, float *Cr, float *Ci, long ldc, int acc) {
    cpanel(32, mr, K, Ar, Ai, lda, Br, Bi, Cr, Ci, ldc, acc);
}

static void kernc16(int mr, int K, const float *Ar, const float *Ai, long lda, const float *Br,
                    const float *Bi, float *Cr, float *Ci, long ldc, int acc) {
    cpanel(16, mr, K, Ar, Ai, lda, Br, Bi, Cr, Ci, ldc, acc);
}

#if defined(__AVX512F__) && defined(__AVX512BF16__)
/* C[i][0:W] = sum over k-pairs of A[i][2kk:2kk+2] . B[kk][j][0:2]: bf16 pairs, float32 sums.
 * A rows are bf16 with K contiguous; B is one packed panel [K/2][W][2]. AVX-512 only. */
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

/* Floats between the spectra of consecutive frames in the X and Y scratch: n * c plus a cache
 * line, since n * c is a multiple of 4 KB and the rows of a register tile (one per frame) would
 * otherwise all map to the same L1 set and evict each other. */
#define FRAME_PAD 16
static inline long frame_stride(int n, int c) { return (long)n * c + FRAME_PAD; }

/* The time of frame q's first output when the frames of all d phases are numbered phase-major,
 * per_phase of them each: frame f of phase p starts at f hop d + p (its outputs every d rows). */
static inline long frame_time(long q, long per_phase, int hop, int d) {
    return (q % per_phase) * (long)hop * d + q / per_phase;
}

/* Bit i set when time t + i d (i < count) holds an example row (not a gap, not the tail):
 * one division per tile instead of one per row (a 64-bit division costs tens of cycles). */
static inline unsigned valid_rows(const hg_layout *lay, long t, long d, int count) {
    const long stride = lay->stride, end = lay->batch * stride;
    long r = t - lay->gap, offset = r >= 0 ? r % stride : 0; /* offset = r mod stride once r >= 0 */
    unsigned mask = 0;
    for (int i = 0; i < count; i++) {
        if (r >= 0 && r < end && offset < lay->length) mask |= 1u << i;
        offset = r >= 0 ? offset + d : r + d;
        r += d;
        while (offset >= stride) offset -= stride;
    }
    return mask;
}

/* X_f (n x ci) = A . lrelu(frame), frame rows at stride ldf.
 *
 * Folded (cv->folds = L > 0): the DFT rows of even bins repeat after n/2 samples and those of
 * odd bins change sign, so with u = x[:n/2] + x[n/2:] and v = x[:n/2] - x[n/2:] the even bins
 * are a product with u and the odd bins one with v, each of half the length: half the
 * multiply-adds. The even part is halved again, L times in all. X's rows are ordered by the
 * leaf they come from: u_L, v_L, v_{L-1}, ..., v_1 (fast_native.fold_plan permutes the rows,
 * the groups and the synthesis to match). F: scratch of 2 n ci floats. */
static void analyse(const hg_conv *cv, const float *frame, long ldf, float *Xf, float *F) {
    const int n = cv->n, ci = cv->c_in, L = cv->folds;
    if (!L) {
        gemm_plain(n, n, ci, cv->analysis, n, frame, ldf, 1, cv->slope, Xf, ci);
        return;
    }
    const vf s = v_set1(cv->slope);
    /* level l (1..L) holds u_l then v_l, each n >> l rows, from offset level_at[l] */
    long level_at[8];
    int half = n / 2;
    level_at[1] = 0;
    for (int t = 0; t < half; t++) {
        float *u = F + (long)t * ci, *v = F + (long)(half + t) * ci;
        const float *a = frame + t * ldf, *b = frame + (t + half) * ldf;
        for (int c = 0; c < ci; c += VL) {
            vf x = v_load(a + c), y = v_load(b + c);
            x = v_max(x, v_mul(x, s));
            y = v_max(y, v_mul(y, s));
            v_store(u + c, v_add(x, y));
            v_store(v + c, v_sub(x, y));
        }
    }
    for (int l = 2; l <= L; l++) {
        const float *prev = F + level_at[l - 1];  /* u_{l-1}: 2 * half rows */
        level_at[l] = level_at[l - 1] + 2L * half * ci;
        half /= 2;
        float *u = F + level_at[l], *v = u + (long)half * ci;
        for (int t = 0; t < half; t++)
            for (int c = 0; c < ci; c += VL) {
                const vf x = v_load(prev + (long)t * ci + c), y = v_load(prev + (long)(t + half) * ci + c);
                v_store(u + (long)t * ci + c, v_add(x, y));
                v_store(v + (long)t * ci + c, v_sub(x, y));
            }
    }
    /* leaves in X's row order: u_L, v_L, v_{L-1}, ..., v_1 */
    const float *M = cv->fold_analysis;
    long row = 0;
    for (int leaf = 0; leaf <= L; leaf++) {
        const int level = leaf == 0 ? L : L + 1 - leaf, len = n >> level, rows = cv->fold_rows[leaf];
        const float *signal = F + level_at[level] + (leaf == 0 ? 0 : (long)len * ci);
        if (rows) gemm_plain(rows, len, ci, M, len, signal, ci, 0, 0.f, Xf + row * ci, ci);
        M += (long)rows * len;
        row += rows;
    }
}

/* The synthesis by halves (cv->fold_synthesis): an even bin's inverse-DFT column repeats after
 * n/2 outputs and an odd bin's changes sign, so with P = S_even . Y_even and Q = S_odd . Y_odd
 * over the last n/2 outputs (n/2 rows each, from cv->synthesis_pq), output j >= n/2 is
 * P[j - n/2] + Q[j - n/2] and output j < n/2 is P[j] - Q[j]: n/2 x n multiply-adds per
 * frame and channel instead of hop x n. X's even bins are its first rows (fold_plan's order). */
static void synthesise_folded(const hg_conv *cv, const hg_layout *lay, int nf, const float *Y, long yf,
                              float *out, const float *base, long q0, long per_phase, const hg_epilogue *how) {
    const int n = cv->n, hop = cv->hop, d = cv->dil, co = cv->c_out, half = n / 2;
    const int odd = cv->fold_rows[cv->folds], even = n - odd, first = n - hop; /* output 0 is j = n - hop */
    const float *Sp = cv->synthesis_pq, *Sq = Sp + (long)half * even;
    float pq[2 * 64 * 32]; /* P then Q, half rows of 32 columns (n <= 128) */
    float *P = pq, *Q = pq + half * 32;
    for (int f = 0; f < nf; f++) {
        const float *Yf = Y + f * yf;
        const long t0 = frame_time(q0 + f, per_phase, hop, d);
        for (int j = 0; j < co; j += 32) {
            const int w = co - j >= 32 ? 32 : 16;
            for (int i0 = 0; i0 < half; i0 += MR) {
                const int mr = half - i0 < MR ? half - i0 : MR;
                if (w == 32) {
                    kern32(mr, even, Sp + (long)i0 * even, even, Yf + j, co, 0.f, P + i0 * 32, 32, 0);
                    kern32(mr, odd, Sq + (long)i0 * odd, odd, Yf + (long)even * co + j, co, 0.f, Q + i0 * 32, 32, 0);
                } else {
                    kern16(mr, even, Sp + (long)i0 * even, even, Yf + j, co, 0.f, P + i0 * 32, 32, 0);
                    kern16(mr, odd, Sq + (long)i0 * odd, odd, Yf + (long)even * co + j, co, 0.f, Q + i0 * 32, 32, 0);
                }
            }
            for (int i0 = 0; i0 < hop; i0 += 32) {
                const int rows = hop - i0 < 32 ? hop - i0 : 32;
                const unsigned valid = valid_rows(lay, t0 + (long)i0 * d, d, rows);
                for (int i = 0; i < rows; i++) {
                    const long t = t0 + (long)(i0 + i) * d;
                    float *dst = out + t * co + j;
                    if (!((valid >> i) & 1u)) {
                        memset(dst, 0, sizeof(float) * w);
                        continue;
                    }
                    const int jj = first + i0 + i, m = jj >= half ? jj - half : jj;
                    const float *bs = base ? base + t * co + j : NULL;
                    for (int c = 0; c < w; c += VL) {
                        const vf p = v_load(P + m * 32 + c), q = v_load(Q + m * 32 + c);
                        vf y = jj >= half ? v_add(p, q) : v_sub(p, q);
                        if (cv->bias) y = v_add(y, v_load(cv->bias + j + c));
                        if (bs) y = v_add(v_load(bs + c), y);
                        v_store(dst + c, finish(y, dst + c, how));
                    }
                }
            }
        }
    }
}

/* Frames [q0, q0 + nf) of the layer, numbered phase-major (`per_phase` frames per phase:
 * see frame_time), so that one chunk may hold frames of several phases and the mixing
 * weights are read once for all of them; `how`: accumulate, divisor and activation as in
 * hg_epilogue (its other fields are ignored).
 * Scratch: X, Y [nf][n][c], F [2 n][c]. */
static void conv_chunk(const hg_conv *cv, const hg_layout *lay, const float *src0, float *out,
                       const float *base, long q0, int nf, long per_phase, float *X, float *Y, float *F,
                       const hg_epilogue *how) {
    const int n = cv->n, hop = cv->hop, d = cv->dil, ci = cv->c_in, co = cv->c_out;
    const long xf = frame_stride(n, ci), yf = frame_stride(n, co);
    /* analysis: X[f] (n x ci) = A . lrelu(frame f), frame rows at stride d*ci */
    for (int f = 0; f < nf; f++)
        analyse(cv, src0 + frame_time(q0 + f, per_phase, hop, d) * ci, (long)d * ci, X + f * xf, F);
    /* mixing: per group, Y[:, g] (nf x size*co) = X[:, g] (nf x size*ci) . W_g */
#if defined(__AVX512F__) && defined(__AVX512BF16__)
    if (cv->bf16) {
        uint16_t *Xb = (uint16_t *)(X + nf * xf);  /* second half of the X scratch */
        to_bf16(X, Xb, nf * xf);
        for (int g = 0; g < cv->ngroups; g++) {
            const int K = cv->g_size[g] * ci, ncols = cv->g_size[g] * co, w = cv->g_panel[g];
            const uint16_t *A = Xb + (long)cv->g_start[g] * ci;
            float *C = Y + (long)cv->g_start[g] * co;
            const long lda = xf, ldc = yf;
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
        const long lda = xf, ldc = yf;
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
    /* synthesis: rows i of a frame are times frame_time + i*d, rows of `out` at
     * stride d*co; the bias, the residual base and the zeroed gaps are written by the tile */
    const long ldo = (long)d * co;
    if (cv->fold_synthesis) {
        synthesise_folded(cv, lay, nf, Y, yf, out, base, q0, per_phase, how);
        return;
    }
    for (int f = 0; f < nf; f++) {
        const float *Yf = Y + f * yf;
        const long t0 = frame_time(q0 + f, per_phase, hop, d);
        for (int i0 = 0; i0 < hop; i0 += MR) {
            const int mr = hop - i0 < MR ? hop - i0 : MR;
            const long t = t0 + (long)i0 * d;
            const unsigned valid = valid_rows(lay, t, d, mr);
            for (int j = 0; j < co; j += 32) {
                const hg_epilogue e = {cv->bias ? cv->bias + j : NULL, base ? base + t * co + j : NULL, valid,
                                       how->accumulate, how->divisor, how->activate, how->after};
                const float *S = cv->synthesis + (long)i0 * n;
                if (co - j >= 32) kern32_out(mr, n, S, n, Yf + j, co, out + t * co + j, ldo, &e);
                else kern16_out(mr, n, S, n, Yf + j, co, out + t * co + j, ldo, &e);
            }
        }
    }
}

/* Per-thread scratch kept between calls: fresh allocations of a few MB would be
 * page-faulted in on every call (the caller's threads are long-lived). */
static __thread float *scratch_buffers[4];
static __thread size_t scratch_sizes[4];

static float *scratch(int which, size_t bytes) {
    if (scratch_sizes[which] < bytes) {
        free(scratch_buffers[which]);
        size_t rounded = (bytes + 4095) / 4096 * 4096;
        scratch_buffers[which] = aligned_alloc(64, rounded);
        scratch_sizes[which] = scratch_buffers[which] ? rounded : 0;
    }
    return scratch_buffers[which];
}

#endif /* HG_SIMD */

/* Tasks [task0, task1) of chunks of `chunk` frames (phase-major: frame_time), `frames` frames per phase,
 * on `threads` OpenMP threads (built with OpenMP: the same runtime and threads as PyTorch's;
 * without, the caller runs disjoint task ranges on its own threads).
 * src0 points at the input row of time -padding. Returns 0, -1 (no memory), -2 (no bf16),
 * -3 (no vector code in this build). */
int hg_fft_conv(const hg_conv *cv, const hg_layout *lay, const float *src0, float *out,
                const float *base, long frames, int chunk, long task0, long task1, int threads) {
#ifdef HG_SIMD
    if (cv->bf16 && !hg_has_bf16()) return -2;
    const long all = frames * cv->dil;
    /* X holds the float32 spectra, then (bf16 mode) their bfloat16 copy: 1.5x */
    const size_t xs = sizeof(float) * ((size_t)chunk * frame_stride(cv->n, cv->c_in) * 3 / 2);
    const size_t ys = sizeof(float) * (size_t)chunk * frame_stride(cv->n, cv->c_out);
    int failed = 0;
    (void)threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : failed)
    for (long task = task0; task < task1; task++) {
        float *X = scratch(0, xs), *Y = scratch(1, ys), *F = scratch(2, sizeof(float) * 2 * cv->n * (size_t)cv->c_in);
        if (!X || !Y || !F) {
            failed = 1;
            continue;
        }
        const long q0 = task * chunk;
        if (q0 >= all) continue;
        const hg_epilogue plain = {0};
        conv_chunk(cv, lay, src0, out, base, q0, (int)(all - q0 < chunk ? all - q0 : chunk), frames, X, Y, F, &plain);
    }
    return failed ? -1 : 0;
#else
    (void)cv; (void)lay; (void)src0; (void)out; (void)base; (void)frames; (void)chunk; (void)task0;
    (void)task1; (void)threads;
    return -3;
#endif
}

/* A residual pair, out[t] = base[t] + conv2(lrelu(conv1(lrelu(src))))[t], on time tiles: each
 * task computes conv1 over its tile plus conv2's halo into a thread-private buffer H (in L2)
 * and conv2 from there, so the intermediate activation never goes to memory (per layer it
 * would be written and read back in full). Tile `task` is times [task L, (task + 1) L) with
 * L = frames2 hop2 dil2; conv1 runs frames1 frames per phase from time task L - pad2, enough
 * for conv2's reads. src, out and base point at time 0; the caller provides the margins
 * (fast_native.NativePair). out must not be src: neighbouring tiles still read it. With
 * `accumulate` (and `divisor`, `activate`) the result is added into out (and divided, and
 * activated by leaky_relu(., after): hg_epilogue). */
int hg_fft_pair(const hg_conv *c1, const hg_conv *c2, const hg_layout *lay, const float *src, float *out,
                const float *base, long frames1, long frames2, int chunk, long task0, long task1,
                int threads, int accumulate, float divisor, int activate, float after) {
#ifdef HG_SIMD
    if ((c1->bf16 || c2->bf16) && !hg_has_bf16()) return -2;
    const long pad1 = (long)c1->dil * (c1->n - c1->hop) / 2, pad2 = (long)c2->dil * (c2->n - c2->hop) / 2;
    const long tile = frames2 * c2->hop * c2->dil, rows1 = frames1 * c1->hop * c1->dil;
    const long fx1 = frame_stride(c1->n, c1->c_in), fx2 = frame_stride(c2->n, c2->c_in);
    const long fy1 = frame_stride(c1->n, c1->c_out), fy2 = frame_stride(c2->n, c2->c_out);
    const size_t xs = sizeof(float) * ((size_t)chunk * (fx1 > fx2 ? fx1 : fx2) * 3 / 2);
    const size_t ys = sizeof(float) * (size_t)chunk * (fy1 > fy2 ? fy1 : fy2);
    const long f1 = 2L * c1->n * c1->c_in, f2 = 2L * c2->n * c2->c_in;
    const size_t fs = sizeof(float) * (size_t)(f1 > f2 ? f1 : f2);
    const size_t hs = sizeof(float) * (size_t)rows1 * c1->c_out;
    int failed = 0;
    (void)threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : failed)
    for (long task = task0; task < task1; task++) {
        float *X = scratch(0, xs), *Y = scratch(1, ys), *F = scratch(2, fs), *H = scratch(3, hs);
        if (!X || !Y || !F || !H) {
            failed = 1;
            continue;
        }
        const long a = task * tile, h0 = a - pad2; /* H row 0 is time h0 */
        const hg_epilogue plain = {0}, last = {NULL, NULL, 0, accumulate, divisor, activate, after};
        hg_layout local = *lay;
        local.gap = lay->gap - h0;
        const float *src1 = src + (h0 - pad1) * c1->c_in;
        const long all1 = frames1 * c1->dil, all2 = frames2 * c2->dil; /* every phase's frames */
        for (long q0 = 0; q0 < all1; q0 += chunk)
            conv_chunk(c1, &local, src1, H, NULL, q0, (int)(all1 - q0 < chunk ? all1 - q0 : chunk), frames1,
                       X, Y, F, &plain);
        local.gap = lay->gap - a;
        for (long q0 = 0; q0 < all2; q0 += chunk)
            conv_chunk(c2, &local, H, out + a * c2->c_out, base ? base + a * c2->c_out : NULL, q0,
                       (int)(all2 - q0 < chunk ? all2 - q0 : chunk), frames2, X, Y, F, &last);
    }
    return failed ? -1 : 0;
#else
    (void)c1; (void)c2; (void)lay; (void)src; (void)out; (void)base; (void)frames1; (void)frames2;
    (void)chunk; (void)task0; (void)task1; (void)threads; (void)accumulate; (void)divisor; (void)activate;
    (void)after;
    return -3;
#endif
}
