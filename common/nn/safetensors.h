/* safetensors.h - read and write the safetensors format (Hugging Face): an 8-byte little-endian
 * header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
 * then the raw tensor bytes. Reading maps the file and validates every entry (offsets inside
 * the file, in order, no overlap, sizes matching dtype x shape); F32, F16 and BF16 convert to
 * fp32. Writing is F32 only, to a temporary file that is fsynced and renamed into place.
 * Errors: every failing call fills `err` (if not NULL) with a sentence that names the file,
 * the tensor and the reason. Not for: knowing what the tensors mean (model.c maps names). */
#ifndef NN_SAFETENSORS_H
#define NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

enum st_dtype { ST_F32 = 0, ST_F16, ST_BF16, ST_OTHER };

struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    const char *dtype_name; /* as in the header: "F32", "BF16", "I64", ... */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* inside the mapping: valid until st_close */
};

typedef struct st_file st_file_t;

/* Map and validate `path`. On ERR_OK *out owns it (st_close). ERR_NOTFOUND, ERR_IO, ERR_PROTO
 * (bad header, bad offsets, truncated). */
int st_open(st_file_t **out, const char *path, char *err, size_t errlen);
void st_close(st_file_t **f);
size_t st_count(const st_file_t *f);
/* Borrowed until st_close; NULL past the end / when absent. */
const struct st_tensor *st_at(const st_file_t *f, size_t i);
const struct st_tensor *st_find(const st_file_t *f, const char *name);
/* A "__metadata__" value, borrowed until st_close, or NULL. */
const char *st_metadata(const st_file_t *f, const char *key);
/* Copy tensor `name` into dst as fp32, after checking it has exactly `ndim` dims equal to
 * `shape`. ERR_NOTFOUND (absent), ERR_INVAL (shape or dtype mismatch, named in err). */
int st_read_f32(const st_file_t *f, const char *name, float *dst, int ndim, const int64_t *shape,
                char *err, size_t errlen);

typedef struct st_writer st_writer_t;

/* NULL if out of memory. */
st_writer_t *st_writer_new(void);
void st_writer_destroy(st_writer_t **w);
/* Add an F32 tensor; `data` is borrowed until st_writer_write returns. ERR_EXISTS on a
 * repeated name, ERR_INVAL on a bad shape. */
int st_writer_add_f32(st_writer_t *w, const char *name, const float *data, int ndim,
                      const int64_t *shape);
int st_writer_set_metadata(st_writer_t *w, const char *key, const char *value);
/* Write atomically (temp file, fsync, rename). ERR_IO with err filled. */
int st_writer_write(st_writer_t *w, const char *path, char *err, size_t errlen);

#endif /* NN_SAFETENSORS_H */
