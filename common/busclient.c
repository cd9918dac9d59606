/* busclient.c - see busclient.h. */
#include "busclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "buscheck.h"
#include "err.h"
#include "hmap.h"
#include "log.h"

/* How soon a send that failed because the connection is not up yet is tried again. */
#define BUS_CLIENT_UNSENT_RETRY_MS 10

struct pend {
    char *id;
    char *service;
    uint8_t *payload;
    size_t len;
    unsigned lease_ms, max_attempts;
    bool acked;
    bool unsent;           /* the last send failed (no connection yet): nothing was queued */
    uint64_t next_send_ms; /* monotonic */
    struct pend *next_ready;
};

struct bus_client {
    void *zctx;
    void *sock;
    int resend_ms, reannounce_ms;
    hmap_t *pending;            /* id -> struct pend */
    Oaif__V1__Envelope **stash; /* replies received inside a synchronous call */
    size_t nstash, astash;
    uint64_t corr;
    uint64_t resends;
    char last_error[512];
};

static void pend_free(struct pend *p)
{
    if (!p)
        return;
    free(p->id);
    free(p->service);
    free(p->payload);
    free(p);
}

int bus_client_new(bus_client_t **out, void *zctx, const struct bus_client_opts *o)
{
    *out = NULL;
    char why[300];
    if (!o->endpoint)
        return ERR_INVAL;
    if (bus_endpoint_check(o->endpoint, why, sizeof why)) {
        log_error("client: %s", why);
        return ERR_INVAL;
    }
    bus_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->zctx = zctx;
    c->resend_ms = o->resend_ms > 0 ? o->resend_ms : 1000;
    c->reannounce_ms = o->reannounce_ms > 0 ? o->reannounce_ms : 5000;
    c->pending = hmap_new();
    c->sock = zmq_socket(zctx, ZMQ_DEALER);
    if (!c->pending || !c->sock) {
        bus_client_destroy(&c);
        return ERR_NOMEM;
    }
    int rc = bus_setup_socket(c->sock, false, ZMQ_DEALER, o->max_msg, o->curve);
    if (!rc && zmq_connect(c->sock, o->endpoint) != 0) {
        log_error("client: connect %s: %s", o->endpoint, zmq_strerror(zmq_errno()));
        rc = ERR_INVAL;
    }
    if (rc) {
        bus_client_destroy(&c);
        return rc;
    }
    *out = c;
    return ERR_OK;
}

void bus_client_destroy(bus_client_t **pc)
{
    if (!pc || !*pc)
        return;
    bus_client_t *c = *pc;
    if (c->pending) {
        size_t pos = 0;
        void *v;
        while (hmap_next(c->pending, &pos, NULL, NULL, &v))
            pend_free(v);
        hmap_destroy(&c->pending);
    }
    for (size_t i = 0; i < c->nstash; i++)
        oaif__v1__envelope__free_unpacked(c->stash[i], NULL);
    free(c->stash);
    if (c->sock)
        zmq_close(c->sock);
    free(c);
    *pc = NULL;
}

void *bus_client_socket(bus_client_t *c)
{
    return c->sock;
}

size_t bus_client_pending(const bus_client_t *c)
{
    return hmap_count(c->pending);
}

uint64_t bus_client_resends(const bus_client_t *c)
{
    return c->resends;
}

const char *bus_client_last_error(const bus_client_t *c)
{
    return c->last_error;
}

static void send_submit(bus_client_t *c, struct pend *p)
{
    Oaif__V1__Submit s = OAIF__V1__SUBMIT__INIT;
    s.id = p->id;
    s.service = p->service;
    s.payload.data = p->payload;
    s.payload.len = p->len;
    s.lease_ms = p->lease_ms;
    s.max_attempts = p->max_attempts;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_SUBMIT;
    env.submit = &s;
    /* A failure (the connection is not up yet: ZMQ_IMMEDIATE) queued nothing, so it is retried
     * soon; a sent request is resent only after resend_ms without an ack. */
    p->unsent = bus_send(c->sock, NULL, 0, &env) != ERR_OK;
    int wait_ms = p->unsent  ? BUS_CLIENT_UNSENT_RETRY_MS
                  : p->acked ? c->reannounce_ms
                             : c->resend_ms;
    p->next_send_ms = bus_mono_ms() + (uint64_t)wait_ms;
}

int bus_client_submit(bus_client_t *c, const char *service, const char *id, const void *payload,
                      size_t len, unsigned lease_ms, unsigned max_attempts)
{
    if (!service || !*service || !id || !*id)
        return ERR_INVAL;
    /* The ledger would refuse it; say so now, with the reason in bus_client_last_error. */
    if (bus_check_id(id, BUS_ID_MAX, "submit: id", c->last_error, sizeof c->last_error))
        return ERR_INVAL;
    size_t idlen = strlen(id);
    if (hmap_get(c->pending, id, idlen))
        return ERR_EXISTS;
    struct pend *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->id = strdup(id);
    p->service = strdup(service);
    p->payload = malloc(len ? len : 1);
    if (!p->id || !p->service || !p->payload || hmap_put(c->pending, id, idlen, p)) {
        pend_free(p);
        return ERR_NOMEM;
    }
    if (len)
        memcpy(p->payload, payload, len);
    p->len = len;
    p->lease_ms = lease_ms;
    p->max_attempts = max_attempts;
    send_submit(c, p);
    return ERR_OK;
}

static void resend_due(bus_client_t *c)
{
    uint64_t now = bus_mono_ms();
    size_t pos = 0;
    void *v;
    while (hmap_next(c->pending, &pos, NULL, NULL, &v)) {
        struct pend *p = v;
        if (p->next_send_ms <= now) {
            c->resends += !p->unsent;
            send_submit(c, p);
        }
    }
}

static int next_due_ms(bus_client_t *c)
{
    uint64_t now = bus_mono_ms(), best = UINT64_MAX;
    size_t pos = 0;
    void *v;
    while (hmap_next(c->pending, &pos, NULL, NULL, &v)) {
        struct pend *p = v;
        if (p->next_send_ms < best)
            best = p->next_send_ms;
    }
    if (best == UINT64_MAX)
        return -1;
    return best <= now ? 0 : (int)(best - now);
}

/* Handle one async message. Returns true if env was a reply delivered (or stashed). */
static bool on_async(bus_client_t *c, Oaif__V1__Envelope *env, bus_reply_fn cb, void *ctx)
{
    if (env->body_case == OAIF__V1__ENVELOPE__BODY_ACK) {
        struct pend *p = hmap_get(c->pending, env->ack->id, strlen(env->ack->id));
        if (p && !p->acked) {
            p->acked = true;
            p->next_send_ms = bus_mono_ms() + (uint64_t)c->reannounce_ms;
        }
        return false;
    }
    if (env->body_case == OAIF__V1__ENVELOPE__BODY_REPLY) {
        struct pend *p = hmap_del(c->pending, env->reply->id, strlen(env->reply->id));
        if (!p)
            return false; /* a repeat of one we already delivered */
        pend_free(p);
        if (cb)
            cb(ctx, env->reply);
        return true;
    }
    if (env->body_case == OAIF__V1__ENVELOPE__BODY_ERROR) {
        snprintf(c->last_error, sizeof c->last_error, "%s", env->error->message);
        /* An error about a submit (bad service name, bad fields) ends that request: deliver it
         * as a failed reply so the caller is not left waiting forever. */
        if (env->error->id && *env->error->id) {
            struct pend *p = hmap_del(c->pending, env->error->id, strlen(env->error->id));
            if (p) {
                Oaif__V1__Reply r = OAIF__V1__REPLY__INIT;
                r.id = p->id;
                r.service = p->service;
                r.outcome = OAIF__V1__OUTCOME__OUTCOME_FAILED;
                r.error = env->error->message;
                if (cb)
                    cb(ctx, &r);
                pend_free(p);
                return true;
            }
        }
        log_warn("client: ledger error: %s", env->error->message);
    }
    return false;
}

int bus_client_poll(bus_client_t *c, int timeout_ms, bus_reply_fn cb, void *ctx)
{
    int delivered = 0;
    /* Replies stashed by a synchronous call come first. */
    for (size_t i = 0; i < c->nstash; i++) {
        Oaif__V1__Envelope *env = c->stash[i];
        /* Still pending? (A repeat of the reply may have been stashed twice.) Delivered once,
         * and forgotten, exactly like a reply read here. */
        struct pend *p = hmap_del(c->pending, env->reply->id, strlen(env->reply->id));
        if (p) {
            pend_free(p);
            if (cb)
                cb(ctx, env->reply);
            delivered++;
        }
        oaif__v1__envelope__free_unpacked(env, NULL);
    }
    c->nstash = 0;
    uint64_t start = bus_mono_ms();
    for (;;) {
        struct bus_msg m;
        int rc;
        while ((rc = bus_recv(c->sock, false, &m)) == ERR_OK || rc == ERR_PROTO) {
            if (rc == ERR_OK && on_async(c, m.env, cb, ctx))
                delivered++;
            bus_msg_clear(&m);
        }
        if (rc != ERR_AGAIN)
            return rc;
        resend_due(c);
        if (delivered || timeout_ms == 0)
            return delivered;
        int wait = next_due_ms(c);
        if (timeout_ms > 0) {
            uint64_t spent = bus_mono_ms() - start;
            if (spent >= (uint64_t)timeout_ms)
                return delivered;
            int left = (int)((uint64_t)timeout_ms - spent);
            if (wait < 0 || wait > left)
                wait = left;
        }
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, wait) < 0 && zmq_errno() == EINTR)
            return ERR_INTR;
    }
}

/* Keep a reply that arrived during a synchronous call; the envelope is taken. */
static void stash(bus_client_t *c, Oaif__V1__Envelope *env)
{
    if (c->nstash == c->astash) {
        size_t n = c->astash ? c->astash * 2 : 16;
        Oaif__V1__Envelope **p = realloc(c->stash, n * sizeof *p);
        if (!p) {
            oaif__v1__envelope__free_unpacked(env, NULL);
            return; /* the request stays pending and is re-announced */
        }
        c->stash = p;
        c->astash = n;
    }
    c->stash[c->nstash++] = env;
}

int bus_client_query(bus_client_t *c, Oaif__V1__Envelope *q, int timeout_ms,
                     Oaif__V1__Envelope **out)
{
    *out = NULL;
    c->last_error[0] = '\0';
    q->corr = ++c->corr;
    uint64_t start = bus_mono_ms(), next_send = 0;
    for (;;) {
        uint64_t now = bus_mono_ms();
        if (now - start >= (uint64_t)timeout_ms)
            return ERR_TIMEOUT;
        if (now >= next_send) {
            bool sent = bus_send(c->sock, NULL, 0, q) == ERR_OK;
            next_send = now + (uint64_t)(sent ? c->resend_ms : BUS_CLIENT_UNSENT_RETRY_MS);
        }
        struct bus_msg m;
        int rc;
        while ((rc = bus_recv(c->sock, false, &m)) == ERR_OK || rc == ERR_PROTO) {
            if (rc != ERR_OK) {
                if (m.corr != q->corr)
                    continue;
                /* Our answer, undecodable (a record id stored before ids had to be UTF-8):
                 * asking again would get the same bytes, so say why now. */
                snprintf(c->last_error, sizeof c->last_error, "the ledger's answer: %s", m.error);
                return ERR_PROTO;
            }
            Oaif__V1__Envelope *env = m.env;
            if (env->corr == q->corr && env->body_case != OAIF__V1__ENVELOPE__BODY_REPLY) {
                if (env->body_case == OAIF__V1__ENVELOPE__BODY_ERROR) {
                    snprintf(c->last_error, sizeof c->last_error, "%s", env->error->message);
                    bus_msg_clear(&m);
                    return ERR_REMOTE;
                }
                *out = env; /* taken from m */
                return ERR_OK;
            }
            if (env->body_case == OAIF__V1__ENVELOPE__BODY_REPLY &&
                hmap_get(c->pending, env->reply->id, strlen(env->reply->id))) {
                stash(c, env);
                m.env = NULL;
            } else {
                on_async(c, env, NULL, NULL);
            }
            bus_msg_clear(&m);
        }
        if (rc != ERR_AGAIN)
            return rc;
        now = bus_mono_ms();
        uint64_t until = next_send;
        if (until > start + (uint64_t)timeout_ms)
            until = start + (uint64_t)timeout_ms;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, until > now ? (long)(until - now) : 0) < 0 && zmq_errno() == EINTR)
            return ERR_INTR;
    }
}

int bus_client_call(bus_client_t *c, const char *service, const char *id, const void *payload,
                    size_t len, int timeout_ms, Oaif__V1__Envelope **out)
{
    *out = NULL;
    int rc = bus_client_submit(c, service, id, payload, len, 0, 0);
    if (rc)
        return rc;
    uint64_t start = bus_mono_ms();
    size_t idlen = strlen(id);
    for (;;) {
        struct bus_msg m;
        while ((rc = bus_recv(c->sock, false, &m)) == ERR_OK || rc == ERR_PROTO) {
            if (rc != ERR_OK)
                continue;
            Oaif__V1__Envelope *env = m.env;
            bool mine =
                env->body_case == OAIF__V1__ENVELOPE__BODY_REPLY && strcmp(env->reply->id, id) == 0;
            bool my_error = env->body_case == OAIF__V1__ENVELOPE__BODY_ERROR && env->error->id &&
                            strcmp(env->error->id, id) == 0;
            if (mine && hmap_get(c->pending, id, idlen)) {
                pend_free(hmap_del(c->pending, id, idlen));
                *out = env;
                return ERR_OK;
            }
            if (my_error) {
                snprintf(c->last_error, sizeof c->last_error, "%s", env->error->message);
                pend_free(hmap_del(c->pending, id, idlen));
                bus_msg_clear(&m);
                return ERR_REMOTE;
            }
            if (env->body_case == OAIF__V1__ENVELOPE__BODY_REPLY &&
                hmap_get(c->pending, env->reply->id, strlen(env->reply->id))) {
                stash(c, env);
                m.env = NULL;
            } else {
                on_async(c, env, NULL, NULL);
            }
            bus_msg_clear(&m);
        }
        if (rc != ERR_AGAIN)
            return rc;
        resend_due(c);
        uint64_t spent = bus_mono_ms() - start;
        if (timeout_ms >= 0 && spent >= (uint64_t)timeout_ms) {
            pend_free(hmap_del(c->pending, id, idlen));
            return ERR_TIMEOUT;
        }
        int wait = next_due_ms(c);
        if (timeout_ms >= 0 && (wait < 0 || (uint64_t)wait > (uint64_t)timeout_ms - spent))
            wait = (int)((uint64_t)timeout_ms - spent);
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, wait) < 0 && zmq_errno() == EINTR)
            return ERR_INTR;
    }
}

int bus_client_put(bus_client_t *c, const char *put_id, Oaif__V1__Record **records, size_t n,
                   bool if_absent, int timeout_ms)
{
    if (bus_check_id(put_id, BUS_ID_MAX, "put: id", c->last_error, sizeof c->last_error))
        return ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        if (bus_check_id(records[i]->id, BUS_RECORD_ID_MAX, "put: record id", c->last_error,
                         sizeof c->last_error))
            return ERR_INVAL;
    Oaif__V1__Put p = OAIF__V1__PUT__INIT;
    p.id = (char *)put_id;
    p.records = records;
    p.n_records = n;
    p.if_absent = if_absent;
    Oaif__V1__Envelope q = OAIF__V1__ENVELOPE__INIT;
    q.body_case = OAIF__V1__ENVELOPE__BODY_PUT;
    q.put = &p;
    Oaif__V1__Envelope *ans = NULL;
    int rc = bus_client_query(c, &q, timeout_ms, &ans);
    if (ans)
        oaif__v1__envelope__free_unpacked(ans, NULL);
    return rc;
}

int bus_client_get(bus_client_t *c, Oaif__V1__RecordKind kind, const char *const *ids, size_t n,
                   int timeout_ms, Oaif__V1__Envelope **out)
{
    Oaif__V1__Get g = OAIF__V1__GET__INIT;
    g.kind = kind;
    g.ids = (char **)ids;
    g.n_ids = n;
    Oaif__V1__Envelope q = OAIF__V1__ENVELOPE__INIT;
    q.body_case = OAIF__V1__ENVELOPE__BODY_GET;
    q.get = &g;
    return bus_client_query(c, &q, timeout_ms, out);
}

int bus_client_scan(bus_client_t *c, Oaif__V1__RecordKind kind, uint64_t after_seq, unsigned limit,
                    int timeout_ms, Oaif__V1__Envelope **out)
{
    Oaif__V1__Scan s = OAIF__V1__SCAN__INIT;
    s.kind = kind;
    s.after_seq = after_seq;
    s.limit = limit;
    Oaif__V1__Envelope q = OAIF__V1__ENVELOPE__INIT;
    q.body_case = OAIF__V1__ENVELOPE__BODY_SCAN;
    q.scan = &s;
    return bus_client_query(c, &q, timeout_ms, out);
}

int bus_client_lookup(bus_client_t *c, const char *const *ids, size_t n, int timeout_ms,
                      Oaif__V1__Envelope **out)
{
    Oaif__V1__Lookup l = OAIF__V1__LOOKUP__INIT;
    l.ids = (char **)ids;
    l.n_ids = n;
    Oaif__V1__Envelope q = OAIF__V1__ENVELOPE__INIT;
    q.body_case = OAIF__V1__ENVELOPE__BODY_LOOKUP;
    q.lookup = &l;
    return bus_client_query(c, &q, timeout_ms, out);
}

int bus_client_status(bus_client_t *c, int timeout_ms, Oaif__V1__Envelope **out)
{
    Oaif__V1__StatusQuery s = OAIF__V1__STATUS_QUERY__INIT;
    Oaif__V1__Envelope q = OAIF__V1__ENVELOPE__INIT;
    q.body_case = OAIF__V1__ENVELOPE__BODY_STATUS_QUERY;
    q.status_query = &s;
    return bus_client_query(c, &q, timeout_ms, out);
}

int bus_client_scan_each(bus_client_t *c, Oaif__V1__RecordKind kind, int timeout_ms,
                         int (*fn)(void *ctx, const Oaif__V1__Record *r), void *ctx)
{
    uint64_t after = 0;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(c, kind, after, 1000, timeout_ms, &env);
        if (rc)
            return rc;
        const Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; !rc && rs && i < rs->n_records; i++)
            rc = fn(ctx, rs->records[i]);
        bool more = rs && rs->more;
        after = rs ? rs->next_seq : after;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (rc || !more)
            return rc;
    }
}
