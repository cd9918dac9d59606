/* attention.h - the micro-kernels of the fused attention (model.c's attention_fwd/bwd): one
 * register-blocked product tile and one transpose. Written for AVX-512 (nn_att_available()); on
 * other CPUs they compute the same, slowly, and model.c uses OpenBLAS products by default.
 *
 * Shapes: row-major float arrays with explicit strides (in floats). Widths are multiples of 16
 * (one vector of 16 floats); the callers pad. */
#ifndef NN_ATTENTION_H
#define NN_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>

/* Rows of one product tile: 6 rows x 4 vectors of 16 columns keep 24 accumulators, the 4 loaded
 * vectors and one broadcast in AVX-512's 32 registers. */
#define NN_ATT_MR 6

/* True when the kernels run on AVX-512F here (GCC on x86-64 and a CPU that has it). */
bool nn_att_available(void);

/* C[r, 0 : 16 nv] = alpha * sum_{k < K} A(r, k) B[k, 0 : 16 nv] for r < mr (mr <= NN_ATT_MR,
 * 1 <= nv <= 4), or C += that when `add`. A(r, k) = a[r * ars + k * acs] (any strides: a
 * transposed operand is a stride swap); B's rows are ldb apart, C's ldc. */
void nn_att_tile(int nv, int mr, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                 const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha, bool add);

/* dst[d, j] = src[j, d] for d < D, j < n, and 0 for n <= j < n16 (n16 a multiple of 16, >= n).
 * src's rows are lds apart, dst's ld. */
void nn_att_pack_t(float *dst, ptrdiff_t ld, const float *src, ptrdiff_t lds, int n, int n16,
                   int D);

#endif /* NN_ATTENTION_H */
