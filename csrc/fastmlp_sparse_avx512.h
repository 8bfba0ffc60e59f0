/* AVX-512 kernels of the sparse first layer (see fastmlp_sparse.h), with the
 * same meaning and the same order of terms as their plain C twins there, one
 * fused multiply-add per term.  A weight row (HP floats, zero padded) is read
 * as whole vectors; rows of activations and deltas (stride H) with a masked
 * last vector.  Accumulators stay in registers: output panels of up to 8
 * vectors (128 outputs) for one row, of up to 5 vectors for a tile of four
 * rows (20 accumulators and 5 weight vectors: no spills).  Collecting a
 * tile needs AVX-512BW too (byte compares).
 */
#ifndef FASTMLP_SPARSE_AVX512_H
#define FASTMLP_SPARSE_AVX512_H

#if FM_OWN_GEMM

/* One panel of nv vectors at column c0 of a row product. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_sp_row_panel(const int32_t *js, const float *xs, ptrdiff_t n,
                                   const float *Wt, ptrdiff_t HP, float *z, const int nv,
                                   __mmask16 last)
{
    __m512 acc[8];
    for (int v = 0; v < 8; ++v)
        acc[v] = _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < n; ++k) {
        const float *w = Wt + (ptrdiff_t)js[k] * HP;
        __m512 s = _mm512_set1_ps(xs[k]);
        for (int v = 0; v < nv; ++v)
            acc[v] = _mm512_fmadd_ps(s, _mm512_loadu_ps(w + 16 * v), acc[v]);
    }
    for (int v = 0; v < nv - 1; ++v)
        _mm512_storeu_ps(z + 16 * v, acc[v]);
    _mm512_mask_storeu_ps(z + 16 * (nv - 1), last, acc[nv - 1]);
}

/* z[0:H] := sum_k xs[k] Wt[js[k]][0:H] (fm_sp_row_dot_c). */
__attribute__((target("avx512f")))
static void fm_sp_row_dot_avx512(const int32_t *js, const float *xs, ptrdiff_t n,
                                 const float *Wt, ptrdiff_t HP, ptrdiff_t H, float *z)
{
    for (ptrdiff_t c0 = 0; c0 < H; c0 += 128) {
        ptrdiff_t nc = H - c0 < 128 ? H - c0 : 128;
        int nv = (int)((nc + 15) / 16);
        __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
        const float *w = Wt + c0;
        float *o = z + c0;
        switch (nv) {
        case 8: fm_sp_row_panel(js, xs, n, w, HP, o, 8, last); break;
        case 7: fm_sp_row_panel(js, xs, n, w, HP, o, 7, last); break;
        case 6: fm_sp_row_panel(js, xs, n, w, HP, o, 6, last); break;
        case 5: fm_sp_row_panel(js, xs, n, w, HP, o, 5, last); break;
        case 4: fm_sp_row_panel(js, xs, n, w, HP, o, 4, last); break;
        case 3: fm_sp_row_panel(js, xs, n, w, HP, o, 3, last); break;
        case 2: fm_sp_row_panel(js, xs, n, w, HP, o, 2, last); break;
        default: fm_sp_row_panel(js, xs, n, w, HP, o, 1, last); break;
        }
    }
}

/* fm_sp_collect_c, 64 flags at a time: one compare gives a bit per column,
 * so the loop over a word's columns ends once per 64 of them. */
__attribute__((target("avx512f,avx512bw")))
static ptrdiff_t fm_sp_collect_avx512(ptrdiff_t n_cols, float *Xd, uint8_t *flags,
                                      int32_t *uj, float *ux)
{
    ptrdiff_t U = 0;
    for (ptrdiff_t w = 0; w < n_cols; w += 64) {
        __m512i f = _mm512_loadu_si512((const void *)(flags + w));
        uint64_t m = (uint64_t)_mm512_test_epi8_mask(f, f);
        if (!m)
            continue;
        _mm512_storeu_si512((void *)(flags + w), _mm512_setzero_si512());
        while (m) {
            ptrdiff_t j = w + __builtin_ctzll(m);
            m &= m - 1;
            __m128 x = _mm_loadu_ps(Xd + 4 * j);
            _mm_storeu_ps(ux + 4 * U, x);
            _mm_storeu_ps(Xd + 4 * j, _mm_setzero_ps());
            uj[U++] = (int32_t)j;
        }
    }
    return U;
}

/* The first panel of a tile's forward product while collecting the tile
 * (fm_sp_collect_avx512 then fm_sp_tile_fwd_panel, fused: the collection's
 * bookkeeping issues in the slack of the multiply-adds).  Returns U. */
__attribute__((target("avx512f,avx512bw"), always_inline))
static inline ptrdiff_t fm_sp_collect_fwd_panel(ptrdiff_t n_cols, float *Xd, uint8_t *flags,
                                                int32_t *uj, float *ux, int R, const float *Wt,
                                                ptrdiff_t HP, float *A, ptrdiff_t lda,
                                                const int nv, __mmask16 last)
{
    __m512 acc[4][5];
    ptrdiff_t U = 0;
    for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 5; ++v)
            acc[r][v] = _mm512_setzero_ps();
    for (ptrdiff_t c = 0; c < n_cols; c += 64) {
        __m512i f = _mm512_loadu_si512((const void *)(flags + c));
        uint64_t m = (uint64_t)_mm512_test_epi8_mask(f, f);
        if (!m)
            continue;
        _mm512_storeu_si512((void *)(flags + c), _mm512_setzero_si512());
        while (m) {
            ptrdiff_t j = c + __builtin_ctzll(m);
            m &= m - 1;
            float *xu = ux + 4 * U;
            _mm_storeu_ps(xu, _mm_loadu_ps(Xd + 4 * j));
            _mm_storeu_ps(Xd + 4 * j, _mm_setzero_ps());
            uj[U++] = (int32_t)j;
            const float *w = Wt + j * HP;
            __m512 wv[5];
            for (int v = 0; v < nv; ++v)
                wv[v] = _mm512_loadu_ps(w + 16 * v);
            for (int r = 0; r < 4; ++r) {
                __m512 sr = _mm512_set1_ps(xu[r]);
                for (int v = 0; v < nv; ++v)
                    acc[r][v] = _mm512_fmadd_ps(sr, wv[v], acc[r][v]);
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int v = 0; v < nv - 1; ++v)
            _mm512_storeu_ps(A + r * lda + 16 * v, acc[r][v]);
        _mm512_mask_storeu_ps(A + r * lda + 16 * (nv - 1), last, acc[r][nv - 1]);
    }
    return U;
}

/* One panel of nv vectors of a tile's forward product. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_sp_tile_fwd_panel(ptrdiff_t U, const int32_t *uj, const float *ux, int R,
                                        const float *Wt, ptrdiff_t HP, float *A, ptrdiff_t lda,
                                        const int nv, __mmask16 last)
{
    __m512 acc[4][5];
    for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 5; ++v)
            acc[r][v] = _mm512_setzero_ps();
    for (ptrdiff_t u = 0; u < U; ++u) {
        const float *w = Wt + (ptrdiff_t)uj[u] * HP;
        __m512 wv[5];
        for (int v = 0; v < nv; ++v)
            wv[v] = _mm512_loadu_ps(w + 16 * v);
        for (int r = 0; r < 4; ++r) {
            __m512 s = _mm512_set1_ps(ux[4 * u + r]);
            for (int v = 0; v < nv; ++v)
                acc[r][v] = _mm512_fmadd_ps(s, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int v = 0; v < nv - 1; ++v)
            _mm512_storeu_ps(A + r * lda + 16 * v, acc[r][v]);
        _mm512_mask_storeu_ps(A + r * lda + 16 * (nv - 1), last, acc[r][nv - 1]);
    }
}

/* A rows r < R: A[r][0:H] := sum_u ux[4u + r] Wt[uj[u]][0:H] (fm_sp_tile_forward_c). */
__attribute__((target("avx512f")))
static void fm_sp_tile_forward_avx512(ptrdiff_t U, const int32_t *uj, const float *ux, int R,
                                      const float *Wt, ptrdiff_t HP, ptrdiff_t H, float *A,
                                      ptrdiff_t lda)
{
    for (ptrdiff_t c0 = 0; c0 < H; c0 += 80) {
        ptrdiff_t nc = H - c0 < 80 ? H - c0 : 80;
        int nv = (int)((nc + 15) / 16);
        __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
        switch (nv) {
        case 5: fm_sp_tile_fwd_panel(U, uj, ux, R, Wt + c0, HP, A + c0, lda, 5, last); break;
        case 4: fm_sp_tile_fwd_panel(U, uj, ux, R, Wt + c0, HP, A + c0, lda, 4, last); break;
        case 3: fm_sp_tile_fwd_panel(U, uj, ux, R, Wt + c0, HP, A + c0, lda, 3, last); break;
        case 2: fm_sp_tile_fwd_panel(U, uj, ux, R, Wt + c0, HP, A + c0, lda, 2, last); break;
        default: fm_sp_tile_fwd_panel(U, uj, ux, R, Wt + c0, HP, A + c0, lda, 1, last); break;
        }
    }
}

/* fm_sp_collect then fm_sp_tile_forward, the collection fused with the
 * first panel of the product.  Returns U. */
__attribute__((target("avx512f,avx512bw")))
static ptrdiff_t fm_sp_collect_forward_avx512(ptrdiff_t n_cols, float *Xd, uint8_t *flags,
                                              int32_t *uj, float *ux, int R, const float *Wt,
                                              ptrdiff_t HP, ptrdiff_t H, float *A,
                                              ptrdiff_t lda)
{
    ptrdiff_t nc = H < 80 ? H : 80, U;
    int nv = (int)((nc + 15) / 16);
    __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
    switch (nv) {
    case 5: U = fm_sp_collect_fwd_panel(n_cols, Xd, flags, uj, ux, R, Wt, HP, A, lda, 5, last); break;
    case 4: U = fm_sp_collect_fwd_panel(n_cols, Xd, flags, uj, ux, R, Wt, HP, A, lda, 4, last); break;
    case 3: U = fm_sp_collect_fwd_panel(n_cols, Xd, flags, uj, ux, R, Wt, HP, A, lda, 3, last); break;
    case 2: U = fm_sp_collect_fwd_panel(n_cols, Xd, flags, uj, ux, R, Wt, HP, A, lda, 2, last); break;
    default: U = fm_sp_collect_fwd_panel(n_cols, Xd, flags, uj, ux, R, Wt, HP, A, lda, 1, last); break;
    }
    if (H > 80)
        fm_sp_tile_forward_avx512(U, uj, ux, R, Wt + 80, HP, H - 80, A + 80, lda);
    return U;
}

/* One panel of nv vectors of a tile's gradient. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_sp_tile_grad_panel(ptrdiff_t U, const int32_t *uj, const float *ux, int R,
                                         const float *D, ptrdiff_t ldd, float *G, ptrdiff_t HP,
                                         const int nv, __mmask16 last)
{
    __m512 d[4][5];
    for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 5; ++v)
            d[r][v] = _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
        for (int v = 0; v < nv - 1; ++v)
            d[r][v] = _mm512_loadu_ps(D + r * ldd + 16 * v);
        d[r][nv - 1] = _mm512_maskz_loadu_ps(last, D + r * ldd + 16 * (nv - 1));
    }
    for (ptrdiff_t u = 0; u < U; ++u) {
        float *g = G + (ptrdiff_t)uj[u] * HP;
        __m512 s[4];
        for (int r = 0; r < 4; ++r)
            s[r] = _mm512_set1_ps(ux[4 * u + r]);
        for (int v = 0; v < nv; ++v) {
            __m512 x = _mm512_loadu_ps(g + 16 * v);
            for (int r = 0; r < 4; ++r)
                x = _mm512_fmadd_ps(s[r], d[r][v], x);
            _mm512_storeu_ps(g + 16 * v, x);
        }
    }
}

/* G[uj[u]][0:H] += sum_r ux[4u + r] D[r][0:H] (fm_sp_tile_gradient_c). */
__attribute__((target("avx512f")))
static void fm_sp_tile_gradient_avx512(ptrdiff_t U, const int32_t *uj, const float *ux, int R,
                                       const float *D, ptrdiff_t ldd, ptrdiff_t H, float *G,
                                       ptrdiff_t HP)
{
    for (ptrdiff_t c0 = 0; c0 < H; c0 += 80) {
        ptrdiff_t nc = H - c0 < 80 ? H - c0 : 80;
        int nv = (int)((nc + 15) / 16);
        __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
        const float *dd = D + c0;
        float *g = G + c0;
        switch (nv) {
        case 5: fm_sp_tile_grad_panel(U, uj, ux, R, dd, ldd, g, HP, 5, last); break;
        case 4: fm_sp_tile_grad_panel(U, uj, ux, R, dd, ldd, g, HP, 4, last); break;
        case 3: fm_sp_tile_grad_panel(U, uj, ux, R, dd, ldd, g, HP, 3, last); break;
        case 2: fm_sp_tile_grad_panel(U, uj, ux, R, dd, ldd, g, HP, 2, last); break;
        default: fm_sp_tile_grad_panel(U, uj, ux, R, dd, ldd, g, HP, 1, last); break;
        }
    }
}

/* One panel of nv vectors of a feature's gradient. */
__attribute__((target("avx512f"), always_inline))
static inline void fm_sp_acc_panel(const int32_t *er, const float *ex, ptrdiff_t k0,
                                   ptrdiff_t k1, const float *D, ptrdiff_t ldd, float *g,
                                   const int nv, __mmask16 last)
{
    __m512 acc[8];
    for (int v = 0; v < 8; ++v)
        acc[v] = _mm512_setzero_ps();
    for (ptrdiff_t k = k0; k < k1; ++k) {
        const float *d = D + (ptrdiff_t)er[k] * ldd;
        __m512 s = _mm512_set1_ps(ex[k]);
        for (int v = 0; v < nv - 1; ++v)
            acc[v] = _mm512_fmadd_ps(s, _mm512_loadu_ps(d + 16 * v), acc[v]);
        acc[nv - 1] = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(last, d + 16 * (nv - 1)),
                                      acc[nv - 1]);
    }
    for (int v = 0; v < nv; ++v)
        _mm512_storeu_ps(g + 16 * v, acc[v]);
}

/* g[0:HP] := sum_k ex[k] D[er[k]][0:H], padding lanes 0 (fm_sp_accumulate_c). */
__attribute__((target("avx512f")))
static void fm_sp_accumulate_avx512(const int32_t *er, const float *ex, ptrdiff_t k0,
                                    ptrdiff_t k1, const float *D, ptrdiff_t ldd, ptrdiff_t H,
                                    float *g)
{
    for (ptrdiff_t c0 = 0; c0 < H; c0 += 128) {
        ptrdiff_t nc = H - c0 < 128 ? H - c0 : 128;
        int nv = (int)((nc + 15) / 16);
        __mmask16 last = fm_tail_mask(nc - 16 * (nv - 1));
        switch (nv) {
        case 8: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 8, last); break;
        case 7: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 7, last); break;
        case 6: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 6, last); break;
        case 5: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 5, last); break;
        case 4: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 4, last); break;
        case 3: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 3, last); break;
        case 2: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 2, last); break;
        default: fm_sp_acc_panel(er, ex, k0, k1, D + c0, ldd, g + c0, 1, last); break;
        }
    }
}

/* 1 when the CPU has AVX-512BW and VL too (fm_sp_collect_avx512's byte compares). */
static inline int fm_sp_avx512bw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") ? 1 : 0;
}

#define FM_SP_AVX512(name, ...) name##_avx512(__VA_ARGS__)
#else
#define FM_SP_AVX512(name, ...) name##_c(__VA_ARGS__)
static inline int fm_sp_avx512bw_available(void) { return 0; }
#endif

/* The kernels by path: `own` (fastmlp's AVX-512 products in use) or plain C. */
static inline void fm_sp_row_dot(int own, const int32_t *js, const float *xs, ptrdiff_t n,
                                 const float *Wt, ptrdiff_t HP, ptrdiff_t H, float *z)
{
    if (own)
        FM_SP_AVX512(fm_sp_row_dot, js, xs, n, Wt, HP, H, z);
    else
        fm_sp_row_dot_c(js, xs, n, Wt, HP, H, z);
}

static ptrdiff_t fm_sp_collect(int own, ptrdiff_t n_cols, float *Xd, uint8_t *flags,
                               int32_t *uj, float *ux)
{
    if (own)
        return FM_SP_AVX512(fm_sp_collect, n_cols, Xd, flags, uj, ux);
    return fm_sp_collect_c(n_cols, Xd, flags, uj, ux);
}

/* fm_sp_collect then fm_sp_tile_forward (fused on the AVX-512 path). */
static inline ptrdiff_t fm_sp_collect_forward(int own, ptrdiff_t n_cols, float *Xd,
                                              uint8_t *flags, int32_t *uj, float *ux, int R,
                                              const float *Wt, ptrdiff_t HP, ptrdiff_t H,
                                              float *A, ptrdiff_t lda)
{
#if FM_OWN_GEMM
    if (own)
        return fm_sp_collect_forward_avx512(n_cols, Xd, flags, uj, ux, R, Wt, HP, H, A, lda);
#endif
    ptrdiff_t U = fm_sp_collect_c(n_cols, Xd, flags, uj, ux);
    fm_sp_tile_forward_c(U, uj, ux, R, Wt, HP, H, A, lda);
    return U;
}

static inline void fm_sp_tile_forward(int own, ptrdiff_t U, const int32_t *uj, const float *ux,
                                      int R, const float *Wt, ptrdiff_t HP, ptrdiff_t H,
                                      float *A, ptrdiff_t lda)
{
    if (own)
        FM_SP_AVX512(fm_sp_tile_forward, U, uj, ux, R, Wt, HP, H, A, lda);
    else
        fm_sp_tile_forward_c(U, uj, ux, R, Wt, HP, H, A, lda);
}

static inline void fm_sp_tile_gradient(int own, ptrdiff_t U, const int32_t *uj,
                                       const float *ux, int R, const float *D, ptrdiff_t ldd,
                                       ptrdiff_t H, float *G, ptrdiff_t HP)
{
    if (own)
        FM_SP_AVX512(fm_sp_tile_gradient, U, uj, ux, R, D, ldd, H, G, HP);
    else
        fm_sp_tile_gradient_c(U, uj, ux, R, D, ldd, H, G, HP);
}

static inline void fm_sp_accumulate(int own, const int32_t *er, const float *ex, ptrdiff_t k0,
                                    ptrdiff_t k1, const float *D, ptrdiff_t ldd, ptrdiff_t H,
                                    ptrdiff_t HP, float *g)
{
    if (own)
        FM_SP_AVX512(fm_sp_accumulate, er, ex, k0, k1, D, ldd, H, g);
    else
        fm_sp_accumulate_c(er, ex, k0, k1, D, ldd, H, g);
    for (ptrdiff_t c = H; c < HP; ++c)
        g[c] = 0.0f;
}

#endif
