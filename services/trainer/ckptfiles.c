/* ckptfiles.c - see ckptfiles.h. */
#include "ckptfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"

#define PATH_CAP              4096
#define TOKENIZER_FILE        "tokenizer.json"
#define TOKENIZER_CONFIG_FILE "tokenizer_config.json"

/* fsync the directory `dir`, so that the entries made in it (a renamed file, a new directory)
 * survive a crash. ERR_OK or ERR_IO with err "<dir>: fsync: <reason>". */
static int sync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: fsync: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return ERR_IO;
    }
    close(fd);
    return ERR_OK;
}

/* sync_dir on the directory holding `path` ("." for a bare name). */
static int sync_parent(const char *path, char *err, size_t errlen)
{
    char dir[PATH_CAP];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return sync_dir(".", err, errlen);
    if (slash == dir)
        slash[1] = '\0'; /* "/x": the root */
    else
        *slash = '\0';
    return sync_dir(dir, err, errlen);
}

int trainer_make_dirs(const char *path, char *err, size_t errlen)
{
    char p[PATH_CAP];
    if (!*path) {
        snprintf(err, errlen, "an empty directory path");
        return ERR_INVAL;
    }
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        snprintf(err, errlen, "%.200s...: path too long", path);
        return ERR_TOOBIG;
    }
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0755) == 0) {
            int rc = sync_parent(p, err, errlen); /* the new entry is durable */
            if (rc)
                return rc;
        } else {
            struct stat st;
            if (errno != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s: %s", p, strerror(errno == EEXIST ? ENOTDIR : errno));
                return ERR_IO;
            }
        }
        if (end)
            break;
        *s = '/';
    }
    return ERR_OK;
}

/* All len bytes of data to fd, through short writes and EINTR. 0, or -1 with errno set. */
static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A new temporary file beside `path` ("<path>.tmp.XXXXXX", its name into tmp[PATH_CAP]), open
 * for writing. On ERR_OK *fd is its descriptor. ERR_IO with err naming path. */
static int tmp_create(const char *path, char *tmp, int *fd, char *err, size_t errlen)
{
    if (snprintf(tmp, PATH_CAP, "%s.tmp.XXXXXX", path) >= PATH_CAP) {
        snprintf(err, errlen, "%.200s...: path too long", path);
        return ERR_TOOBIG;
    }
    *fd = mkstemp(tmp);
    if (*fd < 0) {
        snprintf(err, errlen, "%s: create %s: %s", path, tmp, strerror(errno));
        return ERR_IO;
    }
    return ERR_OK;
}

/* Make the written temporary file `tmp` (open as fd, which this closes) the file at `path`:
 * fsync, close, rename, fsync the directory. ERR_IO with err naming path, the step and errno's
 * reason; tmp is removed then. */
static int tmp_commit(int fd, const char *tmp, const char *path, char *err, size_t errlen)
{
    const char *what = "fsync";
    int bad = fsync(fd) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad) {
        what = "close";
        bad = 1;
        saved = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        what = "rename";
        bad = 1;
        saved = errno;
    }
    if (bad) {
        snprintf(err, errlen, "%s: %s %s: %s", path, what, tmp, strerror(saved));
        unlink(tmp);
        return ERR_IO;
    }
    return sync_parent(path, err, errlen);
}

int trainer_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    char tmp[PATH_CAP];
    int fd = -1;
    int rc = tmp_create(path, tmp, &fd, err, errlen);
    if (rc)
        return rc;
    if (write_all(fd, data, len) != 0) {
        snprintf(err, errlen, "%s: write %s: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return ERR_IO;
    }
    return tmp_commit(fd, tmp, path, err, errlen);
}

int trainer_copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(err, errlen, "%s: %s", src, strerror(errno));
        return ERR_IO;
    }
    char tmp[PATH_CAP];
    int out = -1;
    int rc = tmp_create(dst, tmp, &out, err, errlen);
    if (rc)
        goto out_close_in;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: read: %s", src, strerror(errno));
            rc = ERR_IO;
            goto out_unlink_tmp;
        }
        if (n == 0)
            break;
        if (write_all(out, buf, (size_t)n) != 0) {
            snprintf(err, errlen, "%s: write %s: %s", dst, tmp, strerror(errno));
            rc = ERR_IO;
            goto out_unlink_tmp;
        }
    }
    rc = tmp_commit(out, tmp, dst, err, errlen); /* closes out, removes tmp on failure */
    goto out_close_in;
out_unlink_tmp:
    close(out);
    unlink(tmp);
out_close_in:
    close(in);
    return rc;
}

/* ---- a policy checkpoint ------------------------------------------------------------------ */

/* config.json and model.safetensors of m into dir, each durable (the engine's own writer).
 * Errors as nn_checkpoint_save, err naming the file. */
static int write_weights(const char *dir, const nn_model_t *m, char *err, size_t errlen)
{
    return nn_checkpoint_save(m, dir, err, errlen);
}

/* optimizer.safetensors (AdamW moments and step count) of opt into dir, durable, so that a
 * resumed run continues the same optimisation. Errors as nn_checkpoint_save_optim. */
static int write_optimizer(const char *dir, const nn_model_t *m, nn_adamw_t *opt, char *err,
                           size_t errlen)
{
    return nn_checkpoint_save_optim(m, opt, dir, err, errlen);
}

/* The tokenizer's files of tok_dir, tokenizer.json and tokenizer_config.json (its BOS/EOS/pad
 * names and chat template), copied into dir where they exist (a byte-tokenizer model has
 * neither): every loader reads the tokenizer from beside the weights, so a checkpoint without
 * the config would tokenize without the special tokens its base model was trained with. ERR_OK
 * when there is nothing to copy; else as trainer_copy_file. */
static int copy_tokenizer(const char *tok_dir, const char *dir, char *err, size_t errlen)
{
    static const char *const files[] = {TOKENIZER_FILE, TOKENIZER_CONFIG_FILE};
    int rc = ERR_OK;
    for (size_t i = 0; !rc && i < sizeof files / sizeof files[0]; i++) {
        char src[PATH_CAP], dst[PATH_CAP];
        if (snprintf(src, sizeof src, "%s/%s", tok_dir, files[i]) >= (int)sizeof src ||
            snprintf(dst, sizeof dst, "%s/%s", dir, files[i]) >= (int)sizeof dst) {
            snprintf(err, errlen, "%.200s...: path too long", dir);
            return ERR_TOOBIG;
        }
        if (access(src, F_OK) != 0 && errno == ENOENT)
            continue;
        rc = trainer_copy_file(src, dst, err, errlen);
    }
    return rc;
}

/* sha256 of dir/model.safetensors into sha, read back from the disk: what the ledger's record
 * and every loader check against. ERR_IO with err naming the file. */
static int hash_weights(const char *dir, char sha[65], char *err, size_t errlen)
{
    char path[PATH_CAP];
    if (snprintf(path, sizeof path, "%s/%s", dir, NN_CKPT_WEIGHTS) >= (int)sizeof path) {
        snprintf(err, errlen, "%.200s...: path too long", dir);
        return ERR_TOOBIG;
    }
    return ckpt_file_sha256(path, sha, err, errlen);
}

int trainer_ckpt_write(const char *dir, const nn_model_t *m, nn_adamw_t *opt, const char *tok_dir,
                       char sha[65], char *err, size_t errlen)
{
    int rc = trainer_make_dirs(dir, err, errlen);
    if (!rc)
        rc = write_weights(dir, m, err, errlen);
    if (!rc && opt)
        rc = write_optimizer(dir, m, opt, err, errlen);
    if (!rc && tok_dir)
        rc = copy_tokenizer(tok_dir, dir, err, errlen);
    if (!rc)
        rc = hash_weights(dir, sha, err, errlen);
    return rc;
}

/* ---- pruning ------------------------------------------------------------------------------ */

/* Remove directory `dir` and the files in it (a checkpoint holds no subdirectories). true when
 * it is gone; a failure is logged as a warning naming the path and errno's reason. */
static bool remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            log_warn("trainer: pruning %s: %s", dir, strerror(errno));
        return false;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char f[PATH_CAP];
        if (snprintf(f, sizeof f, "%s/%s", dir, e->d_name) >= (int)sizeof f)
            log_warn("trainer: pruning %s: a name too long in it: %s", dir, e->d_name);
        else if (unlink(f) != 0 && errno != ENOENT)
            log_warn("trainer: pruning %s: %s", f, strerror(errno));
    }
    closedir(d);
    if (rmdir(dir) != 0) {
        log_warn("trainer: pruning %s: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

int trainer_ckpt_prune(const char *root, uint32_t newest, int keep_last, uint32_t best)
{
    uint32_t keep = keep_last > 0 ? (uint32_t)keep_last : 1;
    int removed = 0;
    for (uint32_t v = newest > keep ? newest - keep : 0; v >= 1; v--) {
        char dir[PATH_CAP];
        if (v == best ||
            ckpt_dir(dir, sizeof dir, root, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY, v))
            continue;
        removed += remove_dir(dir);
    }
    return removed;
}
