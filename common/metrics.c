/* metrics.c - see metrics.h.
 *
 * Values are doubles kept as their bit patterns in 64-bit atomics (adds are compare-and-swap
 * loops), histogram buckets are plain 64-bit atomic counts (not cumulative: rendering sums them).
 * Families and series are singly linked lists in registration order, appended under the registry
 * mutex and never removed before metrics_destroy(), so a handle stays valid without a lock. */
#include "metrics.h"

#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "err.h"
#include "log.h"

#define METRICS_MAX_LABELS   16
#define METRICS_MAX_BOUNDS   64
#define METRICS_MAX_RENDER   (64u << 20) /* a /metrics body larger than this is a bug */
#define METRICS_CONN_LIMIT   64
#define METRICS_CONN_TIMEOUT 10 /* seconds an idle HTTP connection is kept */

enum mtype { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

struct family;

struct metrics_counter {
    _Atomic uint64_t bits; /* a double */
};

struct metrics_gauge {
    _Atomic uint64_t bits;
};

struct metrics_histogram {
    const struct family *fam;
    _Atomic uint64_t *counts; /* n_bounds + 1: per bucket, the last is (bounds[n-1], +Inf) */
    _Atomic uint64_t sum_bits;
};

struct series {
    struct series *next;
    char *labels; /* rendered and escaped: a="x",b="y"; "" when none */
    union {
        struct metrics_counter c;
        struct metrics_gauge g;
        struct metrics_histogram h;
    } u;
};

struct family {
    struct family *next;
    char *name, *help;
    enum mtype type;
    double *bounds; /* histograms */
    size_t n_bounds;
    struct series *series, **series_tail;
};

struct metrics {
    pthread_mutex_t lock; /* families, series lists, the hook */
    struct family *families, **tail;
    void (*prerender)(void *);
    void *prerender_arg;
};

/* ------------------------------------------------------------------------------------------ */
/* Atomic doubles                                                                              */

static double bits_to_d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t d_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double load_d(const _Atomic uint64_t *a)
{
    return bits_to_d(atomic_load_explicit((_Atomic uint64_t *)a, memory_order_relaxed));
}

static void add_d(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ------------------------------------------------------------------------------------------ */
/* Registry                                                                                    */

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->tail = &m->families;
    return m;
}

static void series_free(struct series *s, enum mtype type)
{
    free(s->labels);
    if (type == MT_HISTOGRAM)
        free(s->u.h.counts);
    free(s);
}

void metrics_destroy(metrics_t **mp)
{
    if (!mp || !*mp)
        return;
    metrics_t *m = *mp;
    for (struct family *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (struct series *s = f->series, *sn; s; s = sn) {
            sn = s->next;
            series_free(s, f->type);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
    *mp = NULL;
}

static bool valid_name(const char *s, bool colons)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colons && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Escapes a label value (\\, \", \n) or help text (\\, \n) into out. */
static int append_escaped(buf_t *out, const char *s, bool quotes)
{
    int rc = ERR_OK;
    const char *run = s;
    for (const char *p = s; !rc && *p; p++) {
        const char *esc = *p == '\\'              ? "\\\\"
                          : *p == '\n'            ? "\\n"
                          : (quotes && *p == '"') ? "\\\""
                                                  : NULL;
        if (!esc)
            continue;
        rc = buf_append(out, run, (size_t)(p - run));
        if (!rc)
            rc = buf_append_str(out, esc);
        run = p + 1;
    }
    return rc ? rc : buf_append_str(out, run);
}

/* Reads the NULL-ended name/value pairs and renders them; ERR_INVAL for a bad list. */
static int render_labels(va_list *ap, enum mtype type, char **out)
{
    *out = NULL;
    buf_t b;
    buf_init(&b, 0);
    int rc = buf_append(&b, "", 0);
    const char *names[METRICS_MAX_LABELS];
    size_t n = 0;
    for (;;) {
        /* The analyzer checks this function alone, not from its va_start-ing callers. */
        const char *name =
            va_arg(*ap, const char *); /* NOLINT(clang-analyzer-valist.Uninitialized) */
        if (!name)
            break;
        const char *value = va_arg(*ap, const char *);
        if (!value || n == METRICS_MAX_LABELS || !valid_name(name, false) ||
            strncmp(name, "__", 2) == 0 || (type == MT_HISTOGRAM && strcmp(name, "le") == 0)) {
            rc = ERR_INVAL;
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], name) == 0)
                rc = ERR_INVAL;
        names[n++] = name;
        if (!rc)
            rc = buf_printf(&b, "%s%s=\"", b.len ? "," : "", name);
        if (!rc)
            rc = append_escaped(&b, value, true);
        if (!rc)
            rc = buf_append_str(&b, "\"");
        if (rc)
            break;
    }
    if (rc) {
        buf_free(&b);
        return rc;
    }
    *out = buf_steal(&b);
    return *out ? ERR_OK : ERR_NOMEM;
}

static bool same_bounds(const struct family *f, const double *bounds, size_t n)
{
    if (f->n_bounds != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (f->bounds[i] != bounds[i])
            return false;
    return true;
}

/* Finds or creates the family and the series; returns the series in *out. */
static int reg(metrics_t *m, struct series **out, enum mtype type, const char *name,
               const char *help, const double *bounds, size_t n_bounds, va_list *ap)
{
    *out = NULL;
    if (!m || !valid_name(name, true) || !help || strchr(help, '\n'))
        return ERR_INVAL;
    if (type == MT_HISTOGRAM) {
        if (!bounds || n_bounds == 0 || n_bounds > METRICS_MAX_BOUNDS)
            return ERR_INVAL;
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
                return ERR_INVAL;
    }
    char *labels;
    int rc = render_labels(ap, type, &labels);
    if (rc)
        return rc;

    pthread_mutex_lock(&m->lock);
    struct family *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f && (f->type != type || strcmp(f->help, help) != 0 ||
              (type == MT_HISTOGRAM && !same_bounds(f, bounds, n_bounds)))) {
        rc = ERR_INVAL;
        goto out_unlock;
    }
    if (f) {
        for (struct series *s = f->series; s; s = s->next) {
            if (strcmp(s->labels, labels) == 0) {
                *out = s;
                goto out_unlock;
            }
        }
    }
    struct series *s = calloc(1, sizeof *s);
    if (!s) {
        rc = ERR_NOMEM;
        goto out_unlock;
    }
    bool new_family = !f;
    if (new_family) {
        f = calloc(1, sizeof *f);
        if (f) {
            f->name = strdup(name);
            f->help = strdup(help);
            f->type = type;
            f->series_tail = &f->series;
            if (type == MT_HISTOGRAM) {
                f->bounds = malloc(n_bounds * sizeof *f->bounds);
                if (f->bounds) {
                    memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
                    f->n_bounds = n_bounds;
                }
            }
        }
        if (!f || !f->name || !f->help || (type == MT_HISTOGRAM && !f->bounds)) {
            if (f) {
                free(f->name);
                free(f->help);
                free(f->bounds);
                free(f);
            }
            free(s);
            rc = ERR_NOMEM;
            goto out_unlock;
        }
    }
    s->labels = labels;
    labels = NULL;
    if (type == MT_HISTOGRAM) {
        s->u.h.fam = f;
        s->u.h.counts = malloc((f->n_bounds + 1) * sizeof *s->u.h.counts);
        if (!s->u.h.counts) {
            free(s->labels);
            free(s);
            if (new_family) {
                free(f->name);
                free(f->help);
                free(f->bounds);
                free(f);
            }
            rc = ERR_NOMEM;
            goto out_unlock;
        }
        for (size_t i = 0; i <= f->n_bounds; i++)
            atomic_init(&s->u.h.counts[i], 0);
        atomic_init(&s->u.h.sum_bits, d_to_bits(0));
    } else {
        atomic_init(&s->u.c.bits, d_to_bits(0));
    }
    if (new_family) {
        *m->tail = f;
        m->tail = &f->next;
    }
    *f->series_tail = s;
    f->series_tail = &s->next;
    *out = s;
out_unlock:
    pthread_mutex_unlock(&m->lock);
    free(labels);
    return rc;
}

int metrics_counter_register(metrics_t *m, metrics_counter_t **out, const char *name,
                             const char *help, ...)
{
    struct series *s;
    va_list ap;
    va_start(ap, help);
    int rc = reg(m, &s, MT_COUNTER, name, help, NULL, 0, &ap);
    va_end(ap);
    *out = s ? &s->u.c : NULL;
    return rc;
}

int metrics_gauge_register(metrics_t *m, metrics_gauge_t **out, const char *name, const char *help,
                           ...)
{
    struct series *s;
    va_list ap;
    va_start(ap, help);
    int rc = reg(m, &s, MT_GAUGE, name, help, NULL, 0, &ap);
    va_end(ap);
    *out = s ? &s->u.g : NULL;
    return rc;
}

int metrics_histogram_register(metrics_t *m, metrics_histogram_t **out, const char *name,
                               const char *help, const double *bounds, size_t n_bounds, ...)
{
    struct series *s;
    va_list ap;
    va_start(ap, n_bounds);
    int rc = reg(m, &s, MT_HISTOGRAM, name, help, bounds, n_bounds, &ap);
    va_end(ap);
    *out = s ? &s->u.h : NULL;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Updates                                                                                     */

void metrics_counter_add(metrics_counter_t *c, double v)
{
    if (c && v >= 0) /* false for NaN too */
        add_d(&c->bits, v);
}

void metrics_counter_inc(metrics_counter_t *c)
{
    metrics_counter_add(c, 1);
}

double metrics_counter_value(const metrics_counter_t *c)
{
    return c ? load_d(&c->bits) : 0;
}

void metrics_gauge_set(metrics_gauge_t *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, d_to_bits(v), memory_order_relaxed);
}

void metrics_gauge_add(metrics_gauge_t *g, double v)
{
    if (g)
        add_d(&g->bits, v);
}

double metrics_gauge_value(const metrics_gauge_t *g)
{
    return g ? load_d(&g->bits) : 0;
}

void metrics_histogram_observe(metrics_histogram_t *h, double v)
{
    if (!h || isnan(v))
        return;
    const double *b = h->fam->bounds;
    size_t lo = 0, hi = h->fam->n_bounds; /* first i with v <= b[i], or n */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    add_d(&h->sum_bits, v);
}

uint64_t metrics_histogram_count(const metrics_histogram_t *h)
{
    if (!h)
        return 0;
    uint64_t n = 0;
    for (size_t i = 0; i <= h->fam->n_bounds; i++)
        n += atomic_load_explicit((_Atomic uint64_t *)&h->counts[i], memory_order_relaxed);
    return n;
}

void metrics_set_prerender(metrics_t *m, void (*fn)(void *arg), void *arg)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->prerender = fn;
    m->prerender_arg = arg;
    pthread_mutex_unlock(&m->lock);
}

/* ------------------------------------------------------------------------------------------ */
/* Rendering                                                                                   */

/* A sample value as Prometheus reads it: shortest round-trip %g, +Inf, -Inf, NaN. */
static void fmt_value(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, outlen, "%sInf", v > 0 ? "+" : "-");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static int render_sample(buf_t *out, const char *name, const char *suffix, const char *labels,
                         const char *extra, double v)
{
    char val[40];
    fmt_value(v, val, sizeof val);
    bool any = *labels || *extra;
    return buf_printf(out, "%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
                      *labels && *extra ? "," : "", extra, any ? "}" : "", val);
}

static int render_family(const struct family *f, buf_t *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int rc = buf_printf(out, "# HELP %s ", f->name);
    if (!rc)
        rc = append_escaped(out, f->help, false);
    if (!rc)
        rc = buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
    for (const struct series *s = f->series; !rc && s; s = s->next) {
        if (f->type != MT_HISTOGRAM) {
            rc = render_sample(out, f->name, "", s->labels, "", load_d(&s->u.c.bits));
            continue;
        }
        uint64_t cum = 0;
        char le[48], bound[40];
        for (size_t i = 0; !rc && i <= f->n_bounds; i++) {
            cum +=
                atomic_load_explicit((_Atomic uint64_t *)&s->u.h.counts[i], memory_order_relaxed);
            if (i < f->n_bounds)
                fmt_value(f->bounds[i], bound, sizeof bound);
            else
                snprintf(bound, sizeof bound, "+Inf");
            snprintf(le, sizeof le, "le=\"%s\"", bound);
            rc = render_sample(out, f->name, "_bucket", s->labels, le, (double)cum);
        }
        if (!rc)
            rc = render_sample(out, f->name, "_sum", s->labels, "", load_d(&s->u.h.sum_bits));
        if (!rc)
            rc = render_sample(out, f->name, "_count", s->labels, "", (double)cum);
    }
    return rc;
}

int metrics_render(metrics_t *m, buf_t *out)
{
    pthread_mutex_lock(&m->lock);
    void (*hook)(void *) = m->prerender;
    void *arg = m->prerender_arg;
    pthread_mutex_unlock(&m->lock);
    if (hook)
        hook(arg); /* without the lock: it may register series */

    int rc = buf_append(out, "", 0);
    pthread_mutex_lock(&m->lock);
    for (const struct family *f = m->families; !rc && f; f = f->next)
        rc = render_family(f, out);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP server                                                                                 */

struct metrics_server {
    struct MHD_Daemon *daemon;
    metrics_t *m;
    metrics_health_fn healthy;
    void *health_arg;
    const char *(*why)(void *arg); /* NULL: the 503 says only "unhealthy" */
    metrics_health_fn live;        /* NULL: /livez answers as /healthz does */
    int port;
};

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("metrics http: %s", msg);
}

/* Queues a response whose body is `body` (len bytes); `owned`: malloc'd and handed to MHD. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *ctype,
                             char *body, size_t len, bool owned, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status,
                                  const char *text, const char *allow)
{
    return reply(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text), false,
                 allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    static int seen; /* marks a request whose headers we have had */
    (void)version;
    (void)upload_data;
    struct metrics_server *s = cls;
    if (!*con_cls) {
        *con_cls = &seen;
        return MHD_YES; /* wait for the body (if any) before answering */
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* no route takes a body: discard it */
        return MHD_YES;
    }
    bool is_metrics = strcmp(url, "/metrics") == 0, is_health = strcmp(url, "/healthz") == 0;
    bool is_live = strcmp(url, "/livez") == 0;
    if (!is_metrics && !is_health && !is_live)
        return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "GET, HEAD");
    if (is_live && s->live)
        return s->live(s->health_arg)
                   ? reply_text(conn, MHD_HTTP_OK, "ok\n", NULL)
                   : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not live\n", NULL);
    if (is_health || is_live) {
        bool ok = !s->healthy || s->healthy(s->health_arg);
        const char *why = ok || !s->why ? NULL : s->why(s->health_arg);
        char text[300];
        snprintf(text, sizeof text, "unhealthy%s%s\n", why ? ": " : "", why ? why : "");
        return ok ? reply_text(conn, MHD_HTTP_OK, "ok\n", NULL)
                  : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, NULL);
    }
    buf_t b;
    buf_init(&b, METRICS_MAX_RENDER);
    int rc = metrics_render(s->m, &b);
    if (rc) {
        buf_free(&b);
        log_error("metrics: render: %s", err_str(rc));
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n", NULL);
    }
    size_t len = b.len;
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf_steal(&b), len,
                 true, NULL);
}

void metrics_server_set_health_reason(metrics_server_t *s, const char *(*why)(void *arg))
{
    s->why = why;
}

void metrics_server_set_liveness(metrics_server_t *s, metrics_health_fn live)
{
    s->live = live;
}

int metrics_server_start(metrics_server_t **out, metrics_t *m, const char *bind_addr, int port,
                         metrics_health_fn healthy, void *health_arg)
{
    *out = NULL;
    if (!m || !bind_addr || !*bind_addr || port < 0 || port > 65535)
        return ERR_INVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    if (strcmp(bind_addr, "localhost") == 0)
        bind_addr = "127.0.0.1"; /* the one name we take: no resolver at start-up */
    int gai = getaddrinfo(bind_addr, portstr, &hints, &ai);
    if (gai != 0) {
        log_error("metrics: bind address '%s': %s", bind_addr, gai_strerror(gai));
        return ERR_INVAL;
    }
    struct metrics_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return ERR_NOMEM;
    }
    s->m = m;
    s->healthy = healthy;
    s->health_arg = health_arg;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned int)METRICS_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int)METRICS_CONN_TIMEOUT, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        log_error("metrics: cannot serve HTTP on %s port %d", bind_addr, port);
        free(s);
        return ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : port;
    *out = s;
    return ERR_OK;
}

int metrics_server_port(const metrics_server_t *s)
{
    return s ? s->port : 0;
}

void metrics_server_stop(metrics_server_t **sp)
{
    if (!sp || !*sp)
        return;
    MHD_stop_daemon((*sp)->daemon);
    free(*sp);
    *sp = NULL;
}
