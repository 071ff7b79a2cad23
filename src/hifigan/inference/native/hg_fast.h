/* Interface of the fused fast-convolution kernel (hg_fast.c), shared with Python (fast_native.py).
 *
 * The structures Python fills in are defined once, here, as X-macro field lists:
 * the struct declarations and the layout table that `hg_field` returns are both
 * generated from them, so they cannot disagree. Python compares its ctypes
 * mirrors with that table when it loads the library and refuses the kernel
 * (falling back to PyTorch) if a field differs in name, order, offset or size.
 */
#ifndef HG_FAST_H
#define HG_FAST_H

#include <stdint.h>

/* One stride-1 convolution layer, prepared by fast_native.NativeConv1d. */
#define HG_CONV_FIELDS(X)                                                                   \
    X(int, c_in)                      /* input channels (a multiple of 16) */               \
    X(int, c_out)                     /* output channels (a multiple of 16) */              \
    X(int, n)                         /* transform length (samples per frame) */            \
    X(int, hop)                       /* outputs per frame */                               \
    X(int, dil)                       /* dilation */                                        \
    X(int, ngroups)                   /* transform row groups mixed together */             \
    X(const int *, g_start)           /* first transform row of each group */               \
    X(const int *, g_size)            /* 1 (real bin) or 2 (re, im of a complex bin) */     \
    X(const float *const *, g_weight) /* size 1: packed [panels][c_in][w]; size 2: the      \
                                         compact Hr then Hi, each [panels][c_in][w] */      \
    X(const int *, g_panel)           /* panel width of each group (32 or 16) */            \
    X(const float *, analysis)        /* [n][n] (used when folds is 0) */                   \
    X(int, folds)                     /* analysis by `folds` halvings (see hg_fast.c), or 0 */ \
    X(const int *, fold_rows)         /* rows of X from each leaf: u_L, v_L, ..., v_1 */    \
    X(const float *, fold_analysis)   /* the leaves' matrices in that order, rows x length */ \
    X(const float *, synthesis)       /* [hop][n] */                                        \
    X(int, fold_synthesis)            /* synthesis by halves (needs folds and hop >= n/2) */  \
    X(const float *, synthesis_pq)    /* then: [n/2][even rows] and [n/2][odd rows] */        \
    X(const float *, bias)            /* [c_out] or NULL */                                 \
    X(float, slope)                   /* leaky ReLU slope applied to the input */           \
    X(int, bf16)                      /* mix in bfloat16 (float32 sums) */                  \
    X(const uint16_t *const *, g_weight16) /* bf16 weights, packed [panels][K/2][w][2] */

/* Where the examples of a batch lie on the time axis: rows gap + b * stride + [0, length). */
#define HG_LAYOUT_FIELDS(X) X(long, gap) X(long, stride) X(long, length) X(long, batch)

#define HG_DECLARE_FIELD(type, name) type name;
typedef struct { HG_CONV_FIELDS(HG_DECLARE_FIELD) } hg_conv;
typedef struct { HG_LAYOUT_FIELDS(HG_DECLARE_FIELD) } hg_layout;
#undef HG_DECLARE_FIELD

/* Entry `index` of the layout table: a structure's name, a field name ("" for the
 * structure itself), its offset and size in bytes. Returns 0 past the last entry. */
int hg_field(int index, const char **structure, const char **field, long *offset, long *size);

/* The vector code this build runs: "avx512", "avx2", "neon", or "" (none: unusable). */
const char *hg_variant(void);

/* Whether the running CPU has the instructions this build was compiled for. */
int hg_cpu_supported(void);

/* Whether this build can mix in bfloat16 (AVX512_BF16). */
int hg_has_bf16(void);

/* Whether this build runs its tasks on OpenMP threads. */
int hg_openmp(void);

/* Tasks [task0, task1) of one convolution (see hg_fast.c). Returns 0, -1 (no memory),
 * -2 (bf16 asked of a build without it), -3 (a build without vector code). */
int hg_fft_conv(const hg_conv *cv, const hg_layout *lay, const float *src0, float *out,
                const float *base, long frames, int chunk, long task0, long task1, int threads);

/* Tiles [task0, task1) of a fused residual pair base + conv2(lrelu(conv1(lrelu(src)))), added
 * into out with `accumulate`, then divided by a nonzero `divisor`, then with `activate` passed
 * through leaky_relu(., after) (see hg_fast.c). Same return codes as hg_fft_conv. */
int hg_fft_pair(const hg_conv *c1, const hg_conv *c2, const hg_layout *lay, const float *src, float *out,
                const float *base, long frames1, long frames2, int chunk, long task0, long task1,
                int threads, int accumulate, float divisor, int activate, float after);

#endif /* HG_FAST_H */
