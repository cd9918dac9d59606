/* attention.c - the fused attention's micro-kernels (attention.h).
 *
 * The tile keeps its 6 x 64 block of C in 24 registers of 16 floats; each step of k loads 4
 * vectors of B's row k and broadcasts A's 6 values of column k: 24 FMAs. GCC's vector extensions
 * (not intrinsics) keep it plain C. With GCC on x86-64 it is compiled twice, for AVX-512F and for
 * the baseline, and the loader picks (target_clones); the baseline clone gives the same results
 * at a fraction of the speed, so model.c turns the fused path on by default only where
 * nn_att_available(). */
#include "attention.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define ATT_X86    1
#define ATT_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define ATT_X86 0
#define ATT_CLONES
#endif

typedef float v16 __attribute__((vector_size(64), aligned(4))); /* unaligned loads and stores */

bool nn_att_available(void)
{
#if ATT_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

/* The tile for a constant nv (the switch below instantiates 1 to 4); inlined so that nv unrolls
 * and the accumulators stay in registers. */
static inline __attribute__((always_inline)) void
tile_nv(const int nv, int mr, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs, const float *b,
        ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha, bool add)
{
    v16 s[NN_ATT_MR][4];
    const float *ar[NN_ATT_MR];
#pragma GCC unroll 8
    for (int r = 0; r < NN_ATT_MR; r++) {
        ar[r] = a + (r < mr ? r : 0) * ars; /* rows past mr repeat row 0 and are not stored */
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            s[r][v] = (v16){0};
    }
    for (int k = 0; k < K; k++) {
        const float *bk = b + k * ldb;
        v16 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = *(const v16 *)(bk + 16 * v);
#pragma GCC unroll 8
        for (int r = 0; r < NN_ATT_MR; r++) {
            float x = ar[r][k * acs];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                s[r][v] += x * bv[v];
        }
    }
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            v16 *cp = (v16 *)(c + r * ldc + 16 * v);
            *cp = add ? *cp + alpha * s[r][v] : alpha * s[r][v];
        }
    }
}

ATT_CLONES void nn_att_tile(int nv, int mr, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                            const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha,
                            bool add)
{
    switch (nv) {
    case 4:
        tile_nv(4, mr, K, a, ars, acs, b, ldb, c, ldc, alpha, add);
        break;
    case 3:
        tile_nv(3, mr, K, a, ars, acs, b, ldb, c, ldc, alpha, add);
        break;
    case 2:
        tile_nv(2, mr, K, a, ars, acs, b, ldb, c, ldc, alpha, add);
        break;
    default:
        tile_nv(1, mr, K, a, ars, acs, b, ldb, c, ldc, alpha, add);
        break;
    }
}

#if ATT_X86
/* dst[c, r] = src[r, c] for a 16 x 16 block; rows r >= rows read as zeros. Three rounds of
 * shuffles: pairs of rows (unpack ps), quads (unpack pd), then the 128-bit lanes. */
__attribute__((target("avx512f"))) static inline void
tr16(float *dst, ptrdiff_t ld, const float *src, ptrdiff_t lds, int rows)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_loadu_ps(src + i * lds) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int k = 0; k < 16; k += 4) {
        __m512d a = _mm512_castps_pd(t[k]), b = _mm512_castps_pd(t[k + 1]);
        __m512d c = _mm512_castps_pd(t[k + 2]), d = _mm512_castps_pd(t[k + 3]);
        r[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));     /* columns 0, 4, 8, 12 */
        r[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c)); /* 1, 5, 9, 13 */
        r[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d)); /* 2, 6, 10, 14 */
        r[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d)); /* 3, 7, 11, 15 */
    }
    for (int j = 0; j < 4; j++) {
        __m512 v0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xee);
        __m512 v2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xee);
        _mm512_storeu_ps(dst + (size_t)j * ld, _mm512_shuffle_f32x4(v0, v2, 0x88));
        _mm512_storeu_ps(dst + (size_t)(4 + j) * ld, _mm512_shuffle_f32x4(v0, v2, 0xdd));
        _mm512_storeu_ps(dst + (size_t)(8 + j) * ld, _mm512_shuffle_f32x4(v1, v3, 0x88));
        _mm512_storeu_ps(dst + (size_t)(12 + j) * ld, _mm512_shuffle_f32x4(v1, v3, 0xdd));
    }
}

__attribute__((target("avx512f"))) static void
pack_t_avx512(float *dst, ptrdiff_t ld, const float *src, ptrdiff_t lds, int n, int n16, int D)
{
    for (int j0 = 0; j0 < n16; j0 += 16)
        for (int d0 = 0; d0 < D; d0 += 16)
            tr16(dst + (size_t)d0 * ld + j0, ld, src + (size_t)j0 * lds + d0, lds, n - j0);
}
#endif

void nn_att_pack_t(float *dst, ptrdiff_t ld, const float *src, ptrdiff_t lds, int n, int n16, int D)
{
#if ATT_X86
    if (D % 16 == 0 && __builtin_cpu_supports("avx512f")) {
        pack_t_avx512(dst, ld, src, lds, n, n16, D);
        return;
    }
#endif
    for (int j0 = 0; j0 < n16; j0 += 16) /* rows read whole, 16 columns of dst written */
        for (int d = 0; d < D; d++)
            for (int j = j0; j < j0 + 16; j++)
                dst[d * ld + j] = j < n ? src[j * lds + d] : 0.0f;
}
