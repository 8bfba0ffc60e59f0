/* The sparse first layer: products of CSR rows with a weight matrix kept
 * transposed, and the per-batch structures its gradient needs.
 *
 * Layout.  The first layer's non-bias weights are kept as Wt (n_in x HP),
 * row j holding feature j's H weights, zero padded to HP = H rounded up to
 * 16 floats; the optimiser states likewise.  A feature's weights are then
 * HP/16 whole vectors, and the update of a block of features is one
 * contiguous run of floats.  The scaling is folded in: a value is read as
 * x inv[j], inv = 1 / scale computed once per fit (the dense path's
 * (x - mean) / scale without the mean, whose share the caller folds into the
 * bias).
 *
 * Two ways through a batch (chosen per fit by the caller):
 *   tiles  rows four at a time over the union of their columns, in
 *          increasing column order (fm_sp_tile_stage); the forward loads a
 *          weight row once per tile instead of once per row, and the
 *          gradient adds a tile's four rows into a partial gradient row at
 *          once.  For narrow inputs whose rows share many columns (pixels).
 *   rows   one row at a time (fm_sp_row_dot), and the batch's entries sorted
 *          by column (fm_sp_sort_entries) so that each feature's gradient
 *          is formed in registers right before its update.  For wide inputs.
 * Every product sums a row's terms in increasing column order, one fused
 * multiply-add at a time (absent columns of a tile add exact zeros), so the
 * two ways and prediction give the same outputs bit for bit.
 *
 * The AVX-512 kernels (target attribute, used when the CPU has AVX-512F and
 * fastmlp's products are on) have plain C twins for other CPUs.  Nothing
 * here allocates, takes the GIL or knows about Python.
 */
#ifndef FASTMLP_SPARSE_H
#define FASTMLP_SPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastmlp_elementwise.h"
#include "fastmlp_gemm.h"

/* Rows of a CSR matrix: int64 row pointers, uint16 or int32 column indices,
 * uint8 or float32 values. */
typedef struct {
    const int64_t *indptr;
    const void *indices;
    const void *values;
    int idx32;              /* 1: int32 indices, 0: uint16 */
    int val32;              /* 1: float32 values, 0: uint8 */
} fm_rows;

static inline ptrdiff_t fm_sp_col(const fm_rows *X, int64_t k)
{
    return X->idx32 ? (ptrdiff_t)((const int32_t *)X->indices)[k]
                    : (ptrdiff_t)((const uint16_t *)X->indices)[k];
}

static inline float fm_sp_val(const fm_rows *X, int64_t k)
{
    return X->val32 ? ((const float *)X->values)[k] : (float)((const uint8_t *)X->values)[k];
}

/* Prefetch row r's pointers (its entries' lines need them: prefetch those
 * a few rows later, with fm_sp_prefetch_row, or the pointers' miss stalls). */
static inline void fm_sp_prefetch_ptr(const fm_rows *X, int64_t r)
{
    __builtin_prefetch(X->indptr + r, 0, 3);
}

/* Prefetch the index and value lines of row r. */
static inline void fm_sp_prefetch_row(const fm_rows *X, int64_t r)
{
    int64_t a = X->indptr[r], e = X->indptr[r + 1];
    if (e <= a)
        return;
    const char *ix = (const char *)X->indices;
    const char *vx = (const char *)X->values;
    ptrdiff_t isz = X->idx32 ? 4 : 2, vsz = X->val32 ? 4 : 1;
    for (const char *p = ix + a * isz; p < ix + e * isz; p += 64)
        __builtin_prefetch(p, 0, 3);
    __builtin_prefetch(ix + e * isz - 1, 0, 3);
    for (const char *p = vx + a * vsz; p < vx + e * vsz; p += 64)
        __builtin_prefetch(p, 0, 3);
    __builtin_prefetch(vx + e * vsz - 1, 0, 3);
}

/* js[k] := the column of entry k of row r, xs[k] := its value times
 * inv[column], 1 / the column's scale (the value itself when inv is NULL);
 * returns the row's entry count.  (A product, not a division: a division
 * per entry cost more than the product it feeds.) */
#define FM_SP_DEFINE_ENTRIES(NAME, IT, VT)                                          \
    static ptrdiff_t NAME(const int64_t *indptr, const IT *ind, const VT *val,     \
                          int64_t r, const float *inv, int32_t *js, float *xs)     \
    {                                                                              \
        int64_t a = indptr[r];                                                     \
        ptrdiff_t n = (ptrdiff_t)(indptr[r + 1] - a);                              \
        const IT *ip = ind + a;                                                    \
        const VT *vp = val + a;                                                    \
        if (inv == NULL) {                                                         \
            for (ptrdiff_t k = 0; k < n; ++k) {                                    \
                js[k] = (int32_t)ip[k];                                            \
                xs[k] = (float)vp[k];                                              \
            }                                                                      \
        } else {                                                                   \
            for (ptrdiff_t k = 0; k < n; ++k) {                                    \
                js[k] = (int32_t)ip[k];                                            \
                xs[k] = (float)vp[k] * inv[ip[k]];                                 \
            }                                                                      \
        }                                                                          \
        return n;                                                                  \
    }

FM_SP_DEFINE_ENTRIES(fm_sp_entries_u16_u8, uint16_t, uint8_t)
FM_SP_DEFINE_ENTRIES(fm_sp_entries_u16_f32, uint16_t, float)
FM_SP_DEFINE_ENTRIES(fm_sp_entries_i32_u8, int32_t, uint8_t)
FM_SP_DEFINE_ENTRIES(fm_sp_entries_i32_f32, int32_t, float)

static inline ptrdiff_t fm_sp_entries(const fm_rows *X, int64_t r, const float *inv,
                                      int32_t *js, float *xs)
{
    if (X->idx32)
        return X->val32 ? fm_sp_entries_i32_f32(X->indptr, X->indices, X->values, r, inv, js, xs)
                        : fm_sp_entries_i32_u8(X->indptr, X->indices, X->values, r, inv, js, xs);
    return X->val32 ? fm_sp_entries_u16_f32(X->indptr, X->indices, X->values, r, inv, js, xs)
                    : fm_sp_entries_u16_u8(X->indptr, X->indices, X->values, r, inv, js, xs);
}

/* Prefetch the weight rows of n entries (every line of each), for wide
 * inputs whose weights do not stay in cache. */
static inline void fm_sp_prefetch_weights(const int32_t *js, ptrdiff_t n, const float *Wt,
                                          ptrdiff_t HP)
{
    for (ptrdiff_t k = 0; k < n; ++k) {
        const float *w = Wt + (ptrdiff_t)js[k] * HP;
        for (ptrdiff_t c = 0; c < HP; c += 16)
            __builtin_prefetch(w + c, 0, 3);
    }
}

/* ------------------------------------------------------------ rows, one at a time */

/* z[0:H] := sum_k xs[k] Wt[js[k]][0:H], terms in order k = 0, 1, ... (plain C:
 * a product then a sum, as -ffp-contract=off compiles it). */
FM_CLONES static void fm_sp_row_dot_c(const int32_t *js, const float *xs, ptrdiff_t n,
                                      const float *Wt, ptrdiff_t HP, ptrdiff_t H, float *z)
{
    for (ptrdiff_t c = 0; c < H; ++c)
        z[c] = 0.0f;
    for (ptrdiff_t k = 0; k < n; ++k) {
        const float *w = Wt + (ptrdiff_t)js[k] * HP;
        const float s = xs[k];
        for (ptrdiff_t c = 0; c < H; ++c)
            z[c] = z[c] + s * w[c];
    }
}

/* ------------------------------------------------------------ tiles of four rows */

/* Tiles of four rows: uj[u] is the u-th column of the union of the rows'
 * columns (increasing), ux[4u + r] row r's value times 1 / scale there (0
 * where row r lacks it).  Xd (n_cols x 4 floats) and flags (n_cols rounded
 * up to 64 bytes) are scratch that is zero before and after.  Rows r >= R of
 * the tile are absent (their values 0).  Marking is specialised per index
 * and value type with every pointer a local: the byte stores to flags may
 * alias anything, and through a struct the compiler reloaded the array
 * pointers after each of them. */
#define FM_SP_DEFINE_MARK(NAME, IT, VT)                                             \
    static void NAME(const int64_t *restrict indptr, const IT *restrict ind,        \
                     const VT *restrict val, const ptrdiff_t *restrict rows, int R, \
                     const float *restrict inv, float *restrict Xd,                 \
                     uint8_t *restrict flags)                                       \
    {                                                                              \
        for (int r = 0; r < R; ++r) {                                              \
            int64_t a = indptr[rows[r]], e = indptr[rows[r] + 1];                  \
            const IT *ip = ind + a;                                                \
            const VT *vp = val + a;                                                \
            ptrdiff_t n = (ptrdiff_t)(e - a);                                      \
            float *xd = Xd + r;                                                    \
            if (inv == NULL) {                                                     \
                for (ptrdiff_t k = 0; k < n; ++k) {                                \
                    ptrdiff_t j = (ptrdiff_t)ip[k];                                \
                    xd[4 * j] = (float)vp[k];                                      \
                    flags[j] = 1;                                                  \
                }                                                                  \
            } else {                                                               \
                for (ptrdiff_t k = 0; k < n; ++k) {                                \
                    ptrdiff_t j = (ptrdiff_t)ip[k];                                \
                    xd[4 * j] = (float)vp[k] * inv[j];                             \
                    flags[j] = 1;                                                  \
                }                                                                  \
            }                                                                      \
        }                                                                          \
    }

FM_SP_DEFINE_MARK(fm_sp_mark_u16_u8, uint16_t, uint8_t)
FM_SP_DEFINE_MARK(fm_sp_mark_u16_f32, uint16_t, float)
FM_SP_DEFINE_MARK(fm_sp_mark_i32_u8, int32_t, uint8_t)
FM_SP_DEFINE_MARK(fm_sp_mark_i32_f32, int32_t, float)

/* The union's columns in increasing order, their four values out of Xd
 * (zeroed again) and the flags cleared: eight flags at a time. */
static ptrdiff_t fm_sp_collect_c(ptrdiff_t n_cols, float *Xd, uint8_t *flags, int32_t *uj,
                                 float *ux)
{
    ptrdiff_t U = 0, words = (n_cols + 7) / 8;
    uint64_t *fw = (uint64_t *)flags;
    for (ptrdiff_t w = 0; w < words; ++w) {
        uint64_t m = fw[w];
        if (!m)
            continue;
        fw[w] = 0;
        while (m) {
            int b = __builtin_ctzll(m) >> 3;
            m &= ~((uint64_t)0xFF << (8 * b));
            ptrdiff_t j = 8 * w + b;
            float *xd = Xd + 4 * j;
            memcpy(ux + 4 * U, xd, 4 * sizeof(float));
            memset(xd, 0, 4 * sizeof(float));
            uj[U++] = (int32_t)j;
        }
    }
    return U;
}

static ptrdiff_t fm_sp_collect(int own, ptrdiff_t n_cols, float *Xd, uint8_t *flags,
                               int32_t *uj, float *ux);

/* Mark rows rows[0:R] (R <= 4) of a tile in Xd and flags (fm_sp_collect then
 * gathers the union). */
static void fm_sp_tile_mark(const fm_rows *X, const ptrdiff_t *rows, int R, const float *inv,
                            float *Xd, uint8_t *flags)
{
    if (X->idx32) {
        if (X->val32)
            fm_sp_mark_i32_f32(X->indptr, X->indices, X->values, rows, R, inv, Xd, flags);
        else
            fm_sp_mark_i32_u8(X->indptr, X->indices, X->values, rows, R, inv, Xd, flags);
    } else {
        if (X->val32)
            fm_sp_mark_u16_f32(X->indptr, X->indices, X->values, rows, R, inv, Xd, flags);
        else
            fm_sp_mark_u16_u8(X->indptr, X->indices, X->values, rows, R, inv, Xd, flags);
    }
}

/* Rows rows[0:R] (R <= 4) as a tile; returns U, the size of the union. */
static ptrdiff_t fm_sp_tile_stage(int own, const fm_rows *X, const ptrdiff_t *rows, int R,
                                  const float *inv, ptrdiff_t n_cols, float *Xd,
                                  uint8_t *flags, int32_t *uj, float *ux)
{
    fm_sp_tile_mark(X, rows, R, inv, Xd, flags);
    return fm_sp_collect(own, n_cols, Xd, flags, uj, ux);
}

/* A rows r < R (row stride lda): A[r][0:H] := sum_u ux[4u + r] Wt[uj[u]][0:H]
 * (plain C: a product, then a sum). */
FM_CLONES static void fm_sp_tile_forward_c(ptrdiff_t U, const int32_t *uj, const float *ux,
                                           int R, const float *Wt, ptrdiff_t HP, ptrdiff_t H,
                                           float *A, ptrdiff_t lda)
{
    for (int r = 0; r < R; ++r)
        for (ptrdiff_t c = 0; c < H; ++c)
            A[r * lda + c] = 0.0f;
    for (ptrdiff_t u = 0; u < U; ++u) {
        const float *w = Wt + (ptrdiff_t)uj[u] * HP;
        for (int r = 0; r < R; ++r) {
            const float s = ux[4 * u + r];
            float *a = A + r * lda;
            for (ptrdiff_t c = 0; c < H; ++c)
                a[c] = a[c] + s * w[c];
        }
    }
}

/* G[uj[u]][0:H] += sum_{r < R} ux[4u + r] D[r][0:H] for every u (D row stride
 * ldd; G row stride HP), the rows added in order r = 0, 1, ... */
FM_CLONES static void fm_sp_tile_gradient_c(ptrdiff_t U, const int32_t *uj, const float *ux,
                                            int R, const float *D, ptrdiff_t ldd, ptrdiff_t H,
                                            float *G, ptrdiff_t HP)
{
    for (ptrdiff_t u = 0; u < U; ++u) {
        float *g = G + (ptrdiff_t)uj[u] * HP;
        for (int r = 0; r < R; ++r) {
            const float s = ux[4 * u + r];
            const float *d = D + r * ldd;
            for (ptrdiff_t c = 0; c < H; ++c)
                g[c] = g[c] + s * d[c];
        }
    }
}

/* ------------------------------------------------- the batch's entries by column */

/* The entries of batch rows idx[0:b] sorted by column, then batch row (a
 * stable LSD radix sort, 11 bits a pass): column ej, batch row er, value
 * times 1 / scale ex.  (tj, tr, tx) is scratch of the same size, cnt 2049 ints.  The
 * sorted entries end in either buffer: *out_* point at them.  Returns their
 * number. */
static ptrdiff_t fm_sp_sort_entries(const fm_rows *X, const ptrdiff_t *idx, ptrdiff_t b,
                                    const float *inv, ptrdiff_t n_cols,
                                    int32_t *ej, int32_t *er, float *ex,
                                    int32_t *tj, int32_t *tr, float *tx, int32_t *cnt,
                                    int32_t **out_j, int32_t **out_r, float **out_x)
{
    ptrdiff_t n = 0;
    for (ptrdiff_t i = 0; i < b; ++i) {
        ptrdiff_t m = fm_sp_entries(X, idx[i], inv, tj + n, tx + n);
        for (ptrdiff_t k = 0; k < m; ++k)
            tr[n + k] = (int32_t)i;
        n += m;
    }
    int bits = 1;
    while (bits < 31 && ((ptrdiff_t)1 << bits) < n_cols)
        ++bits;
    int32_t *sj = tj, *sr = tr, *dj = ej, *dr = er;
    float *sx = tx, *dx = ex;
    for (int shift = 0; shift < bits; shift += 11) {
        memset(cnt, 0, 2049 * sizeof(int32_t));
        for (ptrdiff_t k = 0; k < n; ++k)
            cnt[((sj[k] >> shift) & 2047) + 1]++;
        for (int d = 0; d < 2048; ++d)
            cnt[d + 1] += cnt[d];
        for (ptrdiff_t k = 0; k < n; ++k) {
            int32_t p = cnt[(sj[k] >> shift) & 2047]++;
            dj[p] = sj[k];
            dr[p] = sr[k];
            dx[p] = sx[k];
        }
        int32_t *t; float *tf;
        t = sj; sj = dj; dj = t;
        t = sr; sr = dr; dr = t;
        tf = sx; sx = dx; dx = tf;
    }
    *out_j = sj; *out_r = sr; *out_x = sx;
    return n;
}

/* g[0:H] := sum_{k0 <= k < k1} ex[k] D[er[k]][0:H] (D row stride ldd), terms
 * in order. */
FM_CLONES static void fm_sp_accumulate_c(const int32_t *er, const float *ex, ptrdiff_t k0,
                                         ptrdiff_t k1, const float *D, ptrdiff_t ldd,
                                         ptrdiff_t H, float *g)
{
    for (ptrdiff_t c = 0; c < H; ++c)
        g[c] = 0.0f;
    for (ptrdiff_t k = k0; k < k1; ++k) {
        const float s = ex[k];
        const float *d = D + (ptrdiff_t)er[k] * ldd;
        for (ptrdiff_t c = 0; c < H; ++c)
            g[c] = g[c] + s * d[c];
    }
}

/* ------------------------------------------------------ rows of weights */

/* g[0:HP] := the sum of the T partial gradient rows G + t * part (in order t
 * = 0, 1, ...), which are zeroed. */
FM_CLONES static void fm_sp_sum_parts(float *restrict g, float *G, ptrdiff_t part, int T,
                                      ptrdiff_t HP)
{
    for (ptrdiff_t c = 0; c < HP; ++c) {
        g[c] = G[c];
        G[c] = 0.0f;
    }
    for (int t = 1; t < T; ++t) {
        float *Gp = G + t * part;
        for (ptrdiff_t c = 0; c < HP; ++c) {
            g[c] = g[c] + Gp[c];
            Gp[c] = 0.0f;
        }
    }
}

/* g[0:HP] := g - gb m: the centring share of a feature's gradient (m its
 * mean / scale). */
FM_CLONES static void fm_sp_centre_grad(float *restrict g, const float *restrict gb, float m,
                                        ptrdiff_t HP)
{
    for (ptrdiff_t c = 0; c < HP; ++c)
        g[c] = g[c] - gb[c] * m;
}

/* c[0:HP] := sum_j ms[j] Wt[j][0:HP] over n rows, in order. */
FM_CLONES static void fm_sp_centre(const float *restrict Wt, const float *restrict ms,
                                   ptrdiff_t n, ptrdiff_t HP, float *restrict c)
{
    for (ptrdiff_t k = 0; k < HP; ++k)
        c[k] = 0.0f;
    for (ptrdiff_t j = 0; j < n; ++j) {
        const float m = ms[j];
        const float *w = Wt + j * HP;
        for (ptrdiff_t k = 0; k < HP; ++k)
            c[k] = c[k] + m * w[k];
    }
}

/* Wt[j][k] := W[k][j] for k < H, j < n (W row stride ldw, Wt row stride HP):
 * 16 x 16 blocks, so that both sides are read and written in short runs. */
static void fm_sp_transpose_in(const float *W, ptrdiff_t ldw, ptrdiff_t H, ptrdiff_t n,
                               float *Wt, ptrdiff_t HP)
{
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 16) {
        ptrdiff_t j1 = j0 + 16 < n ? j0 + 16 : n;
        for (ptrdiff_t k0 = 0; k0 < H; k0 += 16) {
            ptrdiff_t k1 = k0 + 16 < H ? k0 + 16 : H;
            for (ptrdiff_t k = k0; k < k1; ++k)
                for (ptrdiff_t j = j0; j < j1; ++j)
                    Wt[j * HP + k] = W[k * ldw + j];
        }
    }
}

/* W[k][j] := Wt[j][k] for k < H, j < n: the inverse of fm_sp_transpose_in. */
static void fm_sp_transpose_out(const float *Wt, ptrdiff_t HP, ptrdiff_t H, ptrdiff_t n,
                                float *W, ptrdiff_t ldw)
{
    for (ptrdiff_t k0 = 0; k0 < H; k0 += 16) {
        ptrdiff_t k1 = k0 + 16 < H ? k0 + 16 : H;
        for (ptrdiff_t j0 = 0; j0 < n; j0 += 16) {
            ptrdiff_t j1 = j0 + 16 < n ? j0 + 16 : n;
            for (ptrdiff_t j = j0; j < j1; ++j)
                for (ptrdiff_t k = k0; k < k1; ++k)
                    W[k * ldw + j] = Wt[j * HP + k];
        }
    }
}

#include "fastmlp_sparse_avx512.h"

#endif
