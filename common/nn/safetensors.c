/* safetensors.c - the safetensors format: a mapped, fully validated reader and an atomic F32
 * writer. See safetensors.h for the format and the contract.
 *
 * Validation follows the reference implementation (Hugging Face's safetensors): the header is
 * at most ST_MAX_HEADER bytes and lies inside the file; it is a JSON object whose values are
 * tensor entries or the "__metadata__" string map; sorted by begin offset, the entries tile the
 * data section exactly (each begins where the previous ended, the last ends at the end of the
 * file: no gaps, no overlap); each entry's byte size is numel x dtype size. Every integer is
 * checked for overflow before it is used. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format is little-endian)"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* bytes, as the reference implementation */

struct st_file {
    char *path;
    const unsigned char *map; /* the whole file, PROT_READ */
    size_t map_len;
    struct st_tensor *tensors; /* [n], in file (offset) order */
    size_t n;
    size_t *by_name;  /* [n] indices into tensors, sorted by name, for st_find */
    char **meta_keys; /* [n_meta] */
    char **meta_vals; /* [n_meta] */
    size_t n_meta;
};

struct st_wentry {
    char *name;
    const float *data; /* borrowed */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
};

struct st_writer {
    struct st_wentry *e;
    size_t n, cap;
    json_t *meta; /* object of strings */
};

/* Bytes per element, or 0 for a dtype name the format does not define. */
static size_t dtype_size(const char *name, enum st_dtype *kind)
{
    static const struct {
        const char *name;
        size_t size;
        enum st_dtype kind;
    } tab[] = {
        {"F32", 4, ST_F32},    {"F16", 2, ST_F16},       {"BF16", 2, ST_BF16},
        {"F64", 8, ST_OTHER},  {"I64", 8, ST_OTHER},     {"I32", 4, ST_OTHER},
        {"I16", 2, ST_OTHER},  {"I8", 1, ST_OTHER},      {"U64", 8, ST_OTHER},
        {"U32", 4, ST_OTHER},  {"U16", 2, ST_OTHER},     {"U8", 1, ST_OTHER},
        {"BOOL", 1, ST_OTHER}, {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(name, tab[i].name) == 0) {
            *kind = tab[i].kind;
            return tab[i].size;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- reader */

void st_close(st_file_t **f)
{
    if (!f || !*f)
        return;
    st_file_t *s = *f;
    if (s->map)
        munmap((void *)s->map, s->map_len);
    for (size_t i = 0; i < s->n; i++) {
        free((char *)s->tensors[i].name);
        free((char *)s->tensors[i].dtype_name);
    }
    free(s->tensors);
    free(s->by_name);
    for (size_t i = 0; i < s->n_meta; i++) {
        free(s->meta_keys[i]);
        free(s->meta_vals[i]);
    }
    free(s->meta_keys);
    free(s->meta_vals);
    free(s->path);
    free(s);
    *f = NULL;
}

/* A JSON integer that is >= 0, as uint64 (jansson integers are long long). */
static bool json_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Fill t from the header entry `v` (named `name`); data offsets are relative to the data
 * section of `data_len` bytes. begin/end returned for the tiling check. */
static int parse_entry(const st_file_t *s, const char *name, const json_t *v, size_t data_len,
                       struct st_tensor *t, uint64_t *begin, uint64_t *end, char *err,
                       size_t errlen)
{
    if (!json_is_object(v)) {
        err_fmt(err, errlen, "%s: tensor '%s': header entry is not a JSON object", s->path, name);
        return ERR_PROTO;
    }
    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) {
        err_fmt(err, errlen, "%s: tensor '%s': \"dtype\" is missing or not a string", s->path,
                name);
        return ERR_PROTO;
    }
    enum st_dtype kind = ST_OTHER;
    size_t esize = dtype_size(json_string_value(jd), &kind);
    if (esize == 0) {
        err_fmt(err, errlen, "%s: tensor '%s': unknown dtype \"%.32s\"", s->path, name,
                json_string_value(jd));
        return ERR_PROTO;
    }
    if (!json_is_array(js)) {
        err_fmt(err, errlen, "%s: tensor '%s': \"shape\" is missing or not an array", s->path,
                name);
        return ERR_PROTO;
    }
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS) {
        err_fmt(err, errlen, "%s: tensor '%s': %zu dimensions, at most %d supported", s->path, name,
                nd, ST_MAX_DIMS);
        return ERR_PROTO;
    }
    /* numel with overflow checks: any product above SIZE_MAX / esize cannot fit the file */
    uint64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_uint(json_array_get(js, i), &d)) {
            err_fmt(err, errlen, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                    s->path, name, i);
            return ERR_PROTO;
        }
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d)
            overflow = true;
        else
            numel *= d;
    }
    if (!overflow && numel > UINT64_MAX / esize)
        overflow = true;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_uint(json_array_get(jo, 0), begin) || !json_uint(json_array_get(jo, 1), end)) {
        err_fmt(err, errlen,
                "%s: tensor '%s': \"data_offsets\" is missing or not two non-negative integers",
                s->path, name);
        return ERR_PROTO;
    }
    if (*end < *begin || *end > data_len) {
        err_fmt(err, errlen,
                "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %zu bytes",
                s->path, name, (unsigned long long)*begin, (unsigned long long)*end, data_len);
        return ERR_PROTO;
    }
    if (overflow || numel * esize != *end - *begin) {
        err_fmt(err, errlen,
                "%s: tensor '%s': data_offsets span %llu bytes but dtype %s x shape needs %s%llu",
                s->path, name, (unsigned long long)(*end - *begin), json_string_value(jd),
                overflow ? "more than " : "",
                overflow ? (unsigned long long)UINT64_MAX : (unsigned long long)(numel * esize));
        return ERR_PROTO;
    }
    t->name = strdup(name);
    t->dtype_name = strdup(json_string_value(jd));
    if (!t->name || !t->dtype_name)
        return ERR_NOMEM;
    t->dtype = kind;
    t->ndim = (int)nd;
    t->nbytes = (size_t)(*end - *begin);
    return ERR_OK;
}

static int parse_metadata(st_file_t *s, const json_t *m, char *err, size_t errlen)
{
    if (!json_is_object(m)) {
        err_fmt(err, errlen, "%s: \"__metadata__\" is not a JSON object", s->path);
        return ERR_PROTO;
    }
    size_t n = json_object_size(m);
    s->meta_keys = calloc(n ? n : 1, sizeof *s->meta_keys);
    s->meta_vals = calloc(n ? n : 1, sizeof *s->meta_vals);
    if (!s->meta_keys || !s->meta_vals)
        return ERR_NOMEM;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v)
    {
        if (!json_is_string(v)) {
            err_fmt(err, errlen, "%s: \"__metadata__\" value for '%s' is not a string", s->path, k);
            return ERR_PROTO;
        }
        s->meta_keys[s->n_meta] = strdup(k);
        s->meta_vals[s->n_meta] = strdup(json_string_value(v));
        s->n_meta++;
        if (!s->meta_keys[s->n_meta - 1] || !s->meta_vals[s->n_meta - 1])
            return ERR_NOMEM;
    }
    return ERR_OK;
}

/* Sort context for qsort: index arrays over s->tensors, or pairs (begin, index). */
struct span {
    uint64_t begin, end;
    size_t idx;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    /* zero-length tensors first at equal begin, so they do not look like an overlap */
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* A tensor's name and index, sorted by name: the name travels with the index, since qsort has
 * no context argument (a global one raced when two threads opened files: the sampler's loader
 * and its engine both load checkpoints). */
struct named {
    const char *name;
    size_t idx;
};

static int named_cmp(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

static int parse_header(st_file_t *s, char *err, size_t errlen)
{
    if (s->map_len < 8) {
        err_fmt(err, errlen, "%s: truncated: %zu bytes, a safetensors file has at least 8", s->path,
                s->map_len);
        return ERR_PROTO;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | s->map[i];
    if (hlen > ST_MAX_HEADER) {
        err_fmt(err, errlen,
                "%s: header length %llu is over the %llu-byte limit (not safetensors?)", s->path,
                (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
        return ERR_PROTO;
    }
    if (hlen > s->map_len - 8) {
        err_fmt(err, errlen, "%s: truncated: header length %llu but only %zu bytes follow", s->path,
                (unsigned long long)hlen, s->map_len - 8);
        return ERR_PROTO;
    }
    if (hlen < 2) {
        err_fmt(err, errlen, "%s: header length %llu is too small for a JSON object", s->path,
                (unsigned long long)hlen);
        return ERR_PROTO;
    }
    const unsigned char *data = s->map + 8 + hlen;
    size_t data_len = s->map_len - 8 - (size_t)hlen;
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)s->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_fmt(err, errlen, "%s: header is not valid JSON (byte %d): %s", s->path, jerr.position,
                jerr.text);
        return ERR_PROTO;
    }
    int rc = ERR_OK;
    struct span *spans = NULL;
    if (!json_is_object(root)) {
        err_fmt(err, errlen, "%s: header is not a JSON object", s->path);
        rc = ERR_PROTO;
        goto out_root;
    }
    size_t cap = json_object_size(root);
    s->tensors = calloc(cap ? cap : 1, sizeof *s->tensors);
    spans = calloc(cap ? cap : 1, sizeof *spans);
    if (!s->tensors || !spans) {
        rc = ERR_NOMEM;
        goto out_spans;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            rc = parse_metadata(s, v, err, errlen);
        } else {
            struct span *sp = &spans[s->n];
            rc = parse_entry(s, key, v, data_len, &s->tensors[s->n], &sp->begin, &sp->end, err,
                             errlen);
            sp->idx = s->n;
            if (s->tensors[s->n].name || s->tensors[s->n].dtype_name)
                s->n++; /* owned now, freed by st_close even on failure */
        }
        if (rc)
            goto out_spans;
    }
    /* the entries must tile the data section: sorted by begin, each starts where the last
     * ended (a later begin is a gap, an earlier one an overlap), and the last ends the file */
    qsort(spans, s->n, sizeof *spans, span_cmp);
    uint64_t at = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < s->n; i++) {
        const char *nm = s->tensors[spans[i].idx].name;
        if (spans[i].begin < at) {
            err_fmt(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s'",
                    s->path, nm, (unsigned long long)spans[i].begin,
                    (unsigned long long)spans[i].end, prev ? prev : "?");
            rc = ERR_PROTO;
            goto out_spans;
        }
        if (spans[i].begin > at) {
            err_fmt(err, errlen,
                    "%s: tensor '%s': data_offsets begin at %llu, leaving a gap after byte %llu",
                    s->path, nm, (unsigned long long)spans[i].begin, (unsigned long long)at);
            rc = ERR_PROTO;
            goto out_spans;
        }
        at = spans[i].end;
        prev = nm;
    }
    if (at != data_len) {
        err_fmt(err, errlen,
                "%s: the tensors cover %llu bytes of a %zu-byte data section (trailing bytes)",
                s->path, (unsigned long long)at, data_len);
        rc = ERR_PROTO;
        goto out_spans;
    }
    /* reorder tensors into file order; attach data pointers */
    struct st_tensor *ordered = calloc(s->n ? s->n : 1, sizeof *ordered);
    struct named *names = calloc(s->n ? s->n : 1, sizeof *names);
    s->by_name = calloc(s->n ? s->n : 1, sizeof *s->by_name);
    if (!ordered || !names || !s->by_name) {
        free(ordered);
        free(names);
        rc = ERR_NOMEM;
        goto out_spans;
    }
    for (size_t i = 0; i < s->n; i++) {
        ordered[i] = s->tensors[spans[i].idx];
        ordered[i].data = data + spans[i].begin;
        names[i] = (struct named){ordered[i].name, i};
    }
    free(s->tensors);
    s->tensors = ordered;
    qsort(names, s->n, sizeof *names, named_cmp);
    for (size_t i = 0; i < s->n; i++)
        s->by_name[i] = names[i].idx;
    free(names);
out_spans:
    free(spans);
out_root:
    json_decref(root);
    return rc;
}

int st_open(st_file_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (!path) {
        err_fmt(err, errlen, "st_open: no path");
        return ERR_INVAL;
    }
    st_file_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        err_fmt(err, errlen, "%s: out of memory", path);
        return ERR_NOMEM;
    }
    int rc = ERR_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_fmt(err, errlen, "%s: cannot open: %s", path, strerror(e));
        rc = e == ENOENT ? ERR_NOTFOUND : ERR_IO;
        goto out_free;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_fmt(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        rc = ERR_IO;
        goto out_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        err_fmt(err, errlen, "%s: not a regular file", path);
        rc = ERR_IO;
        goto out_fd;
    }
    s->map_len = (size_t)st.st_size;
    if (s->map_len > 0) {
        void *m = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            err_fmt(err, errlen, "%s: cannot map %zu bytes: %s", path, s->map_len, strerror(errno));
            rc = ERR_IO;
            goto out_fd;
        }
        s->map = m;
    }
    close(fd);
    rc = parse_header(s, err, errlen);
    if (rc == ERR_NOMEM)
        err_fmt(err, errlen, "%s: out of memory reading the header", path);
    if (rc)
        goto out_free;
    *out = s;
    return ERR_OK;
out_fd:
    close(fd);
out_free:
    st_close(&s);
    return rc;
}

size_t st_count(const st_file_t *f)
{
    return f ? f->n : 0;
}

const struct st_tensor *st_at(const st_file_t *f, size_t i)
{
    return f && i < f->n ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_find(const st_file_t *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *st_metadata(const st_file_t *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

/* IEEE half to single: normal, subnormal (value = mant x 2^-24), zero, inf and nan (the
 * payload is kept in the top mantissa bits, so a nan stays a nan). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* subnormal: shift the mantissa up until its leading 1 is the implicit bit */
        int e = -14;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        bits = sign | ((uint32_t)(e + 127) << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int st_read_f32(const st_file_t *f, const char *name, float *dst, int ndim, const int64_t *shape,
                char *err, size_t errlen)
{
    if (!f || !name) {
        err_fmt(err, errlen, "st_read_f32: no file or no name");
        return ERR_INVAL;
    }
    if ((ndim > 0 && !shape) || ndim < 0) {
        err_fmt(err, errlen, "%s: tensor '%s': bad expected shape (ndim %d)", f->path, name, ndim);
        return ERR_INVAL;
    }
    const struct st_tensor *t = st_find(f, name);
    if (!t) {
        err_fmt(err, errlen, "%s: tensor '%s' not found", f->path, name);
        return ERR_NOTFOUND;
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[160], want[160];
        size_t a = 0, b = 0;
        got[0] = want[0] = '\0';
        for (int i = 0; i < t->ndim && a < sizeof got; i++)
            a += (size_t)snprintf(got + a, sizeof got - a, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        for (int i = 0; i < ndim && i < ST_MAX_DIMS && b < sizeof want; i++)
            b += (size_t)snprintf(want + b, sizeof want - b, "%s%lld", i ? ", " : "",
                                  (long long)shape[i]);
        err_fmt(err, errlen, "%s: tensor '%s': shape [%s], expected [%s]", f->path, name, got,
                want);
        return ERR_INVAL;
    }
    const unsigned char *p = t->data;
    size_t n;
    switch (t->dtype) {
    case ST_F32:
        if (t->nbytes)
            memcpy(dst, p, t->nbytes);
        break;
    case ST_F16:
        n = t->nbytes / 2;
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    case ST_BF16:
        n = t->nbytes / 2;
        for (size_t i = 0; i < n; i++)
            dst[i] = bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    default:
        err_fmt(err, errlen, "%s: tensor '%s': dtype %s cannot be read as float (F32, F16, BF16)",
                f->path, name, t->dtype_name);
        return ERR_INVAL;
    }
    return ERR_OK;
}

/* ---------------------------------------------------------------- writer */

st_writer_t *st_writer_new(void)
{
    st_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->meta = json_object();
    if (!w->meta) {
        free(w);
        return NULL;
    }
    return w;
}

void st_writer_destroy(st_writer_t **w)
{
    if (!w || !*w)
        return;
    for (size_t i = 0; i < (*w)->n; i++)
        free((*w)->e[i].name);
    free((*w)->e);
    json_decref((*w)->meta);
    free(*w);
    *w = NULL;
}

/* A name JSON can carry (valid UTF-8, no NUL) and that is not the metadata key. */
static bool valid_name(const char *name)
{
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        return false;
    json_t *s = json_string(name);
    json_decref(s);
    return s != NULL;
}

int st_writer_add_f32(st_writer_t *w, const char *name, const float *data, int ndim,
                      const int64_t *shape)
{
    if (!w || !valid_name(name) || ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        return ERR_INVAL;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ERR_INVAL;
        if (shape[i] != 0 && numel > SIZE_MAX / 4 / (uint64_t)shape[i])
            return ERR_INVAL;
        numel *= (size_t)shape[i];
    }
    if (numel > 0 && !data)
        return ERR_INVAL;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return ERR_EXISTS;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        struct st_wentry *e = realloc(w->e, cap * sizeof *e);
        if (!e)
            return ERR_NOMEM;
        w->e = e;
        w->cap = cap;
    }
    struct st_wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name)))
        return ERR_NOMEM;
    e->data = data;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->nbytes = numel * 4;
    w->n++;
    return ERR_OK;
}

int st_writer_set_metadata(st_writer_t *w, const char *key, const char *value)
{
    if (!w || !key || !value)
        return ERR_INVAL;
    json_t *v = json_string(value);
    if (!v)
        return ERR_INVAL; /* not UTF-8 */
    json_t *k = json_string(key);
    json_decref(k);
    if (!k) {
        json_decref(v);
        return ERR_INVAL;
    }
    return json_object_set_new(w->meta, key, v) == 0 ? ERR_OK : ERR_NOMEM;
}

static int wentry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct st_wentry *)a)->name, ((const struct st_wentry *)b)->name);
}

/* The header JSON (padded with spaces to a multiple of 8, as Hugging Face writes it) for the
 * entries in their current order. *out is malloc'd. */
static int build_header(const st_writer_t *w, char **out, size_t *outlen)
{
    json_t *root = json_object();
    int rc = root ? ERR_OK : ERR_NOMEM;
    if (!rc && json_object_size(w->meta) > 0)
        rc = json_object_set(root, "__metadata__", w->meta) ? ERR_NOMEM : ERR_OK;
    uint64_t off = 0;
    for (size_t i = 0; !rc && i < w->n; i++) {
        const struct st_wentry *e = &w->e[i];
        json_t *shape = json_array();
        for (int d = 0; shape && d < e->ndim; d++) {
            if (json_array_append_new(shape, json_integer(e->shape[d]))) {
                json_decref(shape);
                shape = NULL;
            }
        }
        uint64_t end = off + e->nbytes;
        /* "o" steals shape, also when packing fails */
        json_t *ent = shape ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                        "data_offsets", (json_int_t)off, (json_int_t)end)
                            : NULL;
        if (!ent || json_object_set_new(root, e->name, ent))
            rc = ERR_NOMEM;
        off += e->nbytes;
    }
    char *s = rc ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!rc && !s)
        rc = ERR_NOMEM;
    if (rc)
        return rc;
    size_t len = strlen(s), padded = (len + 7) / 8 * 8;
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        return ERR_NOMEM;
    }
    memset(p + len, ' ', padded - len);
    p[padded] = '\0';
    *out = p;
    *outlen = padded;
    return ERR_OK;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync the directory holding `path`, so the rename itself is durable. Best effort. */
static void sync_parent_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int st_writer_write(st_writer_t *w, const char *path, char *err, size_t errlen)
{
    if (!w || !path) {
        err_fmt(err, errlen, "st_writer_write: no writer or no path");
        return ERR_INVAL;
    }
    qsort(w->e, w->n, sizeof *w->e, wentry_cmp);
    char *hdr = NULL;
    size_t hlen = 0;
    int rc = build_header(w, &hdr, &hlen);
    if (rc) {
        err_fmt(err, errlen, "%s: out of memory building the header", path);
        return rc;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(hdr);
        err_fmt(err, errlen, "%s: out of memory", path);
        return ERR_NOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        err_fmt(err, errlen, "%s: cannot create a temporary file beside it: %s", path,
                strerror(errno));
        rc = ERR_IO;
        goto out_free;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    const char *what = "header";
    int bad = write_all(fd, len8, 8) || write_all(fd, hdr, hlen);
    for (size_t i = 0; !bad && i < w->n; i++) {
        what = w->e[i].name;
        bad = w->e[i].nbytes && write_all(fd, w->e[i].data, w->e[i].nbytes);
    }
    if (bad) {
        err_fmt(err, errlen, "%s: writing %s to %s: %s", path, what, tmp, strerror(errno));
        rc = ERR_IO;
        goto out_unlink;
    }
    if (fsync(fd) != 0) {
        err_fmt(err, errlen, "%s: fsync %s: %s", path, tmp, strerror(errno));
        rc = ERR_IO;
        goto out_unlink;
    }
    int cr = close(fd);
    fd = -1;
    if (cr != 0 || rename(tmp, path) != 0) {
        err_fmt(err, errlen, "%s: %s %s: %s", path, cr ? "close" : "rename from", tmp,
                strerror(errno));
        rc = ERR_IO;
        goto out_unlink;
    }
    sync_parent_dir(path);
    goto out_free;
out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out_free:
    free(tmp);
    free(hdr);
    return rc;
}
