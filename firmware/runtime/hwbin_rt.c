/* hwbin runtime: layer kernels. See hwbin_rt.h and docs/arithmetic.md. */
#include "hwbin_rt.h"

/* Where inlining is a choice between size and speed. HWBIN_SIZE_NOINLINE: out of line in size
 * builds (-Os: one copy of a helper used twice), the compiler's choice otherwise.
 * HWBIN_SPEED_NOINLINE: out of line in speed builds, where a hot loop inlined into the big
 * layer function would share its registers and spill (one call per block, not per channel),
 * the compiler's choice in size builds (where inlining it is smaller). */
#if defined(__GNUC__) && defined(__OPTIMIZE_SIZE__)
#define HWBIN_SIZE_NOINLINE __attribute__((noinline))
#define HWBIN_SPEED_NOINLINE
#elif defined(__GNUC__)
#define HWBIN_SIZE_NOINLINE
#define HWBIN_SPEED_NOINLINE __attribute__((noinline))
#else
#define HWBIN_SIZE_NOINLINE
#define HWBIN_SPEED_NOINLINE
#endif

/* ---------------------------------------------------------------- XOR-popcount per target
 *
 * The hot loop of every binary layer: popcount(A_i ^ W) summed over a row of nw words, for
 * the k bit planes A_i of one gathered input row against one output channel's weights.
 *
 * x86-64 with POPCNT (-mpopcnt, -march=x86-64-v2 or newer): 64-bit words, one instruction
 * each. Everywhere else (every Cortex-M: none has a popcount instruction, and a plain
 * __builtin_popcount becomes a libgcc table walk) a SWAR count with deferred reduction:
 * per word only the 2- and 4-bit field sums (each nibble <= 4); three words' nibbles add
 * up before they fold into bytes (<= 12 per nibble), thirty words' bytes before they fold
 * into halfwords (<= 240 per byte). A word then costs about 8 instructions instead of the
 * 12 of a full SWAR popcount, and a row of 9-18 words has only one final fold. All planes
 * are counted two at a time, so each weight word is loaded once per pair. */
/* The writers' compare step (the x86-64 row kernel compares too).
 * (g << 1) + (x >= t), unsigned: on ARM one compare and one add with carry (GCC spends an IT
 * block and two moves on the flag). x86's carry is the borrow (x < t), so there the words are
 * kept complemented, ~((g << 1) + (x >= t)) = (~g << 1) + (x < t): they start at
 * HWBIN_GE_START (~0) and are XORed with it at the end. */
#if defined(__GNUC__) && defined(__thumb2__)
#define HWBIN_REG "r"
#else
#define HWBIN_REG "l" /* Thumb-1: the low registers */
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#define HWBIN_GE_START 0xFFFFFFFFu
#else
#define HWBIN_GE_START 0u
#endif
static inline __attribute__((always_inline)) uint32_t shift_in_ge(uint32_t g, uint32_t x, uint32_t t)
{
#if defined(__GNUC__) && defined(__arm__)
    __asm__(".syntax unified\n\tcmp %1, %2\n\tadcs %0, %0, %0" : "+" HWBIN_REG(g) : HWBIN_REG(x), HWBIN_REG(t) : "cc");
    return g;
#elif defined(__GNUC__) && defined(__x86_64__)
    __asm__("cmpl %2, %1\n\tadcl %0, %0" : "+r"(g) : "r"(x), "rm"(t) : "cc");
    return g;
#else
    return (g << 1) + (uint32_t)(x >= t);
#endif
}

#define HWBIN_MAX_ORDER 8u
#define HWBIN_BATCH 32u /* output channels per kernel call: one word of level bits */
#define M1 0x55555555u
#define M2 0x33333333u
#define M4 0x0F0F0F0Fu
#define M8 0x00FF00FFu

#if defined(__POPCNT__) && defined(__GNUC__) && defined(__x86_64__)
#define HWBIN_POPCNT64 1
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#define HWBIN_X86_NOINLINE __attribute__((noinline)) /* where GCC's x86-64 code spills inlined */
#else
#define HWBIN_X86_NOINLINE
#endif

/* The masks as register operands: GCC would otherwise use Thumb-2 immediates, which cost a
 * separate shift where "and rd, rmask, rx, lsr #n" does both in one instruction. */
#if defined(__GNUC__) && defined(__thumb2__)
#define OPAQUE(v) __asm__("" : "+r"(v))
#else
#define OPAQUE(v) ((void)0)
#endif

/* ---------------------------------------------------------------- row kernels (every build: in
 * HWBIN_VERTICAL builds for the layers that keep the row layout, through the portable count) */
typedef struct {
    uint32_t m1, m2, m4;
} masks_t;

static inline __attribute__((always_inline)) masks_t swar_masks(void)
{
    masks_t m = {M1, M2, M4};
    OPAQUE(m.m1);
    OPAQUE(m.m2);
    OPAQUE(m.m4);
    return m;
}

/* Per-nibble popcount of x (each nibble 0..4). */
static inline __attribute__((always_inline)) uint32_t nibble_counts(uint32_t x, const masks_t *m)
{
    x -= (x >> 1) & m->m1;
    return (x & m->m2) + ((x >> 2) & m->m2);
}

/* Byte sums (each <= 24) of three words' popcounts. */
static inline __attribute__((always_inline)) uint32_t count3(const uint32_t *a, uint32_t w0, uint32_t w1,
                                                             uint32_t w2, const masks_t *m)
{
    uint32_t n = nibble_counts(a[0] ^ w0, m) + nibble_counts(a[1] ^ w1, m) + nibble_counts(a[2] ^ w2, m);
    return (n & m->m4) + ((n >> 4) & m->m4);
}

/* Byte sums (each <= 8) of one word's popcount. */
static inline __attribute__((always_inline)) uint32_t count1(uint32_t x, const masks_t *m)
{
    uint32_t n = nibble_counts(x, m);
    return (n & m->m4) + ((n >> 4) & m->m4);
}

/* The four byte sums of b (each <= 255) as one total. */
static inline uint32_t sum_bytes(uint32_t b)
{
    b = (b & M8) + ((b >> 8) & M8);
    return (b + (b >> 16)) & 0xFFFFu;
}

/* The batch kernel: for c < m, out[c] = f[0] + f[1] * popcount(x ^ s_c) + f[2] * popcount(y ^
 * s_c) (mod 2^32) over n words, with s_c = s + c*n the rows that follow each other (the
 * weight rows of a group's output channels against the two planes of an order-2 input; m = 1
 * for a single pair). With f = (b_1 + b_2) n, -2 b_1, -2 b_2 that is the accumulator itself;
 * f = (0, 1, 65536) packs the two counts (each < 65536: a row is at most 2047 words). One
 * call per output position: the per-channel call overhead is gone. */
#define HWBIN_BATCH_MAX_WORDS 30u /* Thumb-2 kernel: byte sums stay <= 240 */

/* f[0] + f[1] cx + f[2] cy, mod 2^32 (no signed overflow). */
static inline uint32_t combine(const int32_t *f, uint32_t cx, uint32_t cy)
{
    return (uint32_t)f[0] + (uint32_t)f[1] * cx + (uint32_t)f[2] * cy;
}

#if defined(__GNUC__) && defined(__thumb2__) && !defined(HWBIN_PORTABLE_KERNELS) && !HWBIN_VERTICAL
/* Thumb-2 (Cortex-M3/M4/M7), by hand because GCC spills the loop: per word and row 8
 * instructions (load, XOR, the 2- and 4-bit field sums with the masks in registers), a fold
 * into bytes every three words, the total once per row (USAD8 against 0 on cores with the DSP
 * extension, M4/M7) and its two multiply-adds. n <= 30, m >= 1. A naked function, so it
 * needs no registers from the compiler and builds the same at -O0 and -O2. */
#if defined(__ARM_FEATURE_DSP)
#define HWBIN_T2_TOTALS "mov r12, #0\n\tusad8 r9, r9, r12\n\tusad8 r10, r10, r12\n\t"
#else
#define HWBIN_T2_TOTALS "hwbin_total r9\n\thwbin_total r10\n\t"
#endif
__attribute__((naked, noinline)) static void xor_counts2_t2(const uint32_t *x __attribute__((unused)),
                                                           const uint32_t *y __attribute__((unused)),
                                                           const uint32_t *s __attribute__((unused)),
                                                           uint32_t n __attribute__((unused)),
                                                           uint32_t m __attribute__((unused)),
                                                           uint32_t *out __attribute__((unused)),
                                                           const int32_t *f __attribute__((unused)))
{
    /* r0 x, r1 y, r2 s (runs on through the rows), r3 n; [sp] x, [sp+4] y, [sp+8] n, [sp+48] m,
     * [sp+52] out, [sp+56] f; r4-r6 the masks; r7/r8 nibble sums and r9/r10 byte sums of x/y; r11 the
     * shared word, then a temporary. word: the three loads back to back (pipelined), the XORs,
     * and per plane nib: dst (= if first) += per-nibble popcount of x. fold:
     * nibble sums into byte sums. total: byte sums into one halfword. */
    __asm__ volatile(
        ".macro hwbin_nib x, dst, first\n\t"
        "and    r11, r4, \\x, lsr #1\n\t"
        "sub    \\x, \\x, r11\n\t"
        ".if \\first\n\t"
        "and    \\dst, r5, \\x, lsr #2\n\t"
        ".else\n\t"
        "and    r11, r5, \\x, lsr #2\n\t"
        "add    \\dst, \\dst, r11\n\t"
        ".endif\n\t"
        "and    \\x, \\x, r5\n\t"
        "add    \\dst, \\dst, \\x\n\t"
        ".endm\n\t"
        ".macro hwbin_word first\n\t"
        "ldr    r11, [r2], #4\n\t"
        "ldr    r12, [r0], #4\n\t"
        "ldr    lr, [r1], #4\n\t"
        "eor    r12, r12, r11\n\t"
        "eor    lr, lr, r11\n\t"
        "hwbin_nib r12, r7, \\first\n\t"
        "hwbin_nib lr, r8, \\first\n\t"
        ".endm\n\t"
        ".macro hwbin_fold src, dst\n\t"
        "and    r12, r6, \\src, lsr #4\n\t"
        "and    \\src, \\src, r6\n\t"
        "add    \\dst, \\dst, r12\n\t"
        "add    \\dst, \\dst, \\src\n\t"
        ".endm\n\t"
        ".macro hwbin_words count\n\t"
        "hwbin_word 1\n\t"
        ".rept \\count - 1\n\t"
        "hwbin_word 0\n\t"
        ".endr\n\t"
        "hwbin_fold r7, r9\n\t"
        "hwbin_fold r8, r10\n\t"
        ".endm\n\t"
        ".macro hwbin_total b\n\t"
        "lsr    r12, \\b, #8\n\t"
        "and    r12, r12, #0x00FF00FF\n\t"
        "and    \\b, \\b, #0x00FF00FF\n\t"
        "add    \\b, \\b, r12\n\t"
        "add    \\b, \\b, \\b, lsr #16\n\t"
        "uxth   \\b, \\b\n\t"
        ".endm\n\t"
        "push   {r4-r11, lr}\n\t"
        "push   {r0, r1, r3}\n\t"
        "mov    r4, #0x55555555\n\t"
        "mov    r5, #0x33333333\n\t"
        "mov    r6, #0x0F0F0F0F\n"
        "5:\n\t"
        "ldr    r0, [sp]\n\t"
        "ldr    r1, [sp, #4]\n\t"
        "ldr    r3, [sp, #8]\n\t"
        "movs   r9, #0\n\t"
        "movs   r10, #0\n\t"
        "subs   r3, r3, #3\n\t"
        "blt    2f\n"
        "1:\n\t"
        "hwbin_words 3\n\t"
        "subs   r3, r3, #3\n\t"
        "bge    1b\n"
        "2:\n\t"
        "adds   r3, r3, #3\n\t"
        "beq    4f\n"
        "3:\n\t"
        "hwbin_words 1\n\t"
        "subs   r3, r3, #1\n\t"
        "bne    3b\n"
        "4:\n\t"
        HWBIN_T2_TOTALS
        "ldr    r12, [sp, #56]\n\t"
        "ldm    r12, {r0, r1, r3}\n\t"
        "mla    r9, r9, r1, r0\n\t"
        "mla    r9, r10, r3, r9\n\t"
        "ldr    r12, [sp, #52]\n\t"
        "str    r9, [r12], #4\n\t"
        "str    r12, [sp, #52]\n\t"
        "ldr    r12, [sp, #48]\n\t"
        "subs   r12, r12, #1\n\t"
        "str    r12, [sp, #48]\n\t"
        "bne    5b\n\t"
        "add    sp, sp, #12\n\t"
        "pop    {r4-r11, pc}\n\t"
        ".purgem hwbin_total\n\t"
        ".purgem hwbin_words\n\t"
        ".purgem hwbin_fold\n\t"
        ".purgem hwbin_word\n\t"
        ".purgem hwbin_nib\n\t");
}

static void xor_counts2(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t n, uint32_t m,
                        uint32_t *out, const int32_t *f)
{
    int32_t g[3] = {0, f[1], f[2]}; /* f is linear in the counts: f[0] once per row */
    uint32_t c, j;
    if (n <= HWBIN_BATCH_MAX_WORDS) {
        xor_counts2_t2(x, y, s, n, m, out, f);
        return;
    }
    for (c = 0; c < m; c++, s += n) { /* long rows: 30-word chunks, one row at a time */
        uint32_t sum = (uint32_t)f[0], t;
        for (j = 0; j < n; j += HWBIN_BATCH_MAX_WORDS) {
            uint32_t len = n - j > HWBIN_BATCH_MAX_WORDS ? HWBIN_BATCH_MAX_WORDS : n - j;
            xor_counts2_t2(x + j, y + j, s + j, len, 1u, &t, g);
            sum += t;
        }
        out[c] = sum;
    }
}
#elif defined(HWBIN_POPCNT64)
/* 64-bit hosts with POPCNT: one output channel at a time against a row whose length is a
 * compile-time constant (a switch on n below), so the loop over the row is unrolled with
 * constant offsets, the row's words are memory operands (or registers) shared by every
 * channel, and a channel costs no per-pair set-up. The second plane is counted through
 * d = x ^ y (worked out once per call): t = s ^ x, then s ^ y = t ^ d, so each weight word
 * is loaded once and a 64-bit word pair costs 7 instructions (load, XOR, POPCNT, add; XOR,
 * POPCNT, add). An odd last 32-bit word costs the same as a 64-bit one. */

static uint64_t load64(const uint32_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The row loop unrolled whole for a constant n (GCC 8 and later; -O2 alone left a loop). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define HWBIN_UNROLL _Pragma("GCC unroll 16")
#else
#define HWBIN_UNROLL
#endif

/* POPCNT by inline assembly: GCC's __builtin_popcountll zeroes a fresh destination first (a
 * false-dependency workaround for some cores), one more instruction per word. */
static inline __attribute__((always_inline)) uint32_t pop64(uint64_t v)
{
    uint64_t r;
    __asm__("popcntq %1, %0" : "=r"(r) : "r"(v));
    return (uint32_t)r;
}

static inline __attribute__((always_inline)) uint32_t pop32(uint32_t v)
{
    uint32_t r;
    __asm__("popcntl %1, %0" : "=r"(r) : "r"(v));
    return r;
}

/* t ^ *d with *d a memory operand: GCC would otherwise hoist the loop-invariant d words into
 * registers, spill them, and reload each one with a separate move. */
static inline __attribute__((always_inline)) uint64_t xor_mem(uint64_t t, const uint64_t *d)
{
    __asm__("xorq %1, %0" : "+r"(t) : "m"(*d));
    return t;
}

/* e * *m + *a (mod 2^32) with both factors memory operands: the row kernel runs out of
 * registers, and GCC would load each into one first. */
static inline __attribute__((always_inline)) uint32_t mul_add_mem(uint32_t e, const uint32_t *m, const uint32_t *a)
{
    __asm__("imull %1, %0\n\taddl %2, %0" : "+r"(e) : "m"(*m), "m"(*a) : "cc");
    return e;
}

/* The accumulator f0 + f1 popcount(x ^ w) + f2 popcount(y ^ w) of one weight row w of n
 * words, with d = x ^ y (64-bit words; an odd last 32-bit word in the low half of the last);
 * inlined once per constant n. With f1 = 2 f2 (bases (2, 1), digits-cnn) one count
 * E = 2 cx + cy is kept, and the accumulator is f0 + f2 E. */
static inline __attribute__((always_inline)) uint32_t row_acc(const uint32_t *x, const uint64_t *d, const uint32_t *w,
                                                              uint32_t n, const uint32_t *f, uint32_t fast)
{
    uint32_t cx = 0, cy = 0, j;
    HWBIN_UNROLL
    for (j = 0; j + 2u <= n; j += 2u) {
        uint64_t t = load64(w + j) ^ load64(x + j);
        cx += pop64(t);
        cy += pop64(xor_mem(t, d + j / 2u));
    }
    if ((n & 1u) != 0u) {
        uint32_t t = w[j] ^ x[j];
        cx += pop32(t);
        cy += pop32((uint32_t)xor_mem(t, d + j / 2u));
    }
    return fast ? mul_add_mem(2u * cx + cy, f + 2, f) : f[0] + f[1] * cx + f[2] * cy;
}

/* The m weight rows s_c = s + c n against the row: with thr == NULL each accumulator into
 * out[c]; else (an order-2 output) compared at once with the channel's three thresholds
 * thr[3c..3c+2] (biased by 2^31, so f[0] comes biased) into the compare words out[0..2]
 * as the writer's level_bits makes them (the last channel first, from HWBIN_GE_START), so no
 * accumulator is stored and read back. */
static inline __attribute__((always_inline)) void rows_fixed(const uint32_t *x, const uint64_t *d, const uint32_t *s,
                                                             uint32_t n, uint32_t m, uint32_t *out, const uint32_t *f,
                                                             const uint32_t *thr, uint32_t fast)
{
    uint32_t c;
    if (thr == 0) {
        for (c = 0; c < m; c++, s += n) {
            out[c] = row_acc(x, d, s, n, f, fast);
        }
    } else {
        uint32_t g0 = HWBIN_GE_START, g1 = HWBIN_GE_START, g2 = HWBIN_GE_START;
        for (c = m, s += m * n, thr += 3u * m; c-- > 0u;) {
            uint32_t acc;
            s -= n;
            thr -= 3u;
            acc = row_acc(x, d, s, n, f, fast);
            g0 = shift_in_ge(g0, acc, thr[0]);
            g1 = shift_in_ge(g1, acc, thr[1]);
            g2 = shift_in_ge(g2, acc, thr[2]);
        }
        out[0] = g0;
        out[1] = g1;
        out[2] = g2;
    }
}

#define HWBIN_FIXED_MAX 32u /* rows of up to 32 words (1,024 K indices) get their own unrolled copy */
#define HWBIN_FIXED(N)                                             \
    case N:                                                        \
        if (fast) {                                                \
            rows_fixed(x, d, s, N##u, m, out, g, thr, 1u);         \
        } else {                                                   \
            rows_fixed(x, d, s, N##u, m, out, g, thr, 0u);         \
        }                                                          \
        return;

/* rows_fixed for rows of up to 32 words (unrolled per n); longer rows a word at a time. */
static void rows_any(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t n, uint32_t m,
                     uint32_t *out, const int32_t *f, const uint32_t *thr)
{
    uint64_t d[HWBIN_FIXED_MAX / 2u];
    uint32_t j, g[3] = {(uint32_t)f[0] ^ (thr != 0 ? 0x80000000u : 0u), (uint32_t)f[1], (uint32_t)f[2]};
    uint32_t fast = g[1] == 2u * g[2];
    if (n > HWBIN_FIXED_MAX) {
        uint32_t c, i, g0 = HWBIN_GE_START, g1 = HWBIN_GE_START, g2 = HWBIN_GE_START;
        for (c = m; c-- > 0u;) { /* long rows: a plain loop, the last channel first */
            const uint32_t *w = s + c * n;
            uint32_t cx = 0, cy = 0, acc;
            for (i = 0; i < n; i++) {
                cx += pop32(x[i] ^ w[i]);
                cy += pop32(y[i] ^ w[i]);
            }
            acc = g[0] + g[1] * cx + g[2] * cy;
            if (thr == 0) {
                out[c] = acc;
            } else {
                g0 = shift_in_ge(g0, acc, thr[3u * c]);
                g1 = shift_in_ge(g1, acc, thr[3u * c + 1u]);
                g2 = shift_in_ge(g2, acc, thr[3u * c + 2u]);
            }
        }
        if (thr != 0) {
            out[0] = g0;
            out[1] = g1;
            out[2] = g2;
        }
        return;
    }
    for (j = 0; j + 2u <= n; j += 2u) {
        d[j / 2u] = load64(x + j) ^ load64(y + j);
    }
    if ((n & 1u) != 0u) {
        d[j / 2u] = x[j] ^ y[j];
    }
    switch (n) {
        HWBIN_FIXED(1) HWBIN_FIXED(2) HWBIN_FIXED(3) HWBIN_FIXED(4) HWBIN_FIXED(5) HWBIN_FIXED(6)
        HWBIN_FIXED(7) HWBIN_FIXED(8) HWBIN_FIXED(9) HWBIN_FIXED(10) HWBIN_FIXED(11) HWBIN_FIXED(12)
        HWBIN_FIXED(13) HWBIN_FIXED(14) HWBIN_FIXED(15) HWBIN_FIXED(16) HWBIN_FIXED(17) HWBIN_FIXED(18)
        HWBIN_FIXED(19) HWBIN_FIXED(20) HWBIN_FIXED(21) HWBIN_FIXED(22) HWBIN_FIXED(23) HWBIN_FIXED(24)
        HWBIN_FIXED(25) HWBIN_FIXED(26) HWBIN_FIXED(27) HWBIN_FIXED(28) HWBIN_FIXED(29) HWBIN_FIXED(30)
        HWBIN_FIXED(31) HWBIN_FIXED(32)
    default:
        break;
    }
}
#undef HWBIN_FIXED

static void xor_counts2(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t n, uint32_t m,
                        uint32_t *out, const int32_t *f)
{
    rows_any(x, y, s, n, m, out, f, 0);
}

/* The order-2 levels' compare words ge[0..2] of m (<= 32) channels (see rows_fixed). */
#define HWBIN_FUSED_LEVELS 1
static void xor_levels2(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t n, uint32_t m,
                        const uint32_t *thr, const int32_t *f, uint32_t *ge)
{
    rows_any(x, y, s, n, m, ge, f, thr);
}
#elif HWBIN_VERTICAL
/* HWBIN_VERTICAL builds count in rows only the layers without bit-sliced thresholds (a scores
 * layer, a few channels): one word at a time, the byte total by a multiply (single-cycle on
 * Thumb-2), in a third of the SWAR kernel's flash. */
static uint32_t popcount32(uint32_t v)
{
    v -= (v >> 1) & M1;
    v = (v & M2) + ((v >> 2) & M2);
    return (((v + (v >> 4)) & M4) * 0x01010101u) >> 24;
}

static void xor_counts2(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t n, uint32_t m,
                        uint32_t *out, const int32_t *f)
{
    uint32_t c, j;
    for (c = 0; c < m; c++, s += n) {
        uint32_t cx = 0, cy = 0;
        for (j = 0; j < n; j++) {
            cx += popcount32(x[j] ^ s[j]);
            cy += popcount32(y[j] ^ s[j]);
        }
        out[c] = combine(f, cx, cy);
    }
}
#else
/* The byte sums (<= 240) of popcount(a ^ s) over the words j .. end-1 (at most 30). */
static uint32_t byte_counts(const uint32_t *a, const uint32_t *s, uint32_t j, uint32_t end, const masks_t *mk)
{
    uint32_t b = 0;
    for (; j + 3u <= end; j += 3u) {
        b += count3(a + j, s[j], s[j + 1u], s[j + 2u], mk);
    }
    for (; j < end; j++) {
        b += count1(a[j] ^ s[j], mk);
    }
    return b;
}

static void xor_counts2(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t n, uint32_t m,
                        uint32_t *out, const int32_t *f)
{
    masks_t mk = swar_masks();
    uint32_t c, j;
    for (c = 0; c < m; c++, s += n) {
        uint32_t cx = 0, cy = 0;
        for (j = 0; j < n; j += 30u) { /* byte sums of 30 words stay <= 240 */
            uint32_t end = n - j > 30u ? j + 30u : n;
            cx += sum_bytes(byte_counts(x, s, j, end, &mk));
            cy += sum_bytes(byte_counts(y, s, j, end, &mk));
        }
        out[c] = combine(f, cx, cy);
    }
}
#endif

#if defined(__GNUC__) && defined(__thumb__) && !defined(__thumb2__) && !defined(HWBIN_PORTABLE_KERNELS) && \
    !HWBIN_VERTICAL
#define HWBIN_PAIRED_ROWS 1u
/* Thumb-1 (ARMv6-M: Cortex-M0/M0+), by hand: the batch kernel on a paired row (x0 y0 x1 y1
 * ..., so one LDM loads both planes' words): out[c] = f[0] + f[1] popcount(x ^ s_c) + f[2]
 * popcount(y ^ s_c), as xor_counts2. Per word: 3 loads, 2 XORs and 7 instructions per plane for the per-nibble counts
 * (the masks 0x55555555 and 0x33333333 in r2/r3); three words' nibbles add up in r8/r9 before
 * they fold into byte sums in r10/r11 (0x0F0F0F0F in lr); a total per row. n <= 30, m >= 1. */
__attribute__((naked, noinline)) static void pair_counts_t1(const uint32_t *xy __attribute__((unused)),
                                                           const uint32_t *s __attribute__((unused)),
                                                           uint32_t n __attribute__((unused)),
                                                           uint32_t m __attribute__((unused)),
                                                           uint32_t *out __attribute__((unused)),
                                                           const int32_t *f __attribute__((unused)))
{
    /* r0 xy (runs through the row), r1 s (runs on through the rows), r12 the end of the row's
     * whole triples; [sp] xy, [sp+4] the end of the row, [sp+8] m, [sp+12] out, [sp+56] f. */
    __asm__ volatile(
        ".syntax unified\n\t" /* GCC wraps Thumb-1 inline assembly in divided syntax */
        ".macro t1_nib reg\n\t"
        "lsrs   r7, \\reg, #1\n\t"
        "ands   r7, r2\n\t"
        "subs   \\reg, \\reg, r7\n\t"
        "lsrs   r7, \\reg, #2\n\t"
        "ands   \\reg, r3\n\t"
        "ands   r7, r3\n\t"
        "adds   \\reg, \\reg, r7\n\t"
        ".endm\n\t"
        ".macro t1_word\n\t"
        "ldm    r0!, {r4, r5}\n\t"
        "ldm    r1!, {r6}\n\t"
        "eors   r4, r6\n\t"
        "eors   r5, r6\n\t"
        "t1_nib r4\n\t"
        "t1_nib r5\n\t"
        ".endm\n\t"
        ".macro t1_fold reg, acc\n\t"
        "lsrs   r7, \\reg, #4\n\t"
        "ands   \\reg, r6\n\t"
        "ands   r7, r6\n\t"
        "adds   \\reg, \\reg, r7\n\t"
        "add    \\acc, \\reg\n\t"
        ".endm\n\t"
        ".macro t1_total acc\n\t"
        "mov    r4, \\acc\n\t"
        "lsrs   r5, r4, #8\n\t"
        "ands   r4, r6\n\t"
        "ands   r5, r6\n\t"
        "adds   r4, r4, r5\n\t"
        "lsrs   r5, r4, #16\n\t"
        "adds   r4, r4, r5\n\t"
        "uxth   r4, r4\n\t"
        ".endm\n\t"
        "push   {r4-r7, lr}\n\t"
        "mov    r4, r8\n\t"
        "mov    r5, r9\n\t"
        "mov    r6, r10\n\t"
        "mov    r7, r11\n\t"
        "push   {r4-r7}\n\t"
        "sub    sp, #16\n\t"
        "str    r0, [sp, #0]\n\t"
        "lsls   r4, r2, #3\n\t"
        "adds   r4, r0, r4\n\t"
        "str    r4, [sp, #4]\n\t"
        "str    r3, [sp, #8]\n\t"
        "ldr    r4, [sp, #52]\n\t"
        "str    r4, [sp, #12]\n\t"
        "movs   r4, #11\n\t" /* n / 3 = (11 n) >> 5 for n <= 31 */
        "muls   r4, r2, r4\n\t"
        "lsrs   r4, r4, #5\n\t"
        "movs   r5, #24\n\t"
        "muls   r4, r5, r4\n\t"
        "adds   r4, r0, r4\n\t"
        "mov    r12, r4\n\t"
        "ldr    r2, =0x55555555\n\t"
        "ldr    r3, =0x33333333\n\t"
        "ldr    r4, =0x0F0F0F0F\n\t"
        "mov    lr, r4\n"
        "5:\n\t"
        "ldr    r0, [sp, #0]\n\t"
        "movs   r4, #0\n\t"
        "mov    r10, r4\n\t"
        "mov    r11, r4\n\t"
        "cmp    r0, r12\n\t"
        "beq    2f\n"
        "1:\n\t"
        "t1_word\n\t"
        "mov    r8, r4\n\t"
        "mov    r9, r5\n\t"
        "t1_word\n\t"
        "add    r8, r4\n\t"
        "add    r9, r5\n\t"
        "t1_word\n\t"
        "add    r4, r8\n\t"
        "add    r5, r9\n\t"
        "mov    r6, lr\n\t"
        "t1_fold r4, r10\n\t"
        "t1_fold r5, r11\n\t"
        "cmp    r0, r12\n\t"
        "bne    1b\n"
        "2:\n\t"
        "ldr    r4, [sp, #4]\n\t"
        "cmp    r0, r4\n\t"
        "beq    4f\n"
        "3:\n\t"
        "t1_word\n\t"
        "mov    r6, lr\n\t"
        "t1_fold r4, r10\n\t"
        "t1_fold r5, r11\n\t"
        "ldr    r4, [sp, #4]\n\t"
        "cmp    r0, r4\n\t"
        "bne    3b\n"
        "4:\n\t"
        "ldr    r6, =0x00FF00FF\n\t"
        "t1_total r11\n\t"
        "mov    r7, r4\n\t"
        "t1_total r10\n\t"
        "ldr    r0, [sp, #56]\n\t"
        "ldm    r0, {r0, r5, r6}\n\t"
        "muls   r4, r5, r4\n\t"
        "muls   r7, r6, r7\n\t"
        "adds   r4, r4, r7\n\t"
        "adds   r4, r4, r0\n\t"
        "ldr    r5, [sp, #12]\n\t"
        "stm    r5!, {r4}\n\t"
        "str    r5, [sp, #12]\n\t"
        "ldr    r4, [sp, #8]\n\t"
        "subs   r4, #1\n\t"
        "str    r4, [sp, #8]\n\t"
        "beq    6f\n\t"
        "b      5b\n" /* out of a conditional branch's reach */
        "6:\n\t"
        "add    sp, #16\n\t"
        "pop    {r4-r7}\n\t"
        "mov    r8, r4\n\t"
        "mov    r9, r5\n\t"
        "mov    r10, r6\n\t"
        "mov    r11, r7\n\t"
        "pop    {r4-r7, pc}\n\t"
        ".ltorg\n\t"
        ".purgem t1_total\n\t"
        ".purgem t1_fold\n\t"
        ".purgem t1_word\n\t"
        ".purgem t1_nib\n\t");
}
#else
#define HWBIN_PAIRED_ROWS 0u
#endif

/* The order-2 batch counts of a gathered row (see xor_counts2): a paired row through the
 * Thumb-1 kernel (rows over 30 words in 30-word chunks, one channel at a time), else the
 * planes one after another. */
static void row_counts2(const uint32_t *row, uint32_t paired, const uint32_t *s, uint32_t n, uint32_t m,
                        uint32_t *out, const int32_t *f)
{
#if HWBIN_PAIRED_ROWS
    int32_t g[3] = {0, f[1], f[2]}; /* f is linear in the counts: f[0] once per row */
    uint32_t c, j;
    if (paired != 0u && n <= HWBIN_BATCH_MAX_WORDS) {
        pair_counts_t1(row, s, n, m, out, f);
        return;
    }
    if (paired != 0u) {
        for (c = 0; c < m; c++, s += n) {
            uint32_t sum = (uint32_t)f[0], t;
            for (j = 0; j < n; j += HWBIN_BATCH_MAX_WORDS) {
                uint32_t len = n - j > HWBIN_BATCH_MAX_WORDS ? HWBIN_BATCH_MAX_WORDS : n - j;
                pair_counts_t1(row + 2u * j, s + j, len, 1u, &t, g);
                sum += t;
            }
            out[c] = sum;
        }
        return;
    }
#else
    (void)paired;
#endif
    xor_counts2(row, row + n, s, n, m, out, f);
}

/* pc[0] = popcount(x ^ s), pc[1] = popcount(y ^ s) over nw words. Counts fit 16 bits: a row
 * is at most 2047 words (the IR's limit on K is far below). */
static void xor_popcount2(const uint32_t *x, const uint32_t *y, const uint32_t *s, uint32_t nw, uint32_t *pc)
{
    static const int32_t pack[3] = {0, 1, 65536};
    uint32_t t[2]; /* one count used; room for a pair so no kernel writes past it */
    xor_counts2(x, y, s, nw, 1u, t, pack);
    pc[0] = t[0] & 0xFFFFu;
    pc[1] = t[0] >> 16;
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
    if (((doff | soff | n) & 31u) == 0u) { /* whole words: a tap of 32k channels */
        memcpy(d + (doff >> 5), s + (soff >> 5), n >> 3);
        return;
    }
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

/* acc = sum_i b_i * (n - 2 popcount(A_i ^ W)) over the k planes of the gathered row, a pair
 * of planes per kernel call. */
static int32_t accumulate(const hwbin_layer_t *l, const uint32_t *row, const uint32_t *w, uint32_t nw, uint32_t n)
{
    uint32_t i, t[2], sum = 0; /* t: room for a pair so no kernel writes past it */
    for (i = 0; i < l->in_order; i += 2u) { /* an odd last plane pairs with itself, weighted 0 */
        uint32_t j = i + 1u < l->in_order ? i + 1u : i;
        int32_t bj = j != i ? l->in_bases[j] : 0;
        int32_t f[3] = {(l->in_bases[i] + bj) * (int32_t)n, -2 * l->in_bases[i], -2 * bj};
        xor_counts2(row + i * nw, row + j * nw, w, nw, 1u, t, f);
        sum += t[0];
    }
    return (int32_t)sum;
}

/* Where and how a compute layer writes its outputs, worked out once per layer: the kernels
 * call out of line, after which the compiler would reload (and recompute) every layer field. */
typedef struct {
    uint32_t *planes;          /* output planes (levels), or NULL */
    int32_t *scores;           /* output scores, or NULL */
    uint32_t k, pw, out_c, npos;
    const uint32_t *thresholds, *flips;
    const int32_t *mul, *add;
} writer_t;

static writer_t writer_for(const hwbin_layer_t *l, uint8_t *arena)
{
    writer_t w;
    w.k = l->out_order;
    w.out_c = l->out_c;
    w.npos = (uint32_t)l->out_h * l->out_w;
    w.pw = words_for(w.out_c * w.npos);
    w.planes = w.k != 0u ? planes_at(arena, l->out_offset) : 0;
    w.scores = w.k == 0u ? (int32_t *)(void *)(arena + l->out_offset) : 0;
    w.thresholds = l->thresholds;
    w.flips = l->flips;
    w.mul = l->score_mul;
    w.add = l->score_add;
    return w;
}

/* Threshold j's compare word (bit r: channel r reaches it) into the level bits of a
 * thermometer count: bit b of the count (bits[k-1-b], plane 0 the MSB) is the XOR of the ge_j
 * with 2^b dividing j+1. */
static inline __attribute__((always_inline)) void add_ge(uint32_t *bits, uint32_t k, uint32_t j, uint32_t ge)
{
    uint32_t i;
    for (i = 0; i < k && ((j + 1u) & ((1u << i) - 1u)) == 0u; i++) {
        bits[k - 1u - i] ^= ge;
    }
}

/* The level bits of channels o0 .. o0+run-1 (run <= 32), bit r of bits[i] for channel o0+r,
 * plane 0 the MSB. Each channel's thresholds are ascending, so its compares are a
 * thermometer code: word ge_j holds (acc >= T'_j) per channel, and bit b of the count is the
 * XOR of the ge_j with 2^b dividing j+1 (order 2: MSB ge_1, LSB ge_0^ge_1^ge_2). The
 * compares are unsigned on biased values, three thresholds per pass over the channels. */
static inline __attribute__((always_inline)) void level_bits(const writer_t *w, uint32_t k, uint32_t o0,
                                                             const int32_t *acc, uint32_t run, uint32_t *bits)
{
    uint32_t nthr = (1u << k) - 1u, j0, j, i, r, flip = get_bits(w->flips, o0, run);
    for (i = 0; i < k; i++) {
        bits[i] = flip;
    }
    for (j0 = 0; j0 < nthr; j0 += 3u) {
        uint32_t ge[3] = {HWBIN_GE_START, HWBIN_GE_START, HWBIN_GE_START};
        const uint32_t *t = w->thresholds + (o0 + run) * nthr + j0;
        for (r = run; r-- > 0u;) { /* the last channel first: it ends in bit run-1 */
            uint32_t x = (uint32_t)acc[r] ^ 0x80000000u;
            t -= nthr;
            ge[0] = shift_in_ge(ge[0], x, t[0]);
            if (j0 + 1u < nthr) {
                ge[1] = shift_in_ge(ge[1], x, t[1]);
            }
            if (j0 + 2u < nthr) {
                ge[2] = shift_in_ge(ge[2], x, t[2]);
            }
        }
        for (j = 0; j < 3u && j0 + j < nthr; j++) {
            add_ge(bits, k, j0 + j, ge[j] ^ HWBIN_GE_START);
        }
    }
}

/* Levels of the m consecutive channels o0.. at position pos, whose bits are consecutive in
 * every plane: ORed into the zeroed planes a word's share at a time (32 channels at a
 * 32-channel boundary: one store per plane). */
static inline __attribute__((always_inline)) void emit_levels(const writer_t *w, uint32_t k, uint32_t o0,
                                                              uint32_t pos, const int32_t *acc, uint32_t m)
{
    uint32_t bits[HWBIN_MAX_ORDER], c = 0, i, idx = pos * w->out_c + o0;
    while (c < m) {
        uint32_t b = idx & 31u, run = 32u - b < m - c ? 32u - b : m - c;
        uint32_t *out = w->planes + (idx >> 5);
        level_bits(w, k, o0 + c, acc + c, run, bits);
        for (i = 0; i < k; i++) {
            out[i * w->pw] |= bits[i] << b;
        }
        idx += run;
        c += run;
    }
}

/* Writes m consecutive output channels o0.. at position pos from their accumulators: scores,
 * or levels (the common order 2 with constant k). */
static void emit_run(const writer_t *w, uint32_t o0, uint32_t pos, const int32_t *acc, uint32_t m)
{
    if (w->scores != 0) {
        uint32_t c;
        for (c = 0; c < m; c++) {
            w->scores[(o0 + c) * w->npos + pos] = w->mul[o0 + c] * acc[c] + w->add[o0 + c];
        }
    } else if (w->k == 2u) {
        emit_levels(w, 2u, o0, pos, acc, m);
    } else {
        emit_levels(w, w->k, o0, pos, acc, m);
    }
}

/* One stride phase of a conv (the only phase) or a deconv: the outputs whose (o + p) mod s
 * equals (ry, rx) sum the taps ky = ry, ry+s, ... (all taps for a conv). */
typedef struct {
    uint32_t ry, rx, ty, tx, n, nw;
} phase_t;

/* The input cell that tap (ty, tx) of output (oy, ox) reads in a phase is (y - step*ty,
 * x - step*tx)... written as (y + step*ty, x + step*tx): a conv's taps read iy = oy*s - p + ty
 * (step +1); a deconv's taps ky = ry + ty*s read iy = (oy + p - ry)/s - ty (step -1; the
 * division is exact within the phase, and a negative iy is the contract's "no input" cell).
 * Worked out once per output, so the tap loops only step a row and a column. */
typedef struct {
    int32_t y, x, step;
} tap_origin_t;

HWBIN_SIZE_NOINLINE static tap_origin_t tap_origin(const hwbin_layer_t *l, const phase_t *ph, uint32_t oy, uint32_t ox)
{
    tap_origin_t t;
    if (l->kind == HWBIN_CONV) {
        t.y = (int32_t)(oy * l->sh) - (int32_t)l->ph;
        t.x = (int32_t)(ox * l->sw) - (int32_t)l->pw;
        t.step = 1;
    } else {
        t.y = ((int32_t)oy + (int32_t)l->ph - (int32_t)ph->ry) / (int32_t)l->sh;
        t.x = ((int32_t)ox + (int32_t)l->pw - (int32_t)ph->rx) / (int32_t)l->sw;
        t.step = -1;
    }
    return t;
}

/* The input position (iy*in_w + ix) of a tap, or -1 for a padding cell (level 0). */
static inline int32_t tap_at(const hwbin_layer_t *l, int32_t iy, int32_t ix)
{
    if ((uint32_t)iy >= l->in_h || (uint32_t)ix >= l->in_w) {
        return -1;
    }
    return iy * (int32_t)l->in_w + ix;
}

/* gather_words' taps for k planes of cw words a tap (constants where a caller specialises
 * them): per tap the words copied, or zeroed for a padding tap. */
static inline __attribute__((always_inline)) void gather_taps(const hwbin_layer_t *l, const phase_t *ph,
                                                              const uint32_t *in, uint32_t *row, uint32_t paired,
                                                              tap_origin_t o, uint32_t k, uint32_t cw)
{
    uint32_t in_pw = words_for(elements(l->in_c, l->in_h, l->in_w)), in_h = l->in_h;
    uint32_t in_w = l->in_w, ic = l->in_c >> 5;
    uint32_t step = paired != 0u ? 2u : 1u, plane = paired != 0u ? 1u : ph->nw, ty, tx, i, j;
    int32_t iy = o.y, ix;
    for (ty = 0; ty < ph->ty; ty++, iy += o.step) {
        for (tx = 0, ix = o.x; tx < ph->tx; tx++, ix += o.step, row += cw * step) {
            uint32_t inside = (uint32_t)iy < in_h && (uint32_t)ix < in_w;
            const uint32_t *s = in + (inside ? ((uint32_t)iy * in_w + (uint32_t)ix) * ic : 0u);
            uint32_t *d = row;
            for (i = 0; i < k; i++, s += in_pw, d += plane) {
                for (j = 0; j < cw; j++) {
                    d[j * step] = inside ? s[j] : 0u;
                }
            }
        }
    }
}

/* The whole-word case of gather_row (a multiple of 32 channels per group): per tap the cw
 * words of each plane copied, or zeroed for a padding tap (paired: the two planes of an
 * order-2 row word by word, where the Thumb-1 kernel loads both at once), with stepping
 * pointers and every layer field read once; in gather_row's loops GCC spilled them (about 113
 * cycles a tap on the M4). On x86-64 an order-2 row of one or two words a tap gets its own
 * copy with the loops unrolled (there the loop control was most of a tap's 60 instructions).
 * in: the group's first word of plane 0. */
HWBIN_X86_NOINLINE static void gather_words(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *in, uint32_t *row,
                                            uint32_t paired, tap_origin_t o)
{
#if defined(__GNUC__) && defined(__x86_64__)
    uint32_t k = l->in_order, cw = (l->in_c / l->groups) >> 5;
    if (paired == 0u && k == 2u && cw == 1u) {
        gather_taps(l, ph, in, row, 0u, o, 2u, 1u);
        return;
    }
    if (paired == 0u && k == 2u && cw == 2u) {
        gather_taps(l, ph, in, row, 0u, o, 2u, 2u);
        return;
    }
#endif
    gather_taps(l, ph, in, row, paired, o, l->in_order, (l->in_c / l->groups) >> 5);
}

/* Gathers the k input planes of output (oy, ox) of group g into the scratch row, in the
 * contract's K order; padding taps are level 0 (every plane bit 0). Taps of whole words
 * (a multiple of 32 channels per group) are word copies (gather_words); others go bit by bit. */
static void gather_row(const hwbin_layer_t *l, const phase_t *ph, const uint8_t *arena, uint32_t *row,
                       uint32_t paired, uint32_t g, uint32_t oy, uint32_t ox)
{
    const uint32_t *in = (const uint32_t *)(const void *)(arena + l->in_offset);
    uint32_t in_pw = words_for(elements(l->in_c, l->in_h, l->in_w)), k = l->in_order;
    uint32_t cg = l->in_c / l->groups, t = 0, ty, tx, i;
    tap_origin_t o = tap_origin(l, ph, oy, ox);
    int32_t iy = o.y, ix;
    if ((cg & 31u) == 0u) {
        gather_words(l, ph, in + g * (cg >> 5), row, paired, o);
        return;
    }
    memset(row, 0, k * ph->nw * 4u);
    for (ty = 0; ty < ph->ty; ty++, iy += o.step) {
        for (tx = 0, ix = o.x; tx < ph->tx; tx++, t++, ix += o.step) {
            int32_t src = tap_at(l, iy, ix);
            for (i = 0; src >= 0 && i < k; i++) {
                copy_bits(row + i * ph->nw, t * cg, in + i * in_pw, (uint32_t)src * l->in_c + g * cg, cg);
            }
        }
    }
}

/* acc[c] for the m output channels o.. against the gathered row: order 2 through the batch
 * kernel, order 1 two channels per pass over the row, other orders plane by plane. */
static void row_accumulators(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *row, uint32_t paired,
                             const uint32_t *weight, uint32_t o, uint32_t m, int32_t *acc)
{
    int32_t n = (int32_t)ph->n, b0 = l->in_bases[0];
    uint32_t c, nw = ph->nw, pc[HWBIN_BATCH];
    if (l->in_order == 2u) { /* the kernel computes the accumulators */
        int32_t f[3] = {(b0 + l->in_bases[1]) * n, -2 * b0, -2 * l->in_bases[1]};
        row_counts2(row, paired, weight + o * nw, nw, m, (uint32_t *)acc, f);
        return;
    }
    for (c = 0; c < m; c++) {
        if (l->in_order == 1u && c + 1u < m) {
            xor_popcount2(weight + (o + c) * nw, weight + (o + c + 1u) * nw, row, nw, pc);
            acc[c] = b0 * (n - 2 * (int32_t)pc[0]);
            acc[c + 1u] = b0 * (n - 2 * (int32_t)pc[1]);
            c++;
        } else {
            acc[c] = accumulate(l, row, weight + (o + c) * nw, nw, ph->n);
        }
    }
}

/* Output channels o.. < end handled in one run: at most HWBIN_BATCH. */
static uint32_t run_length(uint32_t o, uint32_t end) { return end - o > HWBIN_BATCH ? HWBIN_BATCH : end - o; }

#if defined(__GNUC__) && defined(__x86_64__)
/* Order-2 levels of the channels o .. o+run-1 (run <= 32, not across a word of the output
 * planes; idx = the first one's bit index) from their three compare words (level_bits'
 * form): the level bits by add_ge, the flips, ORed into the zeroed planes. */
static void put_levels2(const writer_t *w, uint32_t o, uint32_t idx, uint32_t run, const uint32_t *ge)
{
    uint32_t bits[2], j, b = idx & 31u, *out = w->planes + (idx >> 5);
    bits[0] = bits[1] = get_bits(w->flips, o, run);
    for (j = 0; j < 3u; j++) {
        add_ge(bits, 2u, j, ge[j] ^ HWBIN_GE_START);
    }
    out[0] |= bits[0] << b;
    out[w->pw] |= bits[1] << b;
}

/* emit_run for order-2 levels from accumulators already biased by 2^31 (the thresholds'
 * bias): three compares a channel, no pass to bias them. */
static void levels2_biased(const writer_t *w, uint32_t o, uint32_t pos, const uint32_t *acc, uint32_t m)
{
    uint32_t idx = pos * w->out_c + o, end = o + m;
    while (o < end) {
        uint32_t run = 32u - (idx & 31u) < end - o ? 32u - (idx & 31u) : end - o, ge[3];
        const uint32_t *t = w->thresholds + 3u * (o + run), *a;
        ge[0] = ge[1] = ge[2] = HWBIN_GE_START;
        for (a = acc + run; a != acc;) { /* the last channel first: it ends in bit run-1 */
            t -= 3u;
            a--;
            ge[0] = shift_in_ge(ge[0], *a, t[0]);
            ge[1] = shift_in_ge(ge[1], *a, t[1]);
            ge[2] = shift_in_ge(ge[2], *a, t[2]);
        }
        put_levels2(w, o, idx, run, ge);
        acc += run;
        idx += run;
        o += run;
    }
}
#endif

#ifdef HWBIN_FUSED_LEVELS
/* An order-2 input and order-2 levels out, through the kernel that compares as it counts
 * (xor_levels2): the channels o .. end-1 of position pos in runs that end at a word of the
 * output planes, per run three compare words and put_levels2. */
static void fused_levels2(const hwbin_layer_t *l, const phase_t *ph, const writer_t *w, const uint32_t *row,
                          const uint32_t *weight, uint32_t o, uint32_t end, uint32_t pos)
{
    int32_t n = (int32_t)ph->n, b0 = l->in_bases[0], b1 = l->in_bases[1];
    int32_t f[3] = {(b0 + b1) * n, -2 * b0, -2 * b1};
    uint32_t nw = ph->nw, idx = pos * w->out_c + o;
    while (o < end) {
        uint32_t run = 32u - (idx & 31u) < end - o ? 32u - (idx & 31u) : end - o, ge[3];
        xor_levels2(row, row + nw, weight + o * nw, nw, run, w->thresholds + 3u * o, f, ge);
        put_levels2(w, o, idx, run, ge);
        idx += run;
        o += run;
    }
}
#endif

/* Binary layers in the row layout: one gathered row per output position, then the group's
 * output channels in runs of HWBIN_BATCH (one kernel call and one word of level bits per run). */
static void row_position(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                         uint32_t *row, uint32_t g, uint32_t oy, uint32_t ox)
{
    uint32_t og = l->out_c / l->groups, end = (g + 1u) * og, o, m, pos = oy * l->out_w + ox;
    uint32_t paired = HWBIN_PAIRED_ROWS && l->in_order == 2u && ((l->in_c / l->groups) & 31u) == 0u;
    int32_t acc[HWBIN_BATCH];
    writer_t wr = writer_for(l, arena);
    gather_row(l, ph, arena, row, paired, g, oy, ox);
#ifdef HWBIN_FUSED_LEVELS
    if (l->in_order == 2u && wr.k == 2u) {
        fused_levels2(l, ph, &wr, row, weight, g * og, end, pos);
        return;
    }
#endif
    for (o = g * og; o < end; o += m) {
        m = run_length(o, end);
        row_accumulators(l, ph, row, paired, weight, o, m, acc);
        emit_run(&wr, o, pos, acc, m);
    }
}

#if HWBIN_VERTICAL
/* ---------------------------------------------------------------- vertical (bit-sliced) counts
 *
 * HWBIN_VERTICAL builds read the weights of a layer with bit-sliced thresholds (l->slices != 0;
 * firmware/generate.py vertical_tables) transposed: per group, per block of 32 output channels
 * of the group (always whole there), the block's weights K index by K index, one word each
 * (bit r: the block's channel r). One activation bit then meets 32 output channels in a few
 * word-wide boolean operations: a block's counts are kept bit-sliced, lv[l] holding bit l of
 * all 32 channels' counts. */
#define HWBIN_VLEVELS 16u /* counts < 2^16: a plane's n, or E = 2 D_1 + D_2 <= 3n (fast_pair) */

#if defined(__GNUC__) && defined(__thumb2__) && !defined(HWBIN_PORTABLE_KERNELS)
/* lv = E = 2 popcount(x ^ w) + popcount(y ^ w) per channel, y = x + nw (the row's two
 * planes), by hand: GCC spills this loop. A Harley-Seal carry-save sum: lv[0..4] (the ones to
 * sixteens) stay in r4-r8; per pair of K indices two weight loads, the two planes' bits
 * broadcast by "eor rd, w, a, asr #31" (the row word bit-reversed once, then shifted left),
 * plane 1's pair added into the ones (a carry-save adder, CSA), its carry and plane 0's pair
 * into the twos (a CSA and a half adder), their two carries into the fours: 25 ALU operations.
 * Four pairs' eights carries go through the eights (two CSAs) into the sixteens (one CSA, one
 * carry spilled to the stack). The sixteens' carries of a row word's four steps wait on the
 * stack and go into lv[5..] in memory together: two CSAs into lv[5], one into lv[6], a half
 * adder into lv[7], then a ripple that stops at the first level without a carry (E < 2^16, so
 * never past lv[15]); rippling each step's carry on its own cost about 20 cycles a step.
 * r1 w, r2/r3 the row words of planes 0/1, r9-r12 and lr temporaries, r0 a held eights carry;
 * [sp] lv + 5, [sp+4] the spilled carry, [sp+8] the end of the row word's 32 weight words,
 * [sp+12] the row, [sp+16] its end, [sp+20] 4 nw, [sp+24..32] the waiting sixteens' carries. */
__attribute__((naked, noinline)) static void vcount2(uint32_t *lv __attribute__((unused)),
                                                     const uint32_t *w __attribute__((unused)),
                                                     const uint32_t *x __attribute__((unused)),
                                                     uint32_t nw __attribute__((unused)))
{
    __asm__ volatile(
        ".macro vcsa l, a, b, h\n\t" /* h = carry of l + a + b, l = their sum bit (lr temporary; h may be a) */
        "eor    lr, \\l, \\a\n\t"
        "and    \\h, \\l, \\a\n\t"
        "eor    \\l, lr, \\b\n\t"
        "and    lr, lr, \\b\n\t"
        "orr    \\h, \\h, lr\n\t"
        ".endm\n\t"
        ".macro vpair dst\n\t" /* two K indices; dst = their fours' carry into the eights */
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
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #36\n\t"
        "add    r12, r0, #20\n\t"
        "str    r12, [sp]\n\t"
        "str    r2, [sp, #12]\n\t"
        "lsl    r12, r3, #2\n\t"
        "str    r12, [sp, #20]\n\t"
        "add    r3, r2, r12\n\t"
        "str    r3, [sp, #16]\n\t"
        "movs   r4, #0\n\t" /* lv = 0: r4-r8 and lv[5..15] */
        "movs   r5, #0\n\t"
        "movs   r6, #0\n\t"
        "movs   r7, #0\n\t"
        "movs   r8, #0\n\t"
        "movs   r9, #0\n\t"
        "movs   r10, #0\n\t"
        "movs   r11, #0\n\t"
        "add    r0, r0, #20\n\t"
        "stm    r0!, {r4-r11}\n\t"
        "stm    r0, {r4-r6}\n"
        "2:\n\t"
        "ldr    r12, [sp, #12]\n\t"
        "ldr    r3, [sp, #20]\n\t"
        "ldr    r3, [r12, r3]\n\t"
        "ldr    r2, [r12], #4\n\t"
        "str    r12, [sp, #12]\n\t"
        "rbit   r2, r2\n\t"
        "rbit   r3, r3\n\t"
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
        "ldr    r0, [sp, #8]\n\t" /* bytes of the row word's weights left: 96, 64, 32, 0 */
        "subs   r0, r0, r1\n\t"
        "beq    5f\n\t"
        "add    r0, sp, r0, lsr #3\n\t" /* the first three sixteens' carries wait in [sp+24..32] */
        "str    r11, [r0, #20]\n\t"
        "b      1b\n"
        "5:\n\t" /* lv[5..7] += the row word's four carries: two CSAs, a CSA, a half adder */
        "add    r12, sp, #24\n\t"
        "ldm    r12, {r2, r3, r9}\n\t"
        "ldr    r12, [sp]\n\t"
        "ldm    r12, {r0, r10}\n\t"
        "vcsa   r0, r2, r3, r2\n\t"
        "vcsa   r0, r9, r11, r9\n\t"
        "vcsa   r10, r2, r9, r11\n\t"
        "ldr    r3, [r12, #8]\n\t"
        "ands   r2, r3, r11\n\t"
        "eor    r3, r3, r11\n\t"
        "stm    r12!, {r0, r10}\n\t"
        "str    r3, [r12], #4\n\t"
        "beq    3f\n\t"
        "mov    r11, r2\n"
        "4:\n\t"
        "ldr    r9, [r12]\n\t"
        "ands   r10, r9, r11\n\t"
        "eor    r9, r9, r11\n\t"
        "str    r9, [r12], #4\n\t"
        "mov    r11, r10\n\t"
        "bne    4b\n"
        "3:\n\t"
        "ldr    r0, [sp, #12]\n\t"
        "ldr    r12, [sp, #16]\n\t"
        "cmp    r0, r12\n\t"
        "bne    2b\n\t"
        "ldr    r0, [sp]\n\t"
        "sub    r0, r0, #20\n\t"
        "stm    r0, {r4-r8}\n\t"
        "add    sp, sp, #36\n\t"
        "pop    {r4-r11, pc}\n\t"
        ".purgem vpair\n\t"
        ".purgem vcsa\n\t");
}
#define HWBIN_VCOUNT2_ASM 1
#endif

#ifndef HWBIN_VCOUNT2_ASM
/* lv += d (one bit per channel) over `levels` levels, the carries rippled up. */
static inline void vadd(uint32_t *lv, uint32_t levels, uint32_t d)
{
    uint32_t l;
    for (l = 0; d != 0u && l < levels; l++) {
        uint32_t c = lv[l] & d;
        lv[l] ^= d;
        d = c;
    }
}

/* lv += popcount(a ^ w) per channel over the nw words of one plane a of the row, w one word
 * (32 channels) per K index: portable C, where the Thumb-2 kernel is not built. */
static void vcount_plane(uint32_t *lv, uint32_t levels, const uint32_t *w, const uint32_t *a, uint32_t nw)
{
    uint32_t k;
    for (k = 0; k < 32u * nw; k++) {
        vadd(lv, levels, w[k] ^ (0u - ((a[k >> 5] >> (k & 31u)) & 1u)));
    }
}
#endif

/* lv = E = 2 popcount(x ^ w) + popcount(y ^ w) per channel of a block of 32, y = x + nw
 * (plane 0 enters at the twos). */
static void count_pair(uint32_t *lv, const uint32_t *w, const uint32_t *x, uint32_t nw)
{
#ifdef HWBIN_VCOUNT2_ASM
    vcount2(lv, w, x, nw);
#else
    memset(lv, 0, HWBIN_VLEVELS * 4u);
    vcount_plane(lv + 1, HWBIN_VLEVELS - 1u, w, x, nw);
    vcount_plane(lv, HWBIN_VLEVELS, w, x + nw, nw);
#endif
}

/* (E >= V) per channel, V bit-sliced in `levels` words (LSB first): the most significant
 * level where E and V differ decides; equal reaches the threshold. */
static inline uint32_t vge(const uint32_t *lv, const uint32_t *v, uint32_t levels)
{
    uint32_t ge = ~0u, l;
    for (l = 0; l < levels; l++) {
        ge ^= (ge ^ lv[l]) & (lv[l] ^ v[l]);
    }
    return ge;
}

/* The levels of a block's 32 channels o.. at position pos from its bit-sliced E (see
 * generate.py sliced_thresholds): one compare word a threshold for the whole block, the
 * thermometer's level bits by XOR (add_ge), the flips, then one word a plane (out_c is a
 * multiple of 32). */
static void emit_sliced(const writer_t *w, uint32_t slices, const uint32_t *lv, uint32_t block, uint32_t o,
                        uint32_t pos)
{
    uint32_t k = w->k, nthr = (1u << k) - 1u, j, i, bits[HWBIN_MAX_ORDER], at = (pos * w->out_c + o) >> 5;
    const uint32_t *v = w->thresholds + block * nthr * slices;
    for (i = 0; i < k; i++) {
        bits[i] = w->flips[o >> 5];
    }
    for (j = 0; j < nthr; j++, v += slices) {
        add_ge(bits, k, j, vge(lv, v, slices));
    }
    for (i = 0; i < k; i++) {
        w->planes[i * w->pw + at] = bits[i];
    }
}

/* Layers with bit-sliced thresholds (HWBIN_VERTICAL, l->slices levels; firmware/generate.py
 * vertical_tables): one gathered row per output position; per block of up to 32 output
 * channels the bit-sliced fast count E of both planes against the block's transposed weights,
 * then the thresholds compared 32 channels at a time. */
static void sliced_position(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                            uint32_t *row, uint32_t g, uint32_t oy, uint32_t ox)
{
    uint32_t blocks = l->out_c / l->groups >> 5, nw = ph->nw, pos = oy * l->out_w + ox, bi;
    writer_t wr = writer_for(l, arena);
    gather_row(l, ph, arena, row, 0u, g, oy, ox);
    for (bi = g * blocks; bi < (g + 1u) * blocks; bi++) {
        uint32_t lv[HWBIN_VLEVELS];
        count_pair(lv, weight + bi * nw * 32u, row, nw);
        emit_sliced(&wr, l->slices, lv, bi, bi * 32u, pos);
    }
}
#endif

/* Binary layers: bit-sliced where the build and the layer have the tables, else rows. */
static void binary_position(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                            uint32_t *row, uint32_t g, uint32_t oy, uint32_t ox)
{
#if HWBIN_VERTICAL
    if (l->slices != 0u) {
        sliced_position(l, ph, weight, arena, row, g, oy, ox);
        return;
    }
#endif
    row_position(l, ph, weight, arena, row, g, oy, ox);
}

/* The first layer on uint8 pixels through tables of subset sums: the K vector goes in blocks
 * of 32 values (one weight word); for every 4 values of a block (a nibble of the weight word),
 * tab[16q + s] = the sum of the values whose bit is set in s. A channel's sum over the block's
 * values where its weight is +1 is then one lookup per nibble. */
#define HWBIN_PIXEL_CHUNKS 8u /* 4-value chunks per block; firmware/generate.py's PIXEL_TABLE_CHUNKS */

static uint32_t pixel_chunks(uint32_t n) { return (n + 3u) >> 2; }

/* Fills each chunk's table from its single-value entries tab[16q + 2^b] (already written). */
static void build_pixel_tables(int16_t *tab, uint32_t chunks)
{
    uint32_t q, s;
    for (q = 0; q < chunks; q++, tab += 16) {
        tab[3] = (int16_t)(tab[1] + tab[2]);
        for (s = 1; s < 4u; s++) {
            tab[4u + s] = (int16_t)(tab[4] + tab[s]);
        }
        for (s = 1; s < 8u; s++) {
            tab[8u + s] = (int16_t)(tab[8] + tab[s]);
        }
    }
}

/* acc[c] += the block's sum where weight word w[c * nw] has a 1, for the m channels. A nibble
 * of 0 adds tab[16q] = 0, and a weight word's bits past the phase's n values are 0 (the
 * generator's padding), so a channel's lookups stop at its last nonzero nibble. */
HWBIN_SPEED_NOINLINE static void add_block_sums(const int16_t *tab, const uint32_t *w, uint32_t nw, uint32_t m, int32_t *acc)
{
    uint32_t c;
    for (c = 0; c < m; c++, w += nw) {
        const int16_t *t = tab;
        uint32_t bits = *w;
        int32_t sum = 0;
        for (; bits != 0u; bits >>= 4, t += 16) {
            sum += t[bits & 15u];
        }
        acc[c] += sum;
    }
}

#if defined(__GNUC__) && defined(__x86_64__) && defined(__SSE2__)
/* x86-64 (SSE2 is baseline there), by GCC's vector extension: a first layer whose phase fits
 * one weight word (n <= 32, a 3x3 or 5x5 kernel on one channel, 3x3 on three) sums its values
 * four channels a vector, straight from the row layout (consecutive channels' words are
 * consecutive): per value j, the channels' bit j moved to the sign and spread over the lane
 * (a mask), ANDed with v_j and added: 16 channels (four SSE2 registers) per pass over the
 * values, 5 instructions per value and 4 channels. */
#define HWBIN_PIXEL_VECTORS 1
typedef int32_t hwbin_v4 __attribute__((vector_size(16))); /* one SSE2 register */
typedef uint32_t hwbin_u4 __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) hwbin_u4 load_u4(const uint32_t *w)
{
    hwbin_u4 s;
    memcpy(&s, w, 16);
    return s;
}

/* One value into four channels' sums: a += (s < 0: the channel's bit, as a lane of ones) & v;
 * s <<= 1. */
#define HWBIN_PIXEL_STEP(a, s, v)        \
    do {                                 \
        a += (hwbin_u4)((hwbin_v4)(s) < 0) & (v); \
        s += s;                          \
    } while (0)

/* acc[c] = a + the sum of v[j] over the bits j set in w[c] (mod 2^32), for 16 channels c:
 * four registers by name (GCC keeps an array of vectors, or one 64-byte vector, in memory). */
static inline __attribute__((always_inline)) void pixel_sums16(const uint32_t *w, const int32_t *v, uint32_t n,
                                                               uint32_t a, uint32_t *acc)
{
    hwbin_u4 a0 = {a, a, a, a}, a1 = a0, a2 = a0, a3 = a0;
    hwbin_u4 s0 = load_u4(w) << (32u - n), s1 = load_u4(w + 4) << (32u - n); /* bit n-1 at the sign */
    hwbin_u4 s2 = load_u4(w + 8) << (32u - n), s3 = load_u4(w + 12) << (32u - n);
    uint32_t j;
    for (j = n; j-- > 0u;) { /* the values from the last */
        uint32_t u = (uint32_t)v[j];
        hwbin_u4 vj = {u, u, u, u};
        HWBIN_PIXEL_STEP(a0, s0, vj);
        HWBIN_PIXEL_STEP(a1, s1, vj);
        HWBIN_PIXEL_STEP(a2, s2, vj);
        HWBIN_PIXEL_STEP(a3, s3, vj);
    }
    memcpy(acc, &a0, 16);
    memcpy(acc + 4, &a1, 16);
    memcpy(acc + 8, &a2, 16);
    memcpy(acc + 12, &a3, 16);
}
#undef HWBIN_PIXEL_STEP

/* The phase's values 2 v_j = 4 x_j - 510 of output (oy, ox) in K order (tap-major, channel
 * fastest; padding pixel 0) from px, the group's first pixel plane, for cg channels a group;
 * returns their sum. */
static inline __attribute__((always_inline)) int32_t pixel_values_cg(const hwbin_layer_t *l, const phase_t *ph,
                                                                     const uint8_t *px, tap_origin_t org,
                                                                     int32_t *v2, uint32_t cg)
{
    uint32_t plane = (uint32_t)l->in_h * l->in_w, ty, tx, c;
    int32_t total = 0, iy, ix;
    for (ty = 0, iy = org.y; ty < ph->ty; ty++, iy += org.step) {
        for (tx = 0, ix = org.x; tx < ph->tx; tx++, ix += org.step) {
            int32_t src = tap_at(l, iy, ix);
            const uint8_t *p = px + (src < 0 ? 0u : (uint32_t)src);
            for (c = 0; c < cg; c++, v2++, p += plane) {
                *v2 = 4 * (src < 0 ? 0 : (int32_t)*p) - 510;
                total += *v2;
            }
        }
    }
    return total;
}

/* pixel_values_cg out of line (inlined, its loop's fields spilled), with its own copy for
 * one input channel (a grayscale image) where the channel loop goes. */
HWBIN_X86_NOINLINE static int32_t pixel_values2(const hwbin_layer_t *l, const phase_t *ph, const uint8_t *px,
                                                tap_origin_t org, int32_t *v2)
{
    uint32_t cg = l->in_c / l->groups;
    return cg == 1u ? pixel_values_cg(l, ph, px, org, v2, 1u) : pixel_values_cg(l, ph, px, org, v2, cg);
}

/* pixel_position for such a layer (one weight word a channel, a multiple of 16 channels a
 * group): the phase's values once, then each run of channels as above, from -sum v adding
 * 2 v_j where the weight is +1. */
static void pixel_position_v(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                             const uint8_t *pixels, uint32_t g, uint32_t oy, uint32_t ox)
{
    uint32_t cg = l->in_c / l->groups, og = l->out_c / l->groups, plane = (uint32_t)l->in_h * l->in_w;
    uint32_t c, o, m, end = (g + 1u) * og, pos = oy * l->out_w + ox;
    writer_t wr = writer_for(l, arena);
    int32_t v2[32];
    uint32_t acc[HWBIN_BATCH], start;
    int32_t total = pixel_values2(l, ph, pixels + g * cg * plane, tap_origin(l, ph, oy, ox), v2);
    start = 0u - (uint32_t)(total / 2); /* -sum v; order-2 levels: biased as the thresholds */
    start += wr.k == 2u ? 0x80000000u : 0u;
    for (o = g * og; o < end; o += m) {
        m = run_length(o, end);
        for (c = 0; c < m; c += 16u) {
            pixel_sums16(weight + o + c, v2, ph->n, start, acc + c);
        }
        if (wr.k == 2u) {
            levels2_biased(&wr, o, pos, acc, m);
        } else {
            emit_run(&wr, o, pos, (const int32_t *)acc, m);
        }
    }
}
#endif

/* The first layer on uint8 pixels. The contract's order-8 input has value 2x - 255 per pixel
 * (padding: pixel 0, value -255), so with +-1 weights
 *   acc = sum_j w_j (2 x_j - 255) = 2 * sum_{j: w_j = +1} v_j - sum_j v_j,  v_j = 2 x_j - 255,
 * exactly what the eight bit planes would give. Each run of output channels streams the taps
 * through the tables a block at a time. */
static void pixel_position(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                           int16_t *tab, const uint8_t *pixels, uint32_t g, uint32_t oy, uint32_t ox)
{
    uint32_t cg = l->in_c / l->groups, og = l->out_c / l->groups, plane = (uint32_t)l->in_h * l->in_w;
    tap_origin_t org = tap_origin(l, ph, oy, ox);
    uint32_t ty, tx, c, o, m, end = (g + 1u) * og, pos = oy * l->out_w + ox;
    writer_t wr = writer_for(l, arena);
    int32_t acc[HWBIN_BATCH], iy, ix;
#ifdef HWBIN_PIXEL_VECTORS
    if (ph->nw == 1u && (og & 15u) == 0u) {
        pixel_position_v(l, ph, weight, arena, pixels, g, oy, ox);
        return;
    }
#endif
    for (o = g * og; o < end; o += m) {
        const uint32_t *w = weight + o * ph->nw;
        uint32_t j = 0, left = ph->n;
        int32_t total = 0;
        m = run_length(o, end);
        memset(acc, 0, m * 4u);
        for (ty = 0, iy = org.y; ty < ph->ty; ty++, iy += org.step) {
            for (tx = 0, ix = org.x; tx < ph->tx; tx++, ix += org.step) {
                int32_t src = tap_at(l, iy, ix);
                for (c = 0; c < cg; c++, j++, left--) {
                    int32_t x = 2 * (src < 0 ? 0 : (int32_t)pixels[(g * cg + c) * plane + (uint32_t)src]) - 255;
                    uint32_t chunks = pixel_chunks(left) < HWBIN_PIXEL_CHUNKS ? pixel_chunks(left) : HWBIN_PIXEL_CHUNKS;
                    if (j == 0u) { /* a block starts: a short last chunk's missing values add 0 */
                        memset(tab, 0, chunks * 32u);
                    }
                    tab[16u * (j >> 2) + (1u << (j & 3u))] = (int16_t)x;
                    total += x;
                    if (j == 31u || left == 1u) {
                        chunks = pixel_chunks(j + 1u);
                        build_pixel_tables(tab, chunks);
                        add_block_sums(tab, w++, ph->nw, m, acc);
                        j = ~0u; /* the next value starts a block */
                    }
                }
            }
        }
        for (c = 0; c < m; c++) {
            acc[c] = 2 * acc[c] - total;
        }
        emit_run(&wr, o, pos, acc, m);
    }
}

/* One stride phase of a conv (the only phase) or a deconv: the outputs whose (o + p) mod s
 * equals (ry, rx) sum the taps ky = ry, ry+s, ... (all taps for a conv). pixels: the uint8
 * input when this is the first layer, else NULL. */
static void run_phase(const hwbin_layer_t *l, const phase_t *ph, const uint32_t *weight, uint8_t *arena,
                      void *scratch, const uint8_t *pixels)
{
    uint32_t ystep = l->kind == HWBIN_CONV ? 1u : l->sh, xstep = l->kind == HWBIN_CONV ? 1u : l->sw;
    uint32_t y0 = l->kind == HWBIN_CONV ? 0u : (ph->ry + l->sh - (l->ph % l->sh)) % l->sh;
    uint32_t x0 = l->kind == HWBIN_CONV ? 0u : (ph->rx + l->sw - (l->pw % l->sw)) % l->sw;
    uint32_t g, oy, ox;
    for (g = 0; g < l->groups; g++) {
        for (oy = y0; oy < l->out_h; oy += ystep) {
            for (ox = x0; ox < l->out_w; ox += xstep) {
                if (pixels != 0) {
                    pixel_position(l, ph, weight, arena, (int16_t *)scratch, pixels, g, oy, ox);
                } else {
                    binary_position(l, ph, weight, arena, (uint32_t *)scratch, g, oy, ox);
                }
            }
        }
    }
}

/* Weight words of one stride phase of nw words a row: a row per output channel, or (the
 * transposed layout of a layer with bit-sliced thresholds) per group og lanes of 32 K indices
 * per row word. */
static uint32_t phase_weight_words(const hwbin_layer_t *l, uint32_t nw)
{
#if HWBIN_VERTICAL
    if (l->slices != 0u) {
        return l->out_c * nw * 32u;
    }
#endif
    return l->out_c * nw;
}

static void run_compute(const hwbin_layer_t *l, uint8_t *arena, void *scratch, const uint8_t *pixels)
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
            run_phase(l, &ph, weight, arena, scratch, pixels);
            weight += phase_weight_words(l, ph.nw);
        }
    }
}

/* best = max(best, cur) elementwise on 32 k-plane levels at once (bit-sliced, plane 0 the
 * MSB): cur wins where it is greater at the first plane where the two differ. */
static void max_levels(uint32_t *best, const uint32_t *cur, uint32_t k)
{
    uint32_t gt = 0, eq = ~0u, i;
    for (i = 0; i < k; i++) {
        gt |= eq & cur[i] & ~best[i];
        eq &= ~(cur[i] ^ best[i]);
    }
    for (i = 0; i < k; i++) {
        best[i] = (cur[i] & gt) | (best[i] & ~gt);
    }
}

/* Max pooling on level indices. With a multiple of 32 channels a position's channels are
 * whole words in every plane, so 32 channels pool at once; otherwise element by element. */
static void run_maxpool(const hwbin_layer_t *l, uint8_t *arena)
{
    const uint32_t *in = planes_at(arena, l->in_offset);
    uint32_t *out = planes_at(arena, l->out_offset);
    uint32_t in_pw = words_for(elements(l->in_c, l->in_h, l->in_w));
    uint32_t out_pw = words_for(elements(l->out_c, l->out_h, l->out_w));
    uint32_t c, oy, ox, dy, dx, i, k = l->in_order;
    memset(out, 0, l->out_order * out_pw * 4u);
    for (oy = 0; oy < l->out_h; oy++) {
        for (ox = 0; ox < l->out_w; ox++) {
            uint32_t opos = oy * l->out_w + ox;
            if ((l->in_c & 31u) == 0u) {
                for (c = 0; c < l->in_c; c += 32u) {
                    uint32_t best[HWBIN_MAX_ORDER] = {0}, cur[HWBIN_MAX_ORDER];
                    for (dy = 0; dy < l->kh; dy++) {
                        for (dx = 0; dx < l->kw; dx++) {
                            uint32_t w = (((oy * l->sh + dy) * l->in_w + ox * l->sw + dx) * l->in_c + c) >> 5;
                            for (i = 0; i < k; i++) {
                                cur[i] = in[i * in_pw + w];
                            }
                            max_levels(best, cur, k);
                        }
                    }
                    for (i = 0; i < k; i++) {
                        out[i * out_pw + ((opos * l->out_c + c) >> 5)] = best[i];
                    }
                }
                continue;
            }
            for (c = 0; c < l->in_c; c++) {
                uint32_t best = 0;
                for (dy = 0; dy < l->kh; dy++) {
                    for (dx = 0; dx < l->kw; dx++) {
                        uint32_t idx = ((oy * l->sh + dy) * l->in_w + ox * l->sw + dx) * l->in_c + c;
                        uint32_t v = get_level(in, in_pw, k, idx);
                        best = v > best ? v : best;
                    }
                }
                put_level(out, out_pw, l->out_order, opos * l->out_c + c, best);
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
    uint32_t i, pos, npos, c, first_pixels;
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
    first_pixels = model->layers[0].kind == HWBIN_CONV || model->layers[0].kind == HWBIN_DECONV;
    if (!first_pixels) { /* a pool or shuffle first: it needs the order-8 planes */
        load_input(model, input, planes_at(mem, model->layers[0].in_offset));
    }
    for (i = 0; i < model->n_layers; i++) {
        const hwbin_layer_t *l = &model->layers[i];
        PROFILE_LAYER(i);
        if (l->kind == HWBIN_MAXPOOL) {
            run_maxpool(l, mem);
        } else if (l->kind == HWBIN_SHUFFLE) {
            run_shuffle(l, mem);
        } else {
            run_compute(l, mem, mem + model->scratch_offset, i == 0u ? input : 0);
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
