/* pca.h - principal component analysis of a small point cloud: the top k directions of largest
 * variance of n points in d dimensions, their variances, and each point's coordinates along them.
 * For plots of the model's features (`oaif rm features`: the reward model's last-hidden state of
 * chosen and rejected responses, in two dimensions).
 *
 * How: the points are centred (in double); the smaller of the d x d covariance X^T X / (n - 1)
 * and the n x n Gram matrix X X^T / (n - 1) (the same nonzero eigenvalues; v = X^T u / |X^T u|
 * maps one's eigenvectors to the other's) is built with dsyrk and handed to LAPACK's dsyevr
 * (from the OpenBLAS the engine links) for its top k eigenpairs only. Exact up to rounding, with
 * no iteration count to tune, unlike power iteration, which slows down when two variances are
 * close.
 *
 * Signs: an eigenvector is defined up to its sign, so each component is turned so that its
 * loading of largest magnitude (the first such on a tie) is positive: the same input gives the
 * same output.
 *
 * Not here: reading or writing the points, whitening, more than a few components (k <= 16). */
#ifndef NN_PCA_H
#define NN_PCA_H

#include <stddef.h>

#define NN_PCA_MAX_K 16

/* The result of nn_pca_fit. Arrays malloc'd; free with nn_pca_free. */
struct nn_pca {
    size_t n, d;
    int k;                 /* components computed: min(k asked, n - 1, d) */
    double *mean;          /* [d] the points' mean */
    double *components;    /* [k, d] unit vectors, by decreasing variance */
    double *variance;      /* [k] the variance along each (an eigenvalue of the covariance) */
    double total_variance; /* the trace of the covariance: the sum of every direction's variance */
    double *scores;        /* [n, k] (x_i - mean) . components[j] */
};

/* The top k principal components of the n points x[n, d] (row-major). n >= 2, d >= 1,
 * 1 <= k <= NN_PCA_MAX_K; k is lowered to min(n - 1, d) when larger. The covariance's divisor is
 * n - 1. On ERR_OK *out holds the result. ERR_INVAL (a bad size or a non-finite value, err says
 * which; or LAPACK failed: err has its info code), ERR_TOOBIG (min(n, d) above 16384: the matrix
 * would not fit), ERR_NOMEM. */
int nn_pca_fit(struct nn_pca *out, const float *x, size_t n, size_t d, int k, char *err,
               size_t errlen);

/* Frees the arrays; *p is zeroed. Safe twice. */
void nn_pca_free(struct nn_pca *p);

#endif /* NN_PCA_H */
