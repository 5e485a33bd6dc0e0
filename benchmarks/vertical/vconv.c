/* Prototype (issue 15): a conv layer of an order-2 input with bases (2, 1) whose channels are
 * whole words, with the weights transposed (bit o of a word: output channel o of a block of
 * 32) and bit-sliced (vertical) counters, so one activation bit meets 32 output channels in
 * a few word-wide boolean operations. E = 2 D_1 + D_2 (D_i = disagreements of plane i) is kept
 * as a Harley-Seal carry-save sum: plane 1's inputs enter at the ones, plane 0's at the twos.
 * The level is #{j : E >= V_j} XOR flip (thresholds rewritten for E by the generator). */
#include <stdint.h>

#define CSA(h, l, a, b, c)                  \
    do {                                    \
        uint32_t u_ = (a) ^ (b);            \
        h = ((a) & (b)) | (u_ & (c));       \
        l = u_ ^ (c);                       \
    } while (0)

#define HI_LEVELS 6u /* E < 2^11 */
#define LEVELS 11u

typedef struct {
    uint32_t l[5];
    uint32_t hi[HI_LEVELS];
} vcnt_t;

static inline uint32_t top_mask(uint32_t a) { return (uint32_t)((int32_t)a >> 31); }

#if defined(__thumb2__) && !defined(VCONV_C)
/* A whole row by hand (GCC spills the C): nw K words, row = (a1, a2) word pairs. r1 w, r2 a1,
 * r3 a2, r4-r8 l0-l4, r9-r12 and lr temporaries, r0 the held eights carry; [sp] s, [sp+4] a
 * spilled sixteens carry, [sp+8] the end of the word's 32 weight words, [sp+12] the row,
 * [sp+16] its end. Per K pair: 2 loads, 25 ALU operations; the ripple into hi stops at the
 * first level with no carry. */
__attribute__((naked, noinline)) static void vcount_row(vcnt_t *s __attribute__((unused)),
                                                        const uint32_t *w __attribute__((unused)),
                                                        const uint32_t *row __attribute__((unused)),
                                                        uint32_t nw __attribute__((unused)))
{
    __asm__ volatile(
        ".macro vcsa l, a, b, h\n\t" /* h = carry of l + a + b, l = their sum bit (lr temp; h may be a) */
        "eor    lr, \\l, \\a\n\t"
        "and    \\h, \\l, \\a\n\t"
        "eor    \\l, lr, \\b\n\t"
        "and    lr, lr, \\b\n\t"
        "orr    \\h, \\h, lr\n\t"
        ".endm\n\t"
        ".macro vpair dst\n\t"
        "ldr    r9, [r1], #4\n\t"
        "ldr    r10, [r1], #4\n\t"
        "eor    r11, r9, r3, asr #31\n\t"
        "lsl    r3, r3, #1\n\t"
        "eor    r12, r10, r3, asr #31\n\t"
        "lsl    r3, r3, #1\n\t"
        "vcsa   r4, r11, r12, r11\n\t"
        "eor    r9, r9, r2, asr #31\n\t"
        "lsl    r2, r2, #1\n\t"
        "eor    r10, r10, r2, asr #31\n\t"
        "lsl    r2, r2, #1\n\t"
        "vcsa   r5, r11, r9, r11\n\t"
        "and    r12, r5, r10\n\t"
        "eor    r5, r5, r10\n\t"
        "vcsa   r6, r11, r12, \\dst\n\t"
        ".endm\n\t"
        ".macro vhi c, n\n\t" /* one level of the ripple counter: carry c in, n out */
        "ldr    r9, [r12]\n\t"
        "ands   \\n, r9, \\c\n\t"
        "eor    r9, r9, \\c\n\t"
        "str    r9, [r12], #4\n\t"
        "beq    3f\n\t"
        ".endm\n\t"
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #20\n\t"
        "str    r0, [sp]\n\t"
        "str    r2, [sp, #12]\n\t"
        "add    r3, r2, r3, lsl #3\n\t"
        "str    r3, [sp, #16]\n\t"
        "ldm    r0, {r4-r8}\n"
        "2:\n\t"
        "ldr    r12, [sp, #12]\n\t"
        "ldm    r12!, {r2, r3}\n\t"
        "str    r12, [sp, #12]\n\t"
        "add    r12, r1, #128\n\t"
        "str    r12, [sp, #8]\n"
        "1:\n\t"
        "vpair  r0\n\t"
        "vpair  r11\n\t"
        "vcsa   r7, r0, r11, r0\n\t"
        "str    r0, [sp, #4]\n\t"
        "vpair  r0\n\t"
        "vpair  r11\n\t"
        "vcsa   r7, r0, r11, r0\n\t"
        "ldr    r11, [sp, #4]\n\t"
        "vcsa   r8, r11, r0, r11\n\t"
        "ldr    r12, [sp]\n\t"
        "add    r12, r12, #20\n\t"
        "cmp    r11, #0\n\t"
        "beq    3f\n\t"
        "vhi    r11, r10\n\t"
        "vhi    r10, r11\n\t"
        "vhi    r11, r10\n\t"
        "vhi    r10, r11\n\t"
        "vhi    r11, r10\n\t"
        "vhi    r10, r11\n"
        "3:\n\t"
        "ldr    r0, [sp, #8]\n\t"
        "cmp    r1, r0\n\t"
        "bne    1b\n\t"
        "ldr    r0, [sp, #12]\n\t"
        "ldr    r12, [sp, #16]\n\t"
        "cmp    r0, r12\n\t"
        "bne    2b\n\t"
        "ldr    r0, [sp]\n\t"
        "stm    r0, {r4-r8}\n\t"
        "add    sp, sp, #20\n\t"
        "pop    {r4-r11, pc}\n\t"
        ".purgem vhi\n\t"
        ".purgem vpair\n\t"
        ".purgem vcsa\n\t");
}
#else
/* Adds 32 K indices (activation words a1 of plane 0, a2 of plane 1; bit 31 first) against the
 * 32 transposed weight words w (w[m] for activation bit 31 - m). */
static void vcount_word(vcnt_t *s, const uint32_t *w, uint32_t a1, uint32_t a2)
{
    uint32_t l0 = s->l[0], l1 = s->l[1], l2 = s->l[2], l3 = s->l[3], l4 = s->l[4], i, j, h;
    for (i = 0; i < 4u; i++) {
        uint32_t e[4], s1, s2, t;
        for (j = 0; j < 4u; j++, w += 2, a1 <<= 2, a2 <<= 2) {
            uint32_t w0 = w[0], w1 = w[1], c2, f1, f2;
            uint32_t x0 = w0 ^ top_mask(a2), x1 = w1 ^ top_mask(a2 << 1);
            uint32_t y0 = w0 ^ top_mask(a1), y1 = w1 ^ top_mask(a1 << 1);
            CSA(c2, l0, l0, x0, x1);
            CSA(f1, l1, l1, c2, y0);
            f2 = l1 & y1;
            l1 ^= y1;
            CSA(e[j], l2, l2, f1, f2);
        }
        CSA(s1, l3, l3, e[0], e[1]);
        CSA(s2, l3, l3, e[2], e[3]);
        CSA(t, l4, l4, s1, s2);
        for (h = 0; h < HI_LEVELS; h++) {
            uint32_t c = s->hi[h] & t;
            s->hi[h] ^= t;
            t = c;
        }
    }
    s->l[0] = l0;
    s->l[1] = l1;
    s->l[2] = l2;
    s->l[3] = l3;
    s->l[4] = l4;
}
/* The same in C, a row at a time. */
static void vcount_row(vcnt_t *s, const uint32_t *w, const uint32_t *row, uint32_t nw)
{
    uint32_t j;
    for (j = 0; j < nw; j++, w += 32) {
        vcount_word(s, w, row[2u * j], row[2u * j + 1u]);
    }
}
#endif

/* (E >= V) per channel, V bit-sliced (LEVELS words, LSB first). */
static uint32_t vge(const vcnt_t *s, const uint32_t *v)
{
    uint32_t ge = ~0u, l;
    for (l = 0; l < LEVELS; l++) {
        uint32_t e = l < 5u ? s->l[l] : s->hi[l - 5u];
        ge ^= (ge ^ e) & (e ^ v[l]);
    }
    return ge;
}

/* in: 2 planes of C*H*W bits (pw words each); wt: [block][tap][cw][32] words; vthr:
 * [block][3][LEVELS]; flips: one word per block. 3x3, stride 1, pad 1, C and O multiples of 32. */
void vconv(const uint32_t *in, const uint32_t *wt, const uint32_t *vthr, const uint32_t *flips, uint32_t *out,
           const uint32_t *shape)
{
    uint32_t h = shape[0], wd = shape[1], cw = shape[2], ob = shape[3];
    uint32_t pw = h * wd * cw, out_pw = h * wd * ob, oy, ox, b, ty, tx, j;
    uint32_t row[2u * 9u * 8u]; /* (a1, a2) pairs of the 9 taps, cw <= 8 */
    for (oy = 0; oy < h; oy++) {
        for (ox = 0; ox < wd; ox++) {
            uint32_t pos = oy * wd + ox, *r = row;
            for (ty = 0; ty < 3u; ty++) {
                int32_t iy = (int32_t)oy - 1 + (int32_t)ty;
                for (tx = 0; tx < 3u; tx++) {
                    int32_t ix = (int32_t)ox - 1 + (int32_t)tx;
                    int inside = iy >= 0 && iy < (int32_t)h && ix >= 0 && ix < (int32_t)wd;
                    uint32_t src = inside ? ((uint32_t)iy * wd + (uint32_t)ix) * cw : 0u;
                    for (j = 0; j < cw; j++, r += 2) {
                        r[0] = inside ? in[src + j] : 0u;
                        r[1] = inside ? in[pw + src + j] : 0u;
                    }
                }
            }
            for (b = 0; b < ob; b++) {
                vcnt_t s = {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}};
                const uint32_t *v = vthr + b * 3u * LEVELS;
                uint32_t ge0, ge1, ge2, f = flips[b];
                vcount_row(&s, wt + b * 9u * cw * 32u, row, 9u * cw);
                ge0 = vge(&s, v);
                ge1 = vge(&s, v + LEVELS);
                ge2 = vge(&s, v + 2u * LEVELS);
                out[pos * ob + b] = ge1 ^ f;
                out[out_pw + pos * ob + b] = ge0 ^ ge1 ^ ge2 ^ f;
            }
        }
    }
}
