/* pca.c - see pca.h. */
#include "pca.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define PCA_MAX_MATRIX 16384 /* min(n, d) at most: a 2 GiB matrix of doubles */

/* LAPACK's symmetric eigensolver (the Fortran symbol OpenBLAS exports; it ships no LAPACKE
 * header). The trailing size_t are gfortran's hidden lengths of the three character arguments. */
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
             const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
             const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t range_len, size_t uplo_len);

void nn_pca_free(struct nn_pca *p)
{
    if (!p)
        return;
    free(p->mean);
    free(p->components);
    free(p->variance);
    free(p->scores);
    memset(p, 0, sizeof *p);
}

/* The top k eigenpairs of the symmetric m x m matrix a (its lower triangle in column-major; a is
 * overwritten), by decreasing eigenvalue: w[k], z[k, m] (row j: eigenvector j). */
static int top_eigen(double *a, int m, int k, double *w, double *z, char *err, size_t errlen)
{
    int il = m - k + 1, iu = m, found = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double vl = 0, vu = 0, abstol = 0, wq = 0;
    double *wa = malloc((size_t)m * sizeof *wa), *za = malloc((size_t)m * k * sizeof *za);
    int *isuppz = malloc(2 * (size_t)k * sizeof *isuppz);
    double *work = NULL;
    int *iwork = NULL;
    int rc = wa && za && isuppz ? ERR_OK : ERR_NOMEM;
    if (!rc) /* the workspace query */
        dsyevr_("V", "I", "L", &m, a, &m, &vl, &vu, &il, &iu, &abstol, &found, wa, za, &m, isuppz,
                &wq, &lwork, &iwq, &liwork, &info, 1, 1, 1);
    if (!rc && info == 0) {
        lwork = (int)wq;
        liwork = iwq;
        work = malloc((size_t)lwork * sizeof *work);
        iwork = malloc((size_t)liwork * sizeof *iwork);
        rc = work && iwork ? ERR_OK : ERR_NOMEM;
    }
    if (!rc && info == 0)
        dsyevr_("V", "I", "L", &m, a, &m, &vl, &vu, &il, &iu, &abstol, &found, wa, za, &m, isuppz,
                work, &lwork, iwork, &liwork, &info, 1, 1, 1);
    if (!rc && (info != 0 || found != k)) {
        snprintf(err, errlen,
                 "pca: LAPACK dsyevr failed on a %d x %d matrix (info %d, %d of %d "
                 "eigenpairs)",
                 m, m, info, found, k);
        rc = ERR_INVAL;
    }
    /* dsyevr lists them by increasing eigenvalue, each a column of za */
    for (int j = 0; !rc && j < k; j++) {
        w[j] = wa[k - 1 - j];
        memcpy(z + (size_t)j * m, za + (size_t)(k - 1 - j) * m, (size_t)m * sizeof *z);
    }
    free(wa);
    free(za);
    free(isuppz);
    free(work);
    free(iwork);
    return rc;
}

/* v[d] := v minus its projections on the unit rows c[0..j); returns its norm. */
static double orthogonalize(double *v, const double *c, int j, size_t d)
{
    for (int i = 0; i < j; i++) {
        double dot = cblas_ddot((int)d, v, 1, c + (size_t)i * d, 1);
        cblas_daxpy((int)d, -dot, c + (size_t)i * d, 1, v, 1);
    }
    return cblas_dnrm2((int)d, v, 1);
}

/* Components from the Gram matrix's eigenvectors u[k, n]: v_j = X^T u_j normalised. A
 * direction of (numerically) zero variance has no such image: any unit vector orthogonal to the
 * ones before will do, the first basis vector that gives one. tiny: the norm below which
 * X^T u_j is taken to be rounding. */
static void gram_to_components(const double *xc, size_t n, size_t d, int k, const double *u,
                               double tiny, double *c)
{
    for (int j = 0; j < k; j++) {
        double *v = c + (size_t)j * d;
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)d, 1.0, xc, (int)d, u + (size_t)j * n,
                    1, 0.0, v, 1);
        double norm = orthogonalize(v, c, j, d);
        for (size_t e = 0; norm <= tiny && e < d; e++) {
            memset(v, 0, d * sizeof *v);
            v[e] = 1;
            norm = orthogonalize(v, c, j, d);
        }
        cblas_dscal((int)d, 1.0 / norm, v, 1);
    }
}

/* Turns v[d] so that its entry of largest magnitude (the first on a tie) is positive. */
static void fix_sign(double *v, size_t d)
{
    size_t at = 0;
    for (size_t i = 1; i < d; i++)
        if (fabs(v[i]) > fabs(v[at]))
            at = i;
    if (v[at] < 0)
        for (size_t i = 0; i < d; i++)
            v[i] = -v[i];
}

int nn_pca_fit(struct nn_pca *out, const float *x, size_t n, size_t d, int k, char *err,
               size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n < 2 || d < 1 || k < 1 || k > NN_PCA_MAX_K) {
        snprintf(err, errlen,
                 "pca: %zu points of %zu dimensions, %d components: need 2 points, "
                 "1 dimension and 1 to %d components",
                 n, d, k, NN_PCA_MAX_K);
        return ERR_INVAL;
    }
    size_t m = n < d ? n : d;
    if (m > PCA_MAX_MATRIX) {
        snprintf(err, errlen,
                 "pca: %zu points of %zu dimensions: a %zu x %zu matrix, over the "
                 "limit of %d",
                 n, d, m, m, PCA_MAX_MATRIX);
        return ERR_TOOBIG;
    }
    if ((size_t)k > n - 1)
        k = (int)(n - 1);
    if ((size_t)k > d)
        k = (int)d;
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i])) {
            snprintf(err, errlen, "pca: point %zu, dimension %zu is not finite", i / d, i % d);
            return ERR_INVAL;
        }
    double *xc = malloc(n * d * sizeof *xc), *a = malloc(m * m * sizeof *a);
    double *u = malloc((size_t)k * m * sizeof *u);
    out->n = n;
    out->d = d;
    out->k = k;
    out->mean = calloc(d, sizeof *out->mean);
    out->components = malloc((size_t)k * d * sizeof *out->components);
    out->variance = malloc((size_t)k * sizeof *out->variance);
    out->scores = malloc(n * (size_t)k * sizeof *out->scores);
    int rc = xc && a && u && out->mean && out->components && out->variance && out->scores
                 ? ERR_OK
                 : ERR_NOMEM;
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out->mean[j] += x[i * d + j];
    for (size_t j = 0; j < d; j++)
        out->mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            xc[i * d + j] = x[i * d + j] - out->mean[j];
    double scale = 1.0 / (double)(n - 1);
    /* the lower triangle in column-major is the upper one in row-major: dsyrk's CblasUpper */
    if (d <= n)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, scale, xc, (int)d, 0.0,
                    a, (int)d);
    else
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)d, scale, xc, (int)d, 0.0,
                    a, (int)n);
    out->total_variance = 0;
    for (size_t i = 0; i < m; i++)
        out->total_variance += a[i * m + i];
    rc = top_eigen(a, (int)m, k, out->variance, u, err, errlen);
    if (rc)
        goto out;
    if (d <= n)
        memcpy(out->components, u, (size_t)k * d * sizeof *u);
    else
        gram_to_components(xc, n, d, k, u, 1e-9 * sqrt(out->total_variance * (double)(n - 1)),
                           out->components);
    for (int j = 0; j < k; j++) {
        fix_sign(out->components + (size_t)j * d, d);
        if (out->variance[j] < 0) /* rounding on a direction of no variance */
            out->variance[j] = 0;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, k, (int)d, 1.0, xc, (int)d,
                out->components, (int)d, 0.0, out->scores, k);
out:
    free(xc);
    free(a);
    free(u);
    if (rc) {
        if (rc == ERR_NOMEM)
            snprintf(err, errlen, "pca: out of memory (%zu points of %zu dimensions)", n, d);
        nn_pca_free(out);
    }
    return rc;
}
