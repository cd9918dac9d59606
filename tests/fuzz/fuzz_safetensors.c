/* fuzz_safetensors.c - a .safetensors file as common/nn/safetensors.c maps it (checkpoints and
 * models come from disk, other tools and downloads): the 8-byte header length, the JSON header,
 * the data. The input is written to a scratch file and opened with st_open; an opened file's
 * tensors are listed, found by name, and each F32/F16/BF16 one is read as fp32 with the shape it
 * declares (st_read_f32 converts every element, so every byte the header promises is read). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "safetensors.h"

/* Elements of a tensor, or 0 when they would not fit a small scratch buffer. */
static size_t elements(const struct st_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || (t->shape[d] && n > ((size_t)1 << 24) / (size_t)t->shape[d]))
            return 0;
        n *= (size_t)t->shape[d];
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.safetensors", data, size);
    st_file_t *f = NULL;
    char err[1024];
    if (st_open(&f, path, err, sizeof err) != ERR_OK)
        return 0;
    size_t n = st_count(f);
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_at(f, i);
        if (!t || !t->name)
            fuzz_fail("st_at(%zu) of %zu: no tensor", i, n);
        if (st_find(f, t->name) != t)
            fuzz_fail("st_find(\"%s\") is not the tensor st_at(%zu) gives", t->name, i);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            fuzz_fail("tensor \"%s\": %d dimensions", t->name, t->ndim);
        if (t->nbytes && t->data) {
            volatile uint8_t last = ((const uint8_t *)t->data)[t->nbytes - 1];
            (void)last;
        }
        size_t ne = elements(t);
        if (t->dtype == ST_OTHER || (ne == 0 && t->nbytes))
            continue;
        float *dst = malloc((ne ? ne : 1) * sizeof *dst);
        if (!dst)
            abort();
        st_read_f32(f, t->name, dst, t->ndim, t->shape, err, sizeof err);
        free(dst);
    }
    st_find(f, "");
    st_metadata(f, "format");
    st_close(&f);
    return 0;
}
