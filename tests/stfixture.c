/* stfixture.c - see stfixture.h. */
#include "stfixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

float *stfx_get(st_file_t *f, const char *name, size_t n)
{
    const struct st_tensor *t = st_find(f, name);
    if (!t) {
        fail_msg("fixture %s missing", name);
        return NULL;
    }
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++)
        numel *= (size_t)t->shape[i];
    assert_int_equal(numel, n);
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    char err[256];
    if (st_read_f32(f, name, p, t->ndim, t->shape, err, sizeof err))
        fail_msg("%s", err);
    return p;
}
