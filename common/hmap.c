/* hmap.c - see hmap.h. */
#include "hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct slot {
    char *key; /* NULL: empty; TOMB: deleted */
    size_t klen;
    uint64_t hash;
    void *val;
};

struct hmap {
    struct slot *slots;
    size_t cap;  /* power of two */
    size_t used; /* live entries */
    size_t tomb; /* deleted slots */
};

static char tomb_marker;
#define TOMB (&tomb_marker)

static uint64_t hash_bytes(const void *key, size_t len)
{
    /* FNV-1a, 64-bit: keys here are short ids. */
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

hmap_t *hmap_new(void)
{
    hmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void hmap_destroy(hmap_t **pm)
{
    if (!pm || !*pm)
        return;
    hmap_t *m = *pm;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    free(m);
    *pm = NULL;
}

size_t hmap_count(const hmap_t *m)
{
    return m ? m->used : 0;
}

static struct slot *find(const hmap_t *m, const void *key, size_t klen, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

void *hmap_get(const hmap_t *m, const void *key, size_t klen)
{
    struct slot *s = find(m, key, klen, hash_bytes(key, klen));
    return s ? s->val : NULL;
}

static int grow(hmap_t *m, size_t ncap)
{
    struct slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct slot *s = &m->slots[i];
        if (!s->key || s->key == TOMB)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->tomb = 0;
    return ERR_OK;
}

int hmap_put(hmap_t *m, const void *key, size_t klen, void *val)
{
    uint64_t h = hash_bytes(key, klen);
    struct slot *s = find(m, key, klen, h);
    if (s) {
        s->val = val;
        return ERR_OK;
    }
    if ((m->used + m->tomb + 1) * 10 > m->cap * 7) {
        size_t ncap = (m->used + 1) * 10 > m->cap * 5 ? m->cap * 2 : m->cap;
        int rc = grow(m, ncap);
        if (rc)
            return rc;
    }
    char *k = malloc(klen ? klen : 1);
    if (!k)
        return ERR_NOMEM;
    memcpy(k, key, klen);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (m->slots[i].key == TOMB)
        m->tomb--;
    m->slots[i] = (struct slot){.key = k, .klen = klen, .hash = h, .val = val};
    m->used++;
    return ERR_OK;
}

void *hmap_del(hmap_t *m, const void *key, size_t klen)
{
    struct slot *s = find(m, key, klen, hash_bytes(key, klen));
    if (!s)
        return NULL;
    void *v = s->val;
    free(s->key);
    s->key = TOMB;
    s->val = NULL;
    m->used--;
    m->tomb++;
    return v;
}

int hmap_next(const hmap_t *m, size_t *pos, const void **key, size_t *klen, void **val)
{
    while (*pos < m->cap) {
        struct slot *s = &m->slots[(*pos)++];
        if (s->key && s->key != TOMB) {
            if (key)
                *key = s->key;
            if (klen)
                *klen = s->klen;
            if (val)
                *val = s->val;
            return 1;
        }
    }
    return 0;
}
