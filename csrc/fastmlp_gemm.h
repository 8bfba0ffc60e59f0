/* The training step's matrix products, specialised for AVX-512.
 *
 * The step's large products have one short side, the width of a hidden
 * layer (70 for the blog experiment's network):
 *     forward       Z (rows x n_out)  = A (rows x K) . W[:, 1:]^T
 *     hidden delta  D' (rows x n)     = D (rows x n_out) . W[:, 1:]
 *     gradient      G (n_out x K)    += D^T (n_out x rows) . A (rows x K)
 * General sgemm (OpenBLAS) reaches 90-120 GFLOP/s on these shapes on one core
 * of the development machine; these register-tiled loops reach 130-150,
 * because the short side fits in the register tile and nothing but the
 * weights is packed.  The forward and the hidden delta share one kernel: the
 * delta reads W as it lies, the forward a transposed copy (fm_pack_weights).
 * On Zen 5 the delta took 0.28-0.70 x sgemm's time, at every shape measured
 * from 250 x 10 x 30 to 16 x 2048 x 2048.  A slice's chunk of up to 64 rows
 * takes both products transposed instead, "by weights" (fm_forward_product,
 * fm_delta_product): W's elements are broadcast, the few rows are packed, and
 * a wide layer's forward then needs no packed copy of W at all.  fastmlp uses
 * these kernels when the CPU has AVX-512F (checked at run time) and sgemm
 * otherwise; the tests run the training step both ways.
 *
 * Summation runs over k in order, with one fused multiply-add per term, so a
 * result is the same on every AVX-512 machine.
 */
#ifndef FASTMLP_GEMM_H
#define FASTMLP_GEMM_H

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FASTMLP_NO_OWN_GEMM)
#define FM_OWN_GEMM 1
#include <immintrin.h>
#else
#define FM_OWN_GEMM 0
#endif

/* 1 when the running CPU can use the kernels below. */
static inline int fm_own_gemm_available(void)
{
#if FM_OWN_GEMM
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

/* Columns of the packed weights: n_out rounded up to whole vectors. */
static inline ptrdiff_t fm_packed_width(ptrdiff_t n_out) { return (n_out + 15) / 16 * 16; }

/* Floats of scratch that fm_forward_by_weights and fm_delta_by_weights need
 * for `rows` rows between layers of widths n_a and n_b. */
static inline size_t fm_by_weights_floats(ptrdiff_t rows, ptrdiff_t n_a, ptrdiff_t n_b)
{
    return (size_t)((rows + 15) / 16 * 16) * (size_t)(n_a + n_b);
}

#if FM_OWN_GEMM
/* r[0..16) := its transpose, as a 16 x 16 block of floats. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 2]);
        __m512d c = _mm512_castps_pd(t[i + 1]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int i = 0; i < 4; ++i) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/* fm_pack_weights by 16 x 16 blocks transposed in registers: 3.6 us instead
 * of 14 us for the 70 x 784 first layer (Zen 5), a cost paid every
 * prediction call, and panel by panel in every training step's update. */
__attribute__((target("avx512f")))
static void fm_pack_weights_avx512(const float *W, ptrdiff_t n_out, ptrdiff_t K,
                                   ptrdiff_t ldw, float *P, ptrdiff_t NP, int part, int parts,
                                   int stream)
{
    for (ptrdiff_t j0 = 16 * (ptrdiff_t)part; j0 < NP; j0 += 16 * (ptrdiff_t)parts) {
        for (ptrdiff_t k0 = 0; k0 < K; k0 += 16) {
            ptrdiff_t nk = K - k0 < 16 ? K - k0 : 16;
            __mmask16 km = nk >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nk) - 1u);
            __m512 r[16];
            for (int i = 0; i < 16; ++i)
                r[i] = j0 + i < n_out ? _mm512_maskz_loadu_ps(km, W + (j0 + i) * ldw + k0)
                                      : _mm512_setzero_ps();
            fm_transpose16(r);
            if (stream)
                for (ptrdiff_t i = 0; i < nk; ++i)
                    _mm512_stream_ps(P + (k0 + i) * NP + j0, r[i]);
            else
                for (ptrdiff_t i = 0; i < nk; ++i)
                    _mm512_storeu_ps(P + (k0 + i) * NP + j0, r[i]);
        }
    }
    if (stream)
        _mm_sfence();
}
#endif

/* P[k*NP + j] := W[j*ldw + k] for j < n_out, 0 for n_out <= j < NP: the
 * non-bias weights (W points at column 1), transposed so that the forward
 * kernel loads a row of outputs' weights per k as whole vectors.  Nothing
 * for P NULL (a layer without packed weights: the sparse first layer).
 * NP is a multiple of 16 (fm_packed_width).  Only the blocks of 16 columns
 * j0 = 16 (part + i parts) are written, so that ``parts`` threads can share
 * the work (each its own part; the AVX-512 path: without it P is never used,
 * and part 0 packs it all). */
static inline void fm_pack_weights_part(const float *W, ptrdiff_t n_out, ptrdiff_t K,
                                        ptrdiff_t ldw, float *P, ptrdiff_t NP, int part,
                                        int parts)
{
    if (P == NULL)
        return;
#if FM_OWN_GEMM
    static int avx512 = -1;                 /* (a benign race: one answer) */
    if (avx512 < 0)
        avx512 = fm_own_gemm_available();
    if (avx512 && NP % 16 == 0) {
        fm_pack_weights_avx512(W, n_out, K, ldw, P, NP, part, parts, 0);
        return;
    }
#endif
    if (part != 0)
        return;
    /* 16 x 16 tiles: each tile reads 16 short runs of W and writes 16 short
     * runs of P, instead of striding through all of W for every k */
    const ptrdiff_t tile = 16;
    for (ptrdiff_t k0 = 0; k0 < K; k0 += tile) {
        ptrdiff_t k1 = k0 + tile < K ? k0 + tile : K;
        for (ptrdiff_t j0 = 0; j0 < n_out; j0 += tile) {
            ptrdiff_t j1 = j0 + tile < n_out ? j0 + tile : n_out;
            for (ptrdiff_t j = j0; j < j1; ++j)
                for (ptrdiff_t k = k0; k < k1; ++k)
                    P[k * NP + j] = W[j * ldw + k];
        }
        for (ptrdiff_t k = k0; k < k1; ++k)
            for (ptrdiff_t j = n_out; j < NP; ++j)
                P[k * NP + j] = 0.0f;
    }
}

/* Block j0 / 16 of fm_pack_weights_part.  With `stream`, written by
 * non-temporal stores (P 64-byte aligned, NP a multiple of 16): P's lines are
 * not read before they are written, and do not push other data out of the
 * caches.  For packed weights too large to stay in the cache until the next
 * forward pass anyway. */
static inline void fm_pack_panel(const float *W, ptrdiff_t n_out, ptrdiff_t K, ptrdiff_t ldw,
                                 float *P, ptrdiff_t NP, ptrdiff_t j0, int stream)
{
#if FM_OWN_GEMM
    if (P != NULL && stream && ((size_t)P % 64) == 0 && NP % 16 == 0) {
        fm_pack_weights_avx512(W, n_out, K, ldw, P, NP, (int)(j0 / 16), (int)(NP / 16), 1);
        return;
    }
#endif
    fm_pack_weights_part(W, n_out, K, ldw, P, NP, (int)(j0 / 16), (int)(NP / 16));
}

/* All of fm_pack_weights_part, by one thread. */
static inline void fm_pack_weights(const float *W, ptrdiff_t n_out, ptrdiff_t K,
                                   ptrdiff_t ldw, float *P, ptrdiff_t NP)
{
    fm_pack_weights_part(W, n_out, K, ldw, P, NP, 0, 1);
}

#if FM_OWN_GEMM
/* CASES(mr) for the 1-5 rows left after a kernel's whole tiles of 6. */
#define FM_LEFT_CASES(CASES, left)                                                   \
    switch ((int)(left)) {                                                           \
    case 5: CASES(5) break;                                                          \
    case 4: CASES(4) break;                                                          \
    case 3: CASES(3) break;                                                          \
    case 2: CASES(2) break;                                                          \
    default: CASES(1) break;                                                         \
    }

static inline __mmask16 fm_tail_mask(ptrdiff_t cols)
{
    return cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
}

/* How many rows of P the forward product's first tile fetches ahead of its
 * loads.  Each row of a packed block is a new page (the packed row is NP
 * floats), so the hardware's prefetchers do not follow; 48 rows of a 6 x 80
 * tile are 720 FMA cycles, about a memory latency.  (2048, 2048) at batch 128,
 * forward phase on 2 Zen 5 threads: 306-323 GFLOP/s without, 348-379 with
 * 48 (16, 24, 32 and 96 measured alike, within the noise). */
#define FM_FETCH_AHEAD 48

/* Z rows [0, mr) x vectors [0, nv) of the forward product over k in [0, K),
 * A's element (r, k) at A[r * lar + k * lak]; mr <= 6, nv <= 5.  With
 * `accumulate` the sums start from Z's values (the previous block of k's),
 * else from zero: either way each element gets the same fused multiply-adds
 * in the same order as in one pass over all k.
 * With `ahead` > 0, P has that many rows from its first, and the tile fetches
 * them FM_FETCH_AHEAD rows before it loads them (into the next block). */
__attribute__((target("avx512f"), always_inline))
static inline void fm_fwd_tile(const float *A, ptrdiff_t lar, ptrdiff_t lak, ptrdiff_t K,
                               const float *P, ptrdiff_t NP, float *Z, ptrdiff_t ldz,
                               const int mr, const int nv, __mmask16 last, int accumulate,
                               ptrdiff_t ahead)
{
    __m512 acc[6][5];
    for (int r = 0; r < 6; ++r)
        for (int v = 0; v < 5; ++v)
            acc[r][v] = _mm512_setzero_ps();
    if (accumulate)
        for (int r = 0; r < mr; ++r)
            for (int v = 0; v < nv; ++v)
                acc[r][v] = _mm512_maskz_loadu_ps(v == nv - 1 ? last : (__mmask16)0xFFFF,
                                                  Z + r * ldz + 16 * v);
    for (ptrdiff_t k = 0; k < K; ++k) {
        __m512 b[5];
        if (ahead > 0 && k + FM_FETCH_AHEAD < ahead)
            for (int v = 0; v < nv; ++v)
                _mm_prefetch((const char *)(P + (k + FM_FETCH_AHEAD) * NP + 16 * v),
                             _MM_HINT_T0);
        for (int v = 0; v < nv - 1; ++v)
            b[v] = _mm512_loadu_ps(P + k * NP + 16 * v);
        b[nv - 1] = _mm512_maskz_loadu_ps(last, P + k * NP + 16 * (nv - 1));
        for (int r = 0; r < mr; ++r) {
            __m512 a = _mm512_set1_ps(A[r * lar + k * lak]);
            for (int v = 0; v < nv; ++v)
                acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; ++r) {
        for (int v = 0; v < nv - 1; ++v)
            _mm512_storeu_ps(Z + r * ldz + 16 * v, acc[r][v]);
        _mm512_mask_storeu_ps(Z + r * ldz + 16 * (nv - 1), last, acc[r][nv - 1]);
    }
}

#define FM_FWD_CASES_AHEAD(MR, AH)                                                    \
    switch (nv) {                                                                    \
    case 5: fm_fwd_tile(a, lar, lak, nk, p, NP, z, ldz, MR, 5, last, k0 > 0, AH); break; \
    case 4: fm_fwd_tile(a, lar, lak, nk, p, NP, z, ldz, MR, 4, last, k0 > 0, AH); break; \
    case 3: fm_fwd_tile(a, lar, lak, nk, p, NP, z, ldz, MR, 3, last, k0 > 0, AH); break; \
    case 2: fm_fwd_tile(a, lar, lak, nk, p, NP, z, ldz, MR, 2, last, k0 > 0, AH); break; \
    default: fm_fwd_tile(a, lar, lak, nk, p, NP, z, ldz, MR, 1, last, k0 > 0, AH); break; \
    }
#define FM_FWD_CASES(MR) FM_FWD_CASES_AHEAD(MR, 0)

/* How many of a layer's last columns fm_gemm_forward computes by dot products
 * with W's rows (fm_fwd_dot_cols): the n_out % 16 past a multiple of 16, when
 * they are 8 or fewer and not the whole layer; else 0. */
static inline ptrdiff_t fm_dot_cols(ptrdiff_t n_out)
{
    return n_out > 16 && n_out % 16 <= 8 ? n_out % 16 : 0;
}

/* Z[i, j0 + q] for rows i in [0, rows) and q in [0, 4), each the dot product of
 * A's row i with W's row j0 + q over k in [0, K): 16 k's a lane, in order, then
 * the lanes summed.  4 rows x 4 columns at a time; a tile past the last row or
 * column repeats it in registers and does not store it. */
__attribute__((target("avx512f")))
static void fm_fwd_dot_cols(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lda,
                            const float *W, ptrdiff_t ldw, ptrdiff_t cols, float *Z,
                            ptrdiff_t ldz)
{
    const ptrdiff_t K16 = K - K % 16;
    const __mmask16 km = fm_tail_mask(K % 16);
    for (ptrdiff_t i = 0; i < rows; i += 4)
        for (ptrdiff_t c = 0; c < cols; c += 4) {
            const float *a[4], *w[4];
            for (int r = 0; r < 4; ++r)
                a[r] = A + (i + r < rows ? i + r : rows - 1) * lda;
            for (int q = 0; q < 4; ++q)
                w[q] = W + (c + q < cols ? c + q : cols - 1) * ldw;
            __m512 acc[4][4];
            for (int r = 0; r < 4; ++r)
                for (int q = 0; q < 4; ++q)
                    acc[r][q] = _mm512_setzero_ps();
            for (ptrdiff_t k = 0; k < K; k += 16) {
                __mmask16 m = k < K16 ? (__mmask16)0xFFFF : km;
                __m512 x[4], y[4];
                for (int r = 0; r < 4; ++r)
                    x[r] = _mm512_maskz_loadu_ps(m, a[r] + k);
                for (int q = 0; q < 4; ++q)
                    y[q] = _mm512_maskz_loadu_ps(m, w[q] + k);
                for (int r = 0; r < 4; ++r)
                    for (int q = 0; q < 4; ++q)
                        acc[r][q] = _mm512_fmadd_ps(x[r], y[q], acc[r][q]);
            }
            for (int r = 0; r < 4 && i + r < rows; ++r)
                for (int q = 0; q < 4 && c + q < cols; ++q)
                    Z[(i + r) * ldz + c + q] = _mm512_reduce_add_ps(acc[r][q]);
        }
}

/* Z (rows x n_cols, row stride ldz) := A . P over k in [0, K), A's element
 * (i, k) at A[i * lar + k * lak], P (K x n_cols, row stride NP): tiles of 6
 * rows by 80 columns, k in blocks of kc.  With `fetch`, the first tile of a
 * block fetches P's rows ahead for the others (FM_FETCH_AHEAD).  Inlined
 * into each caller, so that the forward's unit k stride stays a constant. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_gemm_tiles(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lar,
                                 ptrdiff_t lak, const float *P, ptrdiff_t NP, float *Z,
                                 ptrdiff_t ldz, ptrdiff_t n_cols, ptrdiff_t kc, int fetch)
{
    for (ptrdiff_t c0 = 0; c0 < n_cols; c0 += 80) {
        ptrdiff_t nc = n_cols - c0 < 80 ? n_cols - c0 : 80;
        int nv = (int)((nc + 15) / 16);
        __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
        for (ptrdiff_t k0 = 0; k0 < K; k0 += kc) {
            ptrdiff_t nk = K - k0 < kc ? K - k0 : kc;
            const float *p = P + k0 * NP + c0;
            ptrdiff_t i = 0;
            if (fetch && rows >= 6) {
                const float *a = A + k0 * lak;
                float *z = Z + c0;
                FM_FWD_CASES_AHEAD(6, K - k0)
                i = 6;
            }
            for (; i + 6 <= rows; i += 6) {
                const float *a = A + i * lar + k0 * lak;
                float *z = Z + i * ldz + c0;
                FM_FWD_CASES(6)
            }
            if (i < rows) {
                const float *a = A + i * lar + k0 * lak;
                float *z = Z + i * ldz + c0;
                FM_LEFT_CASES(FM_FWD_CASES, rows - i)
            }
        }
    }
}

/* Z (rows x n_out, row stride n_out) := A (rows x K, row stride lda) . P,
 * with P (K x n_out, row stride NP >= n_out) packed by fm_pack_weights, or
 * any such matrix: no float past column n_out of a row of P is read (the
 * last vector's load is masked), so the hidden delta's D . W[:, 1:] can run
 * here on W itself (P = W + 1, NP = 1 + n_in).
 *
 * With W (the weights without their bias column, row stride ldw; NULL for the
 * hidden delta), a layer whose last n_out % 16 columns are 8 or fewer gets
 * them from fm_fwd_dot_cols instead of a mostly empty last vector: a 70-wide
 * layer does 64 + 6 columns' work, not 80.  Forward phase on 2 Zen 5
 * threads, GFLOP/s: (70, 70) at batch 128 353-371 -> 399-404, (70,) at 128
 * 388-393 -> 422-432, (70, 30) at 500 402-408 -> 427-434.
 *
 * Long k's go in blocks of 512, so that a block of A (rows x 512) and of P
 * (512 x 80) stay in L2 together.  On one Zen 5 core, with the packing
 * included: 250 x 2048 x 2048 went from 134 to 186 GFLOP/s, 250 x 1024 x 1024
 * from 174 to 205; K = 784 is best in one pass (214 against 207-210). */
__attribute__((target("avx512f")))
static void fm_gemm_forward(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lda,
                            const float *P, ptrdiff_t NP, float *Z, ptrdiff_t n_out,
                            const float *W, ptrdiff_t ldw)
{
    if (K <= 0) {
        for (ptrdiff_t i = 0; i < rows; ++i)
            for (ptrdiff_t j = 0; j < n_out; ++j)
                Z[i * n_out + j] = 0.0f;
        return;
    }
    /* a block of P (kc x 80 floats) of at most 256 KiB, else 512 k's */
    const ptrdiff_t kc = K * 320 <= 262144 ? K : 512;
    /* the last n_out % 16 columns, when 8 or fewer, by dot products with W's rows */
    ptrdiff_t n_vec = n_out;
    if (W != NULL && fm_dot_cols(n_out) > 0) {
        n_vec = n_out - fm_dot_cols(n_out);
        fm_fwd_dot_cols(A, rows, K, lda, W + n_vec * ldw, ldw, n_out - n_vec, Z + n_vec, n_out);
    }
    fm_gemm_tiles(A, rows, K, lda, 1, P, NP, Z, n_out, n_vec, kc, 1);
}

/* dst[i * ldd + j] := src[j * lds + i] for j < n, i < m: the n x m matrix
 * src transposed, by 16 x 16 blocks in registers. */
__attribute__((target("avx512f")))
static void fm_transpose(const float *src, ptrdiff_t n, ptrdiff_t m, ptrdiff_t lds, float *dst,
                         ptrdiff_t ldd)
{
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 16) {
        ptrdiff_t nj = n - j0 < 16 ? n - j0 : 16;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += 16) {
            ptrdiff_t mi = m - i0 < 16 ? m - i0 : 16;
            __mmask16 im = fm_tail_mask(mi), jm = fm_tail_mask(nj);
            __m512 r[16];
            for (int q = 0; q < 16; ++q)
                r[q] = q < nj ? _mm512_maskz_loadu_ps(im, src + (j0 + q) * lds + i0)
                              : _mm512_setzero_ps();
            fm_transpose16(r);
            for (ptrdiff_t q = 0; q < mi; ++q)
                _mm512_mask_storeu_ps(dst + (i0 + q) * ldd + j0, jm, r[q]);
        }
    }
}

/* Y (rows x n) := X (rows x K, row stride ldx) . B, for a few rows, where
 * B's element (k, c) is W[c * lar + k * lak]: computed transposed, Y^T =
 * B^T . X^T, with W's elements broadcast by the tiles and X^T packed in
 * `scratch` (fm_by_weights_floats(rows, K, n) floats), then Y^T transposed
 * into Y.  Each element gets the same fused multiply-adds in the same order
 * as in fm_gemm_forward.  The two products "by weights" below. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_by_weights(const float *X, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t ldx,
                                 const float *W, ptrdiff_t lar, ptrdiff_t lak, float *Y,
                                 ptrdiff_t n, float *scratch, ptrdiff_t kc)
{
    const ptrdiff_t R = (rows + 15) / 16 * 16;
    float *Xt = scratch, *Yt = scratch + K * R;
    fm_pack_weights_avx512(X, rows, K, ldx, Xt, R, 0, 1, 0);
    fm_gemm_tiles(W, n, K, lar, lak, Xt, R, Yt, R, R, kc, 0);
    fm_transpose(Yt, n, rows, R, Y, n);
}

/* The forward product Z (rows x n_out) := A (rows x K, row stride lda) .
 * W^T, with W (n_out x K, row stride ldw) as it lies, for a few rows (see
 * fm_forward_by_weights_pays): Z^T = W . A^T, a row of 6 of W's elements
 * broadcast per k.  `scratch`: fm_by_weights_floats(rows, K, n_out) floats. */
__attribute__((target("avx512f")))
static void fm_forward_by_weights(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lda,
                                  const float *W, ptrdiff_t ldw, float *Z, ptrdiff_t n_out,
                                  float *scratch)
{
    fm_by_weights(A, rows, K, lda, W, ldw, 1, Z, n_out, scratch, 512);
}

/* The hidden delta's product D' (rows x n) := D (rows x n_next, row stride
 * ldd) . W (n_next x n, row stride ldw) for a few rows: D'^T = W^T . D^T, a
 * column of 6 of W's elements broadcast per k.  fm_gemm_forward on W itself
 * loads its rows' vectors at the offsets the bias column leaves, 15 in 16 of
 * them across two cache lines; here no vector load is.  `scratch`:
 * fm_by_weights_floats(rows, n_next, n) floats.  k's in blocks of 64, so
 * that the block of D^T and the lines of W's columns stay in L1 (64 x 2048
 * x 2048 on one Zen 5 core, the quieter of two passes, GFLOP/s: 223-231 in
 * blocks of 64, 184-225 of 128, 114-185 of 256, 116-154 of 512). */
__attribute__((target("avx512f")))
static void fm_delta_by_weights(const float *D, ptrdiff_t rows, ptrdiff_t n_next, ptrdiff_t ldd,
                                const float *W, ptrdiff_t ldw, float *Dout, ptrdiff_t n,
                                float *scratch)
{
    fm_by_weights(D, rows, n_next, ldd, W, 1, ldw, Dout, n, scratch, 64);
}

/* Whether the forward product of `rows` rows into n_out outputs goes by
 * weights: single-thread runs on Zen 5 (GFLOP/s, by weights against
 * fm_gemm_forward on packed weights, packing not counted): 64 x 784 x 256
 * 250 / 228, 64 x 2048 x 2048 240-250 / 214-228, 16 x 2048 x 2048 136-182 /
 * 150-179, 64 x 70 x 30 185 / 237.  What decides 16-row chunks is the
 * packed copy the update then need not write: 2 threads at batch 32, s/epoch,
 * (2048, 2048) 2.22 -> 1.49, (1024,) 0.194 -> 0.126, (256,) 0.039 -> 0.034.
 * A layer whose last columns go by dot products (70 wide) keeps
 * fm_gemm_forward, whose sums are in another order. */
static inline int fm_forward_by_weights_pays(ptrdiff_t rows, ptrdiff_t n_out)
{
    return rows >= 16 && rows <= 64 && n_out >= 128 && fm_dot_cols(n_out) == 0;
}

/* Whether the hidden delta of `rows` rows from n_next outputs goes by
 * weights: 64 rows, GFLOP/s by weights against fm_gemm_forward on W:
 * 2048 -> 2048 223-231 / 160-164, 256 -> 256 246 / 205, 70 -> 784 238 / 211,
 * 30 -> 70 183 / 170, 10 -> 2048 46 / 126; 80 rows of 2048 -> 2048 125 / 162. */
static inline int fm_delta_by_weights_pays(ptrdiff_t rows, ptrdiff_t n_next)
{
    return rows <= 64 && n_next >= 64;
}

/* The forward product of fm_gemm_forward, by weights when it pays and
 * `scratch` (or NULL) is given: the same numbers either way. */
__attribute__((target("avx512f")))
static void fm_forward_product(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lda,
                               const float *P, ptrdiff_t NP, float *Z, ptrdiff_t n_out,
                               const float *W, ptrdiff_t ldw, float *scratch)
{
    if (scratch != NULL && fm_forward_by_weights_pays(rows, n_out))
        fm_forward_by_weights(A, rows, K, lda, W, ldw, Z, n_out, scratch);
    else
        fm_gemm_forward(A, rows, K, lda, P, NP, Z, n_out, W, ldw);
}

/* The hidden delta's product on W as it lies (fm_gemm_forward with P = W),
 * by weights when it pays and `scratch` (or NULL) is given. */
__attribute__((target("avx512f")))
static void fm_delta_product(const float *D, ptrdiff_t rows, ptrdiff_t n_next, ptrdiff_t ldd,
                             const float *W, ptrdiff_t ldw, float *Dout, ptrdiff_t n,
                             float *scratch)
{
    if (scratch != NULL && fm_delta_by_weights_pays(rows, n_next))
        fm_delta_by_weights(D, rows, n_next, ldd, W, ldw, Dout, n, scratch);
    else
        fm_gemm_forward(D, rows, n_next, ldd, W, ldw, Dout, n, NULL, 0);
}

/* G rows [0, mr) x vectors [0, nv) of the gradient product; mr <= 6, nv <= 4. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_grad_tile(const float *D, ptrdiff_t ldd, const float *A, ptrdiff_t lda,
                                ptrdiff_t rows, float *G, ptrdiff_t ldg, const int mr,
                                const int nv, __mmask16 last, int accumulate)
{
    __m512 acc[6][4];
    for (int r = 0; r < 6; ++r)
        for (int v = 0; v < 4; ++v)
            acc[r][v] = _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < rows; ++k) {
        __m512 a[4];
        for (int v = 0; v < nv - 1; ++v)
            a[v] = _mm512_loadu_ps(A + k * lda + 16 * v);
        a[nv - 1] = _mm512_maskz_loadu_ps(last, A + k * lda + 16 * (nv - 1));
        for (int r = 0; r < mr; ++r) {
            __m512 d = _mm512_set1_ps(D[k * ldd + r]);
            for (int v = 0; v < nv; ++v)
                acc[r][v] = _mm512_fmadd_ps(d, a[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int v = 0; v < nv; ++v) {
            __mmask16 m = v == nv - 1 ? last : (__mmask16)0xFFFF;
            __m512 x = acc[r][v];
            if (accumulate)
                x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, G + r * ldg + 16 * v), x);
            _mm512_mask_storeu_ps(G + r * ldg + 16 * v, m, x);
        }
}

#define FM_GRAD_CASES(MR)                                                            \
    switch (nv) {                                                                    \
    case 4: fm_grad_tile(d, ldd, a, lda, rows, g, K, MR, 4, last, accumulate); break; \
    case 3: fm_grad_tile(d, ldd, a, lda, rows, g, K, MR, 3, last, accumulate); break; \
    case 2: fm_grad_tile(d, ldd, a, lda, rows, g, K, MR, 2, last, accumulate); break; \
    default: fm_grad_tile(d, ldd, a, lda, rows, g, K, MR, 1, last, accumulate); break; \
    }

/* G (n_out x K, row stride K) := (accumulate ? G : 0) + D^T . A, with D
 * (rows x n_out, row stride ldd) and A (rows x K, row stride lda).  A block
 * of G's rows is computed by passing D + j0 and G + j0 K with the full ldd:
 * its numbers are those of the whole product's rows j0.. (each element sums
 * over the rows in order, then is added to G). */
__attribute__((target("avx512f")))
static void fm_gemm_gradient(const float *D, ptrdiff_t rows, ptrdiff_t n_out, ptrdiff_t ldd,
                             const float *A, ptrdiff_t lda, ptrdiff_t K, float *G,
                             int accumulate)
{
    for (ptrdiff_t c0 = 0; c0 < K; c0 += 64) {
        ptrdiff_t nc = K - c0 < 64 ? K - c0 : 64;
        int nv = (int)((nc + 15) / 16);
        __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
        const float *a = A + c0;
        ptrdiff_t j = 0;
        for (; j + 6 <= n_out; j += 6) {
            const float *d = D + j;
            float *g = G + j * K + c0;
            FM_GRAD_CASES(6)
        }
        if (j < n_out) {
            const float *d = D + j;
            float *g = G + j * K + c0;
            FM_LEFT_CASES(FM_GRAD_CASES, n_out - j)
        }
    }
}
#else
static inline int fm_forward_by_weights_pays(ptrdiff_t rows, ptrdiff_t n_out)
{
    (void)rows; (void)n_out;
    return 0;
}
static void fm_forward_product(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lda,
                               const float *P, ptrdiff_t NP, float *Z, ptrdiff_t n_out,
                               const float *W, ptrdiff_t ldw, float *scratch)
{
    (void)A; (void)rows; (void)K; (void)lda; (void)P; (void)NP; (void)Z; (void)n_out;
    (void)W; (void)ldw; (void)scratch;
}
static void fm_delta_product(const float *D, ptrdiff_t rows, ptrdiff_t n_next, ptrdiff_t ldd,
                             const float *W, ptrdiff_t ldw, float *Dout, ptrdiff_t n,
                             float *scratch)
{
    (void)D; (void)rows; (void)n_next; (void)ldd; (void)W; (void)ldw; (void)Dout; (void)n;
    (void)scratch;
}
static void fm_gemm_forward(const float *A, ptrdiff_t rows, ptrdiff_t K, ptrdiff_t lda,
                            const float *P, ptrdiff_t NP, float *Z, ptrdiff_t n_out,
                            const float *W, ptrdiff_t ldw)
{
    (void)A; (void)rows; (void)K; (void)lda; (void)P; (void)NP; (void)Z; (void)n_out;
    (void)W; (void)ldw;
}
static void fm_gemm_gradient(const float *D, ptrdiff_t rows, ptrdiff_t n_out, ptrdiff_t ldd,
                             const float *A, ptrdiff_t lda, ptrdiff_t K, float *G,
                             int accumulate)
{
    (void)D; (void)rows; (void)n_out; (void)ldd; (void)A; (void)lda; (void)K; (void)G; (void)accumulate;
}
#endif

#endif
