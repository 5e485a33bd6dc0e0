/* hwbin runtime: the layer kernels that run any exported hwbin model.
 *
 * Portable C99. No malloc, no floating point, no stdio: only stdint.h and string.h.
 * The arithmetic follows docs/arithmetic.md (contract version 1) exactly:
 *   - a binary value is bit 1 for +1, bit 0 for -1;
 *   - an activation of order k is a level index whose k bits are the bit planes (MSB first);
 *   - a layer's activations are stored as k bit planes, each one bit string of C*H*W bits
 *     indexed (y*W + x)*C + c, least-significant bit first in 32-bit words;
 *   - weights are packed by the generator in the contract's K order (tap-major, channel
 *     fastest), per output channel, one stride phase after another for transposed convs; or,
 *     with HWBIN_VERTICAL and bit-sliced thresholds (slices != 0), transposed: 32 output
 *     channels a word, one word per K index;
 *   - acc = sum_i b_i * (n - 2*popcount(A_i ^ W)); level = #{j : d*acc >= T_j}, which the
 *     generator stores as level = #{j : acc >= T'_j} ^ flip (firmware/generate.py writer_tables);
 *     score = mul*acc + add; the class is the argmax, ties to the lowest index.
 * The generated <prefix>_model.c holds a const hwbin_model_t; <prefix>_invoke() calls hwbin_run().
 */
#ifndef HWBIN_RT_H
#define HWBIN_RT_H

#include <stdint.h>
#include <string.h>

#define HWBIN_RT_VERSION 1 /* the arithmetic contract version this runtime implements */

/* The binary layers' weight layout (docs/firmware.md): 1 = transposed, 32 output channels a
 * word, counted bit-sliced (Thumb-2: Cortex-M3/M4/M7, where it is faster than the row kernel);
 * 0 = one row of K bits per output channel (x86-64 POPCNT, Cortex-M0/M0+, other CPUs). The
 * generated model holds both under #if, so one source builds for every target; -DHWBIN_VERTICAL=1
 * (or 0) chooses either anywhere. The first layer (uint8 pixels) and the layers without
 * bit-sliced thresholds (scores, narrow blocks, other orders and bases) read rows in both. */
#ifndef HWBIN_VERTICAL
#if defined(__GNUC__) && defined(__thumb2__)
#define HWBIN_VERTICAL 1
#else
#define HWBIN_VERTICAL 0
#endif
#endif

/* Status codes returned by hwbin_run() and <prefix>_invoke() (negative: nothing was computed). */
#define HWBIN_OK 0
#define HWBIN_ERR_NULL_ARG (-1)    /* input is NULL, or a segmenter's classes output is NULL */
#define HWBIN_ERR_ARENA_SIZE (-2)  /* the arena is smaller than the model's arena size */
#define HWBIN_ERR_ARENA_ALIGN (-3) /* the arena is not 4-byte aligned */
#define HWBIN_ERR_MODEL (-4)       /* the model table was built for another runtime version */

enum hwbin_kind {
    HWBIN_CONV = 1,    /* dense layers are emitted as convs whose kernel is the whole input */
    HWBIN_DECONV = 2,  /* transposed conv, stride-phase decomposition */
    HWBIN_MAXPOOL = 3,
    HWBIN_SHUFFLE = 4
};

typedef struct {
    uint8_t kind;           /* enum hwbin_kind */
    uint8_t in_order;       /* k of the input activation */
    uint8_t out_order;      /* k of the output activation; 0: this layer emits scores */
    uint8_t groups;
    uint8_t slices;         /* HWBIN_VERTICAL: levels of the bit-sliced thresholds (transposed weights);
                             * 0: integer thresholds, row weights */
    uint16_t in_c, in_h, in_w;
    uint16_t out_c, out_h, out_w;
    uint16_t kh, kw, sh, sw, ph, pw;
    const int32_t *in_bases;    /* in_order bases, b_1 (MSB) first (NULL: the first layer reads pixels) */
    const uint32_t *weight;     /* packed weights: rows, or transposed (HWBIN_VERTICAL, slices != 0) */
    const uint32_t *thresholds; /* out_c x (2^out_order - 1): T' + 2^31, rows ascending; or bit-sliced */
    const uint32_t *flips;      /* bit o (LSB first): channel o's level bits are inverted */
    const int32_t *score_mul;   /* out_c (scores layer only) */
    const int32_t *score_add;
    const uint16_t *perm;       /* shuffle: out[c] = in[perm[c]] */
    uint32_t in_offset;         /* arena byte offset of the input planes */
    uint32_t out_offset;        /* arena byte offset of the output planes (or int32 scores) */
} hwbin_layer_t;

typedef struct {
    uint32_t rt_version;        /* must equal HWBIN_RT_VERSION */
    uint32_t n_layers;
    const hwbin_layer_t *layers;
    uint16_t in_c, in_h, in_w;
    uint16_t num_classes;
    uint8_t segment;            /* 0: one class per image; 1: one class per pixel */
    uint32_t arena_size;        /* bytes, computed exactly by the generator */
    uint32_t scratch_offset;    /* arena byte offset of the im2col row buffer */
} hwbin_model_t;

/* Runs one image. input: in_c*in_h*in_w uint8 pixels, C x H x W row-major.
 * scores (may be NULL): num_classes int32 (x out_h x out_w for a segmenter), C x H x W.
 * classes: NULL for a classifier if not wanted; out_h*out_w bytes for a segmenter (required).
 * Returns the class (>= 0) of a classifier, HWBIN_OK for a segmenter, or a negative status. */
int32_t hwbin_run(const hwbin_model_t *model, const uint8_t *input, int32_t *scores,
                  uint8_t *classes, void *arena, uint32_t arena_bytes);

#endif /* HWBIN_RT_H */
