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
    for (oy = 0; oy < h; oy++) {
        for (ox = 0; ox < wd; ox++) {
            uint32_t pos = oy * wd + ox;
            for (b = 0; b < ob; b++) {
                vcnt_t s = {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}};
                const uint32_t *w = wt + b * 9u * cw * 32u, *v = vthr + b * 3u * LEVELS;
                uint32_t ge0, ge1, ge2, f = flips[b];
                for (ty = 0; ty < 3u; ty++) {
                    int32_t iy = (int32_t)oy - 1 + (int32_t)ty;
                    for (tx = 0; tx < 3u; tx++) {
                        int32_t ix = (int32_t)ox - 1 + (int32_t)tx;
                        int inside = iy >= 0 && iy < (int32_t)h && ix >= 0 && ix < (int32_t)wd;
                        uint32_t src = inside ? ((uint32_t)iy * wd + (uint32_t)ix) * cw : 0u;
                        for (j = 0; j < cw; j++, w += 32) {
                            vcount_word(&s, w, inside ? in[src + j] : 0u, inside ? in[pw + src + j] : 0u);
                        }
                    }
                }
                ge0 = vge(&s, v);
                ge1 = vge(&s, v + LEVELS);
                ge2 = vge(&s, v + 2u * LEVELS);
                out[pos * ob + b] = ge1 ^ f;
                out[out_pw + pos * ob + b] = ge0 ^ ge1 ^ ge2 ^ f;
            }
        }
    }
}
