/* hwbin runtime: layer kernels. See hwbin_rt.h and docs/arithmetic.md. */
#include "hwbin_rt.h"

/* ---------------------------------------------------------------- popcount per target
 * x86 with POPCNT (-mpopcnt, -march=x86-64-v2 or newer): the builtin is one instruction.
 * Everywhere else a SWAR reduction: on Cortex-M a plain __builtin_popcount becomes a call
 * to libgcc's __popcountsi2 (a table walk), which is slower than these few ALU ops. */
static inline uint32_t popcount32(uint32_t x)
{
#if defined(__POPCNT__) && defined(__GNUC__)
    return (uint32_t)__builtin_popcount(x);
#else
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
#endif
}

/* ---------------------------------------------------------------- bit strings */

static uint32_t words_for(uint32_t bits) { return (bits + 31u) >> 5; }

/* n (1..32) bits of s starting at bit off, LSB first. Never reads past the last bit. */
static uint32_t get_bits(const uint32_t *s, uint32_t off, uint32_t n)
{
    uint32_t w = off >> 5, b = off & 31u;
    uint32_t v = s[w] >> b;
    if (b + n > 32u) {
        v |= s[w + 1u] << (32u - b);
    }
    return n == 32u ? v : (v & ((1u << n) - 1u));
}

/* ORs the n (1..32) low bits of v into d at bit off (the destination bits are 0). */
static void or_bits(uint32_t *d, uint32_t off, uint32_t v, uint32_t n)
{
    uint32_t w = off >> 5, b = off & 31u;
    d[w] |= v << b;
    if (b + n > 32u) {
        d[w + 1u] |= v >> (32u - b);
    }
}

static void copy_bits(uint32_t *d, uint32_t doff, const uint32_t *s, uint32_t soff, uint32_t n)
{
    while (n > 0u) {
        uint32_t m = n < 32u ? n : 32u;
        or_bits(d, doff, get_bits(s, soff, m), m);
        doff += m;
        soff += m;
        n -= m;
    }
}

/* The level index of element idx of an order-k activation (plane 0 is the MSB). */
static uint32_t get_level(const uint32_t *planes, uint32_t plane_words, uint32_t k, uint32_t idx)
{
    uint32_t level = 0, i;
    for (i = 0; i < k; i++) {
        level = (level << 1) | ((planes[i * plane_words + (idx >> 5)] >> (idx & 31u)) & 1u);
    }
    return level;
}

/* Writes a level into zeroed planes. */
static void put_level(uint32_t *planes, uint32_t plane_words, uint32_t k, uint32_t idx, uint32_t level)
{
    uint32_t i;
    for (i = 0; i < k; i++) {
        planes[i * plane_words + (idx >> 5)] |= ((level >> (k - 1u - i)) & 1u) << (idx & 31u);
    }
}

static uint32_t *planes_at(uint8_t *arena, uint32_t offset) { return (uint32_t *)(void *)(arena + offset); }

static uint32_t elements(uint32_t c, uint32_t h, uint32_t w) { return c * h * w; }

/* ---------------------------------------------------------------- layers */

/* uint8 pixels are the order-8 first activation: bit b of a pixel is plane 7-b. */
static void load_input(const hwbin_model_t *m, const uint8_t *input, uint32_t *planes)
{
    uint32_t c, y, x, pw = words_for(elements(m->in_c, m->in_h, m->in_w));
    memset(planes, 0, 8u * pw * 4u);
    for (c = 0; c < m->in_c; c++) {
        for (y = 0; y < m->in_h; y++) {
            for (x = 0; x < m->in_w; x++) {
                uint32_t idx = (y * m->in_w + x) * m->in_c + c;
                put_level(planes, pw, 8u, idx, input[(c * m->in_h + y) * m->in_w + x]);
            }
        }
    }
}

/* Level index of one output: how many thresholds d*acc reaches (ties reach, rows ascending). */
static uint32_t quantize(const hwbin_layer_t *l, uint32_t o, int32_t acc)
{
    uint32_t nthr = (1u << l->out_order) - 1u, level = 0;
    const int32_t *t = l->thresholds + o * nthr;
    int32_t x = l->directions[o] > 0 ? acc : -acc;
    while (level < nthr && x >= t[level]) {
        level++;
    }
    return level;
}

/* acc = sum_i b_i * (n - 2 popcount(A_i ^ W)) over the k planes of the gathered row. */
static int32_t accumulate(const hwbin_layer_t *l, const uint32_t *row, const uint32_t *w, uint32_t nw, uint32_t n)
{
    int32_t acc = 0;
    uint32_t i, j;
    for (i = 0; i < l->in_order; i++) {
        const uint32_t *a = row + i * nw;
        uint32_t pc = 0;
        for (j = 0; j < nw; j++) {
            pc += popcount32(a[j] ^ w[j]);
        }
        acc += l->in_bases[i] * ((int32_t)n - 2 * (int32_t)pc);
    }
    return acc;
}

/* Input row of output (oy, ox) read by tap (ky, kx), or -1 for a padding cell (level 0). */
static int32_t tap_source(const hwbin_layer_t *l, int32_t oy, int32_t ox, int32_t ky, int32_t kx)
{
    int32_t iy, ix;
    if (l->kind == HWBIN_CONV) {
        iy = oy * l->sh - l->ph + ky;
        ix = ox * l->sw - l->pw + kx;
    } else { /* deconv: (o + p - k) is a multiple of the stride within a phase */
        int32_t ny = oy + l->ph - ky, nx = ox + l->pw - kx;
        if (ny < 0 || nx < 0) {
            return -1;
        }
        iy = ny / l->sh;
        ix = nx / l->sw;
    }
    if (iy < 0 || ix < 0 || iy >= (int32_t)l->in_h || ix >= (int32_t)l->in_w) {
        return -1;
    }
    return iy * (int32_t)l->in_w + ix;
}

/* One stride phase of a conv (the only phase) or a deconv: the outputs whose (o + p) mod s
 * equals (ry, rx) sum the taps ky = ry, ry+s, ... (all taps for a conv). */
typedef struct {
    uint32_t ry, rx, ty, tx, n, nw;
} phase_t;

static void run_phase(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                      uint32_t *row)
{
    const uint32_t *in = planes_at(arena, l->in_offset);
    uint32_t in_pw = words_for(elements(l->in_c, l->in_h, l->in_w));
    uint32_t out_pw = words_for(elements(l->out_c, l->out_h, l->out_w));
    uint32_t cg = l->in_c / l->groups, og = l->out_c / l->groups;
    uint32_t ystep = l->kind == HWBIN_CONV ? 1u : l->sh, xstep = l->kind == HWBIN_CONV ? 1u : l->sw;
    uint32_t y0 = l->kind == HWBIN_CONV ? 0u : (ph->ry + l->sh - (l->ph % l->sh)) % l->sh;
    uint32_t x0 = l->kind == HWBIN_CONV ? 0u : (ph->rx + l->sw - (l->pw % l->sw)) % l->sw;
    uint32_t kys = l->kind == HWBIN_CONV ? 1u : l->sh, kxs = l->kind == HWBIN_CONV ? 1u : l->sw;
    uint32_t g, oy, ox, ty, tx, i, o;
    for (g = 0; g < l->groups; g++) {
        for (oy = y0; oy < l->out_h; oy += ystep) {
            for (ox = x0; ox < l->out_w; ox += xstep) {
                uint32_t t = 0, pos = oy * l->out_w + ox;
                memset(row, 0, l->in_order * ph->nw * 4u);
                for (ty = 0; ty < ph->ty; ty++) {
                    for (tx = 0; tx < ph->tx; tx++, t++) {
                        int32_t src = tap_source(l, (int32_t)oy, (int32_t)ox, (int32_t)(ph->ry + ty * kys),
                                                 (int32_t)(ph->rx + tx * kxs));
                        if (src < 0) {
                            continue; /* padding: level 0, every plane bit 0 */
                        }
                        for (i = 0; i < l->in_order; i++) {
                            copy_bits(row + i * ph->nw, t * cg, in + i * in_pw, (uint32_t)src * l->in_c + g * cg, cg);
                        }
                    }
                }
                for (o = g * og; o < (g + 1u) * og; o++) {
                    int32_t acc = accumulate(l, row, weight + o * ph->nw, ph->nw, ph->n);
                    if (l->out_order == 0u) {
                        int32_t *scores = (int32_t *)(void *)(arena + l->out_offset);
                        scores[o * l->out_h * l->out_w + pos] = l->score_mul[o] * acc + l->score_add[o];
                    } else {
                        put_level(planes_at(arena, l->out_offset), out_pw, l->out_order, pos * l->out_c + o,
                                  quantize(l, o, acc));
                    }
                }
            }
        }
    }
}

static void run_compute(const hwbin_layer_t *l, uint8_t *arena, uint32_t *row)
{
    uint32_t sh = l->kind == HWBIN_CONV ? 1u : l->sh, sw = l->kind == HWBIN_CONV ? 1u : l->sw;
    uint32_t cg = l->in_c / l->groups;
    const uint32_t *weight = l->weight;
    phase_t ph;
    if (l->out_order != 0u) {
        memset(arena + l->out_offset, 0, l->out_order * words_for(elements(l->out_c, l->out_h, l->out_w)) * 4u);
    }
    for (ph.ry = 0; ph.ry < sh; ph.ry++) {
        for (ph.rx = 0; ph.rx < sw; ph.rx++) {
            ph.ty = (l->kh - ph.ry + sh - 1u) / sh;
            ph.tx = (l->kw - ph.rx + sw - 1u) / sw;
            ph.n = ph.ty * ph.tx * cg;
            ph.nw = words_for(ph.n);
            if (ph.n == 0u) {
                continue;
            }
            run_phase(l, &ph, weight, arena, row);
            weight += l->out_c * ph.nw;
        }
    }
}

static void run_maxpool(const hwbin_layer_t *l, uint8_t *arena)
{
    const uint32_t *in = planes_at(arena, l->in_offset);
    uint32_t *out = planes_at(arena, l->out_offset);
    uint32_t in_pw = words_for(elements(l->in_c, l->in_h, l->in_w));
    uint32_t out_pw = words_for(elements(l->out_c, l->out_h, l->out_w));
    uint32_t c, oy, ox, dy, dx;
    memset(out, 0, l->out_order * out_pw * 4u);
    for (oy = 0; oy < l->out_h; oy++) {
        for (ox = 0; ox < l->out_w; ox++) {
            for (c = 0; c < l->in_c; c++) {
                uint32_t best = 0;
                for (dy = 0; dy < l->kh; dy++) {
                    for (dx = 0; dx < l->kw; dx++) {
                        uint32_t idx = ((oy * l->sh + dy) * l->in_w + ox * l->sw + dx) * l->in_c + c;
                        uint32_t v = get_level(in, in_pw, l->in_order, idx);
                        best = v > best ? v : best;
                    }
                }
                put_level(out, out_pw, l->out_order, (oy * l->out_w + ox) * l->out_c + c, best);
            }
        }
    }
}

static void run_shuffle(const hwbin_layer_t *l, uint8_t *arena)
{
    const uint32_t *in = planes_at(arena, l->in_offset);
    uint32_t *out = planes_at(arena, l->out_offset);
    uint32_t pw = words_for(elements(l->in_c, l->in_h, l->in_w));
    uint32_t pos, c;
    memset(out, 0, l->out_order * pw * 4u);
    for (pos = 0; pos < (uint32_t)l->in_h * l->in_w; pos++) {
        for (c = 0; c < l->in_c; c++) {
            put_level(out, pw, l->out_order, pos * l->in_c + c,
                      get_level(in, pw, l->in_order, pos * l->in_c + l->perm[c]));
        }
    }
}

/* ---------------------------------------------------------------- the model */

#ifdef HWBIN_PROFILE
/* Profile builds only (-DHWBIN_PROFILE, `hwbin firmware --profile`): called before layer i
 * runs and with i = n_layers before the final argmax, so an instruction-set emulator can
 * attribute every instruction to a layer. Not inlined, so its address is in the symbol table. */
void hwbin_profile_layer(uint32_t i);
__attribute__((noinline)) void hwbin_profile_layer(uint32_t i)
{
    __asm__ volatile("" : : "r"(i) : "memory");
}
#define PROFILE_LAYER(i) hwbin_profile_layer(i)
#else
#define PROFILE_LAYER(i) ((void)0)
#endif

int32_t hwbin_run(const hwbin_model_t *model, const uint8_t *input, int32_t *scores, uint8_t *classes,
                  void *arena, uint32_t arena_bytes)
{
    uint8_t *mem = (uint8_t *)arena;
    const hwbin_layer_t *last;
    const int32_t *out;
    uint32_t i, pos, npos, c;
    int32_t result = HWBIN_OK;
    if (model == 0 || input == 0 || arena == 0 || (model->segment && classes == 0)) {
        return HWBIN_ERR_NULL_ARG;
    }
    if (model->rt_version != HWBIN_RT_VERSION) {
        return HWBIN_ERR_MODEL;
    }
    if (arena_bytes < model->arena_size) {
        return HWBIN_ERR_ARENA_SIZE;
    }
    if (((uintptr_t)arena & 3u) != 0u) {
        return HWBIN_ERR_ARENA_ALIGN;
    }
    load_input(model, input, planes_at(mem, model->layers[0].in_offset));
    for (i = 0; i < model->n_layers; i++) {
        const hwbin_layer_t *l = &model->layers[i];
        PROFILE_LAYER(i);
        if (l->kind == HWBIN_MAXPOOL) {
            run_maxpool(l, mem);
        } else if (l->kind == HWBIN_SHUFFLE) {
            run_shuffle(l, mem);
        } else {
            run_compute(l, mem, planes_at(mem, model->scratch_offset));
        }
    }
    PROFILE_LAYER(model->n_layers);
    last = &model->layers[model->n_layers - 1u];
    out = (const int32_t *)(const void *)(mem + last->out_offset);
    npos = (uint32_t)last->out_h * last->out_w;
    if (scores != 0) {
        memcpy(scores, out, (size_t)last->out_c * npos * 4u);
    }
    for (pos = 0; pos < npos; pos++) { /* argmax per pixel; ties go to the lowest index */
        uint32_t best = 0;
        for (c = 1; c < last->out_c; c++) {
            if (out[c * npos + pos] > out[best * npos + pos]) {
                best = c;
            }
        }
        if (classes != 0) {
            classes[pos] = (uint8_t)best;
        }
        if (!model->segment) {
            result = (int32_t)best;
        }
    }
    return result;
}
