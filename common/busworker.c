/* busworker.c - see busworker.h. */
#include "busworker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "buscheck.h"
#include "err.h"
#include "log.h"
#include "utf8.h"

struct bus_worker {
    void *zctx;
    void *sock;
    char *endpoint;
    char *service;
    char *name;
    char *variant;
    uint8_t rid[17];     /* the routing id, kept across reconnects */
    uint64_t ready_corr; /* the corr of the last Ready: an Error echoing it is a refusal */
    char refused[512];
    unsigned credit;
    int hb_ms;
    struct bus_curve curve;
    size_t max_msg;
    uint64_t last_recv_ms; /* last message from the ledger (monotonic) */
    uint64_t last_send_ms;
    unsigned reconnects;
};

void bus_req_free(struct bus_req **pr)
{
    if (!pr || !*pr)
        return;
    free((*pr)->id);
    free((*pr)->service);
    free((*pr)->payload);
    free(*pr);
    *pr = NULL;
}

static int send_env(bus_worker_t *w, Oaif__V1__Envelope *env)
{
    int rc = bus_send(w->sock, NULL, 0, env);
    if (!rc)
        w->last_send_ms = bus_mono_ms();
    return rc;
}

static int send_ready(bus_worker_t *w)
{
    Oaif__V1__Ready r = OAIF__V1__READY__INIT;
    r.service = w->service;
    r.credit = w->credit;
    r.name = w->name;
    r.variant = w->variant;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.corr = ++w->ready_corr;
    env.body_case = OAIF__V1__ENVELOPE__BODY_READY;
    env.ready = &r;
    return send_env(w, &env);
}

static int connect_sock(bus_worker_t *w)
{
    if (w->sock)
        zmq_close(w->sock);
    w->sock = zmq_socket(w->zctx, ZMQ_DEALER);
    if (!w->sock)
        return ERR_IO;
    /* Without ZMQ_IMMEDIATE here: READY must wait in the queue for the connection, not be
     * dropped; the socket is fresh, so nothing stale is queued. */
    int rc = bus_setup_socket(w->sock, false, ZMQ_DEALER, w->max_msg, &w->curve);
    int zero = 0;
    zmq_setsockopt(w->sock, ZMQ_IMMEDIATE, &zero, sizeof zero);
    if (!rc && zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->rid, sizeof w->rid) != 0)
        rc = ERR_INVAL;
    if (!rc && zmq_connect(w->sock, w->endpoint) != 0) {
        log_error("worker: connect %s: %s", w->endpoint, zmq_strerror(zmq_errno()));
        rc = ERR_INVAL;
    }
    w->last_recv_ms = bus_mono_ms();
    if (!rc)
        send_ready(w); /* queued until connected */
    return rc;
}

int bus_worker_new(bus_worker_t **out, void *zctx, const struct bus_worker_opts *o)
{
    *out = NULL;
    char why[300];
    if (!o->endpoint || !o->service || !*o->service || o->credit == 0)
        return ERR_INVAL;
    if (bus_endpoint_check(o->endpoint, why, sizeof why)) {
        log_error("worker %s: %s", o->service, why);
        return ERR_INVAL;
    }
    bus_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return ERR_NOMEM;
    char host[64] = "host", name[128];
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
    w->zctx = zctx;
    w->endpoint = strdup(o->endpoint);
    w->service = strdup(o->service);
    w->name = strdup(o->name ? o->name : name);
    w->variant = strdup(o->variant ? o->variant : "");
    /* A routing id no other peer can guess (the ledger binds leases to it); never starting with
     * a zero byte, which libzmq reserves. */
    w->rid[0] = 'w';
    if (getrandom(w->rid + 1, sizeof w->rid - 1, 0) != (ssize_t)(sizeof w->rid - 1)) {
        uint64_t x = bus_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)w;
        for (size_t i = 1; i < sizeof w->rid; i++, x = x * 6364136223846793005ull + 1)
            w->rid[i] = (uint8_t)(x >> 56);
    }
    w->credit = o->credit;
    w->hb_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 1000;
    w->max_msg = o->max_msg;
    if (o->curve)
        w->curve = *o->curve;
    if (!w->endpoint || !w->service || !w->name || !w->variant) {
        bus_worker_destroy(&w);
        return ERR_NOMEM;
    }
    int rc = connect_sock(w);
    if (rc) {
        bus_worker_destroy(&w);
        return rc;
    }
    *out = w;
    return ERR_OK;
}

void bus_worker_destroy(bus_worker_t **pw)
{
    if (!pw || !*pw)
        return;
    bus_worker_t *w = *pw;
    if (w->sock) {
        Oaif__V1__Disconnect d = OAIF__V1__DISCONNECT__INIT;
        d.reason = "worker stopping";
        Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
        env.body_case = OAIF__V1__ENVELOPE__BODY_DISCONNECT;
        env.disconnect = &d;
        bus_send(w->sock, NULL, 0, &env);
        zmq_close(w->sock);
    }
    free(w->endpoint);
    free(w->service);
    free(w->name);
    free(w->variant);
    free(w);
    *pw = NULL;
}

void *bus_worker_socket(bus_worker_t *w)
{
    return w->sock;
}

const char *bus_worker_refusal(const bus_worker_t *w)
{
    return w->refused;
}

unsigned bus_worker_reconnects(const bus_worker_t *w)
{
    return w->reconnects;
}

int bus_worker_next_tick_ms(const bus_worker_t *w)
{
    uint64_t now = bus_mono_ms();
    uint64_t due = w->last_send_ms + (uint64_t)w->hb_ms;
    uint64_t dead = w->last_recv_ms + 3 * (uint64_t)w->hb_ms;
    if (dead < due)
        due = dead;
    return due <= now ? 0 : (int)(due - now);
}

int bus_worker_tick(bus_worker_t *w)
{
    uint64_t now = bus_mono_ms();
    if (now - w->last_recv_ms >= 3 * (uint64_t)w->hb_ms) {
        log_warn("worker %s: ledger silent for %d ms; reconnecting to %s", w->service,
                 3 * w->hb_ms, w->endpoint);
        w->reconnects++;
        return connect_sock(w);
    }
    if (now - w->last_send_ms >= (uint64_t)w->hb_ms) {
        Oaif__V1__Heartbeat hb = OAIF__V1__HEARTBEAT__INIT;
        Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
        env.body_case = OAIF__V1__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        if (send_env(w, &env) == ERR_AGAIN)
            w->last_send_ms = now; /* not connected: try again next interval */
    }
    return ERR_OK;
}

/* Handle one message; on a request fills *req. */
static void handle(bus_worker_t *w, struct bus_msg *m, struct bus_req **req)
{
    Oaif__V1__Envelope *env = m->env;
    switch (env->body_case) {
    case OAIF__V1__ENVELOPE__BODY_REQUEST: {
        Oaif__V1__Request *r = env->request;
        struct bus_req *q = calloc(1, sizeof *q);
        if (!q)
            return; /* the lease expires and the ledger re-queues it */
        q->id = strdup(r->id);
        q->service = strdup(r->service);
        q->len = r->payload.len;
        q->payload = malloc(q->len ? q->len : 1);
        if (!q->id || !q->service || !q->payload) {
            bus_req_free(&q);
            return;
        }
        if (q->len)
            memcpy(q->payload, r->payload.data, q->len);
        q->attempt = r->attempt;
        q->deadline_ms = r->deadline_ms;
        *req = q;
        break;
    }
    case OAIF__V1__ENVELOPE__BODY_DISCONNECT:
        /* The ledger does not know us (it restarted, or declared us dead): register again. */
        log_info("worker %s: ledger says '%s'; sending READY", w->service,
                 env->disconnect->reason ? env->disconnect->reason : "");
        send_ready(w);
        break;
    case OAIF__V1__ENVELOPE__BODY_ERROR:
        if (env->corr && env->corr == w->ready_corr) {
            snprintf(w->refused, sizeof w->refused, "%s", env->error->message);
            log_error("worker %s: the ledger refused this worker: %s", w->service,
                      env->error->message);
            break;
        }
        log_warn("worker %s: ledger error: %s", w->service, env->error->message);
        break;
    default:
        break; /* heartbeats: liveness is already noted */
    }
}

int bus_worker_recv(bus_worker_t *w, int timeout_ms, struct bus_req **req)
{
    *req = NULL;
    uint64_t start = bus_mono_ms();
    for (;;) {
        struct bus_msg m;
        int rc = bus_recv(w->sock, false, &m);
        if (rc == ERR_OK || rc == ERR_PROTO)
            w->last_recv_ms = bus_mono_ms();
        if (rc == ERR_OK) {
            handle(w, &m, req);
            bus_msg_clear(&m);
            if (*req)
                return ERR_OK;
            if (w->refused[0])
                return ERR_REMOTE;
            continue;
        }
        if (rc == ERR_PROTO) {
            log_warn("worker %s: dropped a message from the ledger: %s", w->service, m.error);
            continue;
        }
        if (rc != ERR_AGAIN)
            return rc;
        bus_worker_tick(w);
        int wait = bus_worker_next_tick_ms(w);
        if (timeout_ms >= 0) {
            uint64_t spent = bus_mono_ms() - start;
            if (spent >= (uint64_t)timeout_ms)
                return ERR_TIMEOUT;
            if ((uint64_t)wait > (uint64_t)timeout_ms - spent)
                wait = (int)((uint64_t)timeout_ms - spent);
        }
        zmq_pollitem_t it = {w->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, wait) < 0 && zmq_errno() == EINTR)
            return ERR_INTR;
    }
}

static int send_result(bus_worker_t *w, Oaif__V1__Result *res)
{
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_RESULT;
    env.result = res;
    int rc = send_env(w, &env);
    if (rc)
        log_warn("worker %s: result for %s not sent (%s); the ledger will re-lease it",
                 w->service, res->id, err_str(rc));
    return rc;
}

int bus_worker_reply(bus_worker_t *w, const char *id, const void *payload, size_t len,
                     Oaif__V1__Record **records, size_t n)
{
    Oaif__V1__Result res = OAIF__V1__RESULT__INIT;
    res.id = (char *)id;
    res.ok = 1;
    res.payload.data = (uint8_t *)payload;
    res.payload.len = len;
    res.records = records;
    res.n_records = n;
    return send_result(w, &res);
}

int bus_worker_fail(bus_worker_t *w, const char *id, const char *error, bool permanent)
{
    /* A reason quoting what a judge or a model wrote may hold bytes that are not UTF-8, and the
     * ledger refuses a message with such a string: it would never learn why. */
    char *clean = utf8_clean(error ? error : "", error ? strlen(error) : 0);
    Oaif__V1__Result res = OAIF__V1__RESULT__INIT;
    res.id = (char *)id;
    res.ok = 0;
    res.error = clean ? clean : (char *)"worker failed (out of memory describing why)";
    res.permanent = permanent;
    int rc = send_result(w, &res);
    free(clean);
    return rc;
}
