/* Replays one recorded call of the fused fast-convolution kernel (hg_fast.c) from a case file,
 * so that a build for another instruction set (NEON under qemu-aarch64, or AVX2) can be checked
 * bit for bit against the result Python got on this machine. Written by scripts/check_neon.py,
 * which also documents the case format (`write_case`); everything is little-endian.
 *
 *   neon_harness fields             print the hg_field layout table of this build
 *   neon_harness CASE OUT           run CASE single-threaded, write the out buffer (float32) to OUT
 *
 * Build: cc -O3 <target flags> -std=gnu11 -I src/hifigan/inference/native
 *        scripts/neon_harness.c src/hifigan/inference/native/hg_fast.c -o neon_harness
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hg_fast.h"

#define MAGIC "HGCASE01"
#define KIND_CONV 1
#define KIND_PAIR 2

static FILE *in;

static void fail(const char *what) {
    fprintf(stderr, "neon_harness: %s\n", what);
    exit(3);
}

static void read_exact(void *p, size_t bytes) {
    if (bytes && fread(p, 1, bytes, in) != bytes) fail("case file truncated");
}

static int64_t read_i64(void) {
    int64_t v;
    read_exact(&v, sizeof v);
    return v;
}

/* An array record: int64 count, then count elements of `item` bytes; count -1 is NULL. */
static void *read_array(size_t item, int64_t *count_out) {
    const int64_t count = read_i64();
    if (count_out) *count_out = count;
    if (count < 0) return NULL;
    void *p = malloc(count ? (size_t)count * item : 1);
    if (!p) fail("out of memory");
    read_exact(p, (size_t)count * item);
    return p;
}

static void read_conv(hg_conv *cv) {
    memset(cv, 0, sizeof *cv);
    cv->c_in = (int)read_i64();
    cv->c_out = (int)read_i64();
    cv->n = (int)read_i64();
    cv->hop = (int)read_i64();
    cv->dil = (int)read_i64();
    cv->ngroups = (int)read_i64();
    cv->folds = (int)read_i64();
    cv->fold_synthesis = (int)read_i64();
    cv->bf16 = (int)read_i64();
    if (cv->bf16) fail("bf16 cases are not supported");
    int64_t count;
    const float *slope = read_array(sizeof(float), &count);
    if (count != 1) fail("slope: expected one float");
    cv->slope = *slope;
    cv->g_start = read_array(sizeof(int32_t), &count);
    if (count != cv->ngroups) fail("g_start: wrong count");
    cv->g_size = read_array(sizeof(int32_t), &count);
    if (count != cv->ngroups) fail("g_size: wrong count");
    cv->g_panel = read_array(sizeof(int32_t), &count);
    if (count != cv->ngroups) fail("g_panel: wrong count");
    const float **weights = calloc((size_t)cv->ngroups + 1, sizeof *weights);
    const uint16_t **weights16 = calloc((size_t)cv->ngroups + 1, sizeof *weights16); /* all NULL: no bf16 */
    if (!weights || !weights16) fail("out of memory");
    for (int g = 0; g < cv->ngroups; g++) weights[g] = read_array(sizeof(float), NULL);
    cv->g_weight = weights;
    cv->g_weight16 = weights16;
    cv->analysis = read_array(sizeof(float), NULL);
    cv->fold_rows = read_array(sizeof(int32_t), NULL);
    cv->fold_analysis = read_array(sizeof(float), NULL);
    cv->synthesis = read_array(sizeof(float), NULL);
    cv->synthesis_pq = read_array(sizeof(float), NULL);
    cv->bias = read_array(sizeof(float), NULL);
}

typedef struct {
    float *data;
    int64_t rows, cols;
} buffer;

/* A pointer record: buffer index (-1: NULL) and an offset in floats into that buffer. */
static float *read_pointer(buffer *buffers, int64_t nbuffers, int64_t *index_out) {
    const int64_t index = read_i64(), offset = read_i64();
    if (index_out) *index_out = index;
    if (index < 0) return NULL;
    if (index >= nbuffers || offset < 0 || offset > buffers[index].rows * buffers[index].cols)
        fail("pointer outside its buffer");
    return buffers[index].data + offset;
}

static int print_fields(void) {
    const char *structure, *field;
    long offset, size;
    for (int i = 0; hg_field(i, &structure, &field, &offset, &size); i++)
        printf("%s %s %ld %ld\n", structure, *field ? field : "-", offset, size);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "fields")) return print_fields();
    if (argc != 3) {
        fprintf(stderr, "usage: %s fields | %s CASE OUT\n", argv[0], argv[0]);
        return 3;
    }
    in = fopen(argv[1], "rb");
    if (!in) fail("cannot open the case file");
    char magic[8];
    read_exact(magic, sizeof magic);
    if (memcmp(magic, MAGIC, sizeof magic)) fail("not a case file (bad magic)");
    const int64_t kind = read_i64(), nconv = read_i64();
    if (!((kind == KIND_CONV && nconv == 1) || (kind == KIND_PAIR && nconv == 2))) fail("bad kind");
    hg_conv convs[2];
    for (int i = 0; i < nconv; i++) read_conv(&convs[i]);
    hg_layout lay;
    lay.gap = (long)read_i64();
    lay.stride = (long)read_i64();
    lay.length = (long)read_i64();
    lay.batch = (long)read_i64();
    const int64_t nbuffers = read_i64();
    if (nbuffers < 1 || nbuffers > 16) fail("bad buffer count");
    buffer buffers[16];
    for (int64_t b = 0; b < nbuffers; b++) {
        buffers[b].rows = read_i64();
        buffers[b].cols = read_i64();
        int64_t count;
        buffers[b].data = read_array(sizeof(float), &count);
        if (!buffers[b].data || count != buffers[b].rows * buffers[b].cols) fail("bad buffer");
    }
    const int64_t ncalls = read_i64();
    int64_t out_index = -1;
    for (int64_t c = 0; c < ncalls; c++) {
        int64_t index;
        const float *src = read_pointer(buffers, nbuffers, NULL);
        float *out = read_pointer(buffers, nbuffers, &index);
        const float *base = read_pointer(buffers, nbuffers, NULL);
        if (!src || !out) fail("a call without source or out");
        if (out_index >= 0 && index != out_index) fail("calls write different buffers");
        out_index = index;
        int code;
        if (kind == KIND_CONV) {
            const int64_t frames = read_i64(), chunk = read_i64(), task0 = read_i64(), task1 = read_i64();
            code = hg_fft_conv(&convs[0], &lay, src, out, base, (long)frames, (int)chunk, (long)task0,
                               (long)task1, 1);
        } else {
            const int64_t frames1 = read_i64(), frames2 = read_i64(), chunk = read_i64();
            const int64_t task0 = read_i64(), task1 = read_i64(), accumulate = read_i64();
            float divisor, after;
            if (fread(&divisor, sizeof divisor, 1, in) != 1) fail("short case file");
            const int64_t activate = read_i64();
            if (fread(&after, sizeof after, 1, in) != 1) fail("short case file");
            code = hg_fft_pair(&convs[0], &convs[1], &lay, src, out, base, (long)frames1, (long)frames2,
                               (int)chunk, (long)task0, (long)task1, 1, (int)accumulate, divisor, (int)activate,
                               after);
        }
        if (code) {
            fprintf(stderr, "neon_harness: the kernel returned %d\n", code);
            return 4;
        }
    }
    if (out_index < 0) fail("no calls");
    FILE *result = fopen(argv[2], "wb");
    const buffer *o = &buffers[out_index];
    const size_t count = (size_t)(o->rows * o->cols);
    if (!result || fwrite(o->data, sizeof(float), count, result) != count || fclose(result)) fail("cannot write OUT");
    printf("%s\n", hg_variant());
    return 0;
}
