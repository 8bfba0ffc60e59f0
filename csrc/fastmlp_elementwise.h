/* Elementwise passes of the fastmlp kernels.
 *
 * Plain loops over contiguous float32 rows, written so that the compiler
 * vectorises them without -ffast-math:
 *   - the exponential is our own (range reduction + polynomial) because the C
 *     library's expf is a scalar call that blocks vectorisation;
 *   - rounding to an integer uses the 1.5*2^23 trick instead of a libm call;
 *   - NaN is kept by every clamp (comparisons, not fminf/fmaxf), so a
 *     diverging run still shows NaN instead of a clamped number.
 * The hot loops are compiled in several instruction-set variants
 * (target_clones) and the best one for the running CPU is picked at load
 * time, so the wheel stays portable (no -march=native).  The extension is
 * built with -ffp-contract=off, so every variant rounds identically: results
 * do not depend on the CPU the code runs on.
 *
 * Nothing here allocates, takes the GIL or knows about Python.
 */
#ifndef FASTMLP_ELEMENTWISE_H
#define FASTMLP_ELEMENTWISE_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(FASTMLP_NO_CLONES) && !defined(__SANITIZE_ADDRESS__)
#define FM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_CLONES
#endif

/* e^x for x in [-87, 88]; relative error below 2 float32 ulp.
 * x = k ln2 + r with |r| <= ln2/2, ln2 split in a high part exact in
 * float32 and a low part; e^r by its Taylor series to degree 7. */
static inline float fm_exp_reduced(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;      /* 0x3f317200: 12 low bits zero */
    const float ln2_lo = 1.42860676533018e-06f;   /* ln2 - ln2_hi */
    const float round_magic = 12582912.0f;        /* 1.5 * 2^23 */
    float kr = x * log2e + round_magic;           /* 1.5 * 2^23 + k */
    float k = kr - round_magic;                   /* nearest integer */
    float r = (x - k * ln2_hi) - k * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^k, k in [-126, 127]: k is read from the low bits of kr, whose bit
     * pattern is 0x4B400000 + k.  Unsigned arithmetic and no float-to-int
     * conversion, so a NaN x (for which (int32_t)k and the shift of a negative
     * value would be undefined behaviour) gives a defined garbage scale, and
     * p * scale stays NaN. */
    uint32_t kbits;
    memcpy(&kbits, &kr, sizeof kbits);
    uint32_t bits = (kbits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* sigmoid(z) = 1 / (1 + e^-z) for any float32 z: saturates to exactly 1 for
 * large z and to about 1e-38 (instead of the denormal) for z below -87;
 * NaN stays NaN. */
static inline float fm_sigmoid(float z)
{
    float t = -z;
    t = (t > 87.0f) ? 87.0f : t;
    t = (t < -87.0f) ? -87.0f : t;
    return 1.0f / (1.0f + fm_exp_reduced(t));
}

/* tanh(z) = 1 - 2 / (1 + e^{2z}), with 2z clamped to [-87, 87] (NaN kept):
 * saturates to exactly +-1; near 0 the absolute error is ~1e-7. */
static inline float fm_tanh(float z)
{
    float t = 2.0f * z;
    t = (t > 87.0f) ? 87.0f : t;
    t = (t < -87.0f) ? -87.0f : t;
    return 1.0f - 2.0f / (1.0f + fm_exp_reduced(t));
}

/* relu(z) = max(z, 0), written so that NaN stays NaN. */
static inline float fm_relu(float z) { return (z < 0.0f) ? 0.0f : z; }

/* Activation kinds, as numbered in fastmlp/_registry.py (softmax and
 * identity: output layers only; identity adds the bias and nothing else). */
enum { FM_SIGMOID = 0, FM_TANH = 1, FM_RELU = 2, FM_SOFTMAX = 3, FM_IDENTITY = 4 };

/* Each row of K values := softmax of the row, shifted by its maximum so that
 * no exponential overflows; exponents below -87 count as e^-87.  A NaN
 * anywhere in a row makes the whole row NaN. */
static inline void fm_softmax_rows(float *a, ptrdiff_t rows, ptrdiff_t K)
{
    for (ptrdiff_t i = 0; i < rows; ++i) {
        float *r = a + i * K;
        float m = r[0];
        for (ptrdiff_t k = 1; k < K; ++k)
            m = (r[k] > m) ? r[k] : m;
        float sum = 0.0f;
        for (ptrdiff_t k = 0; k < K; ++k) {
            float t = r[k] - m;
            t = (t < -87.0f) ? -87.0f : t;
            r[k] = fm_exp_reduced(t);
            sum = sum + r[k];
        }
        for (ptrdiff_t k = 0; k < K; ++k)
            r[k] = r[k] / sum;
    }
}

/* a[i] := act(a[i]) over n contiguous values. */
FM_CLONES static void fm_act_inplace(float *restrict a, ptrdiff_t n, int kind)
{
    if (kind == FM_TANH) {
        for (ptrdiff_t i = 0; i < n; ++i)
            a[i] = fm_tanh(a[i]);
    } else if (kind == FM_RELU) {
        for (ptrdiff_t i = 0; i < n; ++i)
            a[i] = fm_relu(a[i]);
    } else {
        for (ptrdiff_t i = 0; i < n; ++i)
            a[i] = fm_sigmoid(a[i]);
    }
}

/* d[i] := d[i] * act'(a[i]), the derivative taken from the output a:
 * sigmoid (d a)(1 - a), tanh d (1 - a^2), relu d [a > 0] -- grouped as the
 * NumPy twin groups them. */
FM_CLONES static void fm_mul_act_deriv(float *restrict d, const float *restrict a,
                                       ptrdiff_t n, int kind)
{
    if (kind == FM_TANH) {
        for (ptrdiff_t i = 0; i < n; ++i)
            d[i] = d[i] * (1.0f - a[i] * a[i]);
    } else if (kind == FM_RELU) {
        for (ptrdiff_t i = 0; i < n; ++i)
            d[i] = d[i] * ((a[i] > 0.0f) ? 1.0f : 0.0f);
    } else {
        for (ptrdiff_t i = 0; i < n; ++i)
            d[i] = (d[i] * a[i]) * (1.0f - a[i]);
    }
}

/* a[i] := a[i] + bias[i] over one row of n outputs. */
FM_CLONES static void fm_add_row(float *restrict a, const float *restrict bias, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; ++i)
        a[i] = a[i] + bias[i];
}

/* a[i*lda + j] := act(a[i*lda + j] + W[j*ldw]) for a block of rows: the
 * bias is column 0 of the row-major weight matrix (stride ldw).  The bias
 * column is first copied to `bias` (n floats of scratch) so the inner loop
 * reads it contiguously.  When the rows are contiguous (lda == n) the
 * activation runs over the whole block at once: a row of 70 outputs would
 * otherwise leave a scalar tail of 6 per row, which cost three times as
 * much as the 64 vector lanes before it (measured, AVX-512). */
static inline void fm_bias_act(float *a, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t lda,
                               const float *W, ptrdiff_t ldw, float *bias, int kind)
{
    for (ptrdiff_t j = 0; j < n; ++j)
        bias[j] = W[j * ldw];
    if (kind == FM_IDENTITY) {
        for (ptrdiff_t i = 0; i < rows; ++i)
            fm_add_row(a + i * lda, bias, n);
        return;
    }
    if (kind == FM_SOFTMAX) {
        for (ptrdiff_t i = 0; i < rows; ++i) {
            fm_add_row(a + i * lda, bias, n);
            fm_softmax_rows(a + i * lda, 1, n);
        }
        return;
    }
    if (lda == n) {
        for (ptrdiff_t i = 0; i < rows; ++i)
            fm_add_row(a + i * n, bias, n);
        fm_act_inplace(a, rows * n, kind);
        return;
    }
    for (ptrdiff_t i = 0; i < rows; ++i) {
        fm_add_row(a + i * lda, bias, n);
        fm_act_inplace(a + i * lda, n, kind);
    }
}

/* out[i] := (X[idx[i]] - mean) / scale for rows i of width n, converted to
 * float32 as they are read.  The training matrix stays in the caller's dtype
 * (uint8 pixels, float32 or float64) and is never copied or scaled as a
 * whole; the arithmetic is NumPy's `x32 -= mean; x32 /= scale` in float32,
 * so the result is bit for bit that of a scaled float32 copy. */
#define FM_DEFINE_GATHER(NAME, T)                                                    \
    FM_CLONES static void NAME##_row(float *restrict o, const T *restrict x,       \
                                     const float *restrict mean,                   \
                                     const float *restrict scale, ptrdiff_t n)     \
    {                                                                              \
        for (ptrdiff_t j = 0; j < n; ++j)                                          \
            o[j] = ((float)x[j] - mean[j]) / scale[j];                             \
    }                                                                              \
    static inline void NAME(float *out, const T *X, const ptrdiff_t *idx,          \
                            ptrdiff_t rows, ptrdiff_t n, const float *mean,        \
                            const float *scale)                                    \
    {                                                                              \
        for (ptrdiff_t i = 0; i < rows; ++i)                                       \
            NAME##_row(out + i * n, X + idx[i] * n, mean, scale, n);               \
    }

FM_DEFINE_GATHER(fm_gather_scale_u8, unsigned char)
FM_DEFINE_GATHER(fm_gather_scale_f32, float)
FM_DEFINE_GATHER(fm_gather_scale_f64, double)

/* Optimiser of a training step, for the update kernels below.
 *   FM_SGD      the blog series' momentum rule  dw = lr g;  w -= dw + mom v;  v = dw
 *   FM_RMSPROP  Keras RMSprop (no momentum, not centred)
 *               v = rho v + (1 - rho) g^2;  w -= lr g / sqrt(v + eps)
 *   FM_ADAM     Keras Adam (no amsgrad), alpha = lr sqrt(1 - b2^t) / (1 - b1^t)
 *               m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);
 *               w -= m alpha / (sqrt(v) + eps)
 * The one-minus factors and alpha are computed once per step by the caller,
 * as float32 values, and the float operations are ordered as in Keras and in
 * the NumPy twin. */
enum { FM_SGD = 0, FM_RMSPROP = 1, FM_ADAM = 2 };
typedef struct {
    int kind;
    float lr, mom;          /* FM_SGD (lr also FM_RMSPROP) */
    float rho, omr;         /* FM_RMSPROP: rho, 1 - rho */
    float omb1, omb2;       /* FM_ADAM: 1 - beta_1, 1 - beta_2 */
    float alpha;            /* FM_ADAM: step size of this step */
    float eps;              /* FM_RMSPROP, FM_ADAM */
    float beta1, beta2;     /* FM_ADAM */
} fm_opt;

/* Set the rate of the coming step (1-based `step`) and, for FM_ADAM, its
 * alpha = lr sqrt(1 - b2^t) / (1 - b1^t) in float32 arithmetic, as Keras
 * computes it, with b^t rounded from double (bit for bit the NumPy twin's
 * value, fastmlp/_optim.py). */
static inline void fm_opt_prepare(fm_opt *o, float lr, long step)
{
    o->lr = lr;
    if (o->kind == FM_ADAM) {
        /* beta^t in double, rounded once, as fastmlp/_optim.py does it */
        float b1p = (float)pow((double)o->beta1, (double)step);
        float b2p = (float)pow((double)o->beta2, (double)step);
        o->alpha = lr * sqrtf(1.0f - b2p) / (1.0f - b1p);
    }
}

/* One optimiser step on n weights w with gradients g (g := the amount
 * subtracted from w, i.e. dw for FM_SGD and the increment otherwise);
 * s1 is v (FM_SGD: last dw; FM_RMSPROP: mean square; FM_ADAM: first
 * moment), s2 the FM_ADAM second moment (unused otherwise).  Returns 1
 * when an updated weight is NaN or infinite (divergence), else 0. */
FM_CLONES static int fm_opt_step(float *restrict w, float *restrict s1,
                                 float *restrict s2, float *restrict g,
                                 ptrdiff_t n, const fm_opt *o)
{
    int bad = 0;      /* set when an updated weight is NaN or infinite */
    if (o->kind == FM_RMSPROP) {
        const float lr = o->lr, rho = o->rho, omr = o->omr, eps = o->eps;
        for (ptrdiff_t j = 0; j < n; ++j) {
            float gj = g[j];
            float v = s1[j] * rho + (gj * gj) * omr;
            float inc = (gj * lr) / sqrtf(v + eps);
            s1[j] = v;
            float wn = w[j] - inc;
            bad |= !(fabsf(wn) <= FLT_MAX);
            w[j] = wn;
            g[j] = inc;
        }
    } else if (o->kind == FM_ADAM) {
        const float omb1 = o->omb1, omb2 = o->omb2, alpha = o->alpha, eps = o->eps;
        for (ptrdiff_t j = 0; j < n; ++j) {
            float gj = g[j];
            float m = s1[j] + (gj - s1[j]) * omb1;
            float v = s2[j] + (gj * gj - s2[j]) * omb2;
            float inc = (m * alpha) / (sqrtf(v) + eps);
            s1[j] = m;
            s2[j] = v;
            float wn = w[j] - inc;
            bad |= !(fabsf(wn) <= FLT_MAX);
            w[j] = wn;
            g[j] = inc;
        }
    } else {
        const float lr = o->lr, mom = o->mom;
        for (ptrdiff_t j = 0; j < n; ++j) {
            float dw = g[j] * lr;
            float step = s1[j] * mom + dw;
            float wn = w[j] - step;
            bad |= !(fabsf(wn) <= FLT_MAX);
            w[j] = wn;
            s1[j] = dw;
            g[j] = dw;
        }
    }
    return bad;
}

/* Sum of the partial gradients of `parts` threads (into part 0), then the
 * regularised update of one row of a weight matrix (n non-bias weights):
 *   g  = sum_t G[t][j] (+ l2 w) (+ l1 sign w)
 * followed by fm_opt_step.  Terms whose lambda is 0 are skipped; G (part 0)
 * holds the amount subtracted from w afterwards (see fm_opt_step).
 * Returns the row's part of the regularisation cost of the weights before
 * the update, l2/2 sum w^2 + l1 sum |w|, accumulated in double, or NaN
 * when an updated weight is NaN or infinite (the trainer's divergence
 * signal, free in this memory-bound pass).
 * The float operations are ordered as in the NumPy twin. */
FM_CLONES static double fm_update_row(float *restrict w, float *restrict s1,
                                      float *restrict s2, float *restrict G,
                                      ptrdiff_t part_stride, int parts, ptrdiff_t n,
                                      float l2, float l1, const fm_opt *o)
{
    for (int t = 1; t < parts; ++t) {
        const float *Gt = G + t * part_stride;
        for (ptrdiff_t j = 0; j < n; ++j)
            G[j] = G[j] + Gt[j];
    }
    double sq = 0.0, ab = 0.0;
    if (l2 > 0.0f) {
#if defined(_OPENMP) || defined(FM_OMP_SIMD)
#pragma omp simd reduction(+:sq)
#endif
        for (ptrdiff_t j = 0; j < n; ++j) {
            sq += (double)w[j] * (double)w[j];
            G[j] = G[j] + w[j] * l2;
        }
    }
    if (l1 > 0.0f) {
#if defined(_OPENMP) || defined(FM_OMP_SIMD)
#pragma omp simd reduction(+:ab)
#endif
        for (ptrdiff_t j = 0; j < n; ++j) {
            float s = (w[j] > 0.0f) ? 1.0f : ((w[j] < 0.0f) ? -1.0f : 0.0f);
            ab += fabs((double)w[j]);
            G[j] = G[j] + s * l1;
        }
    }
    if (fm_opt_step(w, s1, s2, G, n, o))
        return NAN;
    return 0.5 * (double)l2 * sq + (double)l1 * ab;
}

/* gb[k] := (accumulate ? gb[k] : 0) + sum over rows of d[i*K + k]
 * (bias gradient of one thread's rows, chunk by chunk). */
FM_CLONES static void fm_column_sums(float *restrict gb, const float *restrict d,
                                     ptrdiff_t rows, ptrdiff_t K, int accumulate)
{
    if (!accumulate)
        for (ptrdiff_t k = 0; k < K; ++k)
            gb[k] = 0.0f;
    for (ptrdiff_t i = 0; i < rows; ++i)
        for (ptrdiff_t k = 0; k < K; ++k)
            gb[k] = gb[k] + d[i * K + k];
}

/* Bias part of the update of one row (no regularisation): the partial
 * sums of `parts` threads, then one optimiser step; gb[0] := the amount
 * subtracted from w[0].  Returns 1 when the new w[0] is NaN or infinite. */
static inline int fm_update_bias(float *w, float *s1, float *s2, float *gb,
                                  ptrdiff_t part_stride, int parts, const fm_opt *o)
{
    float g = gb[0];
    for (int t = 1; t < parts; ++t)
        g = g + gb[t * part_stride];
    gb[0] = g;
    return fm_opt_step(w, s1, s2, gb, 1, o);
}

/* The output layer's delta, cost and count of correct rows, for a batch of
 * `rows` rows of K outputs a (row stride K) into delta (row stride K).
 *
 * Row i of the batch is sample r = idx[i] (r = i when idx is NULL): its
 * weight is sw[r] (1 when sw is NULL) and its target is read where the
 * caller keeps it, through r.  With y the target row and w the weight:
 *   delta = w (a - y)
 *   cost += w L, L the output's loss (`kind`, fastmlp/_registry.py OUTPUTS):
 *     FM_SIGMOID   LogLoss  -sum_k (y log a + (1 - y) log(1 - a))
 *     FM_SOFTMAX   categorical cross-entropy  -sum_k y log a
 *     FM_IDENTITY  squared error  1/2 sum_k (a - y)^2
 * with the arguments of log clipped at the smallest normal float, like the
 * twin.  The cost is accumulated in double and returned; *correct is
 * incremented per correct row.  A weight of 1 multiplies exactly, so
 * without sw the numbers are those of an unweighted pass. */
#define FM_SAMPLE(idx, i) ((idx) != NULL ? (idx)[i] : (i))

/* Single-label targets, y = onehot(labels[r]), for any output kind: the
 * LogLoss terms are log(a) at the label and log(1 - a) elsewhere.  A row is
 * correct when the first maximum of its outputs is at its label. */
static inline double fm_output_delta(const float *a, const int32_t *labels, const float *sw,
                                     const ptrdiff_t *idx, float *delta, ptrdiff_t rows,
                                     ptrdiff_t K, long *correct, int kind)
{
    const float tiny = 1.17549435e-38f;
    double cost = 0.0;
    for (ptrdiff_t i = 0; i < rows; ++i) {
        const float *ai = a + i * K;
        float *di = delta + i * K;
        ptrdiff_t r = FM_SAMPLE(idx, i);
        int32_t y = labels[r];
        float w = (sw != NULL) ? sw[r] : 1.0f;
        ptrdiff_t best = 0;
        for (ptrdiff_t k = 0; k < K; ++k) {
            float t = (k == y) ? 1.0f : 0.0f;
            float d = ai[k] - t;
            di[k] = d * w;
            if (kind == FM_IDENTITY) {
                cost += (double)w * (0.5 * ((double)d * (double)d));
            } else if (k == y || kind != FM_SOFTMAX) {  /* cross-entropy: target term only */
                float p = (k == y) ? ai[k] : 1.0f - ai[k];
                p = (p < tiny) ? tiny : p;
                cost -= (double)w * (double)logf(p);
            }
            if (ai[k] > ai[best])
                best = k;
        }
        if (best == y)
            ++*correct;
    }
    return cost;
}

/* Dense targets, y = row r of the target matrix Y (row stride ldy), for
 * kind FM_SIGMOID (multilabel: y in [0, 1], both log terms) or FM_IDENTITY
 * (regression).  A sigmoid row is correct when every output is on its
 * target's side of 0.5 (a > 0.5 exactly where y > 0.5: an exact match of the
 * label set); no identity row counts as correct. */
static inline double fm_output_delta_dense(const float *a, const float *Y, ptrdiff_t ldy,
                                           const float *sw, const ptrdiff_t *idx,
                                           float *delta, ptrdiff_t rows, ptrdiff_t K,
                                           long *correct, int kind)
{
    const float tiny = 1.17549435e-38f;
    double cost = 0.0;
    for (ptrdiff_t i = 0; i < rows; ++i) {
        const float *ai = a + i * K;
        float *di = delta + i * K;
        ptrdiff_t r = FM_SAMPLE(idx, i);
        const float *yi = Y + r * ldy;
        float w = (sw != NULL) ? sw[r] : 1.0f;
        int right = 1;
        for (ptrdiff_t k = 0; k < K; ++k) {
            float y = yi[k];
            float d = ai[k] - y;
            di[k] = d * w;
            if (kind == FM_IDENTITY) {
                cost += (double)w * (0.5 * ((double)d * (double)d));
            } else {
                float pa = ai[k], pb = 1.0f - ai[k];
                pa = (pa < tiny) ? tiny : pa;
                pb = (pb < tiny) ? tiny : pb;
                cost -= (double)w * ((double)(y * logf(pa)) + (double)((1.0f - y) * logf(pb)));
                right &= (ai[k] > 0.5f) == (y > 0.5f);
            }
        }
        if (kind != FM_IDENTITY && right)
            ++*correct;
    }
    return cost;
}

#endif
