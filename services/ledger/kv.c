/* kv.c - see kv.h. The only file that includes <rocksdb/c.h>. */
#include "kv.h"

#include <fcntl.h>
#include <inttypes.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define KV_MAX_CF 32

struct kv {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *append_opts; /* vector memtable, for append_only column families */
    rocksdb_writeoptions_t *wsync;
    rocksdb_writeoptions_t *wnosync;
    rocksdb_readoptions_t *ropts;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_filterpolicy_t *filter; /* owned by topts once set */
    rocksdb_cache_t *cache;
    rocksdb_column_family_handle_t *cf[KV_MAX_CF + 1]; /* [0] default, then the caller's */
    int ncf;
    char *path; /* for messages and the watermark */
    const char *names[KV_MAX_CF + 1];
    const rocksdb_options_t *cfopts[KV_MAX_CF + 1];
    int wm_fd; /* the commit watermark file, or -1 */
};

/* The commit watermark: the sequence number of the last synced write, kept in a file beside
 * RocksDB's own (path/OAIF-COMMITTED, rewritten in place after each synced kv_write). A
 * write-ahead log cut short at a record boundary, or deleted, replays without a complaint; the
 * store then opens at a sequence number below the watermark, which kv_open refuses. The file is
 * not fsync'd: after a power loss it may be older than the store, never newer, so it can miss
 * a loss but not invent one. */
#define WATERMARK "OAIF-COMMITTED"

struct kv_batch {
    rocksdb_writebatch_t *wb;
    /* A batch is not tied to a store (column family handles belong to one), so it keeps its
     * ops and replays them into `wb` in kv_write; that also gives the byte count. */
    struct kv_op *ops;
    int nops, aops;
    size_t bytes;
    int oom; /* an op could not be recorded: kv_write refuses the batch */
};

struct kv_op {
    int cf;
    int del;
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
};

struct kv_iter {
    rocksdb_iterator_t *it;
};

/* RocksDB's Status strings start with the code's name ("Corruption: ", "IO error: No space
 * left on device..."); a full disk may also surface as the background error that stopped
 * writes, which names the original error. */
static int status_rc(const char *err)
{
    if (strncmp(err, "Corruption", 10) == 0 || strstr(err, "orruption") ||
        strstr(err, "checksum mismatch"))
        return ERR_CORRUPT;
    if (strstr(err, "No space left") || strstr(err, "NoSpace") || strstr(err, "Disk quota"))
        return ERR_NOSPACE;
    return ERR_IO;
}

static int watermark_check(kv_t *kv)
{
    char fn[4200];
    snprintf(fn, sizeof fn, "%s/" WATERMARK, kv->path);
    kv->wm_fd = open(fn, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (kv->wm_fd < 0) {
        log_error("kv: %s: cannot open the commit watermark", fn);
        return ERR_IO;
    }
    char buf[32] = {0};
    ssize_t n = pread(kv->wm_fd, buf, sizeof buf - 1, 0);
    uint64_t seq = kv_sequence(kv);
    unsigned long long wm = 0;
    if (n > 0 && sscanf(buf, "%llu", &wm) == 1 && wm > seq) {
        log_error("kv: open %s: the store is damaged, refusing to start: it holds writes up to "
                  "sequence number %" PRIu64 " but %llu were committed (%s): the write-ahead log "
                  "(*.log) was cut short or removed (README, \"Reliability\": restore a backup, "
                  "or `ledger --repair` and accept the loss)",
                  kv->path, seq, wm, fn);
        return ERR_CORRUPT;
    }
    return ERR_OK;
}

static void watermark_write(kv_t *kv)
{
    if (kv->wm_fd < 0)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%020" PRIu64 "\n", kv_sequence(kv));
    if (pwrite(kv->wm_fd, buf, (size_t)n, 0) != n)
        log_warn("kv: %s: the commit watermark could not be written", kv->path);
}

static int open_db(kv_t *kv)
{
    char *err = NULL;
    kv->db = rocksdb_open_column_families(kv->opts, kv->path, kv->ncf, kv->names, kv->cfopts,
                                          kv->cf, &err);
    if (!err) {
        int rc = watermark_check(kv);
        if (!rc)
            watermark_write(kv);
        return rc;
    }
    int rc = status_rc(err);
    if (rc == ERR_CORRUPT)
        log_error("kv: open %s: the store is damaged, refusing to start: %s (RocksDB's log "
                  "%s/LOG names the file; README, \"Reliability\": restore a backup, or "
                  "`ledger --repair` and lose what was damaged)",
                  kv->path, err, kv->path);
    else
        log_error("kv: open %s: %s", kv->path, err);
    rocksdb_free(err);
    kv->db = NULL;
    memset(kv->cf, 0, sizeof kv->cf);
    return rc;
}

int kv_open(kv_t **out, const char *path, const struct kv_cf *cfs, int ncf)
{
    *out = NULL;
    if (ncf < 0 || ncf > KV_MAX_CF)
        return ERR_INVAL;
    kv_t *kv = calloc(1, sizeof *kv);
    if (!kv)
        return ERR_NOMEM;
    kv->wm_fd = -1;
    kv->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(kv->opts, 1);
    rocksdb_options_set_create_missing_column_families(kv->opts, 1);
    /* Damage is an error, never an absence. paranoid_checks: a corrupt file found at open or in
     * the background stops the store instead of being skipped. WAL recovery: a torn last
     * record is what a crash in the middle of a write leaves (that commit was never
     * acknowledged: its fsync had not returned), so it is dropped; anything damaged before the
     * end (kTolerateCorruptedTailRecords stops only at the tail) fails the open. A log cut
     * short at a record boundary looks like one never written: the ledger's commit watermark
     * (the watermark, above) catches that. */
    rocksdb_options_set_paranoid_checks(kv->opts, 1);
    rocksdb_options_set_wal_recovery_mode(kv->opts, 0 /* kTolerateCorruptedTailRecords */);
    rocksdb_options_increase_parallelism(kv->opts, 2);
    rocksdb_options_set_max_background_jobs(kv->opts, 2);
    /* Point lookups of absent ids (idempotency checks) should not touch disk. */
    kv->topts = rocksdb_block_based_options_create();
    kv->filter = rocksdb_filterpolicy_create_bloom(10);
    rocksdb_block_based_options_set_filter_policy(kv->topts, kv->filter);
    kv->cache = rocksdb_cache_create_lru(64 << 20);
    rocksdb_block_based_options_set_block_cache(kv->topts, kv->cache);
    rocksdb_options_set_block_based_table_factory(kv->opts, kv->topts);
    rocksdb_options_set_compression(kv->opts, rocksdb_lz4_compression);
    /* One writer at a time (kv_write callers are single-threaded per store), so the vector
     * memtable, which cannot take concurrent writes, is allowed for append-only families. */
    rocksdb_options_set_allow_concurrent_memtable_write(kv->opts, 0);
    kv->append_opts = rocksdb_options_create_copy(kv->opts);
    rocksdb_options_set_memtable_vector_rep(kv->append_opts);

    kv->names[0] = "default";
    kv->cfopts[0] = kv->opts;
    for (int i = 0; i < ncf; i++) {
        kv->names[i + 1] = cfs[i].name; /* the caller's strings: static names */
        kv->cfopts[i + 1] = cfs[i].append_only ? kv->append_opts : kv->opts;
    }
    kv->ncf = ncf + 1;
    kv->path = strdup(path);
    int rc = kv->path ? open_db(kv) : ERR_NOMEM;
    if (rc) {
        kv_close(&kv);
        return rc;
    }
    kv->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(kv->wsync, 1);
    kv->wnosync = rocksdb_writeoptions_create();
    kv->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(kv->ropts, 1);
    *out = kv;
    return ERR_OK;
}

static void close_db(kv_t *kv)
{
    if (kv->wm_fd >= 0)
        close(kv->wm_fd);
    kv->wm_fd = -1;
    if (!kv->db)
        return;
    for (int i = 0; i < kv->ncf; i++)
        if (kv->cf[i])
            rocksdb_column_family_handle_destroy(kv->cf[i]);
    memset(kv->cf, 0, sizeof kv->cf);
    rocksdb_close(kv->db);
    kv->db = NULL;
}

uint64_t kv_sequence(kv_t *kv)
{
    return kv->db ? rocksdb_get_latest_sequence_number(kv->db) : 0;
}

int kv_repair(const char *path)
{
    rocksdb_options_t *o = rocksdb_options_create();
    if (!o)
        return ERR_NOMEM;
    rocksdb_options_set_paranoid_checks(o, 1);
    char *err = NULL;
    rocksdb_repair_db(o, path, &err);
    rocksdb_options_destroy(o);
    if (err) {
        log_error("kv: repair %s: %s", path, err);
        rocksdb_free(err);
        return ERR_IO;
    }
    /* What was lost is accepted: the next open starts a new watermark. */
    char fn[4200];
    snprintf(fn, sizeof fn, "%s/" WATERMARK, path);
    unlink(fn);
    return ERR_OK;
}

void kv_close(kv_t **pkv)
{
    if (!pkv || !*pkv)
        return;
    kv_t *kv = *pkv;
    close_db(kv);
    free(kv->path);
    if (kv->wsync)
        rocksdb_writeoptions_destroy(kv->wsync);
    if (kv->wnosync)
        rocksdb_writeoptions_destroy(kv->wnosync);
    if (kv->ropts)
        rocksdb_readoptions_destroy(kv->ropts);
    if (kv->opts)
        rocksdb_options_destroy(kv->opts);
    if (kv->append_opts)
        rocksdb_options_destroy(kv->append_opts);
    if (kv->topts)
        rocksdb_block_based_options_destroy(kv->topts); /* frees the filter policy too */
    if (kv->cache)
        rocksdb_cache_destroy(kv->cache);
    free(kv);
    *pkv = NULL;
}

static rocksdb_column_family_handle_t *handle(kv_t *kv, int cf)
{
    return (cf >= 0 && cf + 1 < kv->ncf) ? kv->cf[cf + 1] : NULL;
}

int kv_get(kv_t *kv, int cf, const void *key, size_t klen, void **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    rocksdb_column_family_handle_t *h = handle(kv, cf);
    if (!h)
        return ERR_INVAL;
    char *err = NULL;
    size_t n = 0;
    char *v = rocksdb_get_cf(kv->db, kv->ropts, h, key, klen, &n, &err);
    if (err) {
        int rc = status_rc(err);
        log_error("kv: get from %s in %s: %s", kv->names[cf + 1], kv->path, err);
        rocksdb_free(err);
        return rc;
    }
    if (!v)
        return ERR_NOTFOUND;
    /* RocksDB's buffer must be released with rocksdb_free: copy into ours. */
    void *copy = malloc(n ? n : 1);
    if (!copy) {
        rocksdb_free(v);
        return ERR_NOMEM;
    }
    memcpy(copy, v, n);
    rocksdb_free(v);
    *val = copy;
    *vlen = n;
    return ERR_OK;
}

kv_batch_t *kv_batch_new(void)
{
    kv_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->wb = rocksdb_writebatch_create();
    return b;
}

void kv_batch_clear(kv_batch_t *b)
{
    for (int i = 0; i < b->nops; i++)
        free(b->ops[i].key); /* key and val share one allocation */
    b->nops = 0;
    b->bytes = 0;
    b->oom = 0;
    rocksdb_writebatch_clear(b->wb);
}

void kv_batch_destroy(kv_batch_t **pb)
{
    if (!pb || !*pb)
        return;
    kv_batch_clear(*pb);
    rocksdb_writebatch_destroy((*pb)->wb);
    free((*pb)->ops);
    free(*pb);
    *pb = NULL;
}

static void add_op(kv_batch_t *b, int cf, int del, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    if (b->nops == b->aops) {
        int n = b->aops ? b->aops * 2 : 64;
        struct kv_op *p = realloc(b->ops, (size_t)n * sizeof *p);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->ops = p;
        b->aops = n;
    }
    char *mem = malloc(klen + vlen + 1);
    if (!mem) {
        b->oom = 1;
        return;
    }
    memcpy(mem, key, klen);
    if (vlen)
        memcpy(mem + klen, val, vlen);
    struct kv_op *op = &b->ops[b->nops++];
    op->cf = cf;
    op->del = del;
    op->key = mem; /* freed by kv_batch_clear */
    op->klen = klen;
    op->val = mem + klen;
    op->vlen = vlen;
    b->bytes += klen + vlen;
}

void kv_batch_put(kv_batch_t *b, int cf, const void *key, size_t klen, const void *val,
                  size_t vlen)
{
    add_op(b, cf, 0, key, klen, val, vlen);
}

void kv_batch_delete(kv_batch_t *b, int cf, const void *key, size_t klen)
{
    add_op(b, cf, 1, key, klen, NULL, 0);
}

int kv_batch_count(const kv_batch_t *b)
{
    return b->nops;
}

size_t kv_batch_bytes(const kv_batch_t *b)
{
    return b->bytes;
}

int kv_write(kv_t *kv, kv_batch_t *b, bool sync)
{
    if (b->oom)
        return ERR_NOMEM; /* a partial batch would lose writes silently */
    rocksdb_writebatch_clear(b->wb);
    for (int i = 0; i < b->nops; i++) {
        struct kv_op *op = &b->ops[i];
        rocksdb_column_family_handle_t *h = handle(kv, op->cf);
        if (!h) {
            log_error("kv: write: column family %d does not exist", op->cf);
            return ERR_INVAL;
        }
        if (op->del)
            rocksdb_writebatch_delete_cf(b->wb, h, op->key, op->klen);
        else
            rocksdb_writebatch_put_cf(b->wb, h, op->key, op->klen, op->val, op->vlen);
    }
    /* RocksDB's per-thread perf counters cost ~10% of a small write (a TLS lookup per key
     * comparison); the level is per thread, so set it on the writing thread. */
    rocksdb_set_perf_level(rocksdb_disable);
    char *err = NULL;
    rocksdb_write(kv->db, sync ? kv->wsync : kv->wnosync, b->wb, &err);
    if (err) {
        int rc = status_rc(err);
        /* A full disk is logged once by the caller, which retries. */
        if (rc != ERR_NOSPACE)
            log_error("kv: write of %d ops to %s: %s", b->nops, kv->path, err);
        rocksdb_free(err);
        return rc;
    }
    if (sync)
        watermark_write(kv);
    return ERR_OK;
}

kv_iter_t *kv_iter_new(kv_t *kv, int cf)
{
    rocksdb_column_family_handle_t *h = handle(kv, cf);
    if (!h)
        return NULL;
    kv_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->it = rocksdb_create_iterator_cf(kv->db, kv->ropts, h);
    return it;
}

void kv_iter_destroy(kv_iter_t **pit)
{
    if (!pit || !*pit)
        return;
    rocksdb_iter_destroy((*pit)->it);
    free(*pit);
    *pit = NULL;
}

void kv_iter_seek(kv_iter_t *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

void kv_iter_seek_first(kv_iter_t *it)
{
    rocksdb_iter_seek_to_first(it->it);
}

void kv_iter_seek_last(kv_iter_t *it)
{
    rocksdb_iter_seek_to_last(it->it);
}

bool kv_iter_valid(const kv_iter_t *it)
{
    return rocksdb_iter_valid(it->it) != 0;
}

void kv_iter_next(kv_iter_t *it)
{
    rocksdb_iter_next(it->it);
}

void kv_iter_prev(kv_iter_t *it)
{
    rocksdb_iter_prev(it->it);
}

const void *kv_iter_key(const kv_iter_t *it, size_t *klen)
{
    return rocksdb_iter_key(it->it, klen);
}

const void *kv_iter_value(const kv_iter_t *it, size_t *vlen)
{
    return rocksdb_iter_value(it->it, vlen);
}

int kv_iter_status(const kv_iter_t *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it->it, &err);
    if (err) {
        int rc = status_rc(err);
        log_error("kv: iterator: %s", err);
        rocksdb_free(err);
        return rc;
    }
    return ERR_OK;
}
