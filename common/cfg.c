/* cfg.c - see cfg.h.
 *
 * Three parts: the YAML loader (libyaml's event API into a tree of struct cfg_node), the value
 * parsers and formatters of each option type, and the layering (defaults, run file, environment,
 * flags) with its error messages. */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "buscheck.h"
#include "busopts.h"
#include "err.h"
#include "log.h"

#define CFG_MAX_FILE    (4u << 20) /* run file size limit */
#define CFG_MAX_SECRET  (64u << 10)
#define CFG_MAX_DEPTH   64     /* nesting of the YAML tree (the tree is freed recursively) */
#define CFG_MAX_NODES   200000 /* nodes in one document */
#define CFG_MAX_ERRORS  50     /* messages per call; then one "too many" line */
#define CFG_CONFIG_ENV  "OAIF_CONFIG"
#define CFG_CONFIG_FLAG "--config"
#define CFG_MAX_KEY     256 /* longest key path, flag or variable name (spec-checked) */
#define CFG_SHOW_MAX    64  /* bytes of a bad value echoed in a message */

/* ------------------------------------------------------------------------------------------ */
/* Error sink: every message is one line, to a buffer or to the log.                           */

struct sink {
    buf_t *errs; /* NULL: log_error */
    int n;       /* messages so far */
    bool nomem;  /* an allocation failed somewhere: the call returns ERR_NOMEM */
};

__attribute__((format(printf, 2, 3))) static void emit(struct sink *s, const char *fmt, ...)
{
    char msg[1024];
    s->n++;
    if (s->n > CFG_MAX_ERRORS + 1)
        return;
    if (s->n == CFG_MAX_ERRORS + 1) {
        snprintf(msg, sizeof msg, "too many errors; stopping after %d", CFG_MAX_ERRORS);
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (!s->errs) {
        log_error("%s", msg);
        return;
    }
    if (buf_printf(s->errs, "%s\n", msg) == ERR_NOMEM)
        s->nomem = true;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *dup_s(const char *s)
{
    return dup_n(s, strlen(s));
}

/* A bad value as shown in messages: at most CFG_SHOW_MAX bytes, control bytes as \xNN. */
static const char *show(const char *v, char *out, size_t outlen)
{
    size_t o = 0, i = 0;
    for (; v[i] && o + 5 < outlen && i < CFG_SHOW_MAX; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f || c == '\'')
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (v[i] && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

size_t cfg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 255 || lb > 255)
        return SIZE_MAX;
    size_t rows[3][257]; /* i-2, i-1, i */
    size_t *r2 = rows[0], *r1 = rows[1], *r0 = rows[2];
    for (size_t j = 0; j <= lb; j++)
        r1[j] = j;
    for (size_t i = 1; i <= la; i++) {
        r0[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t d = r1[j] + 1;
            if (r0[j - 1] + 1 < d)
                d = r0[j - 1] + 1;
            if (r1[j - 1] + cost < d)
                d = r1[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && r2[j - 2] + 1 < d)
                d = r2[j - 2] + 1;
            r0[j] = d;
        }
        size_t *t = r2;
        r2 = r1;
        r1 = r0;
        r0 = t;
    }
    return r1[lb];
}

/* Close enough to suggest: a typo, not a different word. */
static bool near(size_t d, const char *word)
{
    size_t len = strlen(word);
    return d <= 3 && d * 2 < len;
}

/* ------------------------------------------------------------------------------------------ */
/* The YAML document                                                                           */

struct cfg_doc {
    char *name;
    struct cfg_node *root;
};

static void node_free(struct cfg_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free((char *)n->key);
    free((char *)n->text);
    free(n);
}

void cfg_doc_free(cfg_doc_t **doc)
{
    if (!doc || !*doc)
        return;
    node_free((*doc)->root);
    free((*doc)->name);
    free(*doc);
    *doc = NULL;
}

const struct cfg_node *cfg_doc_root(const cfg_doc_t *doc)
{
    return doc ? doc->root : NULL;
}

const struct cfg_node *cfg_node_get(const struct cfg_node *node, const char *path)
{
    const char *p = path;
    while (node && p) {
        if (node->kind != CFG_NODE_MAP)
            return NULL;
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        const struct cfg_node *next = NULL;
        for (size_t i = 0; i < node->n_kids; i++) {
            const char *k = node->kids[i]->key;
            if (strlen(k) == len && memcmp(k, p, len) == 0) {
                next = node->kids[i];
                break;
            }
        }
        node = next;
        p = dot ? dot + 1 : NULL;
    }
    return node;
}

bool cfg_node_is_null(const struct cfg_node *n)
{
    if (!n || n->kind != CFG_NODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

static const char *kind_name(enum cfg_node_kind k)
{
    return k == CFG_NODE_MAP ? "a mapping" : k == CFG_NODE_SEQ ? "a sequence" : "a scalar";
}

struct frame {
    struct cfg_node *node; /* MAP or SEQ under construction */
    size_t cap;            /* allocated kids */
    char *key;             /* MAP: the key waiting for its value, or NULL */
    int key_line, key_col;
};

struct builder {
    const char *name;
    struct sink *sink;
    struct frame stack[CFG_MAX_DEPTH];
    int depth;
    size_t n_nodes;
    struct cfg_node *root;
    int docs;
    bool failed;
};

struct key_ref {
    const struct cfg_node *n;
    size_t idx;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = strcmp(x->n->key, y->n->key);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reports every key that repeats an earlier key of the same map. */
static int check_duplicates(struct builder *b, const struct cfg_node *map)
{
    if (map->n_kids < 2)
        return ERR_OK;
    struct key_ref *refs = malloc(map->n_kids * sizeof *refs);
    if (!refs)
        return ERR_NOMEM;
    for (size_t i = 0; i < map->n_kids; i++)
        refs[i] = (struct key_ref){map->kids[i], i};
    qsort(refs, map->n_kids, sizeof *refs, key_ref_cmp);
    size_t first = 0;
    for (size_t i = 1; i < map->n_kids; i++) {
        if (strcmp(refs[i].n->key, refs[first].n->key) != 0) {
            first = i;
            continue;
        }
        const struct cfg_node *dup = refs[i].n, *orig = refs[first].n;
        emit(b->sink, "%s:%d:%d: duplicate key '%s' (first at line %d, column %d)", b->name,
             dup->key_line, dup->key_col, dup->key, orig->key_line, orig->key_col);
        b->failed = true;
    }
    free(refs);
    return ERR_OK;
}

/* Attach a new node where the parser is: as the root, a sequence item, or a map value. */
static int attach(struct builder *b, struct cfg_node *n)
{
    if (++b->n_nodes > CFG_MAX_NODES) {
        emit(b->sink, "%s:%d:%d: more than %d nodes in the document", b->name, n->line, n->col,
             CFG_MAX_NODES);
        b->failed = true;
        node_free(n);
        return ERR_INVAL;
    }
    if (b->depth == 0) {
        b->root = n;
        return ERR_OK;
    }
    struct frame *f = &b->stack[b->depth - 1];
    if (f->node->kind == CFG_NODE_MAP) {
        n->key = f->key;
        n->key_line = f->key_line;
        n->key_col = f->key_col;
        f->key = NULL;
    }
    if (f->node->n_kids == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct cfg_node **k = realloc(f->node->kids, cap * sizeof(struct cfg_node *));
        if (!k) {
            node_free(n);
            return ERR_NOMEM;
        }
        f->node->kids = k;
        f->cap = cap;
    }
    f->node->kids[f->node->n_kids++] = n;
    return ERR_OK;
}

static bool in_map_expecting_key(const struct builder *b)
{
    if (b->depth == 0)
        return false;
    const struct frame *f = &b->stack[b->depth - 1];
    return f->node->kind == CFG_NODE_MAP && !f->key;
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            emit(b->sink, "%s:%d:%d: only one YAML document is allowed", b->name, line, col);
            b->failed = true;
            return ERR_INVAL;
        }
        return ERR_OK;
    case YAML_ALIAS_EVENT:
        emit(b->sink, "%s:%d:%d: aliases (*%s) are not supported: write the value out", b->name,
             line, col, (const char *)ev->data.alias.anchor);
        b->failed = true;
        return ERR_INVAL;
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        if (b->depth == 0)
            return ERR_INVAL; /* libyaml balances its events; never trust that blindly */
        struct frame *f = &b->stack[--b->depth];
        free(f->key); /* a key without value cannot happen; be safe */
        f->key = NULL;
        if (f->node->kind == CFG_NODE_MAP)
            return check_duplicates(b, f->node);
        return ERR_OK;
    }
    default:
        return ERR_OK;
    }
    if (anchor) {
        emit(b->sink, "%s:%d:%d: anchors (&%s) are not supported: write the value out", b->name,
             line, col, (const char *)anchor);
        b->failed = true;
        return ERR_INVAL;
    }
    if (tag) {
        emit(b->sink, "%s:%d:%d: tags (%s) are not supported", b->name, line, col,
             (const char *)tag);
        b->failed = true;
        return ERR_INVAL;
    }
    if (ev->type == YAML_SCALAR_EVENT) {
        const char *v = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (strlen(v) != len) {
            emit(b->sink, "%s:%d:%d: a NUL character is not allowed in a value", b->name, line,
                 col);
            b->failed = true;
            return ERR_INVAL;
        }
        if (in_map_expecting_key(b)) {
            struct frame *f = &b->stack[b->depth - 1];
            f->key = dup_n(v, len);
            if (!f->key)
                return ERR_NOMEM;
            f->key_line = line;
            f->key_col = col;
            return ERR_OK;
        }
        struct cfg_node *n = calloc(1, sizeof *n);
        char *text = dup_n(v, len);
        if (!n || !text) {
            free(n);
            free(text);
            return ERR_NOMEM;
        }
        *n = (struct cfg_node){.kind = CFG_NODE_SCALAR,
                               .file = b->name,
                               .line = line,
                               .col = col,
                               .text = text,
                               .len = len,
                               .plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE};
        return attach(b, n);
    }
    /* sequence or mapping start */
    if (in_map_expecting_key(b)) {
        emit(b->sink, "%s:%d:%d: a mapping key must be a scalar, not %s", b->name, line, col,
             ev->type == YAML_MAPPING_START_EVENT ? "a mapping" : "a sequence");
        b->failed = true;
        return ERR_INVAL;
    }
    if (b->depth == CFG_MAX_DEPTH) {
        emit(b->sink, "%s:%d:%d: nested deeper than %d levels", b->name, line, col, CFG_MAX_DEPTH);
        b->failed = true;
        return ERR_INVAL;
    }
    struct cfg_node *n = calloc(1, sizeof *n);
    if (!n)
        return ERR_NOMEM;
    *n = (struct cfg_node){.kind =
                               ev->type == YAML_MAPPING_START_EVENT ? CFG_NODE_MAP : CFG_NODE_SEQ,
                           .file = b->name,
                           .line = line,
                           .col = col};
    int rc = attach(b, n);
    if (rc)
        return rc;
    b->stack[b->depth++] = (struct frame){.node = n};
    return ERR_OK;
}

/* 1-based line and column of byte `off` of text (for libyaml's reader errors). */
static void offset_to_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            ++*col;
        }
    }
}

static void report_parser_error(struct builder *b, const yaml_parser_t *p, const char *text,
                                size_t len)
{
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_to_pos(text, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            emit(b->sink, "%s:%d:%d: %s (byte 0x%02x)", b->name, line, col, problem,
                 (unsigned)p->problem_value & 0xffu);
        else
            emit(b->sink, "%s:%d:%d: %s", b->name, line, col, problem);
    } else if (p->context) {
        emit(b->sink, "%s:%d:%d: %s (%s at line %d, column %d)", b->name,
             (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, problem, p->context,
             (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    } else {
        emit(b->sink, "%s:%d:%d: %s", b->name, (int)p->problem_mark.line + 1,
             (int)p->problem_mark.column + 1, problem);
    }
}

static int doc_parse(cfg_doc_t **out, const char *name, const char *text, size_t len,
                     struct sink *sink)
{
    *out = NULL;
    cfg_doc_t *doc = calloc(1, sizeof *doc);
    if (!doc)
        return ERR_NOMEM;
    doc->name = dup_s(name ? name : "<string>");
    if (!doc->name) {
        free(doc);
        return ERR_NOMEM;
    }
    struct builder b = {.name = doc->name, .sink = sink};
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        cfg_doc_free(&doc);
        return ERR_NOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = ERR_OK;
    for (bool done = false; !done && !rc;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR) {
                rc = ERR_NOMEM;
            } else {
                report_parser_error(&b, &p, text, len);
                rc = ERR_INVAL;
            }
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (!rc && b.failed)
        rc = ERR_INVAL;
    for (int i = 0; i < b.depth; i++)
        free(b.stack[i].key);
    doc->root = b.root; /* freed with the doc on failure */
    if (rc) {
        cfg_doc_free(&doc);
        return rc;
    }
    *out = doc;
    return ERR_OK;
}

int cfg_doc_parse(cfg_doc_t **out, const char *name, const char *text, size_t len, buf_t *errs)
{
    struct sink s = {.errs = errs};
    int rc = doc_parse(out, name, text, len, &s);
    return s.nomem ? ERR_NOMEM : rc;
}

/* Reads a whole file of at most `max` bytes into a malloc'd NUL-terminated buffer. Errors are
 * ERR_IO (errno describes it), ERR_TOOBIG, ERR_NOMEM. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ERR_IO;
    buf_t b;
    buf_init(&b, max);
    char chunk[8192];
    int rc = ERR_OK;
    size_t n;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(&b, chunk, n);
    if (!rc && ferror(f)) {
        rc = ERR_IO;
        errno = EIO;
    }
    int saved = errno;
    fclose(f);
    errno = saved;
    if (rc) {
        buf_free(&b);
        return rc;
    }
    if (!b.data && buf_append(&b, "", 0)) /* empty file: still a valid string */
        return ERR_NOMEM;
    *len = b.len;
    *out = buf_steal(&b);
    return *out ? ERR_OK : ERR_NOMEM;
}

static int doc_load(cfg_doc_t **out, const char *path, struct sink *sink)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = read_file(path, CFG_MAX_FILE, &text, &len);
    if (rc == ERR_IO)
        emit(sink, "%s: cannot read: %s", path, strerror(errno));
    else if (rc == ERR_TOOBIG)
        emit(sink, "%s: larger than %u bytes", path, CFG_MAX_FILE);
    if (rc)
        return rc;
    rc = doc_parse(out, path, text, len, sink);
    free(text);
    return rc;
}

int cfg_doc_load(cfg_doc_t **out, const char *path, buf_t *errs)
{
    struct sink s = {.errs = errs};
    int rc = doc_load(out, path, &s);
    return s.nomem ? ERR_NOMEM : rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Values: parsing, range checks and formatting per type                                       */

union val {
    int i;
    double d;
    float f;
    bool b;
    char *s;
    int64_t ms;
    size_t sz;
    struct cfg_strlist l;
};

static void list_free(struct cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int list_push(struct cfg_strlist *l, const char *s, size_t len)
{
    char **items = realloc(l->items, (l->n + 1) * sizeof *items);
    if (!items)
        return ERR_NOMEM;
    l->items = items;
    l->items[l->n] = dup_n(s, len);
    if (!l->items[l->n])
        return ERR_NOMEM;
    l->n++;
    return ERR_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Copies s without surrounding whitespace into out; false if it does not fit. */
static bool trim_into(const char *s, char *out, size_t outlen)
{
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_space(s[n - 1]))
        n--;
    if (n >= outlen)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool parse_i64(const char *s, int64_t *v)
{
    char t[64];
    if (!trim_into(s, t, sizeof t) || !t[0])
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(t, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

static bool parse_f64(const char *s, double *v)
{
    char t[64];
    if (!trim_into(s, t, sizeof t) || !t[0])
        return false;
    char *end;
    errno = 0;
    double x = strtod(t, &end);
    if (*end || !isfinite(x) || (errno == ERANGE && fabs(x) > 1.0))
        return false;
    *v = x;
    return true;
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char t[16];
    if (!trim_into(s, t, sizeof t))
        return false;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *v = true;
            return true;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* A decimal number (digits, optional fraction) at *p; advances *p. */
static bool scan_number(const char **p, double *v)
{
    const char *s = *p;
    size_t n = 0;
    bool digits = false, dot = false;
    while (isdigit((unsigned char)s[n]) || (s[n] == '.' && !dot)) {
        if (s[n] == '.')
            dot = true;
        else
            digits = true;
        n++;
    }
    if (!digits || n > 30)
        return false;
    char t[32];
    memcpy(t, s, n);
    t[n] = '\0';
    *v = strtod(t, NULL);
    *p = s + n;
    return true;
}

/* "500ms", "2s", "1.5m", "1h30m", "0" -> milliseconds. */
static bool parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}};
    char t[64];
    if (!trim_into(s, t, sizeof t) || !t[0])
        return false;
    if (strcmp(t, "0") == 0) {
        *ms = 0;
        return true;
    }
    const char *p = t;
    double total = 0;
    while (*p) {
        double x;
        if (!scan_number(&p, &x))
            return false;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t ul = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, ul) == 0 && ul > best_len) {
                best = i;
                best_len = ul;
            }
        }
        if (!best_len)
            return false;
        p += best_len;
        total += x * units[best].ms;
    }
    if (total > 9.2e18)
        return false;
    double r = nearbyint(total);
    if (fabs(total - r) > 1e-6 * (r > 1 ? r : 1))
        return false; /* not a whole number of milliseconds */
    *ms = (int64_t)r;
    return true;
}

/* "4096", "512KiB", "64 MiB", "1.5GiB", "10kB" -> bytes. */
static bool parse_size(const char *s, size_t *bytes)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},          {"B", 1},
                 {"KiB", 1024.0},  {"MiB", 1048576.0},
                 {"GiB", 1 << 30}, {"TiB", 1099511627776.0},
                 {"kB", 1e3},      {"KB", 1e3},
                 {"MB", 1e6},      {"GB", 1e9},
                 {"TB", 1e12}};
    char t[64];
    if (!trim_into(s, t, sizeof t) || !t[0])
        return false;
    const char *p = t;
    double x;
    if (!scan_number(&p, &x))
        return false;
    while (*p == ' ')
        p++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        double v = x * units[i].mult;
        if (v >= 18446744073709551615.0 || (double)SIZE_MAX < v)
            return false;
        double r = nearbyint(v);
        if (fabs(v - r) > 1e-6 * (r > 1 ? r : 1))
            return false; /* not a whole number of bytes */
        *bytes = (size_t)r;
        return true;
    }
    return false;
}

/* Shortest %g that reads back as the same double. */
static void fmt_double(double v, char *out, size_t outlen)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* The shortest %g text that reads back as the same float. */
static void fmt_float(float v, char *out, size_t outlen)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(out, outlen, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v)
            return;
    }
}

static void fmt_duration(int64_t ms, char *out, size_t outlen)
{
    if (ms == 0)
        snprintf(out, outlen, "0s");
    else if (ms % 3600000 == 0)
        snprintf(out, outlen, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(out, outlen, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, outlen, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, outlen, "%lldms", (long long)ms);
}

static void fmt_size(uint64_t b, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && b && b % 1024 == 0) {
        b /= 1024;
        u++;
    }
    snprintf(out, outlen, "%llu%s", (unsigned long long)b, units[u]);
}

/* The effective bounds of a ranged option. */
static bool int_bounded(const struct cfg_option *o)
{
    return o->min != 0 || o->max != 0;
}

static void int_range(const struct cfg_option *o, int64_t *lo, int64_t *hi)
{
    if (!int_bounded(o)) {
        *lo = o->type == CFG_INT ? INT_MIN : o->type == CFG_LONG ? LONG_MIN : 0;
        *hi = o->type == CFG_INT ? INT_MAX : o->type == CFG_LONG ? LONG_MAX : INT64_MAX;
    } else {
        *lo = o->min;
        *hi = o->max;
    }
}

/* "an integer in [1, 4096]", "a duration like 500ms, 2s, 1m", "one of dpo, ipo, slic" ... */
static void expectation(const struct cfg_option *o, char *out, size_t outlen)
{
    char a[32], b[32];
    switch (o->type) {
    case CFG_INT:
    case CFG_LONG:
    case CFG_UINT64:
        if (int_bounded(o))
            snprintf(out, outlen, "an integer in [%lld, %lld]", (long long)o->min,
                     (long long)o->max);
        else
            snprintf(out, outlen, "an integer");
        return;
    case CFG_DOUBLE:
    case CFG_FLOAT:
        if (o->dmin != 0 || o->dmax != 0) {
            fmt_double(o->dmin, a, sizeof a);
            fmt_double(o->dmax, b, sizeof b);
            snprintf(out, outlen, "a number in [%s, %s]", a, b);
        } else {
            snprintf(out, outlen, "a number");
        }
        return;
    case CFG_BOOL:
        snprintf(out, outlen, "true or false");
        return;
    case CFG_STRING:
        snprintf(out, outlen,
                 (o->flags & CFG_ENDPOINT) ? "a ZeroMQ endpoint (tcp://HOST:PORT, "
                                             "PORT a number from 0 to 65535 or *)"
                                           : "a string");
        return;
    case CFG_STRLIST:
        snprintf(out, outlen, "a list of strings");
        return;
    case CFG_ENUM: {
        size_t n = (size_t)snprintf(out, outlen, "one of");
        for (size_t i = 0; o->choices[i].name && n < outlen; i++)
            n += (size_t)snprintf(out + n, outlen - n, "%s %s", i ? "," : "", o->choices[i].name);
        return;
    }
    case CFG_DURATION:
        if (int_bounded(o)) {
            fmt_duration(o->min, a, sizeof a);
            fmt_duration(o->max, b, sizeof b);
            snprintf(out, outlen, "a duration like 500ms, 2s, 1m in [%s, %s]", a, b);
        } else {
            snprintf(out, outlen, "a duration like 500ms, 2s, 1m");
        }
        return;
    case CFG_SIZE:
        if (int_bounded(o)) {
            fmt_size((uint64_t)o->min, a, sizeof a);
            fmt_size((uint64_t)o->max, b, sizeof b);
            snprintf(out, outlen, "a size like 512KiB, 64MiB, 2GiB in [%s, %s]", a, b);
        } else {
            snprintf(out, outlen, "a size like 512KiB, 64MiB, 2GiB");
        }
        return;
    }
    snprintf(out, outlen, "a value");
}

/* Parses text as option o's type into *v. ERR_INVAL: not valid (the caller reports it);
 * ERR_NOMEM. On success strings and lists in *v are malloc'd. */
static int parse_value(const struct cfg_option *o, const char *text, union val *v)
{
    memset(v, 0, sizeof *v);
    int64_t x, lo, hi;
    switch (o->type) {
    case CFG_INT:
    case CFG_LONG:
    case CFG_UINT64:
        int_range(o, &lo, &hi);
        if (!parse_i64(text, &x) || x < lo || x > hi)
            return ERR_INVAL;
        v->ms = x; /* the int64 member; store() narrows it */
        return ERR_OK;
    case CFG_DOUBLE:
        if (!parse_f64(text, &v->d))
            return ERR_INVAL;
        if ((o->dmin != 0 || o->dmax != 0) && (v->d < o->dmin || v->d > o->dmax))
            return ERR_INVAL;
        return ERR_OK;
    case CFG_FLOAT: {
        double d;
        if (!parse_f64(text, &d) || !isfinite((float)d))
            return ERR_INVAL;
        if ((o->dmin != 0 || o->dmax != 0) && (d < o->dmin || d > o->dmax))
            return ERR_INVAL;
        v->f = (float)d;
        return ERR_OK;
    }
    case CFG_BOOL:
        return parse_bool(text, &v->b) ? ERR_OK : ERR_INVAL;
    case CFG_STRING: {
        char why[300];
        if ((o->flags & CFG_ENDPOINT) && bus_endpoint_check(text, why, sizeof why))
            return ERR_INVAL; /* libzmq would wrap the port: 70000 binds 4464 */
        v->s = dup_s(text);
        return v->s ? ERR_OK : ERR_NOMEM;
    }
    case CFG_ENUM: {
        char t[CFG_MAX_KEY];
        if (!trim_into(text, t, sizeof t))
            return ERR_INVAL;
        for (int i = 0; o->choices[i].name; i++) {
            if (strcmp(o->choices[i].name, t) == 0) {
                v->i = o->choices[i].value;
                return ERR_OK;
            }
        }
        return ERR_INVAL;
    }
    case CFG_DURATION:
        int_range(o, &lo, &hi);
        if (!parse_duration(text, &v->ms) || v->ms < lo || v->ms > hi)
            return ERR_INVAL;
        return ERR_OK;
    case CFG_SIZE:
        int_range(o, &lo, &hi);
        if (!parse_size(text, &v->sz) || v->sz < (uint64_t)lo || v->sz > (uint64_t)hi)
            return ERR_INVAL;
        return ERR_OK;
    case CFG_STRLIST: {
        struct cfg_strlist l = {0};
        const char *p = text;
        while (*p) {
            const char *comma = strchr(p, ',');
            const char *e = comma ? comma : p + strlen(p);
            const char *s = p;
            while (s < e && is_space(*s))
                s++;
            const char *t = e;
            while (t > s && is_space(t[-1]))
                t--;
            if (t > s && list_push(&l, s, (size_t)(t - s))) {
                list_free(&l);
                return ERR_NOMEM;
            }
            p = comma ? comma + 1 : e;
        }
        v->l = l;
        return ERR_OK;
    }
    }
    return ERR_INVAL;
}

static void *field(const struct cfg_option *o, void *conf)
{
    return (char *)conf + o->offset;
}

static const void *cfield(const struct cfg_option *o, const void *conf)
{
    return (const char *)conf + o->offset;
}

/* Stores v into the field (taking its strings), freeing what was there. */
static void store(const struct cfg_option *o, void *conf, union val *v)
{
    void *f = field(o, conf);
    switch (o->type) {
    case CFG_INT:
        *(int *)f = (int)v->ms;
        break;
    case CFG_LONG:
        *(long *)f = (long)v->ms;
        break;
    case CFG_UINT64:
        *(uint64_t *)f = (uint64_t)v->ms;
        break;
    case CFG_ENUM:
        *(int *)f = v->i;
        break;
    case CFG_DOUBLE:
        *(double *)f = v->d;
        break;
    case CFG_FLOAT:
        *(float *)f = v->f;
        break;
    case CFG_BOOL:
        *(bool *)f = v->b;
        break;
    case CFG_STRING:
        free(*(char **)f);
        *(char **)f = v->s;
        break;
    case CFG_DURATION:
        *(int64_t *)f = v->ms;
        break;
    case CFG_SIZE:
        *(size_t *)f = v->sz;
        break;
    case CFG_STRLIST:
        list_free((struct cfg_strlist *)f);
        *(struct cfg_strlist *)f = v->l;
        break;
    }
    memset(v, 0, sizeof *v);
}

static void zero_field(const struct cfg_option *o, void *conf)
{
    void *f = field(o, conf);
    switch (o->type) {
    case CFG_INT:
    case CFG_ENUM:
        *(int *)f = 0;
        break;
    case CFG_LONG:
        *(long *)f = 0;
        break;
    case CFG_UINT64:
        *(uint64_t *)f = 0;
        break;
    case CFG_DOUBLE:
        *(double *)f = 0;
        break;
    case CFG_FLOAT:
        *(float *)f = 0;
        break;
    case CFG_BOOL:
        *(bool *)f = false;
        break;
    case CFG_STRING:
        *(char **)f = NULL;
        break;
    case CFG_DURATION:
        *(int64_t *)f = 0;
        break;
    case CFG_SIZE:
        *(size_t *)f = 0;
        break;
    case CFG_STRLIST:
        *(struct cfg_strlist *)f = (struct cfg_strlist){0};
        break;
    }
}

void cfg_release(const struct cfg_spec *spec, void *conf)
{
    if (!spec || !conf)
        return;
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        if (o->type == CFG_STRING) {
            free(*(char **)field(o, conf));
            *(char **)field(o, conf) = NULL;
        } else if (o->type == CFG_STRLIST) {
            list_free((struct cfg_strlist *)field(o, conf));
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                     */

struct loader {
    const struct cfg_spec *spec;
    void *conf;
    struct sink sink;
    struct cfg_trace *trace;     /* origins and warnings, or NULL */
    char origin[CFG_ORIGIN_MAX]; /* where the value being applied comes from */
};

/* Records that option o now holds a value from L->origin. */
static void note_origin(struct loader *L, const struct cfg_option *o)
{
    if (L->trace && L->trace->origins)
        snprintf(L->trace->origins[o - L->spec->options].where, CFG_ORIGIN_MAX, "%s", L->origin);
}

/* One warning line: to the trace's buffer, else the log. */
__attribute__((format(printf, 2, 3))) static void warn(struct loader *L, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->trace && L->trace->warnings) {
        if (buf_printf(L->trace->warnings, "%s\n", msg) == ERR_NOMEM)
            L->sink.nomem = true;
    } else {
        log_warn("%s", msg);
    }
}

static bool is_secret(const struct cfg_option *o)
{
    return (o->flags & CFG_SECRET) != 0;
}

/* Parses text into option o and stores it; `where` prefixes any message ("run.yaml:3:5:
 * trainer.lr", "environment TRAINER_LR", "flag --lr"). */
static void apply_text(struct loader *L, const struct cfg_option *o, const char *text,
                       const char *where)
{
    union val v;
    int rc = parse_value(o, text, &v);
    if (rc == ERR_NOMEM) {
        L->sink.nomem = true;
        return;
    }
    if (rc) {
        char exp[512], shown[4 * CFG_SHOW_MAX + 8], hint[CFG_MAX_KEY + 32] = "";
        expectation(o, exp, sizeof exp);
        if (o->type == CFG_ENUM) {
            size_t best = SIZE_MAX;
            const char *cand = NULL;
            for (int i = 0; o->choices[i].name; i++) {
                size_t d = cfg_edit_distance(text, o->choices[i].name);
                if (d < best) {
                    best = d;
                    cand = o->choices[i].name;
                }
            }
            if (cand && best <= 2 && best < strlen(cand))
                snprintf(hint, sizeof hint, "; did you mean '%s'?", cand);
        }
        if (is_secret(o))
            emit(&L->sink, "%s: expected %s", where, exp); /* never echo a secret */
        else
            emit(&L->sink, "%s: expected %s, got '%s'%s", where, exp,
                 show(text, shown, sizeof shown), hint);
        return;
    }
    store(o, L->conf, &v);
    note_origin(L, o);
}

/* Reads a secret from the file at `path` (trimmed, not empty) into option o. */
static void apply_secret_file(struct loader *L, const struct cfg_option *o, const char *path,
                              const char *where)
{
    char *text;
    size_t len;
    int rc = read_file(path, CFG_MAX_SECRET, &text, &len);
    if (rc || !text) {
        if (rc == ERR_TOOBIG)
            emit(&L->sink, "%s: secret file '%s' is larger than %u bytes", where, path,
                 CFG_MAX_SECRET);
        else if (rc == ERR_IO)
            emit(&L->sink, "%s: cannot read secret file '%s': %s", where, path, strerror(errno));
        else
            L->sink.nomem = true;
        return;
    }
    size_t s = 0, e = len;
    while (s < e && is_space(text[s]))
        s++;
    while (e > s && is_space(text[e - 1]))
        e--;
    if (s == e) {
        emit(&L->sink, "%s: secret file '%s' is empty", where, path);
    } else if (memchr(text + s, '\0', e - s)) {
        emit(&L->sink, "%s: secret file '%s' contains a NUL byte", where, path);
    } else {
        char *value = dup_n(text + s, e - s);
        char **f = field(o, L->conf); /* secrets are strings (check_spec) */
        if (value) {
            free(*f);
            *f = value;
            note_origin(L, o);
        } else {
            L->sink.nomem = true;
        }
    }
    memset(text, 0, len); /* do not leave the secret in freed memory */
    free(text);
}

/* Applies the run-file node n, found under `key` (o->key or o->old_key), to option o. */
static void apply_node(struct loader *L, const struct cfg_option *o, const char *key,
                       const struct cfg_node *n)
{
    char where[CFG_MAX_KEY + 256];
    snprintf(where, sizeof where, "%s:%d:%d: %s", n->file, n->line, n->col, key);
    if (o->type == CFG_STRLIST && n->kind == CFG_NODE_SEQ) {
        union val v = {0};
        bool ok = true;
        for (size_t i = 0; i < n->n_kids; i++) {
            const struct cfg_node *it = n->kids[i];
            if (it->kind != CFG_NODE_SCALAR || cfg_node_is_null(it)) {
                emit(&L->sink, "%s:%d:%d: %s: expected a string, got %s", it->file, it->line,
                     it->col, key, it->kind == CFG_NODE_SCALAR ? "null" : kind_name(it->kind));
                ok = false;
            } else if (ok && list_push(&v.l, it->text, it->len)) {
                L->sink.nomem = true;
                ok = false;
            }
        }
        if (ok) {
            store(o, L->conf, &v);
            note_origin(L, o);
        } else {
            list_free(&v.l);
        }
        return;
    }
    if (n->kind != CFG_NODE_SCALAR) {
        char exp[512];
        expectation(o, exp, sizeof exp);
        emit(&L->sink, "%s: expected %s, got %s", where, exp, kind_name(n->kind));
        return;
    }
    apply_text(L, o, n->text, where);
}

/* Is `path` a key of the spec (or a secret's "_file" key)? Is it a strict prefix of one? */
static bool spec_has_key(const struct cfg_spec *spec, const char *path)
{
    size_t pl = strlen(path);
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        if (strcmp(o->key, path) == 0 || (o->old_key && strcmp(o->old_key, path) == 0))
            return true;
        size_t kl = strlen(o->key);
        if (is_secret(o) && pl == kl + 5 && strncmp(path, o->key, kl) == 0 &&
            strcmp(path + kl, "_file") == 0)
            return true;
    }
    return false;
}

static bool spec_has_prefix(const struct cfg_spec *spec, const char *path)
{
    size_t pl = strlen(path);
    for (size_t i = 0; i < spec->n_options; i++) {
        const char *k = spec->options[i].key, *ok = spec->options[i].old_key;
        if ((strncmp(k, path, pl) == 0 && k[pl] == '.') ||
            (ok && strncmp(ok, path, pl) == 0 && ok[pl] == '.'))
            return true;
    }
    return false;
}

static void suggest_key(const struct cfg_spec *spec, const char *path, char *out, size_t outlen)
{
    size_t best = SIZE_MAX;
    const char *cand = NULL;
    bool cand_file = false;
    char buf[CFG_MAX_KEY + 8];
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        size_t d = cfg_edit_distance(path, o->key);
        if (d < best) {
            best = d;
            cand = o->key;
            cand_file = false;
        }
        if (is_secret(o)) {
            snprintf(buf, sizeof buf, "%s_file", o->key);
            d = cfg_edit_distance(path, buf);
            if (d < best) {
                best = d;
                cand = o->key;
                cand_file = true;
            }
        }
    }
    out[0] = '\0';
    const char *last = strrchr(path, '.'); /* judge closeness by the last step, not the section */
    if (cand && near(best, last ? last + 1 : path))
        snprintf(out, outlen, "; did you mean '%s%s'?", cand, cand_file ? "_file" : "");
}

/* Reports keys under an owned section's map that no option uses. */
static void check_unknown(struct loader *L, const struct cfg_node *map, const char *prefix,
                          int depth)
{
    for (size_t i = 0; i < map->n_kids; i++) {
        const struct cfg_node *k = map->kids[i];
        char path[CFG_MAX_KEY * 2];
        snprintf(path, sizeof path, "%s.%s", prefix, k->key);
        if (spec_has_key(L->spec, path))
            continue;
        if (spec_has_prefix(L->spec, path)) {
            if (k->kind == CFG_NODE_MAP && depth < CFG_MAX_DEPTH)
                check_unknown(L, k, path, depth + 1);
            else if (!cfg_node_is_null(k))
                emit(&L->sink, "%s:%d:%d: %s: expected a mapping, got %s", k->file, k->line, k->col,
                     path, kind_name(k->kind));
            continue;
        }
        char hint[CFG_MAX_KEY + 32];
        suggest_key(L->spec, path, hint, sizeof hint);
        emit(&L->sink, "%s:%d:%d: %s: unknown option%s", k->file, k->key_line, k->key_col, path,
             hint);
    }
}

/* The `bus` section is shared by every service (busopts.h): its keys are checked against the
 * whole bus table, whichever service reads the file, so a typo there is an error like anywhere
 * else instead of a service waiting forever on a default endpoint. */
static void check_bus_section(struct loader *L, const struct cfg_node *s)
{
    if (s->kind != CFG_NODE_MAP) {
        emit(&L->sink, "%s:%d:%d: %s: expected a mapping, got %s", s->file, s->line, s->col, s->key,
             kind_name(s->kind));
        return;
    }
    for (size_t i = 0; i < s->n_kids; i++) {
        const struct cfg_node *k = s->kids[i];
        char path[CFG_MAX_KEY * 2];
        snprintf(path, sizeof path, "bus.%s", k->key);
        if (spec_has_key(L->spec, path) || spec_has_key(&bus_opts_spec, path))
            continue;
        char hint[CFG_MAX_KEY + 32];
        suggest_key(&bus_opts_spec, path, hint, sizeof hint);
        emit(&L->sink, "%s:%d:%d: %s: unknown option%s", k->file, k->key_line, k->key_col, path,
             hint);
    }
}

static bool owns(const struct cfg_spec *spec, const char *section)
{
    for (size_t i = 0; spec->sections && spec->sections[i]; i++)
        if (strcmp(spec->sections[i], section) == 0)
            return true;
    return false;
}

/* Applies the run-file value of option o under `key` (its key, or its old key when old), if
 * the file gives one. */
static void apply_file_key(struct loader *L, const struct cfg_node *root,
                           const struct cfg_option *o, const char *key, bool old)
{
    const struct cfg_node *n = cfg_node_get(root, key), *nf = NULL;
    if (is_secret(o)) {
        char fk[CFG_MAX_KEY + 8];
        snprintf(fk, sizeof fk, "%s_file", key);
        nf = cfg_node_get(root, fk);
    }
    if (cfg_node_is_null(n))
        n = NULL;
    if (cfg_node_is_null(nf))
        nf = NULL;
    const struct cfg_node *at = n ? n : nf;
    if (!at)
        return;
    snprintf(L->origin, sizeof L->origin, "%s:%d:%d%s", at->file, at->line, at->col,
             old ? " (old name)" : "");
    if (old)
        warn(L,
             "%s:%d:%d: %s%s is an old name: use %s%s (the old one works until the next "
             "release)",
             at->file, at->key_line, at->key_col, key, n ? "" : "_file", o->key, n ? "" : "_file");
    if (n && nf) {
        emit(&L->sink, "%s:%d:%d: %s_file: give either %s or %s_file, not both", nf->file,
             nf->key_line, nf->key_col, key, key, key);
    } else if (n) {
        apply_node(L, o, key, n);
    } else {
        char where[CFG_MAX_KEY + 256];
        snprintf(where, sizeof where, "%s:%d:%d: %s_file", nf->file, nf->line, nf->col, key);
        if (nf->kind != CFG_NODE_SCALAR)
            emit(&L->sink, "%s: expected a file name, got %s", where, kind_name(nf->kind));
        else
            apply_secret_file(L, o, nf->text, where);
    }
}

static void apply_file(struct loader *L, const cfg_doc_t *doc)
{
    const struct cfg_node *root = cfg_doc_root(doc);
    if (!root || cfg_node_is_null(root))
        return;
    if (root->kind != CFG_NODE_MAP) {
        emit(&L->sink, "%s:%d:%d: the run file must be a mapping of sections, not %s", root->file,
             root->line, root->col, kind_name(root->kind));
        return;
    }
    for (size_t i = 0; i < L->spec->n_options; i++) {
        const struct cfg_option *o = &L->spec->options[i];
        if (o->old_key)
            apply_file_key(L, root, o, o->old_key, true); /* the new key, if given too, wins */
        apply_file_key(L, root, o, o->key, false);
    }
    for (size_t i = 0; i < root->n_kids; i++) {
        const struct cfg_node *s = root->kids[i];
        if (strcmp(s->key, "bus") == 0 && !owns(L->spec, s->key) && !cfg_node_is_null(s)) {
            check_bus_section(L, s);
            continue;
        }
        if (!owns(L->spec, s->key) || cfg_node_is_null(s))
            continue;
        if (s->kind != CFG_NODE_MAP)
            emit(&L->sink, "%s:%d:%d: %s: expected a mapping, got %s", s->file, s->line, s->col,
                 s->key, kind_name(s->kind));
        else
            check_unknown(L, s, s->key, 1);
    }
}

static const char *env_value(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Applies option o from the environment variable `name` (o->env, or o->old_env when old). */
static void apply_env_var(struct loader *L, const struct cfg_option *o, const char *name, bool old)
{
    char where[CFG_MAX_KEY + 32], fname[CFG_MAX_KEY + 8];
    const char *v = env_value(name), *vf = NULL;
    if (is_secret(o)) {
        snprintf(fname, sizeof fname, "%s_FILE", name);
        vf = env_value(fname);
    }
    if (!v && !vf)
        return;
    snprintf(where, sizeof where, "environment %s", v ? name : fname);
    snprintf(L->origin, sizeof L->origin, "%s%s", where, old ? " (old name)" : "");
    if (old)
        warn(L, "%s is an old name: use %s%s (the old one works until the next release)", where,
             o->env ? o->env : o->key, o->env && !v ? "_FILE" : "");
    if (v && vf)
        emit(&L->sink, "environment %s and %s: give one, not both", name, fname);
    else if (v)
        apply_text(L, o, v, where);
    else
        apply_secret_file(L, o, vf, where);
}

static void apply_env(struct loader *L)
{
    for (size_t i = 0; i < L->spec->n_options; i++) {
        const struct cfg_option *o = &L->spec->options[i];
        if (o->old_env)
            apply_env_var(L, o, o->old_env, true); /* the new variable, if set too, wins */
        if (o->env)
            apply_env_var(L, o, o->env, false);
    }
}

/* Matches argv flag name `name` (without "=value") against the table. *file: the secret's
 * "-file" form. NULL if unknown. */
static bool flag_matches(const char *flag, bool secret, const char *name, size_t len, bool *file)
{
    if (!flag)
        return false;
    size_t fl = strlen(flag);
    if (fl == len && strncmp(flag, name, len) == 0) {
        *file = false;
        return true;
    }
    if (secret && len == fl + 5 && strncmp(flag, name, fl) == 0 &&
        strncmp(name + fl, "-file", 5) == 0) {
        *file = true;
        return true;
    }
    return false;
}

/* Matches argv flag name `name` (without "=value") against the table's flags and, setting *old,
 * its old flags. *file: the secret's "-file" form. NULL if unknown. */
static const struct cfg_option *find_flag(const struct cfg_spec *spec, const char *name, size_t len,
                                          bool *file, bool *old)
{
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        *old = false;
        if (flag_matches(o->flag, is_secret(o), name, len, file))
            return o;
        *old = true;
        if (flag_matches(o->old_flag, is_secret(o), name, len, file))
            return o;
    }
    return NULL;
}

static void suggest_flag(const struct cfg_spec *spec, const char *name, char *out, size_t outlen)
{
    size_t best = SIZE_MAX;
    const char *cand = NULL;
    bool cand_file = false;
    char buf[CFG_MAX_KEY + 8];
    static const char *const builtin[] = {CFG_CONFIG_FLAG, "--help"};
    for (size_t i = 0; i < 2; i++) {
        size_t d = cfg_edit_distance(name, builtin[i]);
        if (d < best) {
            best = d;
            cand = builtin[i];
        }
    }
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        if (!o->flag)
            continue;
        size_t d = cfg_edit_distance(name, o->flag);
        if (d < best) {
            best = d;
            cand = o->flag;
            cand_file = false;
        }
        if (is_secret(o)) {
            snprintf(buf, sizeof buf, "%s-file", o->flag);
            d = cfg_edit_distance(name, buf);
            if (d < best) {
                best = d;
                cand = o->flag;
                cand_file = true;
            }
        }
    }
    out[0] = '\0';
    if (cand && near(best, name + 2))
        snprintf(out, outlen, "; did you mean %s%s?", cand, cand_file ? "-file" : "");
}

/* One pass over argv. With apply false: only finds --help and --config (and reports nothing);
 * with apply true: applies every option flag and reports every problem. */
static void scan_flags(struct loader *L, int argc, char *const *argv, bool apply, bool *help,
                       const char **config)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        char shown[4 * CFG_SHOW_MAX + 8];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            for (i++; apply && i < argc; i++)
                emit(&L->sink, "unexpected argument '%s'", show(argv[i], shown, sizeof shown));
            return;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
            if (apply && arg[0] == '-')
                emit(&L->sink,
                     "unknown flag '%s' (an argument that begins with '-' goes after '--', as in "
                     "-- %s)",
                     show(arg, shown, sizeof shown), show(arg, shown, sizeof shown));
            else if (apply)
                emit(&L->sink, "unexpected argument '%s'", show(arg, shown, sizeof shown));
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        char name[CFG_MAX_KEY + 8];
        snprintf(name, sizeof name, "%.*s", (int)(nlen < CFG_MAX_KEY ? nlen : CFG_MAX_KEY), arg);
        bool file = false, old = false;
        const struct cfg_option *o = NULL;
        bool is_config = strcmp(name, CFG_CONFIG_FLAG) == 0;
        if (!is_config)
            o = find_flag(L->spec, name, nlen, &file, &old);
        if (!is_config && !o) {
            if (apply) {
                char hint[CFG_MAX_KEY + 32];
                suggest_flag(L->spec, name, hint, sizeof hint);
                emit(&L->sink, "flag %s: unknown%s", show(name, shown, sizeof shown), hint);
            }
            /* Its type is unknown, so guess: a following plain word is its value. */
            if (!eq && i + 1 < argc && argv[i + 1][0] != '-')
                i++;
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o && o->type == CFG_BOOL && !file)
            value = "true";
        if (!value) {
            if (i + 1 >= argc) {
                if (apply)
                    emit(&L->sink, "flag %s: needs a value", name);
                continue;
            }
            value = argv[++i];
        }
        if (is_config) {
            *config = value;
            continue;
        }
        if (!apply)
            continue;
        char where[CFG_MAX_KEY + 32];
        snprintf(where, sizeof where, "flag %s", name);
        snprintf(L->origin, sizeof L->origin, "%s%s", where, old ? " (old name)" : "");
        if (old)
            warn(L, "flag %s is an old name: use %s%s (the old one works until the next release)",
                 name, o->flag ? o->flag : o->key, o->flag && file ? "-file" : "");
        if (file)
            apply_secret_file(L, o, value, where);
        else
            apply_text(L, o, value, where);
    }
}

/* Checks the table itself; problems are bugs in the service, reported as "spec NAME: ...". */
static void check_spec(struct loader *L)
{
    const struct cfg_spec *spec = L->spec;
    const char *name = spec->name ? spec->name : "?";
    if (!spec->options && spec->n_options) {
        emit(&L->sink, "spec %s: options is NULL", name);
        return;
    }
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        const char *k = o->key;
        bool ok = k && *k && strlen(k) < CFG_MAX_KEY - 8 && k[0] != '.' && k[strlen(k) - 1] != '.';
        for (const char *p = k; ok && *p; p++)
            ok = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
                 (*p == '.' && p[1] != '.');
        if (!ok) {
            emit(&L->sink, "spec %s: option %zu: key '%s' is not a dotted path of [a-z0-9_]", name,
                 i, k ? k : "(null)");
            continue;
        }
        if (o->type < CFG_INT || o->type > CFG_UINT64)
            emit(&L->sink, "spec %s: %s: unknown type %d", name, k, (int)o->type);
        if (o->flag && (strncmp(o->flag, "--", 2) != 0 || strlen(o->flag) < 3 ||
                        strlen(o->flag) >= CFG_MAX_KEY - 8 || strchr(o->flag, '=') ||
                        strcmp(o->flag, "--help") == 0 || strcmp(o->flag, CFG_CONFIG_FLAG) == 0))
            emit(&L->sink, "spec %s: %s: flag '%s' must be --name, not --help or --config", name, k,
                 o->flag);
        if (o->env && (!*o->env || strlen(o->env) >= CFG_MAX_KEY - 8))
            emit(&L->sink, "spec %s: %s: bad environment variable name", name, k);
        if (is_secret(o) && o->type != CFG_STRING)
            emit(&L->sink, "spec %s: %s: only string options can be secret", name, k);
        if (o->type == CFG_ENUM && (!o->choices || !o->choices[0].name))
            emit(&L->sink, "spec %s: %s: an enum needs choices", name, k);
        if ((o->type == CFG_INT || o->type == CFG_LONG || o->type == CFG_UINT64 ||
             o->type == CFG_DURATION || o->type == CFG_SIZE) &&
            (o->min > o->max || (o->type != CFG_INT && o->type != CFG_LONG && o->min < 0) ||
             (o->type == CFG_INT && (o->min < INT_MIN || o->max > INT_MAX))))
            emit(&L->sink, "spec %s: %s: bad range [%lld, %lld]", name, k, (long long)o->min,
                 (long long)o->max);
        if ((o->type == CFG_DOUBLE || o->type == CFG_FLOAT) && !(o->dmin <= o->dmax))
            emit(&L->sink, "spec %s: %s: bad range", name, k);
        for (size_t j = 0; j < i; j++) {
            const struct cfg_option *p = &spec->options[j];
            size_t pl = p->key ? strlen(p->key) : 0, kl = strlen(k);
            if (p->key && strcmp(p->key, k) == 0)
                emit(&L->sink, "spec %s: %s: key listed twice", name, k);
            else if (p->key && ((strncmp(p->key, k, pl) == 0 && k[pl] == '.') ||
                                (strncmp(k, p->key, kl) == 0 && p->key[kl] == '.')))
                emit(&L->sink, "spec %s: %s and %s: a key cannot also be a section", name, p->key,
                     k);
            if (o->flag && p->flag && strcmp(o->flag, p->flag) == 0)
                emit(&L->sink, "spec %s: %s: flag %s listed twice", name, k, o->flag);
            if (o->env && p->env && strcmp(o->env, p->env) == 0)
                emit(&L->sink, "spec %s: %s: environment variable %s listed twice", name, k,
                     o->env);
            if ((o->old_flag && p->flag && strcmp(o->old_flag, p->flag) == 0) ||
                (p->old_flag && o->flag && strcmp(p->old_flag, o->flag) == 0))
                emit(&L->sink, "spec %s: %s: an old flag is another option's flag", name, k);
        }
    }
}

int cfg_load(const struct cfg_spec *spec, void *conf, int argc, char *const *argv, buf_t *errs)
{
    return cfg_load_ex(spec, conf, argc, argv, errs, NULL);
}

/* Zeroes the option fields and applies the defaults. */
static void apply_defaults(struct loader *L)
{
    const struct cfg_spec *spec = L->spec;
    for (size_t i = 0; i < spec->n_options; i++)
        zero_field(&spec->options[i], L->conf);
    snprintf(L->origin, sizeof L->origin, "default");
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        char where[CFG_MAX_KEY + 32];
        snprintf(where, sizeof where, "spec %s: %s: default", spec->name ? spec->name : "?",
                 o->key);
        note_origin(L, o);
        if (o->def)
            apply_text(L, o, o->def, where);
        else if (o->type == CFG_ENUM && o->choices && o->choices[0].name)
            *(int *)field(o, L->conf) = o->choices[0].value; /* cfg.h: the first choice */
    }
}

int cfg_defaults(const struct cfg_spec *spec, void *conf)
{
    struct loader L = {.spec = spec, .conf = conf};
    check_spec(&L);
    if (!L.sink.n)
        apply_defaults(&L);
    if (L.sink.n || L.sink.nomem) {
        cfg_release(spec, conf);
        return L.sink.nomem ? ERR_NOMEM : ERR_INVAL;
    }
    return ERR_OK;
}

int cfg_load_ex(const struct cfg_spec *spec, void *conf, int argc, char *const *argv, buf_t *errs,
                struct cfg_trace *trace)
{
    struct loader L = {.spec = spec, .conf = conf, .sink = {.errs = errs}, .trace = trace};
    check_spec(&L);
    if (L.sink.n)
        return L.sink.nomem ? ERR_NOMEM : ERR_INVAL;

    bool help = false;
    const char *config = NULL;
    scan_flags(&L, argc, argv, false, &help, &config);
    if (help) {
        buf_t h;
        buf_init(&h, 0);
        int rc = cfg_help(spec, &h);
        if (!rc)
            fputs(h.data, stdout);
        buf_free(&h);
        return rc ? rc : CFG_HELP;
    }

    apply_defaults(&L);

    if (!config)
        config = env_value(CFG_CONFIG_ENV);
    if (config) {
        cfg_doc_t *doc = NULL;
        int rc = doc_load(&doc, config, &L.sink);
        if (rc == ERR_NOMEM)
            L.sink.nomem = true;
        if (!rc)
            apply_file(&L, doc);
        cfg_doc_free(&doc);
    }
    apply_env(&L);
    scan_flags(&L, argc, argv, true, &help, &config);

    if (L.sink.n || L.sink.nomem) {
        cfg_release(spec, conf);
        return L.sink.nomem ? ERR_NOMEM : ERR_INVAL;
    }
    return ERR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Showing                                                                                     */

static int append_quoted(buf_t *out, const char *s)
{
    int rc = buf_append(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            rc = buf_append_str(out, "\\n");
        else if (*p == '\t')
            rc = buf_append_str(out, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            rc = buf_printf(out, "\\x%02x", *p);
        else
            rc = buf_append(out, p, 1);
    }
    return rc ? rc : buf_append(out, "\"", 1);
}

/* The value of o in conf as YAML text. */
static int append_value(buf_t *out, const struct cfg_option *o, const void *conf)
{
    const void *f = cfield(o, conf);
    char t[64];
    switch (o->type) {
    case CFG_INT:
        return buf_printf(out, "%d", *(const int *)f);
    case CFG_LONG:
        return buf_printf(out, "%ld", *(const long *)f);
    case CFG_UINT64:
        return buf_printf(out, "%llu", (unsigned long long)*(const uint64_t *)f);
    case CFG_DOUBLE:
        fmt_double(*(const double *)f, t, sizeof t);
        return buf_append_str(out, t);
    case CFG_FLOAT:
        fmt_float(*(const float *)f, t, sizeof t);
        return buf_append_str(out, t);
    case CFG_BOOL:
        return buf_append_str(out, *(const bool *)f ? "true" : "false");
    case CFG_STRING: {
        const char *s = *(char *const *)f;
        if (!s)
            return buf_append_str(out, "null");
        return append_quoted(out, is_secret(o) ? "***" : s);
    }
    case CFG_ENUM: {
        int v = *(const int *)f;
        for (int i = 0; o->choices[i].name; i++)
            if (o->choices[i].value == v)
                return buf_append_str(out, o->choices[i].name);
        return buf_printf(out, "%d", v); /* the service changed it: show what is there */
    }
    case CFG_DURATION:
        fmt_duration(*(const int64_t *)f, t, sizeof t);
        return buf_append_str(out, t);
    case CFG_SIZE:
        fmt_size(*(const size_t *)f, t, sizeof t);
        return buf_append_str(out, t);
    case CFG_STRLIST: {
        const struct cfg_strlist *l = f;
        int rc = buf_append_str(out, "[");
        for (size_t i = 0; !rc && i < l->n; i++) {
            if (i)
                rc = buf_append_str(out, ", ");
            if (!rc)
                rc = append_quoted(out, l->items[i]);
        }
        return rc ? rc : buf_append_str(out, "]");
    }
    }
    return ERR_INVAL;
}

void cfg_log(const struct cfg_spec *spec, const void *conf)
{
    buf_t b;
    buf_init(&b, 4096);
    for (size_t i = 0; i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        buf_reset(&b);
        if (append_value(&b, o, conf) == ERR_OK)
            log_detail("config %s = %s", o->key, b.data);
        else
            log_detail("config %s = (too long to show)", o->key);
    }
    buf_free(&b);
}

/* Emits the options under `prefix` ("" or "trainer.optim.") at indent `depth`. */
static int render_level(const struct cfg_spec *spec, const void *conf,
                        const struct cfg_origin *origins, buf_t *out, const char *prefix, int depth)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < spec->n_options; i++) {
        const char *k = spec->options[i].key;
        if (strncmp(k, prefix, pl) != 0)
            continue;
        const char *rest = k + pl, *dot = strchr(rest, '.');
        if (!dot) {
            int rc = buf_printf(out, "%*s%s: ", depth * 2, "", rest);
            if (!rc)
                rc = append_value(out, &spec->options[i], conf);
            if (!rc && origins)
                rc = buf_printf(out, "  # %s", origins[i].where[0] ? origins[i].where : "unset");
            if (!rc)
                rc = buf_append_str(out, "\n");
            if (rc)
                return rc;
            continue;
        }
        size_t cl = (size_t)(dot - k) + 1; /* prefix + component + '.' */
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strncmp(spec->options[j].key, k, cl) == 0;
        if (seen)
            continue; /* the whole subsection was emitted at its first key */
        char sub[CFG_MAX_KEY];
        snprintf(sub, sizeof sub, "%.*s", (int)cl, k);
        int rc = buf_printf(out, "%*s%.*s:\n", depth * 2, "", (int)(dot - rest), rest);
        if (!rc)
            rc = render_level(spec, conf, origins, out, sub, depth + 1);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

int cfg_render_yaml(const struct cfg_spec *spec, const void *conf, buf_t *out)
{
    return render_level(spec, conf, NULL, out, "", 0);
}

int cfg_render_yaml_origins(const struct cfg_spec *spec, const void *conf,
                            const struct cfg_origin *origins, buf_t *out)
{
    return render_level(spec, conf, origins, out, "", 0);
}

static const char *metavar(const struct cfg_option *o)
{
    switch (o->type) {
    case CFG_INT:
    case CFG_LONG:
    case CFG_UINT64:
        return "N";
    case CFG_DOUBLE:
    case CFG_FLOAT:
        return "X";
    case CFG_BOOL:
        return "BOOL";
    case CFG_STRING:
        return "TEXT";
    case CFG_ENUM:
        return "NAME";
    case CFG_DURATION:
        return "DURATION";
    case CFG_SIZE:
        return "SIZE";
    case CFG_STRLIST:
        return "A,B,...";
    }
    return "VALUE";
}

int cfg_help(const struct cfg_spec *spec, buf_t *out)
{
    const char *name = spec->name ? spec->name : "program";
    int rc = buf_printf(out,
                        "Usage: %s [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n"
                        "%s%s"
                        "Each option is taken from, in rising precedence: its default, the run "
                        "file, the environment,\nthe command line.\n\n"
                        "  --config FILE  $" CFG_CONFIG_ENV "\n"
                        "      The run file (YAML).\n"
                        "  --help\n"
                        "      Show this help and exit.\n",
                        name, spec->summary ? spec->summary : "", spec->summary ? "\n" : "");
    for (size_t i = 0; !rc && i < spec->n_options; i++) {
        const struct cfg_option *o = &spec->options[i];
        char exp[512];
        expectation(o, exp, sizeof exp);
        if (o->flag)
            rc = buf_printf(out, "  %s %s  %s", o->flag, metavar(o), o->key);
        else
            rc = buf_printf(out, "  %s", o->key);
        if (!rc && o->env)
            rc = buf_printf(out, "  $%s", o->env);
        if (!rc && (o->old_flag || o->old_key || o->old_env))
            rc = buf_printf(out, "\n      Old names (until the next release):%s%s%s%s%s%s",
                            o->old_flag ? " " : "", o->old_flag ? o->old_flag : "",
                            o->old_key ? " " : "", o->old_key ? o->old_key : "",
                            o->old_env ? " $" : "", o->old_env ? o->old_env : "");
        if (!rc && is_secret(o)) {
            rc = buf_append_str(out, "\n      Secret; or from a file:");
            if (!rc && o->flag)
                rc = buf_printf(out, " %s-file FILE,", o->flag);
            if (!rc)
                rc = buf_printf(out, " %s_file", o->key);
            if (!rc && o->env)
                rc = buf_printf(out, ", $%s_FILE", o->env);
            if (!rc)
                rc = buf_append_str(out, ".");
        }
        if (!o->help)
            exp[0] = (char)toupper((unsigned char)exp[0]);
        if (!rc)
            rc =
                buf_printf(out, "\n      %s%s(%s", o->help ? o->help : "", o->help ? " " : "", exp);
        if (!rc && o->def)
            rc = buf_printf(out, "; default %s", is_secret(o) ? "***" : o->def);
        if (!rc)
            rc = buf_append_str(out, ")\n");
    }
    return rc;
}
