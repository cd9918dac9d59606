/* checkpoint.c - model and optimizer state in a Hugging Face-style directory. */
#include "checkpoint.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "err.h"
#include "safetensors.h"

/* dir + "/" + file into a malloc'd string, or NULL. */
static char *join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return ERR_OK;
        err_fmt(err, errlen, "%s: exists and is not a directory", dir);
        return ERR_IO;
    }
    err_fmt(err, errlen, "%s: cannot create the directory: %s", dir, strerror(errno));
    return ERR_IO;
}

int nn_checkpoint_save(const nn_model_t *m, const char *dir, char *err, size_t errlen)
{
    int rc = ensure_dir(dir, err, errlen);
    if (rc)
        return rc;
    char *cfg_path = join(dir, NN_CKPT_CONFIG), *w_path = join(dir, NN_CKPT_WEIGHTS);
    st_writer_t *w = st_writer_new();
    if (!cfg_path || !w_path || !w) {
        err_fmt(err, errlen, "%s: out of memory", dir);
        rc = ERR_NOMEM;
        goto out;
    }
    rc = nn_config_save(nn_model_config(m), cfg_path, err, errlen);
    if (rc)
        goto out;
    for (size_t i = 0; !rc && i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        rc = st_writer_add_f32(w, t->name, t->data, t->ndim, t->shape);
    }
    if (!rc)
        rc = st_writer_set_metadata(w, "format", "pt"); /* transformers expects it */
    if (!rc)
        rc = st_writer_set_metadata(w, "oaif_format", NN_CKPT_FORMAT);
    if (rc) {
        err_fmt(err, errlen, "%s: preparing the tensors: %s", w_path, err_str(rc));
        goto out;
    }
    rc = st_writer_write(w, w_path, err, errlen);
out:
    st_writer_destroy(&w);
    free(cfg_path);
    free(w_path);
    return rc;
}

int nn_checkpoint_read_weights(nn_model_t *m, const char *path, char *err, size_t errlen)
{
    st_file_t *f = NULL;
    int rc = st_open(&f, path, err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; !rc && i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        rc = st_read_f32(f, t->name, t->data, t->ndim, t->shape, err, errlen);
        if (rc == ERR_NOTFOUND)
            rc = ERR_INVAL; /* the file is there; a tensor the config needs is not */
    }
    st_close(&f);
    return rc;
}

int nn_checkpoint_load(nn_model_t **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    struct nn_config cfg;
    nn_model_t *m = NULL;
    char *cfg_path = join(dir, NN_CKPT_CONFIG), *w_path = join(dir, NN_CKPT_WEIGHTS);
    int rc = ERR_NOMEM;
    if (!cfg_path || !w_path) {
        err_fmt(err, errlen, "%s: out of memory", dir);
        goto out;
    }
    rc = nn_config_load(&cfg, cfg_path, err, errlen);
    if (!rc)
        rc = nn_model_new(&m, &cfg, err, errlen);
    if (!rc)
        rc = nn_checkpoint_read_weights(m, w_path, err, errlen);
    if (!rc) {
        *out = m;
        m = NULL;
    }
out:
    nn_model_destroy(&m);
    free(cfg_path);
    free(w_path);
    return rc;
}

int nn_checkpoint_save_optim(const nn_model_t *m, nn_adamw_t *o, const char *dir, char *err,
                             size_t errlen)
{
    if (nn_adamw_size(o) != nn_model_num_params(m)) {
        err_fmt(err, errlen, "%s: optimizer state has %zu values, the model %zu parameters", dir,
                nn_adamw_size(o), nn_model_num_params(m));
        return ERR_INVAL;
    }
    int rc = ensure_dir(dir, err, errlen);
    if (rc)
        return rc;
    size_t nt = nn_model_num_tensors(m);
    char *path = join(dir, NN_CKPT_OPTIM), *names = malloc(nt * 2 * 96);
    st_writer_t *w = st_writer_new();
    if (!path || !names || !w) {
        err_fmt(err, errlen, "%s: out of memory", dir);
        rc = ERR_NOMEM;
        goto out;
    }
    const float *ms[2] = {nn_adamw_m(o), nn_adamw_v(o)};
    static const char *const pre[2] = {"exp_avg", "exp_avg_sq"};
    for (size_t i = 0; !rc && i < nt; i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        for (int k = 0; !rc && k < 2; k++) {
            char *nm = names + (i * 2 + (size_t)k) * 96;
            snprintf(nm, 96, "%s.%s", pre[k], t->name);
            rc = st_writer_add_f32(w, nm, ms[k] + t->offset, t->ndim, t->shape);
        }
    }
    char step[32];
    snprintf(step, sizeof step, "%ld", nn_adamw_steps(o));
    if (!rc)
        rc = st_writer_set_metadata(w, "step", step);
    if (!rc)
        rc = st_writer_set_metadata(w, "oaif_format", NN_CKPT_FORMAT);
    if (rc) {
        err_fmt(err, errlen, "%s: preparing the tensors: %s", path, err_str(rc));
        goto out;
    }
    rc = st_writer_write(w, path, err, errlen);
out:
    st_writer_destroy(&w);
    free(names);
    free(path);
    return rc;
}

int nn_checkpoint_load_optim(const nn_model_t *m, nn_adamw_t *o, const char *dir, char *err,
                             size_t errlen)
{
    if (nn_adamw_size(o) != nn_model_num_params(m)) {
        err_fmt(err, errlen, "%s: optimizer state has %zu values, the model %zu parameters", dir,
                nn_adamw_size(o), nn_model_num_params(m));
        return ERR_INVAL;
    }
    char *path = join(dir, NN_CKPT_OPTIM);
    if (!path) {
        err_fmt(err, errlen, "%s: out of memory", dir);
        return ERR_NOMEM;
    }
    st_file_t *f = NULL;
    int rc = st_open(&f, path, err, errlen);
    float *ms[2] = {nn_adamw_m(o), nn_adamw_v(o)};
    static const char *const pre[2] = {"exp_avg", "exp_avg_sq"};
    for (size_t i = 0; !rc && i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        for (int k = 0; !rc && k < 2; k++) {
            char nm[96];
            snprintf(nm, sizeof nm, "%s.%s", pre[k], t->name);
            rc = st_read_f32(f, nm, ms[k] + t->offset, t->ndim, t->shape, err, errlen);
            if (rc == ERR_NOTFOUND)
                rc = ERR_INVAL;
        }
    }
    if (!rc) {
        const char *s = st_metadata(f, "step");
        char *end = NULL;
        long step = s ? strtol(s, &end, 10) : -1;
        if (!s || end == s || *end || step < 0) {
            err_fmt(err, errlen, "%s: metadata 'step' is missing or not a count", path);
            rc = ERR_INVAL;
        } else {
            nn_adamw_set_steps(o, step);
        }
    }
    st_close(&f);
    free(path);
    return rc;
}
