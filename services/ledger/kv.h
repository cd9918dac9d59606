/* kv.h - one service's key/value store, a thin layer over RocksDB with column families.
 * Nothing outside kv.c includes <rocksdb/c.h>; keys and values are bytes.
 * Writes go through batches (kv_batch_*) committed atomically by kv_write, synced or not:
 * the ledger commits one synced batch per loop turn (group commit). Not thread-safe for one
 * batch or iterator; the store itself may be read from several threads. */
#ifndef KV_H
#define KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv kv_t;
typedef struct kv_batch kv_batch_t;
typedef struct kv_iter kv_iter_t;

/* A column family to open. `append_only`: written often, read only by iteration (an index
 * scanned at start-up): it gets a vector memtable, cheaper to insert into than the skip list. */
struct kv_cf {
    const char *name;
    bool append_only;
};

/* Errors: every call that reads or writes the store returns ERR_CORRUPT when RocksDB found
 * damage (a checksum mismatch in a table or the write-ahead log): that is never reported as
 * ERR_NOTFOUND. ERR_NOSPACE when the disk is full, ERR_IO for other store errors. */

/* Open the store at `path`, creating it and any of the `ncf` column families `cfs` that are
 * missing ("default" is always there and need not be named). Column family i of `cfs` is
 * addressed as cf = i afterwards; the names must outlive the store. On success *out owns the
 * store (kv_close). ERR_CORRUPT (the store is damaged: it does not open; the log says what and
 * where) or ERR_IO with the reason logged (e.g. the store is locked by another process). A torn
 * last record of the write-ahead log (a crash during a write) is dropped; damage before it is
 * ERR_CORRUPT. */
int kv_open(kv_t **out, const char *path, const struct kv_cf *cfs, int ncf);

/* The sequence number of the last write the store holds (RocksDB's, one per op). */
uint64_t kv_sequence(kv_t *kv);

/* RocksDB's repair of the store at `path` (not open): keeps every record it can read, moves
 * damaged files to path/lost. ERR_OK or ERR_IO (logged). */
int kv_repair(const char *path);

/* Flush and close; sets *kv to NULL. Accepts kv == NULL and *kv == NULL. */
void kv_close(kv_t **kv);

/* On ERR_OK, *val is a malloc'd copy the caller frees with free(), and *vlen its length.
 * Returns ERR_NOTFOUND (and *val == NULL) if absent, ERR_IO on a store error. */
int kv_get(kv_t *kv, int cf, const void *key, size_t klen, void **val, size_t *vlen);

/* NULL if out of memory. */
kv_batch_t *kv_batch_new(void);
void kv_batch_destroy(kv_batch_t **b);
void kv_batch_put(kv_batch_t *b, int cf, const void *key, size_t klen, const void *val,
                  size_t vlen);
void kv_batch_delete(kv_batch_t *b, int cf, const void *key, size_t klen);
int kv_batch_count(const kv_batch_t *b);
void kv_batch_clear(kv_batch_t *b);
/* Bytes the batch would write (for limits and metrics). */
size_t kv_batch_bytes(const kv_batch_t *b);

/* Commit `b` atomically (fsync'd to the WAL when `sync`). The batch is left as it was; clear it
 * to reuse. ERR_OK, ERR_IO (logged), or ERR_NOMEM if an op could not be recorded (nothing is
 * written). `kv`'s column families must match the batch's. */
int kv_write(kv_t *kv, kv_batch_t *b, bool sync);

/* Iterate column family `cf` in key order. NULL if out of memory. A fresh iterator is not
 * positioned: call kv_iter_seek / kv_iter_seek_first / kv_iter_seek_last. */
kv_iter_t *kv_iter_new(kv_t *kv, int cf);
void kv_iter_destroy(kv_iter_t **it);
void kv_iter_seek(kv_iter_t *it, const void *key, size_t klen); /* first key >= key */
void kv_iter_seek_first(kv_iter_t *it);
void kv_iter_seek_last(kv_iter_t *it);
bool kv_iter_valid(const kv_iter_t *it);
void kv_iter_next(kv_iter_t *it);
void kv_iter_prev(kv_iter_t *it);
/* Borrowed until the iterator moves or is destroyed. */
const void *kv_iter_key(const kv_iter_t *it, size_t *klen);
const void *kv_iter_value(const kv_iter_t *it, size_t *vlen);
/* ERR_OK, or ERR_IO if the iteration stopped because of a store error (logged). */
int kv_iter_status(const kv_iter_t *it);

#endif /* KV_H */
