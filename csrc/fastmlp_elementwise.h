/* Elementwise passes of the fastmlp kernels, written as plain loops over
 * contiguous float32 rows so that the compiler can vectorise them without
 * -ffast-math.  The Cython module fastmlp/_kernels.pyx includes this header;
 * nothing here allocates, takes the GIL or knows about Python. */
#ifndef FASTMLP_ELEMENTWISE_H
#define FASTMLP_ELEMENTWISE_H

#include <stddef.h>

/* d[i] := (d[i] * a[i]) * (1 - a[i]) -- the sigmoid derivative taken from
 * the forward output a = sigmoid(z), applied to the back-propagated delta.
 * The product is grouped as NumPy's `d *= a; d *= 1 - a` groups it. */
static inline void fm_mul_sigmoid_deriv(float *restrict d,
                                        const float *restrict a,
                                        ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; ++i)
        d[i] = (d[i] * a[i]) * (1.0f - a[i]);
}

#endif
