/* test_nn_pca - nn_pca_fit on hand-made points whose components and variances are known: points
 * on a line and on a plane in 3-D (the covariance route, n > d), a plane in 10-D with fewer points
 * than dimensions (the Gram route, with a direction of no variance); on random points both routes
 * satisfy C v = lambda v against a covariance the test computes itself; the sign convention
 * (largest loading positive) makes the result independent of the points' sign and the same twice;
 * bad input is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "pca.h"

#define TOL 1e-5

static void assert_near(double got, double want, double tol, const char *what)
{
    if (fabs(got - want) > tol)
        fail_msg("%s: got %.9g, want %.9g (tolerance %g)", what, got, want, tol);
}

/* x[i] = c + a[i] e1 + b[i] e2, e1 and e2 orthonormal in d dimensions. */
static float *make_points(size_t n, size_t d, const double *c, const double *e1, const double *e2,
                          const double *a, const double *b)
{
    float *x = malloc(n * d * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(c[j] + a[i] * e1[j] + (b ? b[i] * e2[j] : 0));
    return x;
}

static void assert_component(const struct nn_pca *p, int j, const double *want)
{
    char what[64];
    for (size_t i = 0; i < p->d; i++) {
        snprintf(what, sizeof what, "component %d, loading %zu", j, i);
        assert_near(p->components[(size_t)j * p->d + i], want[i], TOL, what);
    }
}

static void test_points_on_a_line(void **state)
{
    (void)state;
    const double c[3] = {5, -1, 2}, e1[3] = {-2.0 / 7, -3.0 / 7, -6.0 / 7};
    const double t[5] = {-2, -1, 0, 1, 2};
    float *x = make_points(5, 3, c, e1, NULL, t, NULL);
    struct nn_pca p;
    char err[256];
    assert_int_equal(nn_pca_fit(&p, x, 5, 3, 2, err, sizeof err), ERR_OK);
    assert_int_equal(p.k, 2);
    for (int j = 0; j < 3; j++)
        assert_near(p.mean[j], c[j], TOL, "mean");
    /* variance 10 / 4 along the line, none across it */
    assert_near(p.variance[0], 2.5, TOL, "variance 1");
    assert_near(p.variance[1], 0, TOL, "variance 2");
    assert_near(p.total_variance, 2.5, TOL, "total");
    /* e1 turned: its largest loading (-6/7) made positive */
    const double want[3] = {2.0 / 7, 3.0 / 7, 6.0 / 7};
    assert_component(&p, 0, want);
    for (int i = 0; i < 5; i++) {
        assert_near(p.scores[i * 2], -t[i], TOL, "score on pc1");
        assert_near(p.scores[i * 2 + 1], 0, TOL, "score on pc2");
    }
    /* the second component: a unit vector orthogonal to the first */
    double dot = 0, norm = 0;
    for (int i = 0; i < 3; i++) {
        dot += p.components[i] * p.components[3 + i];
        norm += p.components[3 + i] * p.components[3 + i];
    }
    assert_near(dot, 0, TOL, "pc1 . pc2");
    assert_near(norm, 1, TOL, "|pc2|^2");
    nn_pca_free(&p);
    nn_pca_free(&p); /* safe twice */
    free(x);
}

static void test_points_on_a_plane(void **state)
{
    (void)state;
    const double c[3] = {1, 1, 1}, e1[3] = {0.6, -0.8, 0}, e2[3] = {0, 0, 1};
    /* uncorrelated: sum a b = 0; variances 40/7 and 8/7 */
    const double a[8] = {-3, -1, 1, 3, -3, -1, 1, 3}, b[8] = {-1, -1, -1, -1, 1, 1, 1, 1};
    float *x = make_points(8, 3, c, e1, e2, a, b);
    struct nn_pca p;
    char err[256];
    assert_int_equal(nn_pca_fit(&p, x, 8, 3, 2, err, sizeof err), ERR_OK);
    assert_near(p.variance[0], 40.0 / 7, TOL, "variance 1");
    assert_near(p.variance[1], 8.0 / 7, TOL, "variance 2");
    assert_near(p.total_variance, 48.0 / 7, TOL, "total");
    const double want1[3] = {-0.6, 0.8, 0};
    assert_component(&p, 0, want1);
    assert_component(&p, 1, e2);
    for (int i = 0; i < 8; i++) {
        assert_near(p.scores[i * 2], -a[i], TOL, "score on pc1");
        assert_near(p.scores[i * 2 + 1], b[i], TOL, "score on pc2");
    }
    nn_pca_free(&p);
    free(x);
}

/* Four points in 10 dimensions: the 4 x 4 Gram matrix; three components asked, the third of no
 * variance. */
static void test_fewer_points_than_dimensions(void **state)
{
    (void)state;
    double c[10], e1[10] = {0}, e2[10] = {0};
    for (int j = 0; j < 10; j++)
        c[j] = j * 0.5 - 2;
    e1[0] = 2.0 / 7;
    e1[1] = -3.0 / 7;
    e1[8] = 6.0 / 7;
    e2[5] = -0.6;
    e2[9] = -0.8;
    const double a[4] = {-2, -2, 2, 2}, b[4] = {-1, 1, -1, 1};
    float *x = make_points(4, 10, c, e1, e2, a, b);
    struct nn_pca p;
    char err[256];
    assert_int_equal(nn_pca_fit(&p, x, 4, 10, 5, err, sizeof err), ERR_OK);
    assert_int_equal(p.k, 3); /* at most n - 1 */
    assert_near(p.variance[0], 16.0 / 3, TOL, "variance 1");
    assert_near(p.variance[1], 4.0 / 3, TOL, "variance 2");
    assert_near(p.variance[2], 0, TOL, "variance 3");
    assert_near(p.total_variance, 20.0 / 3, TOL, "total");
    assert_component(&p, 0, e1);
    double want2[10];
    for (int j = 0; j < 10; j++)
        want2[j] = -e2[j];
    assert_component(&p, 1, want2);
    for (int i = 0; i < 4; i++) {
        assert_near(p.scores[i * 3], a[i], TOL, "score on pc1");
        assert_near(p.scores[i * 3 + 1], -b[i], TOL, "score on pc2");
        assert_near(p.scores[i * 3 + 2], 0, TOL, "score on pc3");
    }
    for (int j = 0; j < 3; j++)
        for (int l = 0; l <= j; l++) {
            double dot = 0;
            for (int i = 0; i < 10; i++)
                dot += p.components[j * 10 + i] * p.components[l * 10 + i];
            assert_near(dot, j == l, TOL, "orthonormal components");
        }
    nn_pca_free(&p);
    free(x);
}

/* On random points: every component is an eigenvector of the covariance computed here, with its
 * variance as eigenvalue, by decreasing variance, above the variance along random directions. */
static void check_random(size_t n, size_t d)
{
    uint64_t s = 7 + n * 31 + d;
    float *x = malloc(n * d * sizeof *x);
    double *mean = calloc(d, sizeof *mean), *cov = calloc(d * d, sizeof *cov);
    assert_true(x && mean && cov);
    for (size_t i = 0; i < n * d; i++) /* correlated columns: a shared factor per point */
        x[i] = nn_rng_normal(&s) * (float)(1 + i % d) + (i % d && i % d < 3 ? x[i - i % d] : 0);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += x[i * d + j] / (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            for (size_t l = 0; l < d; l++)
                cov[j * d + l] += (x[i * d + j] - mean[j]) * (x[i * d + l] - mean[l]) / (n - 1.0);
    struct nn_pca p;
    char err[256];
    assert_int_equal(nn_pca_fit(&p, x, n, d, 3, err, sizeof err), ERR_OK);
    assert_int_equal(p.k, 3);
    double trace = 0;
    for (size_t j = 0; j < d; j++)
        trace += cov[j * d + j];
    assert_near(p.total_variance, trace, 1e-9 * trace, "total variance");
    for (int k = 0; k < 3; k++) {
        const double *v = p.components + (size_t)k * d;
        if (k)
            assert_true(p.variance[k] <= p.variance[k - 1]);
        for (size_t j = 0; j < d; j++) {
            double cv = 0;
            for (size_t l = 0; l < d; l++)
                cv += cov[j * d + l] * v[l];
            assert_near(cv, p.variance[k] * v[j], 1e-9 * trace, "C v = lambda v");
        }
    }
    for (int r = 0; r < 20; r++) { /* no direction has more variance than the first */
        double u[64], norm = 0, q = 0;
        assert_true(d <= 64);
        for (size_t j = 0; j < d; j++) {
            u[j] = nn_rng_normal(&s);
            norm += u[j] * u[j];
        }
        for (size_t j = 0; j < d; j++)
            for (size_t l = 0; l < d; l++)
                q += u[j] * cov[j * d + l] * u[l] / norm;
        assert_true(q <= p.variance[0] * (1 + 1e-12));
    }
    nn_pca_free(&p);
    free(x);
    free(mean);
    free(cov);
}

static void test_random_points_both_routes(void **state)
{
    (void)state;
    check_random(40, 7); /* the covariance */
    check_random(6, 40); /* the Gram matrix */
}

static void test_sign_convention_and_determinism(void **state)
{
    (void)state;
    uint64_t s = 99;
    size_t n = 30, d = 12;
    float *x = malloc(n * d * sizeof *x), *neg = malloc(n * d * sizeof *neg);
    assert_true(x && neg);
    for (size_t i = 0; i < n * d; i++) {
        x[i] = nn_rng_normal(&s) * (float)(d - i % d);
        neg[i] = -x[i];
    }
    struct nn_pca p, q, r;
    char err[256];
    assert_int_equal(nn_pca_fit(&p, x, n, d, 2, err, sizeof err), ERR_OK);
    assert_int_equal(nn_pca_fit(&q, x, n, d, 2, err, sizeof err), ERR_OK);
    assert_int_equal(nn_pca_fit(&r, neg, n, d, 2, err, sizeof err), ERR_OK);
    assert_memory_equal(p.components, q.components, 2 * d * sizeof *p.components);
    assert_memory_equal(p.scores, q.scores, 2 * n * sizeof *p.scores);
    for (size_t i = 0; i < 2 * d; i++) /* the same directions, not their opposites */
        assert_near(r.components[i], p.components[i], 1e-9, "component of -x");
    for (size_t i = 0; i < 2 * n; i++)
        assert_near(r.scores[i], -p.scores[i], 1e-6, "score of -x");
    for (int k = 0; k < 2; k++) { /* largest loading positive */
        const double *v = p.components + (size_t)k * d;
        size_t at = 0;
        for (size_t i = 1; i < d; i++)
            if (fabs(v[i]) > fabs(v[at]))
                at = i;
        assert_true(v[at] > 0);
    }
    nn_pca_free(&p);
    nn_pca_free(&q);
    nn_pca_free(&r);
    free(x);
    free(neg);
}

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    float x[6] = {1, 2, 3, 4, 5, 6};
    struct nn_pca p;
    char err[256];
    assert_int_equal(nn_pca_fit(&p, x, 1, 6, 2, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "2 points"));
    assert_int_equal(nn_pca_fit(&p, x, 3, 2, 0, err, sizeof err), ERR_INVAL);
    assert_int_equal(nn_pca_fit(&p, x, 3, 2, NN_PCA_MAX_K + 1, err, sizeof err), ERR_INVAL);
    x[3] = NAN;
    assert_int_equal(nn_pca_fit(&p, x, 3, 2, 1, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "point 1, dimension 1"));
    assert_null(p.components);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_on_a_line),
        cmocka_unit_test(test_points_on_a_plane),
        cmocka_unit_test(test_fewer_points_than_dimensions),
        cmocka_unit_test(test_random_points_both_routes),
        cmocka_unit_test(test_sign_convention_and_determinism),
        cmocka_unit_test(test_bad_input_is_refused),
    };
    return cmocka_run_group_tests_name("nn_pca", tests, NULL, NULL);
}
