/* hmap.h - a hash map from byte-string keys to pointers (open addressing, linear probing,
 * tombstones; grows at 70% load). Keys are copied in; values are borrowed (the caller owns
 * them). Not thread-safe. Iteration order is unspecified. */
#ifndef HMAP_H
#define HMAP_H

#include <stddef.h>

typedef struct hmap hmap_t;

/* NULL if out of memory. */
hmap_t *hmap_new(void);
/* Frees the map (not the values); accepts NULL and *m == NULL. */
void hmap_destroy(hmap_t **m);
size_t hmap_count(const hmap_t *m);
/* The value, or NULL if absent. */
void *hmap_get(const hmap_t *m, const void *key, size_t klen);
/* Insert or replace. ERR_OK or ERR_NOMEM. */
int hmap_put(hmap_t *m, const void *key, size_t klen, void *val);
/* Remove; returns the value that was there, or NULL. */
void *hmap_del(hmap_t *m, const void *key, size_t klen);
/* Walk entries: start with *pos = 0; returns 0 at the end. Do not insert while walking;
 * hmap_del of the current entry is allowed. */
int hmap_next(const hmap_t *m, size_t *pos, const void **key, size_t *klen, void **val);

#endif /* HMAP_H */
