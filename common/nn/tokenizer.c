/* tokenizer.c - the byte tokenizer and BPE from a Hugging Face tokenizer.json. See tokenizer.h.
 *
 * Encoding a text, as the tokenizers library does it:
 *  1. added tokens are found in the raw text (longest match first; special ones only with
 *     TOK_PARSE_SPECIAL) and emitted as their ids; the text between them forms segments;
 *  2. each segment runs through a pipeline of steps built from the normalizer and the
 *     pre-tokenizer (Prepend, Replace, Split regex, ByteLevel, Digits, Metaspace), which turns
 *     it into pieces ("words");
 *  3. each piece is split into characters, looked up in the vocabulary (byte fallback <0xNN>
 *     or the unk token for the missing ones), and merged by BPE: repeatedly the adjacent pair
 *     with the lowest merge rank (leftmost on ties), with a heap of candidate pairs, so a long
 *     piece costs O(n log n), not O(n^2) rescans.
 * Decoding maps each id to the bytes it stands for (precomputed at load: the inverse GPT-2
 * byte map, "▁" to space, <0xNN> to the byte) and strips a leading space where the decoder
 * says so (SentencePiece style). */
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "log.h"

#define TOK_MAX_ID       (1 << 24)          /* ids beyond this are refused */
#define TOK_MAX_FILE     ((off_t)512 << 20) /* bytes of tokenizer.json */
#define TOK_MAX_STEPS    16
#define TOK_MAX_REPLACES 4
#define PROMPT_MARK      "{prompt}"
#define SP_SPACE         "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */
#define GPT2_SPLIT_REGEX                                                                           \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

enum tok_kind { KIND_BYTE, KIND_BPE };

/* One step of the normalizer + pre-tokenizer pipeline; each maps a list of pieces to another. */
enum step_kind {
    STEP_PREPEND,   /* a: prepend to every non-empty piece (normalizer Prepend) */
    STEP_REPLACE,   /* a -> b everywhere (normalizer Replace with a String pattern) */
    STEP_SPLIT,     /* regex split; behavior SPLIT_ISOLATED or SPLIT_REMOVED */
    STEP_DIGITS,    /* ASCII digit runs (or each digit: flag) become pieces */
    STEP_BL_PREFIX, /* ByteLevel add_prefix_space: " " before a piece not starting with one */
    STEP_BYTEMAP,   /* ByteLevel: every byte becomes its GPT-2 unicode character */
    STEP_METASPACE, /* ' ' -> a (replacement), prepend a per scheme, split before each a: flag */
};
enum { SPLIT_ISOLATED, SPLIT_REMOVED };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

struct step {
    enum step_kind kind;
    char *a, *b;
    size_t alen, blen;
    pcre2_code *re;
    int behavior; /* SPLIT_* */
    int scheme;   /* PREPEND_* */
    bool flag;
};

struct added {
    char *content;
    size_t len;
    int id;
    bool special, lstrip, rstrip, single_word;
};

struct replace {
    char *from, *to;
    size_t flen, tlen;
};

struct tok {
    enum tok_kind kind;
    int vocab_size;
    char **str;           /* [vocab_size] vocabulary string of each id, NULL for a hole */
    size_t *str_len;      /* [vocab_size] */
    char **out;           /* [vocab_size] bytes each id decodes to (NUL-terminated) */
    size_t *out_len;      /* [vocab_size] */
    unsigned char *flags; /* [vocab_size] TF_* */
    /* vocabulary string -> id: open addressing, slots hold id + 1 (0 empty) */
    uint32_t *vmap;
    size_t vmap_cap;
    /* merges: (left id, right id) -> rank, merged id; open addressing, rank -1 empty */
    uint64_t *mkey;
    int32_t *mrank, *mres;
    size_t mcap;
    int byte_fallback_id[256]; /* "<0xNN>" ids, -1 where absent or no byte fallback */
    int unk_id;
    bool fuse_unk, ignore_merges;
    struct added *added; /* [n_added], longest first */
    size_t n_added;
    bool added_first[256]; /* bytes that begin an added token: the scan skips the others */
    struct step steps[TOK_MAX_STEPS];
    int n_steps;
    /* decoder */
    bool dec_bytelevel, dec_byte_fallback;
    struct replace dec_rep[TOK_MAX_REPLACES];
    int n_dec_rep;
    char *dec_strip; /* strip up to dec_strip_n leading copies of this from the output */
    size_t dec_strip_len;
    int dec_strip_n;
    int bos, eos, pad;
    bool wants_bos;
    char *tmpl;
};

enum { TF_SPECIAL = 1, TF_ADDED = 2 };

/* ---------------------------------------------------------------- small helpers */

static char *memdup0(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* murmur3 finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* Length of the UTF-8 character starting at s[0] (n >= 1 bytes available); 1 for a byte that
 * does not start a valid sequence, so invalid text walks byte by byte. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need = 1; /* ASCII, and bytes that cannot start a sequence */
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    if (need == 1)
        return 1;
    if (n < need)
        return 1;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    /* overlong 3/4-byte forms, surrogates, > U+10FFFF */
    if (need == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0)))
        return 1;
    if (need == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90)))
        return 1;
    return need;
}

/* Decode one valid UTF-8 character of length len. */
static uint32_t utf8_cp(const unsigned char *s, size_t len)
{
    if (len == 1)
        return s[0];
    uint32_t cp = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    o[0] = (char)(0xe0 | (cp >> 12)); /* the byte map only needs code points < 0x10000 */
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

/* GPT-2's bytes_to_unicode: printable latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order, so every byte is a visible character. */
static uint32_t byte_to_cp(unsigned b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
        return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff)))
            n++;
    return 256 + n;
}

static struct {
    char utf8[256][3];
    unsigned char len[256];
    int16_t inv[512]; /* code point -> byte, -1 */
} bytemap;
static pthread_once_t bytemap_once = PTHREAD_ONCE_INIT;

static void bytemap_init(void)
{
    for (int i = 0; i < 512; i++)
        bytemap.inv[i] = -1;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_to_cp(b);
        bytemap.len[b] = (unsigned char)utf8_put(cp, bytemap.utf8[b]);
        bytemap.inv[cp] = (int16_t)b;
    }
}

/* ---------------------------------------------------------------- growable arrays */

struct ids {
    int *v;
    size_t n, cap;
};

static int ids_push(struct ids *a, int id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        int *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return ERR_OK;
}

struct span {
    size_t off, len;
};

/* A list of pieces: spans into one byte buffer. */
struct pieces {
    char *buf;
    size_t len, cap;
    struct span *p;
    size_t n, ncap;
    size_t open; /* start of the piece being built */
};

static int pc_put(struct pieces *x, const void *b, size_t n)
{
    if (x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 256;
        while (cap < x->len + n + 1)
            cap *= 2;
        char *nb = realloc(x->buf, cap);
        if (!nb)
            return ERR_NOMEM;
        x->buf = nb;
        x->cap = cap;
    }
    if (n)
        memcpy(x->buf + x->len, b, n);
    x->len += n;
    return ERR_OK;
}

static void pc_begin(struct pieces *x)
{
    x->open = x->len;
}

/* Close the piece begun by pc_begin; an empty piece is dropped. */
static int pc_end(struct pieces *x)
{
    if (x->len == x->open)
        return ERR_OK;
    if (x->n == x->ncap) {
        size_t cap = x->ncap ? 2 * x->ncap : 32;
        struct span *p = realloc(x->p, cap * sizeof *p);
        if (!p)
            return ERR_NOMEM;
        x->p = p;
        x->ncap = cap;
    }
    x->p[x->n].off = x->open;
    x->p[x->n].len = x->len - x->open;
    x->n++;
    return ERR_OK;
}

static int pc_add(struct pieces *x, const void *b, size_t n)
{
    pc_begin(x);
    int rc = pc_put(x, b, n);
    return rc ? rc : pc_end(x);
}

static void pc_reset(struct pieces *x)
{
    x->len = 0;
    x->n = 0;
}

static void pc_free(struct pieces *x)
{
    free(x->buf);
    free(x->p);
}

/* ---------------------------------------------------------------- maps */

static int vmap_build(tok_t *t)
{
    size_t n = 0;
    for (int i = 0; i < t->vocab_size; i++)
        n += t->str[i] != NULL;
    t->vmap_cap = pow2_at_least(2 * n + 1);
    t->vmap = calloc(t->vmap_cap, sizeof *t->vmap);
    if (!t->vmap)
        return ERR_NOMEM;
    for (int i = 0; i < t->vocab_size; i++) {
        if (!t->str[i])
            continue;
        size_t h = hash_bytes(t->str[i], t->str_len[i]) & (t->vmap_cap - 1);
        while (t->vmap[h])
            h = (h + 1) & (t->vmap_cap - 1);
        t->vmap[h] = (uint32_t)i + 1;
    }
    return ERR_OK;
}

/* The id of vocabulary string s[0..n), or -1. */
static int vmap_get(const tok_t *t, const char *s, size_t n)
{
    if (!t->vmap)
        return -1;
    size_t h = hash_bytes(s, n) & (t->vmap_cap - 1);
    while (t->vmap[h]) {
        int id = (int)t->vmap[h] - 1;
        if (t->str_len[id] == n && memcmp(t->str[id], s, n) == 0)
            return id;
        h = (h + 1) & (t->vmap_cap - 1);
    }
    return -1;
}

/* Insert a merge; a repeated pair keeps its first (lowest) rank. */
static void mmap_put(tok_t *t, int a, int b, int rank, int res)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = hash_u64(k) & (t->mcap - 1);
    while (t->mrank[h] >= 0) {
        if (t->mkey[h] == k)
            return;
        h = (h + 1) & (t->mcap - 1);
    }
    t->mkey[h] = k;
    t->mrank[h] = rank;
    t->mres[h] = res;
}

/* Rank of merging a then b (and *res the merged id), or -1. */
static int mmap_get(const tok_t *t, int a, int b, int *res)
{
    if (!t->mcap)
        return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = hash_u64(k) & (t->mcap - 1);
    while (t->mrank[h] >= 0) {
        if (t->mkey[h] == k) {
            *res = t->mres[h];
            return t->mrank[h];
        }
        h = (h + 1) & (t->mcap - 1);
    }
    return -1;
}

/* ---------------------------------------------------------------- BPE on one piece */

struct cand {
    int rank, pos; /* heap order: rank, then position (leftmost first) */
    int left, right, res;
};

/* Scratch space of one encode call: symbols of the current piece and the candidate heap. */
struct bpe {
    int *id, *prev, *next;
    size_t cap;
    struct cand *heap;
    size_t hn, hcap;
};

static bool cand_less(const struct cand *x, const struct cand *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static int heap_push(struct bpe *w, struct cand c)
{
    if (w->hn == w->hcap) {
        size_t cap = w->hcap ? 2 * w->hcap : 64;
        struct cand *h = realloc(w->heap, cap * sizeof *h);
        if (!h)
            return ERR_NOMEM;
        w->heap = h;
        w->hcap = cap;
    }
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p]))
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return ERR_OK;
}

static struct cand heap_pop(struct bpe *w)
{
    struct cand top = w->heap[0];
    struct cand last = w->heap[--w->hn];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < w->hn && cand_less(&w->heap[l], best)) {
            m = l;
            best = &w->heap[l];
        }
        if (r < w->hn && cand_less(&w->heap[r], best))
            m = r;
        if (m == i)
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->hn > 0)
        w->heap[i] = last;
    return top;
}

static int bpe_reserve(struct bpe *w, size_t n)
{
    if (n <= w->cap)
        return ERR_OK;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n)
        cap *= 2;
    int *a = realloc(w->id, cap * sizeof *a);
    if (!a)
        return ERR_NOMEM;
    w->id = a;
    a = realloc(w->prev, cap * sizeof *a);
    if (!a)
        return ERR_NOMEM;
    w->prev = a;
    a = realloc(w->next, cap * sizeof *a);
    if (!a)
        return ERR_NOMEM;
    w->next = a;
    w->cap = cap;
    return ERR_OK;
}

static void bpe_free(struct bpe *w)
{
    free(w->id);
    free(w->prev);
    free(w->next);
    free(w->heap);
}

/* Candidate merge of the symbol at i with its right neighbour, if the pair has a rank. */
static int bpe_consider(const tok_t *t, struct bpe *w, int i)
{
    int j = w->next[i];
    if (i < 0 || j < 0)
        return ERR_OK;
    int res;
    int rank = mmap_get(t, w->id[i], w->id[j], &res);
    if (rank < 0)
        return ERR_OK;
    struct cand c = {.rank = rank, .pos = i, .left = w->id[i], .right = w->id[j], .res = res};
    return heap_push(w, c);
}

/* BPE-encode one piece s[0..n) (already normalized and byte-mapped) onto out. */
static int bpe_piece(const tok_t *t, struct bpe *w, const char *s, size_t n, struct ids *out,
                     char *err, size_t errlen)
{
    if (t->ignore_merges) {
        int whole = vmap_get(t, s, n);
        if (whole >= 0)
            return ids_push(out, whole);
    }
    /* every byte could become a symbol (byte fallback) */
    int rc = bpe_reserve(w, n);
    if (rc)
        return rc;
    int m = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len(u + i, n - i);
        int id = vmap_get(t, s + i, cl);
        if (id >= 0) {
            w->id[m++] = id;
        } else {
            bool fell_back = true;
            for (size_t k = 0; k < cl; k++)
                fell_back = fell_back && t->byte_fallback_id[u[i + k]] >= 0;
            if (fell_back) {
                for (size_t k = 0; k < cl; k++)
                    w->id[m++] = t->byte_fallback_id[u[i + k]];
            } else if (t->unk_id >= 0) {
                if (!(t->fuse_unk && m > 0 && w->id[m - 1] == t->unk_id))
                    w->id[m++] = t->unk_id;
            } else {
                err_fmt(err, errlen,
                        "text byte 0x%02x (in \"%.*s\") has no token, no byte fallback and no "
                        "unk token",
                        u[i], (int)(n < 40 ? n : 40), s);
                return ERR_INVAL;
            }
        }
        i += cl;
    }
    for (int i = 0; i < m; i++) {
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < m ? i + 1 : -1;
    }
    w->hn = 0;
    for (int i = 0; i + 1 < m && !rc; i++)
        rc = bpe_consider(t, w, i);
    while (!rc && w->hn > 0) {
        struct cand c = heap_pop(w);
        int i = c.pos, j = w->next[i];
        /* stale: the left symbol was merged away or changed, or its neighbour changed */
        if (w->id[i] != c.left || j < 0 || w->id[j] != c.right)
            continue;
        w->id[i] = c.res;
        w->id[j] = -1;
        w->next[i] = w->next[j];
        if (w->next[j] >= 0)
            w->prev[w->next[j]] = i;
        if (w->prev[i] >= 0)
            rc = bpe_consider(t, w, w->prev[i]);
        if (!rc)
            rc = bpe_consider(t, w, i);
    }
    for (int i = m > 0 ? 0 : -1; !rc && i >= 0; i = w->next[i])
        rc = ids_push(out, w->id[i]);
    return rc;
}

/* ---------------------------------------------------------------- the pipeline */

static bool is_ascii_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Split each piece of `in` by the step's regex into `out`. */
static int run_split(const struct step *st, const struct pieces *in, struct pieces *out,
                     pcre2_match_data *md, char *err, size_t errlen)
{
    int rc = ERR_OK;
    for (size_t k = 0; k < in->n && !rc; k++) {
        const char *s = in->buf + in->p[k].off;
        size_t n = in->p[k].len, last = 0, start = 0;
        while (start <= n && !rc) {
            int m = pcre2_match(st->re, (PCRE2_SPTR)s, n, start, 0, md, NULL);
            if (m == PCRE2_ERROR_NOMATCH)
                break;
            if (m < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(m, msg, sizeof msg);
                err_fmt(err, errlen, "pre-tokenizer regex failed: %s", (const char *)msg);
                return ERR_INVAL;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms > last)
                rc = pc_add(out, s + last, ms - last);
            if (!rc && me > ms && st->behavior == SPLIT_ISOLATED)
                rc = pc_add(out, s + ms, me - ms);
            if (me > last)
                last = me;
            if (me > ms)
                start = me;
            else if (me < n)
                start = me + utf8_len((const unsigned char *)s + me, n - me);
            else
                break;
        }
        if (!rc && last < n)
            rc = pc_add(out, s + last, n - last);
    }
    return rc;
}

static int run_step(const struct step *st, const struct pieces *in, struct pieces *out,
                    bool seg_first, pcre2_match_data *md, char *err, size_t errlen)
{
    int rc = ERR_OK;
    switch (st->kind) {
    case STEP_SPLIT:
        return run_split(st, in, out, md, err, errlen);
    case STEP_PREPEND:
    case STEP_BL_PREFIX:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->buf + in->p[k].off;
            size_t n = in->p[k].len;
            pc_begin(out);
            if (st->kind == STEP_PREPEND || s[0] != ' ')
                rc = st->kind == STEP_PREPEND ? pc_put(out, st->a, st->alen) : pc_put(out, " ", 1);
            if (!rc)
                rc = pc_put(out, s, n);
            if (!rc)
                rc = pc_end(out);
        }
        return rc;
    case STEP_REPLACE:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->buf + in->p[k].off;
            size_t n = in->p[k].len, i = 0;
            pc_begin(out);
            while (i < n && !rc) {
                if (st->alen && i + st->alen <= n && memcmp(s + i, st->a, st->alen) == 0) {
                    rc = pc_put(out, st->b, st->blen);
                    i += st->alen;
                } else {
                    rc = pc_put(out, s + i, 1);
                    i++;
                }
            }
            if (!rc)
                rc = pc_end(out);
        }
        return rc;
    case STEP_DIGITS:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->buf + in->p[k].off;
            size_t n = in->p[k].len, i = 0;
            while (i < n && !rc) {
                size_t j = i + 1;
                bool dig = is_ascii_digit(s[i]);
                if (!(dig && st->flag))
                    while (j < n && is_ascii_digit(s[j]) == dig)
                        j++;
                rc = pc_add(out, s + i, j - i);
                i = j;
            }
        }
        return rc;
    case STEP_BYTEMAP:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const unsigned char *s = (const unsigned char *)in->buf + in->p[k].off;
            pc_begin(out);
            for (size_t i = 0; i < in->p[k].len && !rc; i++)
                rc = pc_put(out, bytemap.utf8[s[i]], bytemap.len[s[i]]);
            if (!rc)
                rc = pc_end(out);
        }
        return rc;
    case STEP_METASPACE:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->buf + in->p[k].off;
            size_t n = in->p[k].len;
            bool pre = st->scheme == PREPEND_ALWAYS ||
                       (st->scheme == PREPEND_FIRST && seg_first && k == 0);
            pc_begin(out);
            /* after ' ' -> marker, a piece already starting with one gets no second */
            if (pre && s[0] != ' ' && !(n >= st->alen && memcmp(s, st->a, st->alen) == 0))
                rc = pc_put(out, st->a, st->alen);
            for (size_t i = 0; i < n && !rc; i++) {
                bool rep = s[i] == ' ';
                bool at_marker = rep || (i + st->alen <= n && memcmp(s + i, st->a, st->alen) == 0);
                /* split: a new piece starts at each marker (MergedWithNext) */
                if (st->flag && at_marker && out->len > out->open)
                    rc = pc_end(out), pc_begin(out);
                if (!rc)
                    rc = rep ? pc_put(out, st->a, st->alen) : pc_put(out, s + i, 1);
                if (!rep && at_marker && !rc) {
                    rc = pc_put(out, s + i + 1, st->alen - 1);
                    i += st->alen - 1;
                }
            }
            if (!rc)
                rc = pc_end(out);
        }
        return rc;
    }
    return ERR_INVAL;
}

/* Encode one segment (text between added tokens) onto out. */
static int encode_segment(const tok_t *t, const char *s, size_t n, bool seg_first,
                          struct pieces pc[2], struct bpe *w, pcre2_match_data *md, struct ids *out,
                          char *err, size_t errlen)
{
    if (n == 0)
        return ERR_OK;
    if (t->kind == KIND_BYTE) {
        int rc = ERR_OK;
        for (size_t i = 0; i < n && !rc; i++)
            rc = ids_push(out, (unsigned char)s[i]);
        return rc;
    }
    int cur = 0;
    pc_reset(&pc[0]);
    int rc = pc_add(&pc[0], s, n);
    for (int k = 0; k < t->n_steps && !rc; k++) {
        pc_reset(&pc[1 - cur]);
        rc = run_step(&t->steps[k], &pc[cur], &pc[1 - cur], seg_first, md, err, errlen);
        cur = 1 - cur;
    }
    for (size_t k = 0; k < pc[cur].n && !rc; k++)
        rc = bpe_piece(t, w, pc[cur].buf + pc[cur].p[k].off, pc[cur].p[k].len, out, err, errlen);
    return rc;
}

static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c >= 0x80;
}

static bool is_space_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Bytes [from, to) of a text where special tokens are never parsed (a user's prompt inside a
 * template); from == to: none. */
struct plain {
    size_t from, to;
};

/* The longest eligible added token at text[pos], or NULL. (Added tokens are sorted longest
 * first.) */
static const struct added *match_added(const tok_t *t, const char *text, size_t pos, size_t len,
                                       unsigned flags, struct plain plain)
{
    if (!t->added_first[(unsigned char)text[pos]])
        return NULL;
    for (size_t i = 0; i < t->n_added; i++) {
        const struct added *a = &t->added[i];
        if (a->special &&
            (!(flags & TOK_PARSE_SPECIAL) || (pos < plain.to && pos + a->len > plain.from)))
            continue;
        if (a->len > len - pos || a->content[0] != text[pos] ||
            memcmp(text + pos, a->content, a->len) != 0)
            continue;
        if (a->single_word &&
            ((pos > 0 && is_word_byte((unsigned char)text[pos - 1])) ||
             (pos + a->len < len && is_word_byte((unsigned char)text[pos + a->len]))))
            continue;
        return a;
    }
    return NULL;
}

static int encode(const tok_t *t, const char *text, size_t len, unsigned flags, struct plain plain,
                  int **ids, size_t *n, char *err, size_t errlen)
{
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len)) {
        err_fmt(err, errlen, "tok_encode: no tokenizer or no text");
        return ERR_INVAL;
    }
    struct ids out = {0};
    struct pieces pc[2];
    struct bpe w;
    memset(pc, 0, sizeof pc);
    memset(&w, 0, sizeof w);
    pcre2_match_data *md = NULL;
    int rc = ERR_OK;
    for (int k = 0; k < t->n_steps; k++) {
        if (t->steps[k].re) {
            md = pcre2_match_data_create(4, NULL);
            if (!md)
                rc = ERR_NOMEM;
            break;
        }
    }
    if (!rc && (flags & TOK_ADD_BOS) && t->bos >= 0)
        rc = ids_push(&out, t->bos);
    size_t seg = 0, pos = 0;
    while (!rc && pos < len) {
        const struct added *a = t->n_added ? match_added(t, text, pos, len, flags, plain) : NULL;
        if (!a) {
            pos++;
            continue;
        }
        size_t seg_end = pos;
        if (a->lstrip)
            while (seg_end > seg && is_space_byte(text[seg_end - 1]))
                seg_end--;
        rc = encode_segment(t, text + seg, seg_end - seg, seg == 0, pc, &w, md, &out, err, errlen);
        if (!rc)
            rc = ids_push(&out, a->id);
        pos += a->len;
        if (a->rstrip)
            while (pos < len && is_space_byte(text[pos]))
                pos++;
        seg = pos;
    }
    if (!rc)
        rc = encode_segment(t, text + seg, len - seg, seg == 0, pc, &w, md, &out, err, errlen);
    pcre2_match_data_free(md);
    pc_free(&pc[0]);
    pc_free(&pc[1]);
    bpe_free(&w);
    if (!rc && !out.v) {
        out.v = malloc(sizeof(int));
        if (!out.v)
            rc = ERR_NOMEM;
    }
    if (rc) {
        if (rc == ERR_NOMEM)
            err_fmt(err, errlen, "out of memory encoding %zu bytes", len);
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n = out.n;
    return ERR_OK;
}

int tok_encode(const tok_t *t, const char *text, size_t len, unsigned flags, int **ids, size_t *n,
               char *err, size_t errlen)
{
    struct plain none = {0, 0};
    return encode(t, text, len, flags, none, ids, n, err, errlen);
}

int tok_encode_prompt(const tok_t *t, const char *prompt, unsigned flags, int **ids, size_t *n,
                      char *err, size_t errlen)
{
    *ids = NULL;
    *n = 0;
    if (!t || !prompt) {
        err_fmt(err, errlen, "tok_encode_prompt: no tokenizer or no prompt");
        return ERR_INVAL;
    }
    char *text = NULL;
    int rc = tok_render_prompt(t, prompt, &text);
    if (rc) {
        err_fmt(err, errlen, "out of memory rendering the prompt");
        return rc;
    }
    struct plain plain;
    plain.from = (size_t)(strstr(t->tmpl, PROMPT_MARK) - t->tmpl);
    plain.to = plain.from + strlen(prompt);
    rc = encode(t, text, strlen(text), (flags & TOK_ADD_BOS) | TOK_PARSE_SPECIAL, plain, ids, n,
                err, errlen);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- decode */

int tok_decode(const tok_t *t, const int *ids, size_t n, unsigned flags, char **text, size_t *len)
{
    *text = NULL;
    if (len)
        *len = 0;
    if (!t || (!ids && n))
        return ERR_INVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return ERR_INVAL;
        if ((flags & TOK_SKIP_SPECIAL) && (t->flags[ids[i]] & TF_SPECIAL))
            continue;
        total += t->out_len[ids[i]];
    }
    char *s = malloc(total + 1);
    if (!s)
        return ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if ((flags & TOK_SKIP_SPECIAL) && (t->flags[ids[i]] & TF_SPECIAL))
            continue;
        memcpy(s + at, t->out[ids[i]], t->out_len[ids[i]]);
        at += t->out_len[ids[i]];
    }
    s[at] = '\0';
    /* the Strip decoder: leading copies of the marker (SentencePiece's prefix space) */
    size_t skip = 0;
    for (int k = 0; k < t->dec_strip_n && t->dec_strip_len; k++) {
        if (at - skip >= t->dec_strip_len && memcmp(s + skip, t->dec_strip, t->dec_strip_len) == 0)
            skip += t->dec_strip_len;
        else
            break;
    }
    if (skip) {
        memmove(s, s + skip, at - skip + 1);
        at -= skip;
    }
    *text = s;
    if (len)
        *len = at;
    return ERR_OK;
}

const char *tok_token_bytes(const tok_t *t, int id, size_t *len)
{
    if (!t || id < 0 || id >= t->vocab_size) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->out_len[id];
    return t->out[id];
}

/* ---------------------------------------------------------------- accessors */

int tok_vocab_size(const tok_t *t)
{
    return t ? t->vocab_size : 0;
}

int tok_bos_id(const tok_t *t)
{
    return t ? t->bos : -1;
}

int tok_eos_id(const tok_t *t)
{
    return t ? t->eos : -1;
}

int tok_pad_id(const tok_t *t)
{
    return t ? t->pad : -1;
}

int tok_set_special_ids(tok_t *t, int bos, int eos, int pad)
{
    if (!t || bos < -1 || eos < -1 || pad < -1 || bos >= t->vocab_size || eos >= t->vocab_size ||
        pad >= t->vocab_size)
        return ERR_INVAL;
    t->bos = bos;
    t->eos = eos;
    t->pad = pad;
    return ERR_OK;
}

bool tok_wants_bos(const tok_t *t)
{
    return t && t->wants_bos;
}

bool tok_is_special(const tok_t *t, int id)
{
    return t && id >= 0 && id < t->vocab_size && (t->flags[id] & TF_SPECIAL);
}

int tok_id(const tok_t *t, const char *token)
{
    if (!t || !token)
        return -1;
    size_t n = strlen(token);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0)
            return t->added[i].id;
    return vmap_get(t, token, n);
}

/* ---------------------------------------------------------------- template */

int tok_set_template(tok_t *t, const char *tmpl)
{
    if (!t || !tmpl)
        return ERR_INVAL;
    const char *m = strstr(tmpl, PROMPT_MARK);
    if (!m || strstr(m + strlen(PROMPT_MARK), PROMPT_MARK))
        return ERR_INVAL;
    char *c = strdup(tmpl);
    if (!c)
        return ERR_NOMEM;
    free(t->tmpl);
    t->tmpl = c;
    return ERR_OK;
}

const char *tok_template(const tok_t *t)
{
    return t ? t->tmpl : NULL;
}

int tok_render_prompt(const tok_t *t, const char *prompt, char **out)
{
    *out = NULL;
    if (!t || !prompt)
        return ERR_INVAL;
    const char *m = strstr(t->tmpl, PROMPT_MARK);
    size_t pre = (size_t)(m - t->tmpl), pl = strlen(prompt);
    const char *post = m + strlen(PROMPT_MARK);
    size_t postl = strlen(post);
    char *s = malloc(pre + pl + postl + 1);
    if (!s)
        return ERR_NOMEM;
    memcpy(s, t->tmpl, pre);
    memcpy(s + pre, prompt, pl);
    memcpy(s + pre + pl, post, postl + 1);
    *out = s;
    return ERR_OK;
}

/* ---------------------------------------------------------------- construction */

void tok_destroy(tok_t **tp)
{
    if (!tp || !*tp)
        return;
    tok_t *t = *tp;
    for (int i = 0; i < t->vocab_size; i++) {
        if (t->str)
            free(t->str[i]);
        if (t->out)
            free(t->out[i]);
    }
    free(t->str);
    free(t->str_len);
    free(t->out);
    free(t->out_len);
    free(t->flags);
    free(t->vmap);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    for (int k = 0; k < t->n_steps; k++) {
        free(t->steps[k].a);
        free(t->steps[k].b);
        pcre2_code_free(t->steps[k].re);
    }
    for (int k = 0; k < t->n_dec_rep; k++) {
        free(t->dec_rep[k].from);
        free(t->dec_rep[k].to);
    }
    free(t->dec_strip);
    free(t->tmpl);
    free(t);
    *tp = NULL;
}

/* Allocate the per-id arrays for vocab_size ids. */
static int alloc_vocab(tok_t *t, int vocab_size)
{
    t->vocab_size = vocab_size;
    size_t n = (size_t)vocab_size;
    t->str = calloc(n, sizeof *t->str);
    t->str_len = calloc(n, sizeof *t->str_len);
    t->out = calloc(n, sizeof *t->out);
    t->out_len = calloc(n, sizeof *t->out_len);
    t->flags = calloc(n, sizeof *t->flags);
    if (!t->str || !t->str_len || !t->out || !t->out_len || !t->flags)
        return ERR_NOMEM;
    return ERR_OK;
}

static tok_t *tok_alloc(void)
{
    pthread_once(&bytemap_once, bytemap_init);
    tok_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->bos = t->eos = t->pad = t->unk_id = -1;
    for (int b = 0; b < 256; b++)
        t->byte_fallback_id[b] = -1;
    t->tmpl = strdup(TOK_DEFAULT_TEMPLATE);
    if (!t->tmpl) {
        free(t);
        return NULL;
    }
    return t;
}

static int add_added(tok_t *t, const char *content, size_t len, int id, bool special)
{
    struct added *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a)
        return ERR_NOMEM;
    t->added = a;
    a = &t->added[t->n_added];
    memset(a, 0, sizeof *a);
    if (!(a->content = memdup0(content, len)))
        return ERR_NOMEM;
    a->len = len;
    a->id = id;
    a->special = special;
    t->added_first[(unsigned char)content[0]] = true;
    t->n_added++;
    return ERR_OK;
}

static int added_cmp(const void *x, const void *y)
{
    const struct added *a = x, *b = y;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : (a->id > b->id);
}

tok_t *tok_new_byte(void)
{
    tok_t *t = tok_alloc();
    if (!t)
        return NULL;
    t->kind = KIND_BYTE;
    static const char *names[3] = {"<bos>", "<eos>", "<pad>"};
    int rc = alloc_vocab(t, TOK_BYTE_VOCAB);
    for (int i = 0; i < 256 && !rc; i++) {
        char c = (char)i;
        t->str[i] = memdup0(&c, 1);
        t->out[i] = memdup0(&c, 1);
        if (!t->str[i] || !t->out[i])
            rc = ERR_NOMEM;
        t->str_len[i] = t->out_len[i] = 1;
    }
    for (int k = 0; k < 3 && !rc; k++) {
        int id = TOK_BYTE_BOS + k;
        size_t n = strlen(names[k]);
        t->str[id] = memdup0(names[k], n);
        t->out[id] = memdup0(names[k], n);
        t->str_len[id] = t->out_len[id] = n;
        t->flags[id] = TF_SPECIAL | TF_ADDED;
        if (!t->str[id] || !t->out[id])
            rc = ERR_NOMEM;
        if (!rc)
            rc = add_added(t, names[k], n, id, true);
    }
    if (!rc)
        rc = vmap_build(t);
    if (rc) {
        tok_destroy(&t);
        return NULL;
    }
    t->bos = TOK_BYTE_BOS;
    t->eos = TOK_BYTE_EOS;
    t->pad = TOK_BYTE_PAD;
    return t;
}

/* ---------------------------------------------------------------- loading tokenizer.json */

struct loader {
    tok_t *t;
    const char *path;
    char *err;
    size_t errlen;
};

/* A string member, or NULL when absent or not a string. */
static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jbool(const json_t *o, const char *key, bool dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static struct step *new_step(struct loader *L, enum step_kind kind, const char *where)
{
    tok_t *t = L->t;
    if (t->n_steps == TOK_MAX_STEPS) {
        err_fmt(L->err, L->errlen, "%s: %s: more than %d normalizer/pre-tokenizer steps", L->path,
                where, TOK_MAX_STEPS);
        return NULL;
    }
    struct step *s = &t->steps[t->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

static int set_str(char **dst, size_t *dlen, const char *src)
{
    *dlen = strlen(src);
    *dst = memdup0(src, *dlen);
    return *dst ? ERR_OK : ERR_NOMEM;
}

/* Compile a Split pattern {"Regex": r} or {"String": s} into s->re. */
static int compile_pattern(struct loader *L, struct step *s, const json_t *pat, const char *where)
{
    const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
    if (!rx && !lit) {
        err_fmt(L->err, L->errlen,
                "%s: %s: \"pattern\" must be {\"Regex\": ...} or {\"String\": ...}", L->path,
                where);
        return ERR_INVAL;
    }
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (lit ? PCRE2_LITERAL : 0);
    int code;
    PCRE2_SIZE off;
    const char *p = rx ? rx : lit;
    s->re = pcre2_compile((PCRE2_SPTR)p, strlen(p), opts, &code, &off, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        err_fmt(L->err, L->errlen, "%s: %s: regex /%.80s/ at offset %zu: %s", L->path, where, p,
                (size_t)off, (const char *)msg);
        return ERR_INVAL;
    }
    (void)pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE); /* an optimization: fine if absent */
    return ERR_OK;
}

static int parse_normalizer(struct loader *L, const json_t *n)
{
    if (!n || json_is_null(n))
        return ERR_OK;
    const char *type = jstr(n, "type");
    if (!type) {
        err_fmt(L->err, L->errlen, "%s: normalizer has no \"type\"", L->path);
        return ERR_INVAL;
    }
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v)
        {
            int rc = parse_normalizer(L, v);
            if (rc)
                return rc;
        }
        return ERR_OK;
    }
    if (strcmp(type, "Prepend") == 0 && jstr(n, "prepend")) {
        struct step *s = new_step(L, STEP_PREPEND, "normalizer Prepend");
        return s ? set_str(&s->a, &s->alen, jstr(n, "prepend")) : ERR_INVAL;
    }
    if (strcmp(type, "Replace") == 0) {
        const char *from = jstr(json_object_get(n, "pattern"), "String");
        const char *to = jstr(n, "content");
        if (!from || !to || !*from) {
            err_fmt(L->err, L->errlen,
                    "%s: normalizer Replace: only a non-empty {\"String\": ...} pattern and a "
                    "string content are supported",
                    L->path);
            return ERR_INVAL;
        }
        struct step *s = new_step(L, STEP_REPLACE, "normalizer Replace");
        if (!s)
            return ERR_INVAL;
        int rc = set_str(&s->a, &s->alen, from);
        return rc ? rc : set_str(&s->b, &s->blen, to);
    }
    if (strcmp(type, "NFC") == 0 || strcmp(type, "NFKC") == 0) {
        log_warn("%s: normalizer %s is treated as identity (text is expected normalized)", L->path,
                 type);
        return ERR_OK;
    }
    err_fmt(L->err, L->errlen, "%s: unsupported normalizer type \"%s\"", L->path, type);
    return ERR_INVAL;
}

static int parse_pre_tokenizer(struct loader *L, const json_t *p)
{
    if (!p || json_is_null(p))
        return ERR_OK;
    const char *type = jstr(p, "type");
    if (!type) {
        err_fmt(L->err, L->errlen, "%s: pre_tokenizer has no \"type\"", L->path);
        return ERR_INVAL;
    }
    int rc = ERR_OK;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(p, "pretokenizers");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v)
        {
            rc = parse_pre_tokenizer(L, v);
            if (rc)
                return rc;
        }
        return ERR_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *beh = jstr(p, "behavior");
        if (jbool(p, "invert", false) || !beh ||
            (strcmp(beh, "Isolated") != 0 && strcmp(beh, "Removed") != 0)) {
            err_fmt(L->err, L->errlen,
                    "%s: pre_tokenizer Split: behavior \"%s\"%s is not supported (Isolated or "
                    "Removed, not inverted)",
                    L->path, beh ? beh : "?", jbool(p, "invert", false) ? " inverted" : "");
            return ERR_INVAL;
        }
        struct step *s = new_step(L, STEP_SPLIT, "pre_tokenizer Split");
        if (!s)
            return ERR_INVAL;
        s->behavior = strcmp(beh, "Isolated") == 0 ? SPLIT_ISOLATED : SPLIT_REMOVED;
        return compile_pattern(L, s, json_object_get(p, "pattern"), "pre_tokenizer Split");
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (jbool(p, "add_prefix_space", true) &&
            !new_step(L, STEP_BL_PREFIX, "pre_tokenizer ByteLevel"))
            return ERR_INVAL;
        if (jbool(p, "use_regex", true)) {
            struct step *s = new_step(L, STEP_SPLIT, "pre_tokenizer ByteLevel");
            if (!s)
                return ERR_INVAL;
            s->behavior = SPLIT_ISOLATED;
            json_t *pat = json_pack("{s:s}", "Regex", GPT2_SPLIT_REGEX);
            rc = pat ? compile_pattern(L, s, pat, "pre_tokenizer ByteLevel") : ERR_NOMEM;
            json_decref(pat);
            if (rc)
                return rc;
        }
        return new_step(L, STEP_BYTEMAP, "pre_tokenizer ByteLevel") ? ERR_OK : ERR_INVAL;
    }
    if (strcmp(type, "Digits") == 0) {
        struct step *s = new_step(L, STEP_DIGITS, "pre_tokenizer Digits");
        if (!s)
            return ERR_INVAL;
        s->flag = jbool(p, "individual_digits", false);
        return ERR_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        struct step *s = new_step(L, STEP_METASPACE, "pre_tokenizer Metaspace");
        if (!s)
            return ERR_INVAL;
        const char *rep = jstr(p, "replacement");
        rc = set_str(&s->a, &s->alen, rep && *rep ? rep : SP_SPACE);
        const char *scheme = jstr(p, "prepend_scheme");
        if (scheme)
            s->scheme = strcmp(scheme, "first") == 0   ? PREPEND_FIRST
                        : strcmp(scheme, "never") == 0 ? PREPEND_NEVER
                                                       : PREPEND_ALWAYS;
        else
            s->scheme = jbool(p, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
        s->flag = jbool(p, "split", true);
        return rc;
    }
    err_fmt(L->err, L->errlen, "%s: unsupported pre_tokenizer type \"%s\"", L->path, type);
    return ERR_INVAL;
}

static int add_dec_replace(struct loader *L, const char *from, const char *to)
{
    tok_t *t = L->t;
    if (t->n_dec_rep == TOK_MAX_REPLACES) {
        err_fmt(L->err, L->errlen, "%s: decoder: more than %d Replace steps", L->path,
                TOK_MAX_REPLACES);
        return ERR_INVAL;
    }
    struct replace *r = &t->dec_rep[t->n_dec_rep++];
    int rc = set_str(&r->from, &r->flen, from);
    return rc ? rc : set_str(&r->to, &r->tlen, to);
}

static int set_dec_strip(struct loader *L, const char *content, int n)
{
    free(L->t->dec_strip);
    L->t->dec_strip_n = n;
    return set_str(&L->t->dec_strip, &L->t->dec_strip_len, content);
}

static int parse_decoder(struct loader *L, const json_t *d)
{
    if (!d || json_is_null(d))
        return ERR_OK;
    const char *type = jstr(d, "type");
    if (!type) {
        err_fmt(L->err, L->errlen, "%s: decoder has no \"type\"", L->path);
        return ERR_INVAL;
    }
    tok_t *t = L->t;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(d, "decoders"), i, v)
        {
            int rc = parse_decoder(L, v);
            if (rc)
                return rc;
        }
        return ERR_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        t->dec_bytelevel = true;
        return ERR_OK;
    }
    if (strcmp(type, "ByteFallback") == 0) {
        t->dec_byte_fallback = true;
        return ERR_OK;
    }
    if (strcmp(type, "Fuse") == 0)
        return ERR_OK;
    if (strcmp(type, "Replace") == 0) {
        const char *from = jstr(json_object_get(d, "pattern"), "String");
        const char *to = jstr(d, "content");
        if (!from || !*from || !to) {
            err_fmt(L->err, L->errlen,
                    "%s: decoder Replace: only a non-empty {\"String\": ...} pattern is supported",
                    L->path);
            return ERR_INVAL;
        }
        return add_dec_replace(L, from, to);
    }
    if (strcmp(type, "Strip") == 0) {
        const char *content = jstr(d, "content");
        json_int_t start = json_integer_value(json_object_get(d, "start"));
        json_int_t stop = json_integer_value(json_object_get(d, "stop"));
        if (!content || start < 0 || start > 64 || stop != 0) {
            err_fmt(L->err, L->errlen,
                    "%s: decoder Strip: only stripping a leading string (stop 0) is supported",
                    L->path);
            return ERR_INVAL;
        }
        return set_dec_strip(L, content, (int)start);
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep = jstr(d, "replacement");
        const char *scheme = jstr(d, "prepend_scheme");
        bool prefix = scheme ? strcmp(scheme, "never") != 0 : jbool(d, "add_prefix_space", true);
        int rc = add_dec_replace(L, rep && *rep ? rep : SP_SPACE, " ");
        if (!rc && prefix)
            rc = set_dec_strip(L, " ", 1);
        return rc;
    }
    err_fmt(L->err, L->errlen, "%s: unsupported decoder type \"%s\"", L->path, type);
    return ERR_INVAL;
}

/* The post-processor's TemplateProcessing: does "single" begin with a special token (bos)? */
static void parse_post_processor(struct loader *L, const json_t *p)
{
    if (!p || json_is_null(p))
        return;
    const char *type = jstr(p, "type");
    if (!type)
        return;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(p, "processors"), i, v)
        {
            parse_post_processor(L, v);
        }
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return;
    const json_t *first = json_array_get(json_object_get(p, "single"), 0);
    const char *name = jstr(json_object_get(first, "SpecialToken"), "id");
    if (!name)
        return;
    int id = tok_id(L->t, name);
    /* special_tokens maps the template name to its ids */
    const json_t *ids =
        json_object_get(json_object_get(json_object_get(p, "special_tokens"), name), "ids");
    if (json_is_integer(json_array_get(ids, 0)))
        id = (int)json_integer_value(json_array_get(ids, 0));
    if (id >= 0 && id < L->t->vocab_size) {
        L->t->wants_bos = true;
        L->t->bos = id;
    }
}

/* bos/eos/pad from well-known special token names, where not already known. */
static void guess_special_ids(tok_t *t)
{
    static const char *bos[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", NULL};
    static const char *eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL};
    static const char *pad[] = {"<pad>", "<|pad|>", "[PAD]", NULL};
    const char **lists[3] = {bos, eos, pad};
    int *dst[3] = {&t->bos, &t->eos, &t->pad};
    for (int k = 0; k < 3; k++) {
        for (const char **n = lists[k]; *dst[k] < 0 && *n; n++) {
            int id = tok_id(t, *n);
            if (id >= 0 && (t->flags[id] & TF_SPECIAL))
                *dst[k] = id;
        }
    }
}

/* tokenizer_config.json beside tokenizer.json, if there: bos/eos/pad token names,
 * add_bos_token, and oaif_prompt_template. A broken file is logged and skipped. */
static void read_tokenizer_config(struct loader *L)
{
    const char *slash = strrchr(L->path, '/');
    size_t dl = slash ? (size_t)(slash - L->path) + 1 : 0;
    char *p = malloc(dl + sizeof "tokenizer_config.json");
    if (!p)
        return;
    memcpy(p, L->path, dl);
    memcpy(p + dl, "tokenizer_config.json", sizeof "tokenizer_config.json");
    struct stat st;
    if (stat(p, &st) != 0 || st.st_size > (off_t)64 << 20) {
        free(p);
        return;
    }
    json_error_t jerr;
    json_t *root = json_load_file(p, 0, &jerr);
    if (!root) {
        log_warn("%s:%d:%d: not valid JSON, ignored: %s", p, jerr.line, jerr.column, jerr.text);
        free(p);
        return;
    }
    tok_t *t = L->t;
    const char *keys[3] = {"bos_token", "eos_token", "pad_token"};
    int *dst[3] = {&t->bos, &t->eos, &t->pad};
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(root, keys[k]);
        const char *name = json_is_string(v) ? json_string_value(v) : jstr(v, "content");
        if (!name)
            continue;
        int id = tok_id(t, name);
        if (id >= 0)
            *dst[k] = id;
        else
            log_warn("%s: %s \"%s\" is not a token, ignored", p, keys[k], name);
    }
    const json_t *ab = json_object_get(root, "add_bos_token");
    if (json_is_boolean(ab))
        t->wants_bos = json_is_true(ab) && t->bos >= 0;
    const char *tmpl = jstr(root, "oaif_prompt_template");
    if (tmpl && tok_set_template(t, tmpl) != ERR_OK)
        log_warn("%s: oaif_prompt_template must contain {prompt} exactly once, ignored", p);
    json_decref(root);
    free(p);
}

/* Whether s is "<0xHH>" (upper-case hex, as byte fallback tokens are written); *b the byte. */
static bool is_byte_token(const char *s, size_t n, unsigned *b)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return false;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!h || !l || !*h || !*l)
        return false;
    *b = (unsigned)((h - hex) * 16 + (l - hex));
    return true;
}

/* The bytes id decodes to, from its vocabulary string and the decoder. */
static int make_output(tok_t *t, int id)
{
    const char *s = t->str[id];
    size_t n = t->str_len[id];
    if (!s) {
        t->out[id] = memdup0("", 0);
        return t->out[id] ? ERR_OK : ERR_NOMEM;
    }
    if (t->flags[id] & TF_ADDED)
        goto raw;
    if (t->dec_bytelevel) {
        /* every character must come from the byte map, else the token is kept as it is */
        char *o = malloc(n + 1);
        if (!o)
            return ERR_NOMEM;
        size_t k = 0, i = 0;
        const unsigned char *u = (const unsigned char *)s;
        while (i < n) {
            size_t cl = utf8_len(u + i, n - i);
            uint32_t cp = utf8_cp(u + i, cl);
            if ((cl == 1 && u[i] >= 0x80) || cp >= 512 || bytemap.inv[cp] < 0)
                break;
            o[k++] = (char)bytemap.inv[cp];
            i += cl;
        }
        if (i < n) {
            free(o);
            goto raw;
        }
        o[k] = '\0';
        t->out[id] = o;
        t->out_len[id] = k;
        return ERR_OK;
    }
    unsigned b;
    if ((t->dec_byte_fallback || t->byte_fallback_id[0] >= 0) && is_byte_token(s, n, &b)) {
        char c = (char)b;
        t->out[id] = memdup0(&c, 1);
        t->out_len[id] = 1;
        return t->out[id] ? ERR_OK : ERR_NOMEM;
    }
    if (t->n_dec_rep > 0) {
        /* apply the Replace steps in order; each can only grow by to/from per match */
        char *cur = memdup0(s, n);
        size_t cl = n;
        for (int r = 0; cur && r < t->n_dec_rep; r++) {
            const struct replace *rp = &t->dec_rep[r];
            size_t grow = rp->tlen > rp->flen ? rp->tlen - rp->flen : 0;
            char *o = malloc(cl + (cl / rp->flen + 1) * grow + 1);
            size_t k = 0;
            for (size_t i = 0; o && i < cl;) {
                if (i + rp->flen <= cl && memcmp(cur + i, rp->from, rp->flen) == 0) {
                    memcpy(o + k, rp->to, rp->tlen);
                    k += rp->tlen;
                    i += rp->flen;
                } else {
                    o[k++] = cur[i++];
                }
            }
            free(cur);
            cur = o;
            if (o)
                o[k] = '\0';
            cl = k;
        }
        if (!cur)
            return ERR_NOMEM;
        t->out[id] = cur;
        t->out_len[id] = cl;
        return ERR_OK;
    }
raw:
    t->out[id] = memdup0(s, n);
    t->out_len[id] = n;
    return t->out[id] ? ERR_OK : ERR_NOMEM;
}

/* An integer id in [0, TOK_MAX_ID), or -1. */
static int json_id(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= TOK_MAX_ID)
        return -1;
    return (int)json_integer_value(v);
}

static int load_vocab(struct loader *L, const json_t *model, const json_t *added)
{
    tok_t *t = L->t;
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0) {
        err_fmt(L->err, L->errlen, "%s: model.vocab is missing, empty or not an object", L->path);
        return ERR_INVAL;
    }
    if (added && !json_is_array(added)) {
        err_fmt(L->err, L->errlen, "%s: added_tokens is not an array", L->path);
        return ERR_INVAL;
    }
    int max_id = -1;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)vocab, k, v)
    {
        int id = json_id(v);
        if (id < 0) {
            err_fmt(L->err, L->errlen,
                    "%s: model.vocab[\"%.60s\"]: id must be an integer in [0, %d)", L->path, k,
                    TOK_MAX_ID);
            return ERR_INVAL;
        }
        if (id > max_id)
            max_id = id;
    }
    size_t i;
    json_array_foreach(added, i, v)
    {
        int id = json_id(json_object_get(v, "id"));
        const char *content = jstr(v, "content");
        if (id < 0 || !content || !*content) {
            err_fmt(L->err, L->errlen,
                    "%s: added_tokens[%zu]: needs an integer \"id\" in [0, %d) and a non-empty "
                    "\"content\"",
                    L->path, i, TOK_MAX_ID);
            return ERR_INVAL;
        }
        if (id > max_id)
            max_id = id;
    }
    int rc = alloc_vocab(t, max_id + 1);
    if (rc)
        return rc;
    json_object_foreach((json_t *)vocab, k, v)
    {
        int id = json_id(v);
        if (t->str[id]) {
            err_fmt(L->err, L->errlen, "%s: model.vocab: id %d is given to \"%.60s\" and \"%.60s\"",
                    L->path, id, t->str[id], k);
            return ERR_INVAL;
        }
        if (!(t->str[id] = memdup0(k, strlen(k))))
            return ERR_NOMEM;
        t->str_len[id] = strlen(k);
    }
    json_array_foreach(added, i, v)
    {
        int id = json_id(json_object_get(v, "id"));
        const char *content = jstr(v, "content");
        bool special = jbool(v, "special", false);
        if (!t->str[id]) {
            if (!(t->str[id] = memdup0(content, strlen(content))))
                return ERR_NOMEM;
            t->str_len[id] = strlen(content);
        }
        t->flags[id] |= TF_ADDED | (special ? TF_SPECIAL : 0);
        rc = add_added(t, content, strlen(content), id, special);
        if (rc)
            return rc;
        struct added *a = &t->added[t->n_added - 1];
        a->lstrip = jbool(v, "lstrip", false);
        a->rstrip = jbool(v, "rstrip", false);
        a->single_word = jbool(v, "single_word", false);
    }
    if (t->n_added > 1)
        qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    return vmap_build(t);
}

static int load_merges(struct loader *L, const json_t *model)
{
    tok_t *t = L->t;
    const json_t *merges = json_object_get(model, "merges");
    if (merges && !json_is_array(merges)) {
        err_fmt(L->err, L->errlen, "%s: model.merges is not an array", L->path);
        return ERR_INVAL;
    }
    size_t n = json_array_size(merges);
    if (n > (size_t)INT32_MAX / 4) {
        err_fmt(L->err, L->errlen, "%s: model.merges: too many merges (%zu)", L->path, n);
        return ERR_INVAL;
    }
    t->mcap = pow2_at_least(2 * n + 1);
    t->mkey = malloc(t->mcap * sizeof *t->mkey);
    t->mrank = malloc(t->mcap * sizeof *t->mrank);
    t->mres = malloc(t->mcap * sizeof *t->mres);
    if (!t->mkey || !t->mrank || !t->mres)
        return ERR_NOMEM;
    for (size_t i = 0; i < t->mcap; i++)
        t->mrank[i] = -1;
    char *joined = NULL;
    size_t jcap = 0;
    int rc = ERR_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (json_is_string(m)) {
            /* "a b": exactly one space (tokens in this format cannot contain one) */
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = s;
                al = (size_t)(sp - s);
                b = sp + 1;
                bl = strlen(b);
            }
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            al = strlen(a);
            bl = strlen(b);
        }
        if (!a || !al || !bl) {
            err_fmt(L->err, L->errlen,
                    "%s: model.merges[%zu]: must be \"a b\" or [\"a\", \"b\"] with non-empty "
                    "tokens",
                    L->path, i);
            rc = ERR_INVAL;
            break;
        }
        if (al + bl + 1 > jcap) {
            jcap = 2 * (al + bl + 1);
            char *nj = realloc(joined, jcap);
            if (!nj) {
                rc = ERR_NOMEM;
                break;
            }
            joined = nj;
        }
        memcpy(joined, a, al);
        memcpy(joined + al, b, bl);
        int ia = vmap_get(t, a, al), ib = vmap_get(t, b, bl), ir = vmap_get(t, joined, al + bl);
        if (ia < 0 || ib < 0 || ir < 0) {
            const char *which = ia < 0 ? a : ib < 0 ? b : joined;
            int wl = (int)(ia < 0 ? al : ib < 0 ? bl : al + bl);
            err_fmt(
                L->err, L->errlen,
                "%s: model.merges[%zu] (\"%.*s\" + \"%.*s\"): \"%.*s\" is not in the vocabulary",
                L->path, i, (int)(al < 60 ? al : 60), a, (int)(bl < 60 ? bl : 60), b,
                wl < 120 ? wl : 120, which);
            rc = ERR_INVAL;
            break;
        }
        mmap_put(t, ia, ib, (int)i, ir);
    }
    free(joined);
    return rc;
}

static int load_model(struct loader *L, const json_t *root)
{
    tok_t *t = L->t;
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        err_fmt(L->err, L->errlen, "%s: no \"model\" object (not a tokenizer.json?)", L->path);
        return ERR_INVAL;
    }
    const char *type = jstr(model, "type");
    if (type ? strcmp(type, "BPE") != 0 : !json_object_get(model, "merges")) {
        err_fmt(L->err, L->errlen, "%s: unsupported model type \"%s\" (only BPE)", L->path,
                type ? type : "(none)");
        return ERR_INVAL;
    }
    const char *keys[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *s = jstr(model, keys[k]);
        if (s && *s) {
            err_fmt(L->err, L->errlen, "%s: model.%s is not supported", L->path, keys[k]);
            return ERR_INVAL;
        }
    }
    int rc = load_vocab(L, model, json_object_get(root, "added_tokens"));
    if (!rc)
        rc = load_merges(L, model);
    if (rc)
        return rc;
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        t->unk_id = vmap_get(t, unk, strlen(unk));
        if (t->unk_id < 0) {
            err_fmt(L->err, L->errlen, "%s: model.unk_token \"%.60s\" is not in the vocabulary",
                    L->path, unk);
            return ERR_INVAL;
        }
    }
    if (jbool(model, "byte_fallback", false)) {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_fallback_id[b] = vmap_get(t, name, 6);
        }
    }
    return ERR_OK;
}

int tok_load(tok_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (!path) {
        err_fmt(err, errlen, "tok_load: no path");
        return ERR_INVAL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        err_fmt(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        err_fmt(err, errlen, "%s: not a regular file", path);
        return ERR_IO;
    }
    if (st.st_size > TOK_MAX_FILE) {
        err_fmt(err, errlen, "%s: %lld bytes is too large for a tokenizer.json", path,
                (long long)st.st_size);
        return ERR_TOOBIG;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_fmt(err, errlen, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column,
                jerr.text);
        return ERR_PROTO;
    }
    tok_t *t = tok_alloc();
    struct loader L = {.t = t, .path = path, .err = err, .errlen = errlen};
    int rc = t ? ERR_OK : ERR_NOMEM;
    if (!rc && !json_is_object(root)) {
        err_fmt(err, errlen, "%s: not a JSON object", path);
        rc = ERR_INVAL;
    }
    if (!rc) {
        t->kind = KIND_BPE;
        rc = load_model(&L, root);
    }
    if (!rc)
        rc = parse_normalizer(&L, json_object_get(root, "normalizer"));
    if (!rc)
        rc = parse_pre_tokenizer(&L, json_object_get(root, "pre_tokenizer"));
    if (!rc)
        rc = parse_decoder(&L, json_object_get(root, "decoder"));
    for (int id = 0; !rc && t && id < t->vocab_size; id++)
        rc = make_output(t, id);
    if (!rc) {
        parse_post_processor(&L, json_object_get(root, "post_processor"));
        guess_special_ids(t);
        read_tokenizer_config(&L);
    }
    json_decref(root);
    if (rc) {
        if (rc == ERR_NOMEM)
            err_fmt(err, errlen, "%s: out of memory", path);
        tok_destroy(&t);
        return rc;
    }
    *out = t;
    return ERR_OK;
}
