/* test_nn_safetensors.c - safetensors read/write: round trip, the HF layout of what we write,
 * F16/BF16 conversion against torch (fixture tests/fixtures/safetensors/mixed.safetensors, see
 * make_fixtures.py there), and every kind of corrupt file giving a clear error, not a crash. */
#include <setjmp.h> /* cmocka 1.1 needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "safetensors.h"

#define FIXTURE OAIF_FIXTURES "/safetensors/mixed.safetensors"

struct ctx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/test_nn_st.XXXXXX");
    if (!mkdtemp(c->dir)) {
        free(c);
        return -1;
    }
    snprintf(c->path, sizeof c->path, "%s/model.safetensors", c->dir);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    DIR *d = opendir(c->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", c->dir, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(c->dir);
    free(c);
    return 0;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A file of 8-byte length + header + `data_len` data bytes (value 0x3f). */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0x3f, data_len);
    write_bytes(path, b, n);
    free(b);
}

static void expect_open_fails(const char *path, int want_rc, const char *want_text)
{
    st_file_t *f = (st_file_t *)1;
    char err[512] = "";
    int rc = st_open(&f, path, err, sizeof err);
    if (rc != want_rc || !strstr(err, want_text) || !strstr(err, path))
        fail_msg("rc %d (want %d), err \"%s\" (want \"%s\" and the path)", rc, want_rc, err,
                 want_text);
    assert_null(f);
}

static void test_round_trip_keeps_values_names_and_metadata(void **state)
{
    struct ctx *c = *state;
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    float b[4] = {NAN, INFINITY, -INFINITY, 42.0f};
    float s = 3.0f;
    int64_t sa[2] = {2, 3}, sb[1] = {4};
    st_writer_t *w = st_writer_new();
    assert_non_null(w);
    assert_int_equal(st_writer_add_f32(w, "z.weight", a, 2, sa), ERR_OK);
    assert_int_equal(st_writer_add_f32(w, "a.bias", b, 1, sb), ERR_OK);
    assert_int_equal(st_writer_add_f32(w, "m.scalar", &s, 0, NULL), ERR_OK);
    assert_int_equal(st_writer_set_metadata(w, "format", "pt"), ERR_OK);
    assert_int_equal(st_writer_set_metadata(w, "step", "12"), ERR_OK);
    char err[256] = "";
    assert_int_equal(st_writer_write(w, c->path, err, sizeof err), ERR_OK);
    st_writer_destroy(&w);
    assert_null(w);
    st_writer_destroy(&w);

    st_file_t *f = NULL;
    assert_int_equal(st_open(&f, c->path, err, sizeof err), ERR_OK);
    assert_int_equal(st_count(f), 3);
    /* data in name order, as Hugging Face writes it */
    assert_string_equal(st_at(f, 0)->name, "a.bias");
    assert_string_equal(st_at(f, 1)->name, "m.scalar");
    assert_string_equal(st_at(f, 2)->name, "z.weight");
    assert_null(st_at(f, 3));
    const struct st_tensor *t = st_find(f, "z.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_string_equal(t->dtype_name, "F32");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->nbytes, 24);
    assert_null(st_find(f, "nope"));
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_string_equal(st_metadata(f, "step"), "12");
    assert_null(st_metadata(f, "absent"));

    float ra[6], rb[4], rs = 0;
    assert_int_equal(st_read_f32(f, "z.weight", ra, 2, sa, err, sizeof err), ERR_OK);
    assert_memory_equal(ra, a, sizeof a); /* bit for bit, -0.0 included */
    assert_int_equal(st_read_f32(f, "a.bias", rb, 1, sb, err, sizeof err), ERR_OK);
    assert_true(isnan(rb[0]));
    assert_memory_equal(rb + 1, b + 1, 3 * sizeof(float));
    assert_int_equal(st_read_f32(f, "m.scalar", &rs, 0, NULL, err, sizeof err), ERR_OK);
    assert_true(rs == 3.0f);
    st_close(&f);
    assert_null(f);
    st_close(&f);
    st_close(NULL);
}

static void test_written_header_is_padded_to_8_with_spaces(void **state)
{
    struct ctx *c = *state;
    float x = 1.0f;
    int64_t one = 1;
    st_writer_t *w = st_writer_new();
    assert_int_equal(st_writer_add_f32(w, "x", &x, 1, &one), ERR_OK);
    assert_int_equal(st_writer_write(w, c->path, NULL, 0), ERR_OK);
    st_writer_destroy(&w);
    FILE *fp = fopen(c->path, "rb");
    assert_non_null(fp);
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | buf[i];
    assert_int_equal(hl % 8, 0);
    assert_int_equal(n, 8 + hl + 4);
    assert_int_equal(buf[8], '{');
    /* after the closing brace only spaces */
    size_t end = 8 + hl;
    while (end > 8 && buf[end - 1] == ' ')
        end--;
    assert_int_equal(buf[end - 1], '}');
    assert_true(8 + hl - end < 8);
    const char *want = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    assert_memory_equal(buf + 8, want, strlen(want));
}

static void test_write_leaves_no_temp_file_and_replaces_atomically(void **state)
{
    struct ctx *c = *state;
    float x[2] = {1.0f, 2.0f};
    int64_t two = 2;
    for (int round = 0; round < 2; round++) {
        st_writer_t *w = st_writer_new();
        x[0] = (float)round;
        assert_int_equal(st_writer_add_f32(w, "x", x, 1, &two), ERR_OK);
        assert_int_equal(st_writer_write(w, c->path, NULL, 0), ERR_OK);
        st_writer_destroy(&w);
    }
    DIR *d = opendir(c->dir);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            files++;
    closedir(d);
    assert_int_equal(files, 1);
    st_file_t *f = NULL;
    assert_int_equal(st_open(&f, c->path, NULL, 0), ERR_OK);
    float r[2];
    assert_int_equal(st_read_f32(f, "x", r, 1, &two, NULL, 0), ERR_OK);
    assert_true(r[0] == 1.0f);
    st_close(&f);
}

static void test_writer_rejects_bad_input(void **state)
{
    struct ctx *c = *state;
    float x[4] = {0};
    int64_t s4 = 4, neg = -1;
    int64_t huge[2] = {INT64_MAX / 2, 8};
    st_writer_t *w = st_writer_new();
    assert_int_equal(st_writer_add_f32(w, "x", x, 1, &s4), ERR_OK);
    assert_int_equal(st_writer_add_f32(w, "x", x, 1, &s4), ERR_EXISTS);
    assert_int_equal(st_writer_add_f32(w, "y", x, 1, &neg), ERR_INVAL);
    assert_int_equal(st_writer_add_f32(w, "y", x, 2, huge), ERR_INVAL);
    assert_int_equal(st_writer_add_f32(w, "y", x, ST_MAX_DIMS + 1, huge), ERR_INVAL);
    assert_int_equal(st_writer_add_f32(w, "y", NULL, 1, &s4), ERR_INVAL);
    assert_int_equal(st_writer_add_f32(w, "__metadata__", x, 1, &s4), ERR_INVAL);
    assert_int_equal(st_writer_add_f32(w, "", x, 1, &s4), ERR_INVAL);
    assert_int_equal(st_writer_add_f32(w, "bad\xff", x, 1, &s4), ERR_INVAL);
    assert_int_equal(st_writer_set_metadata(w, "k", "\xc3"), ERR_INVAL);
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", c->dir);
    assert_int_equal(st_writer_write(w, path, err, sizeof err), ERR_IO);
    assert_non_null(strstr(err, path));
    st_writer_destroy(&w);
}

static void test_fixture_f16_bf16_match_torch(void **state)
{
    (void)state;
    st_file_t *f = NULL;
    char err[512] = "";
    int rc = st_open(&f, FIXTURE, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(st_count(f), 8);
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_string_equal(st_metadata(f, "note"), "hand-made fixture");
    /* file (offset) order */
    assert_string_equal(st_at(f, 0)->name, "half");
    assert_int_equal(st_find(f, "half")->dtype, ST_F16);
    assert_int_equal(st_find(f, "brain")->dtype, ST_BF16);
    assert_int_equal(st_find(f, "ids")->dtype, ST_OTHER);
    assert_string_equal(st_find(f, "ids")->dtype_name, "I64");

    int64_t s17 = 17;
    float h[17], h32[17];
    assert_int_equal(st_read_f32(f, "half", h, 1, &s17, err, sizeof err), ERR_OK);
    assert_int_equal(st_read_f32(f, "half_f32", h32, 1, &s17, err, sizeof err), ERR_OK);
    for (int i = 0; i < 17; i++) {
        if (isnan(h32[i]))
            assert_true(isnan(h[i]));
        else if (memcmp(&h[i], &h32[i], sizeof(float)) != 0)
            fail_msg("half[%d]: %a, torch says %a", i, (double)h[i], (double)h32[i]);
    }
    /* spot checks that do not depend on torch */
    assert_true(h[2] == 1.0f);
    assert_true(h[5] == 65504.0f);
    assert_true(h[7] == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(h[10] == 1023.0f * ldexpf(1.0f, -24));
    assert_true(h[11] == ldexpf(1.0f, -14));
    assert_true(signbit(h[1]) && h[1] == 0.0f);
    assert_true(isinf(h[12]) && h[12] > 0 && isinf(h[13]) && h[13] < 0);
    assert_true(isnan(h[14]));

    int64_t s34[2] = {3, 4};
    float b[12], b32[12];
    assert_int_equal(st_read_f32(f, "brain", b, 2, s34, err, sizeof err), ERR_OK);
    assert_int_equal(st_read_f32(f, "brain_f32", b32, 2, s34, err, sizeof err), ERR_OK);
    for (int i = 0; i < 12; i++) {
        if (isnan(b32[i]))
            assert_true(isnan(b[i]));
        else if (memcmp(&b[i], &b32[i], sizeof(float)) != 0)
            fail_msg("brain[%d]: %a, torch says %a", i, (double)b[i], (double)b32[i]);
    }
    assert_true(b[3] == -3.140625f);

    int64_t s23[2] = {2, 3};
    float w[6];
    assert_int_equal(
        st_read_f32(f, "model.layers.0.mlp.up_proj.weight", w, 2, s23, err, sizeof err), ERR_OK);
    for (int i = 0; i < 6; i++)
        assert_true(w[i] == (float)i / 4.0f);
    float sc = 0;
    assert_int_equal(st_read_f32(f, "scalar", &sc, 0, NULL, err, sizeof err), ERR_OK);
    assert_true(sc == 7.5f);
    int64_t s04[2] = {0, 4};
    assert_int_equal(st_read_f32(f, "empty", NULL, 2, s04, err, sizeof err), ERR_OK);
    st_close(&f);
}

static void test_read_f32_names_shape_dtype_and_missing_tensor(void **state)
{
    (void)state;
    st_file_t *f = NULL;
    char err[512] = "";
    assert_int_equal(st_open(&f, FIXTURE, err, sizeof err), ERR_OK);
    float buf[64];
    int64_t s32[2] = {3, 2};
    assert_int_equal(
        st_read_f32(f, "model.layers.0.mlp.up_proj.weight", buf, 2, s32, err, sizeof err),
        ERR_INVAL);
    assert_non_null(strstr(err, "model.layers.0.mlp.up_proj.weight"));
    assert_non_null(strstr(err, "[2, 3]"));
    assert_non_null(strstr(err, "expected [3, 2]"));
    assert_non_null(strstr(err, "mixed.safetensors"));
    int64_t s6 = 6;
    assert_int_equal(
        st_read_f32(f, "model.layers.0.mlp.up_proj.weight", buf, 1, &s6, err, sizeof err),
        ERR_INVAL);
    int64_t s3 = 3;
    assert_int_equal(st_read_f32(f, "ids", buf, 1, &s3, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "I64"));
    assert_int_equal(st_read_f32(f, "missing.weight", buf, 1, &s3, err, sizeof err), ERR_NOTFOUND);
    assert_non_null(strstr(err, "missing.weight"));
    st_close(&f);
}

static void test_missing_file_and_directory(void **state)
{
    struct ctx *c = *state;
    char p[256];
    snprintf(p, sizeof p, "%s/absent.safetensors", c->dir);
    expect_open_fails(p, ERR_NOTFOUND, "No such file");
    expect_open_fails(c->dir, ERR_IO, "not a regular file");
}

static void test_corrupt_headers_are_proto_errors_naming_the_reason(void **state)
{
    struct ctx *c = *state;
    const char *p = c->path;
    write_bytes(p, "", 0);
    expect_open_fails(p, ERR_PROTO, "truncated");
    write_bytes(p, "\x10\0\0", 3);
    expect_open_fails(p, ERR_PROTO, "truncated");
    write_bytes(p, "\0\0\0\0\0\1\0\0{}", 10);
    expect_open_fails(p, ERR_PROTO, "limit");
    write_bytes(p, "\xc8\0\0\0\0\0\0\0{\"a\":", 13);
    expect_open_fails(p, ERR_PROTO, "truncated");
    write_bytes(p, "\x01\0\0\0\0\0\0\0{", 9);
    expect_open_fails(p, ERR_PROTO, "too small");
    write_st(p, "this is not json", 0);
    expect_open_fails(p, ERR_PROTO, "not valid JSON");
    write_st(p, "[1, 2]", 0);
    expect_open_fails(p, ERR_PROTO, "not a JSON object");
    write_st(p, "{\"t\": 3}", 0);
    expect_open_fails(p, ERR_PROTO, "tensor 't': header entry is not a JSON object");
    write_st(p, "{\"t\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_fails(p, ERR_PROTO, "tensor 't': \"dtype\"");
    write_st(p, "{\"t\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_fails(p, ERR_PROTO, "unknown dtype \"F7\"");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4);
    expect_open_fails(p, ERR_PROTO, "\"shape\" is missing");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_fails(p, ERR_PROTO, "shape[0]");
    write_st(p,
             "{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], "
             "\"data_offsets\": [0, 4]}}",
             4);
    expect_open_fails(p, ERR_PROTO, "9 dimensions");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8);
    expect_open_fails(p, ERR_PROTO, "\"data_offsets\"");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8);
    expect_open_fails(p, ERR_PROTO, "span 8 bytes but dtype F32 x shape needs 12");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 4]}}", 8);
    expect_open_fails(p, ERR_PROTO, "outside the data section");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8);
    expect_open_fails(p, ERR_PROTO, "outside the data section of 8 bytes");
    write_st(p,
             "{\"t\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4611686018427387904],"
             " \"data_offsets\": [0, 8]}}",
             8);
    expect_open_fails(p, ERR_PROTO, "needs more than");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             12);
    expect_open_fails(p, ERR_PROTO, "tensor 'b': data_offsets [4, 12] overlap tensor 'a'");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
             8);
    expect_open_fails(p, ERR_PROTO, "overlap");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]}}",
             20);
    expect_open_fails(p, ERR_PROTO, "gap");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 9);
    expect_open_fails(p, ERR_PROTO, "trailing");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
             4);
    expect_open_fails(p, ERR_PROTO, "duplicate");
    write_st(p, "{\"__metadata__\": {\"k\": 1}}", 0);
    expect_open_fails(p, ERR_PROTO, "\"__metadata__\" value for 'k'");
    write_st(p, "{\"__metadata__\": [\"k\"]}", 0);
    expect_open_fails(p, ERR_PROTO, "\"__metadata__\" is not");
    /* the smallest valid file: no tensors */
    write_st(p, "{}", 0);
    st_file_t *f = NULL;
    assert_int_equal(st_open(&f, p, NULL, 0), ERR_OK);
    assert_int_equal(st_count(f), 0);
    st_close(&f);
}

/* Every truncation of a valid file fails cleanly; every single-byte change either still parses
 * or fails with ERR_PROTO. Under ASan this is the no-crash check. */
static void test_truncations_and_byte_flips_never_crash(void **state)
{
    struct ctx *c = *state;
    FILE *fp = fopen(FIXTURE, "rb");
    assert_non_null(fp);
    unsigned char buf[1024];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 100 && n < sizeof buf);
    st_file_t *f = NULL;
    for (size_t len = 0; len < n; len++) {
        write_bytes(c->path, buf, len);
        char err[512] = "";
        assert_int_equal(st_open(&f, c->path, err, sizeof err), ERR_PROTO);
        assert_null(f);
        assert_true(strlen(err) > 0);
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | buf[i];
    unsigned char mod[1024];
    const unsigned char vals[] = {0x00, 0xff, '"', '9', '-', '}', ']', ','};
    for (size_t pos = 0; pos < 8 + hl; pos++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            if (buf[pos] == vals[v])
                continue;
            memcpy(mod, buf, n);
            mod[pos] = vals[v];
            write_bytes(c->path, mod, n);
            int rc = st_open(&f, c->path, NULL, 0);
            assert_true(rc == ERR_OK || rc == ERR_PROTO);
            if (rc == ERR_OK) {
                /* whatever parsed must be readable within bounds */
                for (size_t i = 0; i < st_count(f); i++) {
                    const struct st_tensor *t = st_at(f, i);
                    float *dst = malloc(t->nbytes * 2 + 4);
                    assert_non_null(dst);
                    st_read_f32(f, t->name, dst, t->ndim, t->shape, NULL, 0);
                    free(dst);
                }
                st_close(&f);
            }
        }
    }
}

/* Files opened from several threads at once (the sampler's loader and engine both load
 * checkpoints): every open finds every tensor by name. The name sort once used a global as its
 * comparator's context, and a second thread's open set it to NULL under the first's sort. */
#define MT_TENSORS 300
#define MT_THREADS 4
#define MT_OPENS 150

struct mt_arg {
    const char *path;
    int bad;
};

static void *mt_open_main(void *p)
{
    struct mt_arg *a = p;
    for (int k = 0; k < MT_OPENS && !a->bad; k++) {
        st_file_t *f = NULL;
        if (st_open(&f, a->path, NULL, 0) != ERR_OK) {
            a->bad = 1;
            break;
        }
        for (int i = 0; i < MT_TENSORS; i += 7) {
            char name[32];
            snprintf(name, sizeof name, "layer.%03d.weight", (i * 37) % MT_TENSORS);
            if (!st_find(f, name))
                a->bad = 2;
        }
        st_close(&f);
    }
    return NULL;
}

static void test_opens_from_several_threads_at_once(void **state)
{
    struct ctx *c = *state;
    st_writer_t *w = st_writer_new();
    assert_non_null(w);
    static float vals[MT_TENSORS]; /* the writer reads them at st_writer_write */
    static const int64_t one = 1;
    for (int i = 0; i < MT_TENSORS; i++) {
        char name[32];
        vals[i] = (float)i;
        /* written in an order unlike the names' */
        snprintf(name, sizeof name, "layer.%03d.weight", (i * 37) % MT_TENSORS);
        assert_int_equal(st_writer_add_f32(w, name, &vals[i], 1, &one), ERR_OK);
    }
    assert_int_equal(st_writer_write(w, c->path, NULL, 0), ERR_OK);
    st_writer_destroy(&w);
    pthread_t th[MT_THREADS];
    struct mt_arg args[MT_THREADS];
    for (int t = 0; t < MT_THREADS; t++) {
        args[t] = (struct mt_arg){c->path, 0};
        assert_int_equal(pthread_create(&th[t], NULL, mt_open_main, &args[t]), 0);
    }
    for (int t = 0; t < MT_THREADS; t++) {
        pthread_join(th[t], NULL);
        if (args[t].bad)
            fail_msg("thread %d: %s", t, args[t].bad == 1 ? "st_open failed" : "a name not found");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_keeps_values_names_and_metadata, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_written_header_is_padded_to_8_with_spaces, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_leaves_no_temp_file_and_replaces_atomically,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rejects_bad_input, setup, teardown),
        cmocka_unit_test(test_fixture_f16_bf16_match_torch),
        cmocka_unit_test(test_read_f32_names_shape_dtype_and_missing_tensor),
        cmocka_unit_test_setup_teardown(test_missing_file_and_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_headers_are_proto_errors_naming_the_reason,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncations_and_byte_flips_never_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_opens_from_several_threads_at_once, setup, teardown),
    };
    return cmocka_run_group_tests_name("nn_safetensors", tests, NULL, NULL);
}
