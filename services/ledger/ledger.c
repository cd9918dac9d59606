/* ledger.c - see ledger.h. */
#include "ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <zmq.h>

#include "buscheck.h"
#include "err.h"
#include "hmap.h"
#include "kinds.h"
#include "log.h"
#include "metrics.h"

/* ---- column families and record kinds ---------------------------------------------------- */

enum {
    CF_REQUESTS = 0, /* id -> RequestState */
    CF_PENDING,      /* id -> "" while the request is open (rebuilds the queues at start) */
    CF_SEQIDX,       /* [kind:1][seq:8 BE] -> id: commit order per kind (scan by cursor) */
    CF_META,         /* counters */
    CF_KIND0,        /* then one column family per record kind, in kind order */
};

#define NKINDS KINDS_COUNT

/* What one message may ask for (README, Guarantees: Reliability). Each is refused with an Error
 * naming the limit rather than allowed to stall the loop: a Get of ten million ids would hold
 * every other peer for seconds. */
#define GET_IDS_MAX     BUS_GET_IDS_MAX     /* ids per Get or Lookup (buscheck.h) */
#define PUT_RECORDS_MAX BUS_PUT_RECORDS_MAX /* records per Put or Result */
#define SERVICES_MAX    256          /* service names a ledger knows (each is a /metrics series) */
#define TURN_BYTES_MAX  (256u << 20) /* message bytes handled per loop turn */
#define BAD_LOG_MS      10000 /* one warning line per this many ms for what peers can repeat */

static int kind_cf(int kind)
{
    return CF_KIND0 + kind - 1;
}

/* ---- in-memory state --------------------------------------------------------------------- */

struct waiter {
    uint8_t rid[BUS_ROUTING_ID_MAX];
    size_t rid_len;
    struct waiter *next;
};

struct worker;

struct req {
    char *id;
    struct service *svc;
    uint8_t *payload;
    size_t len;
    Oaif__V1__RequestPhase phase;
    unsigned attempts, max_attempts, lease_ms, redeliveries;
    char *last_error;
    uint8_t *reply; /* DONE: the reply payload, until the commit that made it durable */
    size_t reply_len;
    uint64_t submitted_ms, finished_ms;
    struct worker *worker;  /* LEASED: the lessee */
    uint64_t lessee;        /* LEASED: peer_hash of the lessee (routing id + CURVE key); 0 none */
    uint64_t prev_lessee;   /* the lessee whose lease ended last: its late result is accepted */
    bool recovered;         /* re-queued at start and not leased since: any worker of its
                             * service may deliver (its lessee before the restart is unknown) */
    uint64_t deadline_mono; /* LEASED: lease end */
    struct waiter *waiters;
    struct req *qnext; /* queue link */
    bool dirty;        /* state to write in this turn's batch */
    bool finished;     /* DONE or FAILED this turn: answer waiters after the commit */
};

struct worker {
    uint8_t rid[BUS_ROUTING_ID_MAX];
    size_t rid_len;
    struct service *svc;
    char name[64];
    char user[41]; /* CURVE: its public key, from Ready; its messages must keep it */
    unsigned capacity, inflight;
    uint64_t last_recv, last_send; /* monotonic ms */
};

#define RATE_SLOTS 10
struct service {
    char *name;
    char *variant; /* what its workers announced in Ready (a judge's identity); NULL: none */
    struct req *qhead, *qtail;
    uint64_t queued, inflight, completed, failed, redelivered;
    unsigned rr; /* round-robin start among workers */
    uint64_t rate_slot[RATE_SLOTS];
    uint64_t rate_sec[RATE_SLOTS];
};

/* A message whose sending waits for the commit. */
struct outmsg {
    void *sock;
    uint8_t rid[BUS_ROUTING_ID_MAX];
    size_t rid_len;
    uint8_t *data; /* packed envelope */
    size_t len;
    struct req *lease; /* a REQUEST to a worker: if the send fails, the lease is undone */
    struct worker *to; /* with lease: the lessee */
};

struct committed {
    int kind;
    char *id;
    uint64_t seq;
};

/* One generation of work: what a loop turn (or several, while the previous generation is being
 * committed) changed, and what may be sent once that is durable. */
struct gen {
    kv_batch_t *batch;
    struct outmsg *out; /* leases, acks, stored replies: sent after the commit */
    size_t nout, aout;
    struct committed *evs; /* records committed: events after the commit */
    size_t nevs, aevs;
    struct req **finished; /* requests finished: answered, then freed, after the commit */
    size_t nfin, afin;
    hmap_t *staged; /* "kind/id" and "put/id" written in this generation */
};

/* The commit thread: RocksDB write + fsync of one generation while the loop goes on with the
 * next (pipelined group commit). It says it is done with one byte on an inproc PAIR. */
struct committer {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kv_t *kv;
    bool sync;
    kv_batch_t *job; /* non-NULL: a batch to write */
    bool stop;
    int rc;
    double ms;
    void *zctx;
    char endpoint[64];
};

#define COMMIT_RING 1024

struct ledger {
    struct ledger_config cfg;
    void *zctx;
    void *clients, *workers, *events;
    char client_ep[256], worker_ep[256], events_ep[256];
    kv_t *kv;
    struct gen gen[2];
    struct gen *g; /* the generation being filled */
    bool committing; /* the other generation is with the commit thread */
    struct committer cm;
    void *done_sock; /* PAIR: the commit thread's "done" */
    bus_zap_t *zap;
    hmap_t *reqs;     /* open requests (and finished ones until their commit), by id */
    hmap_t *services; /* by name */
    hmap_t *wk;       /* workers by routing id */
    uint64_t seq[NKINDS];   /* last seq per kind */
    uint64_t count[NKINDS]; /* records per kind */
    uint64_t requests_total, dead_letters, dropped;
    uint64_t refused_results; /* results from a peer that held no lease on the request */
    size_t max_record;      /* bytes of one record: ledger.max_record_size, <= a quarter message */
    size_t reply_max;       /* bytes of one answer: bus.max_message_size less the frame's */
    size_t scan_page_bytes; /* a scan page stops past this: SCAN_MAX_BYTES, <= a quarter message */
    struct bus_ratelog bad_log[2];  /* bad messages from clients, workers */
    struct bus_ratelog forged_log;  /* refused results */
    struct bus_ratelog refused_log; /* refused Ready (variant, key, limit) */
    bool counters_dirty;
    /* Full disk: below ledger.min_free_space, new writes (Submit, Put) are refused with
     * ERROR_CODE_UNAVAILABLE and the generation waits; RocksDB never sees the write fail (after
     * a failed log write it refuses every write until reopened, and may abort when closed). */
    bool full;
    uint64_t full_since_mono, full_next_check, refused_full;
    uint64_t free_bytes; /* at the last check */
    uint64_t start_mono, last_timer_mono;
    double commit_ms[COMMIT_RING];
    size_t ncommit;
};

/* ---- helpers ------------------------------------------------------------------------------- */

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t rd_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int grow(void **arr, size_t *alloc, size_t need, size_t elem)
{
    if (need <= *alloc)
        return ERR_OK;
    size_t n = *alloc ? *alloc * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return ERR_NOMEM;
    *arr = p;
    *alloc = n;
    return ERR_OK;
}

static void queue_out(ledger_t *l, void *sock, const uint8_t *rid, size_t rid_len,
                      Oaif__V1__Envelope *env, struct req *lease)
{
    env->version = BUS_PROTOCOL_VERSION;
    if (grow((void **)&l->g->out, &l->g->aout, l->g->nout + 1, sizeof *l->g->out))
        return; /* out of memory: the peer resends (clients) or the lease expires (workers) */
    size_t n = oaif__v1__envelope__get_packed_size(env);
    uint8_t *data = malloc(n ? n : 1);
    if (!data)
        return;
    oaif__v1__envelope__pack(env, data);
    struct outmsg *o = &l->g->out[l->g->nout++];
    o->sock = sock;
    o->rid_len = rid_len;
    memcpy(o->rid, rid, rid_len);
    o->data = data;
    o->len = n;
    o->lease = lease;
    o->to = lease ? lease->worker : NULL;
}

/* The service named `name`, created if new, unless SERVICES_MAX are known (NULL; recover()
 * passes creating_anyway: what is stored is served). */
static struct service *service_get_ex(ledger_t *l, const char *name, bool creating_anyway)
{
    size_t n = strlen(name);
    struct service *s = hmap_get(l->services, name, n);
    if (s)
        return s;
    if (hmap_count(l->services) >= SERVICES_MAX && !creating_anyway)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = strdup(name);
    if (!s->name || hmap_put(l->services, name, n, s)) {
        free(s->name);
        free(s);
        return NULL;
    }
    return s;
}

static struct service *service_get(ledger_t *l, const char *name)
{
    return service_get_ex(l, name, false);
}

/* " (N more since the last warning)" after a rate-limited warning, or "". */
static const char *held_note(uint64_t held, char *buf, size_t len)
{
    buf[0] = '\0';
    if (held)
        snprintf(buf, len, " (%llu more since the last warning)", (unsigned long long)held);
    return buf;
}

/* A peer as a lease remembers it: its routing id and, with CURVE, its public key (FNV-1a). A
 * result counts only from the peer that holds the lease, so it cannot be forged by another. */
static uint64_t peer_hash(const uint8_t *rid, size_t rid_len, const char *user)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < rid_len; i++)
        h = (h ^ rid[i]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = user; p && *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h ? h : 1;
}

static void enqueue(struct service *s, struct req *r, bool front)
{
    if (r->lessee) /* the lease ended: its holder may still answer, once */
        r->prev_lessee = r->lessee;
    r->lessee = 0;
    r->phase = OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_QUEUED;
    r->worker = NULL;
    if (front) {
        r->qnext = s->qhead;
        s->qhead = r;
        if (!s->qtail)
            s->qtail = r;
    } else {
        r->qnext = NULL;
        if (s->qtail)
            s->qtail->qnext = r;
        else
            s->qhead = r;
        s->qtail = r;
    }
    s->queued++;
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    while (r->waiters) {
        struct waiter *w = r->waiters;
        r->waiters = w->next;
        free(w);
    }
    free(r->id);
    free(r->payload);
    free(r->last_error);
    free(r->reply);
    free(r);
}

static void add_waiter(struct req *r, const uint8_t *rid, size_t rid_len)
{
    for (struct waiter *w = r->waiters; w; w = w->next)
        if (w->rid_len == rid_len && memcmp(w->rid, rid, rid_len) == 0)
            return;
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        return; /* the client re-announces */
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->next = r->waiters;
    r->waiters = w;
}

static void set_error(struct req *r, const char *msg)
{
    free(r->last_error);
    r->last_error = strdup(msg ? msg : "");
}

/* Write the request's state into this turn's batch. */
static void persist_req(ledger_t *l, struct req *r)
{
    Oaif__V1__RequestState st = OAIF__V1__REQUEST_STATE__INIT;
    st.id = r->id;
    st.service = r->svc->name;
    st.payload.data = r->payload;
    st.payload.len = r->len;
    st.phase = r->phase;
    st.attempts = r->attempts;
    st.max_attempts = r->max_attempts;
    st.lease_ms = r->lease_ms;
    st.last_error = r->last_error ? r->last_error : "";
    st.reply.data = r->reply;
    st.reply.len = r->reply_len;
    st.submitted_ms = r->submitted_ms;
    st.finished_ms = r->finished_ms;
    st.redeliveries = r->redeliveries;
    size_t n = oaif__v1__request_state__get_packed_size(&st);
    uint8_t stackbuf[4096];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) {
        log_error("ledger: out of memory persisting request %s", r->id);
        return;
    }
    oaif__v1__request_state__pack(&st, buf);
    size_t idlen = strlen(r->id);
    kv_batch_put(l->g->batch, CF_REQUESTS, r->id, idlen, buf, n);
    if (r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_DONE ||
        r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_FAILED)
        kv_batch_delete(l->g->batch, CF_PENDING, r->id, idlen);
    else
        kv_batch_put(l->g->batch, CF_PENDING, r->id, idlen, "", 0);
    if (buf != stackbuf)
        free(buf);
}

static void put_counter(ledger_t *l, const char *name, uint64_t v)
{
    uint8_t b[8];
    be64(b, v);
    kv_batch_put(l->g->batch, CF_META, name, strlen(name), b, 8);
}

/* A service's variant (a judge's identity), kept in the store with the generation being filled,
 * so that after a restart the requests queued for one judge are not served by another: meta key
 * "variant/<service>", removed when the variant is none. */
#define VARIANT_PREFIX "variant/"

static void put_variant(ledger_t *l, const char *service, const char *variant)
{
    char key[sizeof VARIANT_PREFIX + BUS_NAME_MAX];
    int n = snprintf(key, sizeof key, VARIANT_PREFIX "%s", service);
    if (n < 0 || (size_t)n >= sizeof key)
        return; /* not possible: service names are checked to BUS_NAME_MAX */
    if (variant && *variant)
        kv_batch_put(l->g->batch, CF_META, key, (size_t)n, variant, strlen(variant));
    else
        kv_batch_delete(l->g->batch, CF_META, key, (size_t)n);
}

/* The counter, or 0 if it was never written; *rc is set to a store error (damage included). */
static uint64_t get_counter(ledger_t *l, const char *name, int *rc)
{
    void *v = NULL;
    size_t n = 0;
    uint64_t x = 0;
    int r = kv_get(l->kv, CF_META, name, strlen(name), &v, &n);
    if (r == ERR_OK && n == 8)
        x = rd_be64(v);
    else if (r != ERR_NOTFOUND && !*rc)
        *rc = r == ERR_OK ? ERR_CORRUPT : r;
    free(v);
    return x;
}

/* Is there room for `need` more bytes above ledger.min_free_space (statvfs of the store)?
 * The full state is entered when there is not, and left (logged once each) only with a
 * quarter of min_free_space to spare, so that it does not flap. */
static bool room_for(ledger_t *l, size_t need)
{
    if (!l->cfg.min_free)
        return true;
    struct statvfs sv;
    if (statvfs(l->cfg.db_path, &sv) != 0)
        return true; /* unknown: RocksDB will say */
    l->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t now = bus_mono_ms();
    l->full_next_check = now + 100;
    /* The write-ahead log takes the batch, a memtable flush about as much again. */
    uint64_t line = l->cfg.min_free + 2 * (uint64_t)need;
    bool ok = l->free_bytes >= line;
    if (!ok && !l->full) {
        l->full = true;
        l->full_since_mono = now;
        log_error("ledger: the disk of %s is full: %" PRIu64 " bytes free, under "
                  "ledger.min_free_space (%zu) and the write's %zu: new writes are refused "
                  "(ERROR_CODE_UNAVAILABLE) until space returns; nothing acknowledged is lost",
                  l->cfg.db_path, l->free_bytes, l->cfg.min_free, need);
    } else if (l->full && l->free_bytes >= line + l->cfg.min_free / 4) {
        l->full = false;
        log_info("ledger: space is back on %s (%" PRIu64 " bytes free) after %.1f s; %" PRIu64
                 " writes were refused; accepting writes",
                 l->cfg.db_path, l->free_bytes, (double)(now - l->full_since_mono) / 1000.0,
                 l->refused_full);
        l->refused_full = 0;
    }
    return ok;
}

/* A new write of about `bytes` while the disk is full, or that would fill it, is answered at
 * once with ERROR_CODE_UNAVAILABLE (the client may retry later), before it changes anything.
 * Repeats of acknowledged writes are answered before this. The disk is looked at for every new
 * write (a statvfs, about a microsecond): with an estimate up to 100 ms old, a write that came
 * just after something else filled the disk was taken, and its generation then waited for room
 * at commit with every ack unsent, so the client timed out instead of hearing why. */
static bool refuse_if_full(ledger_t *l, struct bus_msg *m, const char *what, const char *id,
                           size_t bytes)
{
    if (!l->cfg.min_free)
        return false;
    room_for(l, kv_batch_bytes(l->g->batch) + bytes);
    if (!l->full)
        return false;
    l->refused_full++;
    bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                   OAIF__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE, id,
                   "%s %s: the ledger's disk is full (%" PRIu64 " bytes free in %s, "
                   "ledger.min_free_space is %zu): writes are refused until space returns",
                   what, id, l->free_bytes, l->cfg.db_path, l->cfg.min_free);
    return true;
}

/* The error code a client gets for a store error: damage is never reported as an absence. */
static Oaif__V1__ErrorCode store_code(int rc)
{
    if (rc == ERR_CORRUPT)
        return OAIF__V1__ERROR_CODE__ERROR_CODE_CORRUPT;
    if (rc == ERR_NOSPACE)
        return OAIF__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE;
    return OAIF__V1__ERROR_CODE__ERROR_CODE_INTERNAL;
}

/* The request is finished (DONE or FAILED): persist it; waiters are answered after commit. */
static void finish(ledger_t *l, struct req *r, Oaif__V1__RequestPhase phase)
{
    struct service *s = r->svc;
    if (r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED) {
        s->inflight--;
        if (r->worker && r->worker->inflight)
            r->worker->inflight--;
    }
    r->worker = NULL;
    r->phase = phase;
    r->finished_ms = bus_now_ms();
    r->finished = true;
    if (phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_DONE) {
        s->completed++;
        uint64_t sec = bus_mono_ms() / 1000;
        int slot = (int)(sec % RATE_SLOTS);
        if (s->rate_sec[slot] != sec) {
            s->rate_sec[slot] = sec;
            s->rate_slot[slot] = 0;
        }
        s->rate_slot[slot]++;
    } else {
        s->failed++;
        l->dead_letters++;
        put_counter(l, "dead_letters", l->dead_letters);
        char shown[300];
        log_warn("ledger: request %s (%s) failed after %u attempts: %s", r->id, s->name,
                 r->attempts, bus_escape(r->last_error, shown, sizeof shown));
    }
    persist_req(l, r);
    if (!grow((void **)&l->g->finished, &l->g->afin, l->g->nfin + 1, sizeof *l->g->finished))
        l->g->finished[l->g->nfin++] = r;
}

static void reply_env_from_state(Oaif__V1__Reply *rep, const Oaif__V1__RequestState *st)
{
    rep->id = st->id;
    rep->service = st->service;
    rep->outcome = st->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_DONE
                       ? OAIF__V1__OUTCOME__OUTCOME_OK
                       : OAIF__V1__OUTCOME__OUTCOME_FAILED;
    rep->payload = st->reply;
    rep->error = st->last_error;
    rep->attempts = st->attempts;
}

/* Re-queue (or fail) a request whose lease ended without a result. */
static void lease_lost(ledger_t *l, struct req *r, const char *why)
{
    struct service *s = r->svc;
    char msg[256];
    snprintf(msg, sizeof msg, "%s (attempt %u)", why, r->attempts);
    set_error(r, msg);
    if (r->attempts >= r->max_attempts) {
        finish(l, r, OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_FAILED);
        return;
    }
    s->inflight--;
    if (r->worker && r->worker->inflight)
        r->worker->inflight--;
    r->redeliveries++;
    s->redelivered++;
    enqueue(s, r, true);
    persist_req(l, r);
}

/* ---- records ------------------------------------------------------------------------------- */

/* Written in a generation not yet visible to kv_get (being filled, or being committed)? */
static bool staged(ledger_t *l, const char *key, size_t klen)
{
    return hmap_get(l->gen[0].staged, key, klen) || hmap_get(l->gen[1].staged, key, klen);
}

/* Stage a record into this turn's batch, assigning its seq. if_absent: skip an existing id.
 * Returns ERR_OK, ERR_EXISTS (skipped), ERR_INVAL (bad kind or id). */
static int stage_record(ledger_t *l, const Oaif__V1__Record *rec, bool if_absent, char *why,
                        size_t whylen)
{
    int k = (int)rec->kind;
    if (k <= 0 || k >= NKINDS) {
        snprintf(why, whylen, "record kind %d is not known", k);
        return ERR_INVAL;
    }
    size_t idlen = rec->id ? strlen(rec->id) : 0;
    if (idlen == 0 || idlen > 512) {
        snprintf(why, whylen, "record id must be 1 to 512 bytes (kind %s)", kinds_name(k));
        return ERR_INVAL;
    }
    char tkey[600];
    int tlen = snprintf(tkey, sizeof tkey, "%d/%s", k, rec->id);
    bool exists = staged(l, tkey, (size_t)tlen);
    if (!exists) {
        void *v = NULL;
        size_t vn = 0;
        int rc = kv_get(l->kv, kind_cf(k), rec->id, idlen, &v, &vn);
        free(v);
        if (rc != ERR_OK && rc != ERR_NOTFOUND) {
            /* Unknown whether it exists: the count would be wrong, and if_absent unkept. */
            snprintf(why, whylen, "%s record '%.256s': store read failed: %s", kinds_name(k),
                     rec->id, err_str(rc));
            return rc;
        }
        exists = rc == ERR_OK;
    }
    if (exists && if_absent)
        return ERR_EXISTS;
    Oaif__V1__Record out = *rec;
    out.seq = ++l->seq[k];
    out.time_ms = bus_now_ms();
    size_t n = oaif__v1__record__get_packed_size(&out);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        snprintf(why, whylen, "out of memory");
        return ERR_NOMEM;
    }
    oaif__v1__record__pack(&out, buf);
    kv_batch_put(l->g->batch, kind_cf(k), rec->id, idlen, buf, n);
    free(buf);
    uint8_t ik[9];
    ik[0] = (uint8_t)k;
    be64(ik + 1, out.seq);
    kv_batch_put(l->g->batch, CF_SEQIDX, ik, 9, rec->id, idlen);
    if (!exists) {
        l->count[k]++;
        char cname[32];
        snprintf(cname, sizeof cname, "count/%s", kinds_name(k));
        put_counter(l, cname, l->count[k]);
    }
    hmap_put(l->g->staged, tkey, (size_t)tlen, (void *)1);
    struct gen *g = l->g;
    if (!grow((void **)&g->evs, &g->aevs, g->nevs + 1, sizeof *g->evs)) {
        g->evs[g->nevs].kind = k;
        g->evs[g->nevs].id = strdup(rec->id);
        g->evs[g->nevs].seq = out.seq;
        g->nevs++;
    }
    return ERR_OK;
}

/* ---- client messages ----------------------------------------------------------------------- */

static bool valid_name(const char *s)
{
    return bus_name_ok(s);
}

/* A record a peer asks to store (Put, or attached to a Result): a known kind, an id, a size
 * within ledger.max_record_size. ERR_OK, or ERR_INVAL / ERR_TOOBIG with why. */
static int check_record(const ledger_t *l, const Oaif__V1__Record *rec, char *why, size_t whylen)
{
    int k = (int)rec->kind;
    if (k <= 0 || k >= NKINDS) {
        snprintf(why, whylen, "record kind %d is not known", k);
        return ERR_INVAL;
    }
    int rc = bus_check_id(rec->id, BUS_RECORD_ID_MAX, "record id", why, whylen);
    if (rc)
        return rc;
    if (rec->data.len > l->max_record) {
        snprintf(why, whylen,
                 "%s record '%s' is %zu bytes, over the limit of %zu "
                 "(ledger.max_record_size, at most a quarter of bus.max_message_size)",
                 kinds_name(k), rec->id, rec->data.len, l->max_record);
        return ERR_TOOBIG;
    }
    return ERR_OK;
}

/* The ids of a Get or Lookup: at most GET_IDS_MAX, each an id. */
static bool check_ids(ledger_t *l, struct bus_msg *m, const char *what, char **ids, size_t n)
{
    char why[300];
    if (n > GET_IDS_MAX) {
        bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG, NULL,
                       "%s: %zu ids, over the limit of %d per message (ask in parts)", what, n,
                       GET_IDS_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (bus_check_id(ids[i], BUS_RECORD_ID_MAX, "id", why, sizeof why)) {
            bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                           OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, NULL, "%s: ids[%zu]: %s", what,
                           i, why);
            return false;
        }
    }
    return true;
}

static void send_ack(ledger_t *l, struct bus_msg *m, const char *id, bool dup)
{
    Oaif__V1__Ack a = OAIF__V1__ACK__INIT;
    a.id = (char *)id;
    a.duplicate = dup;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.corr = m->env->corr;
    env.body_case = OAIF__V1__ENVELOPE__BODY_ACK;
    env.ack = &a;
    queue_out(l, l->clients, m->rid, m->rid_len, &env, NULL);
}

static void on_submit(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Submit *s = m->env->submit;
    uint64_t corr = m->env->corr;
    size_t idlen = s->id ? strlen(s->id) : 0;
    char why[300];
    if (bus_check_id(s->id, BUS_ID_MAX, "submit: id", why, sizeof why) ||
        (strncmp(s->id, "put/", 4) == 0 &&
         snprintf(why, sizeof why,
                  "submit: id '%s': ids beginning with put/ are the ledger's "
                  "(the records of a Put)",
                  s->id) > 0)) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, idlen <= BUS_ID_MAX ? s->id : NULL,
                       "%s", why);
        return;
    }
    struct req *r = hmap_get(l->reqs, s->id, idlen);
    if (r) {
        /* Known and open (or finished this turn): answer with the eventual reply. */
        add_waiter(r, m->rid, m->rid_len);
        send_ack(l, m, s->id, true);
        return;
    }
    void *v = NULL;
    size_t vn = 0;
    int rc = kv_get(l->kv, CF_REQUESTS, s->id, idlen, &v, &vn);
    if (rc == ERR_OK) {
        Oaif__V1__RequestState *st = oaif__v1__request_state__unpack(NULL, vn, v);
        free(v);
        if (!st) {
            bus_send_error(l->clients, m->rid, m->rid_len, corr,
                           OAIF__V1__ERROR_CODE__ERROR_CODE_CORRUPT, s->id,
                           "submit %s: the stored request is damaged (not a RequestState)", s->id);
            return;
        }
        /* Finished long ago: the stored reply, at once (it is durable). */
        Oaif__V1__Reply rep = OAIF__V1__REPLY__INIT;
        reply_env_from_state(&rep, st);
        Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
        env.corr = corr;
        env.body_case = OAIF__V1__ENVELOPE__BODY_REPLY;
        env.reply = &rep;
        queue_out(l, l->clients, m->rid, m->rid_len, &env, NULL);
        oaif__v1__request_state__free_unpacked(st, NULL);
        return;
    }
    if (rc != ERR_NOTFOUND) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr, store_code(rc), s->id,
                       "submit %s: store read failed: %s", s->id, err_str(rc));
        return;
    }
    if (refuse_if_full(l, m, "submit", s->id, idlen + s->payload.len))
        return;
    if (!valid_name(s->service)) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, s->id,
                       "submit %s: service name '%.64s' is not 1-64 characters of [a-z0-9._-]",
                       s->id, s->service ? s->service : "");
        return;
    }
    if (s->payload.len > l->cfg.max_request) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG, s->id,
                       "submit %s: payload of %zu bytes is over the limit of %zu", s->id,
                       s->payload.len, l->cfg.max_request);
        return;
    }
    struct service *svc = service_get(l, s->service);
    if (!svc && hmap_count(l->services) >= SERVICES_MAX) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, s->id,
                       "submit %s: service '%s' would be one more than the %d services a ledger "
                       "serves",
                       s->id, s->service, SERVICES_MAX);
        return;
    }
    r = calloc(1, sizeof *r);
    if (!svc || !r) {
        free(r);
        return; /* the client resends */
    }
    r->id = strdup(s->id);
    r->payload = malloc(s->payload.len ? s->payload.len : 1);
    if (!r->id || !r->payload || hmap_put(l->reqs, s->id, idlen, r)) {
        req_free(r);
        return;
    }
    if (s->payload.len) /* an empty payload has no data (memcpy's source must not be NULL) */
        memcpy(r->payload, s->payload.data, s->payload.len);
    r->len = s->payload.len;
    r->svc = svc;
    /* A client's own values, within the ledger's limits: a request cannot hold a worker for a
     * week or be retried forever. */
    r->max_attempts = s->max_attempts ? s->max_attempts : (uint32_t)l->cfg.max_attempts;
    if (r->max_attempts > (unsigned)l->cfg.max_attempts_limit)
        r->max_attempts = (unsigned)l->cfg.max_attempts_limit;
    r->lease_ms = s->lease_ms ? s->lease_ms : (unsigned)l->cfg.lease_ms;
    if (r->lease_ms > l->cfg.lease_limit_ms)
        r->lease_ms = (unsigned)l->cfg.lease_limit_ms;
    r->submitted_ms = bus_now_ms();
    enqueue(svc, r, false);
    add_waiter(r, m->rid, m->rid_len);
    persist_req(l, r);
    l->requests_total++;
    l->counters_dirty = true; /* written once per turn, in commit_and_send */
    send_ack(l, m, s->id, false);
}

static void on_put(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Put *p = m->env->put;
    uint64_t corr = m->env->corr;
    size_t idlen = p->id ? strlen(p->id) : 0;
    char cwhy[300];
    if (bus_check_id(p->id, BUS_ID_MAX, "put: id", cwhy, sizeof cwhy)) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, idlen <= BUS_ID_MAX ? p->id : NULL,
                       "%s", cwhy);
        return;
    }
    if (p->n_records > PUT_RECORDS_MAX) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG, p->id,
                       "put %s: %zu records, over the limit of %d per put (put in parts)", p->id,
                       p->n_records, PUT_RECORDS_MAX);
        return;
    }
    /* A put is idempotent by its id: it is recorded as a finished request of service "put". */
    char key[300];
    int klen = snprintf(key, sizeof key, "put/%s", p->id);
    void *v = NULL;
    size_t vn = 0;
    bool dup = staged(l, key, (size_t)klen);
    int grc = dup ? ERR_NOTFOUND : kv_get(l->kv, CF_REQUESTS, key, (size_t)klen, &v, &vn);
    free(v);
    dup = dup || grc == ERR_OK;
    if (grc != ERR_OK && grc != ERR_NOTFOUND) {
        bus_send_error(l->clients, m->rid, m->rid_len, corr, store_code(grc), p->id,
                       "put %s: store read failed: %s", p->id, err_str(grc));
        return;
    }
    if (!dup && refuse_if_full(l, m, "put", p->id, oaif__v1__put__get_packed_size(p)))
        return;
    if (!dup) {
        char why[256];
        /* Validate everything first: a put is all or nothing. */
        for (size_t i = 0; i < p->n_records; i++) {
            int rc = check_record(l, p->records[i], why, sizeof why);
            if (rc) {
                bus_send_error(l->clients, m->rid, m->rid_len, corr,
                               rc == ERR_TOOBIG ? OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG
                                                : OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID,
                               p->id, "put %s: record %zu: %s", p->id, i, why);
                return;
            }
        }
        for (size_t i = 0; i < p->n_records; i++) {
            int rc = stage_record(l, p->records[i], p->if_absent, why, sizeof why);
            if (rc == ERR_CORRUPT || rc == ERR_IO || rc == ERR_NOSPACE) {
                /* Not recorded as done: the client's retry writes the put again. */
                bus_send_error(l->clients, m->rid, m->rid_len, corr, store_code(rc), p->id,
                               "put %s: record %zu: %s", p->id, i, why);
                return;
            }
            if (rc && rc != ERR_EXISTS)
                log_error("ledger: put %s: %s", p->id, why);
        }
        Oaif__V1__RequestState st = OAIF__V1__REQUEST_STATE__INIT;
        st.id = key;
        st.service = "put";
        st.phase = OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_DONE;
        st.submitted_ms = st.finished_ms = bus_now_ms();
        st.attempts = 1;
        uint8_t buf[512];
        size_t n = oaif__v1__request_state__get_packed_size(&st);
        if (n <= sizeof buf) {
            oaif__v1__request_state__pack(&st, buf);
            kv_batch_put(l->g->batch, CF_REQUESTS, key, (size_t)klen, buf, n);
        }
        hmap_put(l->g->staged, key, (size_t)klen, (void *)1);
    }
    send_ack(l, m, p->id, dup);
}

static int send_now(ledger_t *l, struct bus_msg *m, Oaif__V1__Envelope *env)
{
    env->corr = m->env->corr;
    size_t n = oaif__v1__envelope__get_packed_size(env);
    if (n > l->reply_max) {
        /* The transport would drop it and the client would ask again forever. */
        return bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                              OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG, NULL,
                              "the answer would be %zu bytes, over the %zu of one reply "
                              "(bus.max_message_size): ask for fewer ids",
                              n, l->reply_max);
    }
    int rc = bus_send(l->clients, m->rid, m->rid_len, env);
    if (rc && rc != ERR_NOTFOUND)
        log_warn("ledger: answer to a client not sent: %s", err_str(rc));
    return rc;
}

static void on_get(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Get *g = m->env->get;
    int k = (int)g->kind;
    if (!check_ids(l, m, "get", g->ids, g->n_ids))
        return;
    if (k <= 0 || k >= NKINDS) {
        bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, NULL,
                       "get: record kind %d is not known", k);
        return;
    }
    Oaif__V1__Records out = OAIF__V1__RECORDS__INIT;
    Oaif__V1__Record **recs = calloc(g->n_ids + 1, sizeof *recs);
    char **missing = calloc(g->n_ids + 1, sizeof *missing);
    if (!recs || !missing) {
        free(recs);
        free(missing);
        return;
    }
    for (size_t i = 0; i < g->n_ids; i++) {
        void *v = NULL;
        size_t vn = 0;
        Oaif__V1__Record *r = NULL;
        int rc = kv_get(l->kv, kind_cf(k), g->ids[i], strlen(g->ids[i]), &v, &vn);
        if (rc == ERR_OK && !(r = oaif__v1__record__unpack(NULL, vn, v)))
            rc = ERR_CORRUPT;
        free(v);
        if (rc == ERR_OK) {
            recs[out.n_records++] = r;
        } else if (rc == ERR_NOTFOUND) {
            missing[out.n_missing++] = g->ids[i];
        } else {
            /* Damage is never an absence: the whole answer is an error. */
            bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr, store_code(rc), g->ids[i],
                           "get: %s record '%.256s': %s", kinds_name(k), g->ids[i], err_str(rc));
            for (size_t j = 0; j < out.n_records; j++)
                oaif__v1__record__free_unpacked(recs[j], NULL);
            free(recs);
            free(missing);
            return;
        }
    }
    out.records = recs;
    out.missing = missing;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_RECORDS;
    env.records = &out;
    send_now(l, m, &env);
    for (size_t i = 0; i < out.n_records; i++)
        oaif__v1__record__free_unpacked(recs[i], NULL);
    free(recs);
    free(missing);
}

#define SCAN_DEFAULT   1000
#define SCAN_MAX       100000
#define SCAN_MAX_BYTES (8u << 20) /* a page's records stop past this (or a quarter message) */

static void on_scan(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Scan *s = m->env->scan;
    int k = (int)s->kind;
    if (k <= 0 || k >= NKINDS) {
        bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, NULL,
                       "scan: record kind %d is not known", k);
        return;
    }
    unsigned limit = s->limit ? s->limit : SCAN_DEFAULT;
    if (limit > SCAN_MAX)
        limit = SCAN_MAX;
    Oaif__V1__Records out = OAIF__V1__RECORDS__INIT;
    size_t cap = 64, bytes = 0;
    Oaif__V1__Record **recs = malloc(cap * sizeof *recs);
    kv_iter_t *it = kv_iter_new(l->kv, CF_SEQIDX);
    if (!recs || !it) {
        free(recs);
        kv_iter_destroy(&it);
        return;
    }
    uint8_t start[9];
    start[0] = (uint8_t)k;
    be64(start + 1, s->after_seq + 1);
    uint64_t last = s->after_seq;
    int serr = ERR_OK; /* a store error: the scan is an error, not a shorter answer */
    char swhere[320] = "the index";
    for (kv_iter_seek(it, start, 9); kv_iter_valid(it); kv_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *key = kv_iter_key(it, &kn);
        if (kn != 9 || key[0] != (uint8_t)k)
            break;
        if (out.n_records >= limit || bytes >= l->scan_page_bytes) {
            out.more = 1;
            break;
        }
        uint64_t seq = rd_be64(key + 1);
        const char *id = kv_iter_value(it, &vn);
        void *v = NULL;
        size_t rn = 0;
        last = seq;
        int rc = kv_get(l->kv, kind_cf(k), id, vn, &v, &rn);
        if (rc == ERR_NOTFOUND)
            continue; /* not possible: a record is written with its index entry */
        Oaif__V1__Record *r = rc ? NULL : oaif__v1__record__unpack(NULL, rn, v);
        free(v);
        if (!r) {
            serr = rc ? rc : ERR_CORRUPT;
            snprintf(swhere, sizeof swhere, "record '%.*s' (seq %" PRIu64 ")",
                     (int)(vn > 256 ? 256 : vn), id, seq);
            break;
        }
        if (r->seq != seq) { /* overwritten later: it appears at its newer seq */
            oaif__v1__record__free_unpacked(r, NULL);
            continue;
        }
        if (out.n_records == cap) {
            cap *= 2;
            Oaif__V1__Record **p = realloc(recs, cap * sizeof *p);
            if (!p) {
                oaif__v1__record__free_unpacked(r, NULL);
                out.more = 1;
                break;
            }
            recs = p;
        }
        recs[out.n_records++] = r;
        bytes += rn;
    }
    if (!serr)
        serr = kv_iter_status(it);
    kv_iter_destroy(&it);
    if (serr) {
        bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr, store_code(serr), NULL,
                       "scan of %s after seq %" PRIu64 ": %s: %s", kinds_name(k), last, swhere,
                       err_str(serr));
        for (size_t i = 0; i < out.n_records; i++)
            oaif__v1__record__free_unpacked(recs[i], NULL);
        free(recs);
        return;
    }
    out.records = recs;
    out.next_seq = last;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_RECORDS;
    env.records = &out;
    send_now(l, m, &env);
    for (size_t i = 0; i < out.n_records; i++)
        oaif__v1__record__free_unpacked(recs[i], NULL);
    free(recs);
}

static void on_lookup(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Lookup *q = m->env->lookup;
    if (!check_ids(l, m, "lookup", q->ids, q->n_ids))
        return;
    Oaif__V1__Records out = OAIF__V1__RECORDS__INIT;
    Oaif__V1__RequestState **sts = calloc(q->n_ids + 1, sizeof *sts);
    Oaif__V1__RequestState *mem = calloc(q->n_ids + 1, sizeof *mem);
    bool *owned = calloc(q->n_ids + 1, sizeof *owned);
    char **missing = calloc(q->n_ids + 1, sizeof *missing);
    if (!sts || !mem || !owned || !missing)
        goto out_free;
    for (size_t i = 0; i < q->n_ids; i++) {
        const char *id = q->ids[i];
        struct req *r = hmap_get(l->reqs, id, strlen(id));
        if (r) {
            Oaif__V1__RequestState *st = &mem[out.n_requests];
            oaif__v1__request_state__init(st);
            st->id = r->id;
            st->service = r->svc->name;
            st->phase = r->phase;
            st->attempts = r->attempts;
            st->max_attempts = r->max_attempts;
            st->lease_ms = r->lease_ms;
            st->last_error = r->last_error ? r->last_error : "";
            st->submitted_ms = r->submitted_ms;
            st->redeliveries = r->redeliveries;
            sts[out.n_requests++] = st;
            continue;
        }
        void *v = NULL;
        size_t vn = 0;
        Oaif__V1__RequestState *st = NULL;
        int rc = kv_get(l->kv, CF_REQUESTS, id, strlen(id), &v, &vn);
        if (rc == ERR_OK && !(st = oaif__v1__request_state__unpack(NULL, vn, v)))
            rc = ERR_CORRUPT;
        free(v);
        if (rc == ERR_OK) {
            owned[out.n_requests] = true;
            sts[out.n_requests++] = st;
        } else if (rc == ERR_NOTFOUND) {
            missing[out.n_missing++] = (char *)id;
        } else {
            bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr, store_code(rc), id,
                           "lookup: request '%.256s': %s", id, err_str(rc));
            goto out_owned;
        }
    }
    out.requests = sts;
    out.missing = missing;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_RECORDS;
    env.records = &out;
    send_now(l, m, &env);
out_owned:
    for (size_t i = 0; i < out.n_requests; i++)
        if (owned[i])
            oaif__v1__request_state__free_unpacked(sts[i], NULL);
out_free:
    free(sts);
    free(mem);
    free(owned);
    free(missing);
}

static void on_status(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Status *st = ledger_status(l);
    if (!st)
        return;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_STATUS;
    env.status = st;
    send_now(l, m, &env);
    ledger_status_free(st);
}

static void on_client(ledger_t *l, struct bus_msg *m)
{
    switch (m->env->body_case) {
    case OAIF__V1__ENVELOPE__BODY_SUBMIT:
        on_submit(l, m);
        break;
    case OAIF__V1__ENVELOPE__BODY_PUT:
        on_put(l, m);
        break;
    case OAIF__V1__ENVELOPE__BODY_GET:
        on_get(l, m);
        break;
    case OAIF__V1__ENVELOPE__BODY_SCAN:
        on_scan(l, m);
        break;
    case OAIF__V1__ENVELOPE__BODY_LOOKUP:
        on_lookup(l, m);
        break;
    case OAIF__V1__ENVELOPE__BODY_STATUS_QUERY:
        on_status(l, m);
        break;
    default:
        l->dropped++;
        bus_send_error(l->clients, m->rid, m->rid_len, m->env->corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_UNKNOWN, NULL,
                       "command %d is not a client command", (int)m->env->body_case);
    }
}

/* ---- worker messages ----------------------------------------------------------------------- */

static struct worker *worker_find(ledger_t *l, const uint8_t *rid, size_t n)
{
    return hmap_get(l->wk, rid, n);
}

static void worker_remove(ledger_t *l, struct worker *w, const char *why)
{
    /* Re-queue everything leased to it. */
    size_t pos = 0;
    void *v;
    struct req *lost[256];
    size_t nlost = 0;
    bool again = true;
    while (again) {
        again = false;
        nlost = 0;
        pos = 0;
        while (hmap_next(l->reqs, &pos, NULL, NULL, &v)) {
            struct req *r = v;
            if (r->worker == w && r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED) {
                if (nlost == 256) {
                    again = true;
                    break;
                }
                lost[nlost++] = r;
            }
        }
        for (size_t i = 0; i < nlost; i++)
            lease_lost(l, lost[i], why);
    }
    log_info("ledger: worker %s (%s) removed: %s", w->name, w->svc ? w->svc->name : "?", why);
    hmap_del(l->wk, w->rid, w->rid_len);
    free(w);
}

static void send_to_worker(ledger_t *l, struct worker *w, Oaif__V1__Envelope *env)
{
    if (bus_send(l->workers, w->rid, w->rid_len, env) == ERR_OK)
        w->last_send = bus_mono_ms();
}

/* A Ready that cannot be taken: an Error echoing its corr (busworker stops with it), and a
 * warning at most every BAD_LOG_MS (a peer can send Ready in a loop). */
static void refuse_ready(ledger_t *l, struct bus_msg *m, Oaif__V1__ErrorCode code, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
static void refuse_ready(ledger_t *l, struct bus_msg *m, Oaif__V1__ErrorCode code, const char *fmt,
                         ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    bus_send_error(l->workers, m->rid, m->rid_len, m->env->corr, code, NULL, "ready: %s", text);
    uint64_t held = 0;
    char note[64];
    if (bus_ratelog_ok(&l->refused_log, bus_mono_ms(), &held))
        log_warn("ledger: a worker's Ready refused: %s%s", text,
                 held_note(held, note, sizeof note));
}

/* Workers registered for s, other than `except`. */
static size_t service_workers(ledger_t *l, const struct service *s, const struct worker *except)
{
    size_t n = 0, pos = 0;
    void *v;
    while (hmap_next(l->wk, &pos, NULL, NULL, &v))
        n += ((struct worker *)v)->svc == s && v != except;
    return n;
}

static void on_ready(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Ready *r = m->env->ready;
    char why[300], shown[200];
    if (!valid_name(r->service) || r->credit == 0 || r->credit > 100000) {
        refuse_ready(l, m, OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID,
                     "service '%s' must be 1-64 characters of [a-z0-9._-] and credit 1-100000 "
                     "(got %u)",
                     bus_escape(r->service, shown, sizeof shown), r->credit);
        return;
    }
    const char *variant = r->variant ? r->variant : "";
    if (*variant && bus_check_id(variant, BUS_ID_MAX, "variant", why, sizeof why)) {
        refuse_ready(l, m, OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID, "%s", why);
        return;
    }
    struct worker *w = worker_find(l, m->rid, m->rid_len);
    struct service *s = service_get(l, r->service);
    if (!s) {
        refuse_ready(l, m, OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID,
                     "service '%s' would be one more than the %d services a ledger serves",
                     r->service, SERVICES_MAX);
        return;
    }
    /* One service, one variant (a judge's identity): workers that answer differently never
     * share a queue. The first worker sets it; another may change it only once the service is
     * idle (no other worker, nothing queued or leased), and that is logged. */
    const char *have = s->variant ? s->variant : "";
    if (strcmp(have, variant) != 0) {
        if (s->variant && (s->queued || s->inflight || service_workers(l, s, w))) {
            refuse_ready(l, m, OAIF__V1__ERROR_CODE__ERROR_CODE_DENIED,
                         "service '%s' is served by workers announcing '%s'; this worker "
                         "announces '%s': one service never mixes them (stop those first, or "
                         "serve another service name)",
                         s->name, have, variant);
            return;
        }
        if (s->variant)
            log_warn("ledger: service '%s' is now served by '%s' (was '%s')", s->name, variant,
                     have);
        free(s->variant);
        s->variant = *variant ? strdup(variant) : NULL;
        put_variant(l, s->name, variant);
    }
    if (w && w->svc != s) {
        worker_remove(l, w, "re-registered for another service");
        w = NULL;
    }
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w || hmap_put(l->wk, m->rid, m->rid_len, w)) {
            free(w);
            return;
        }
        memcpy(w->rid, m->rid, m->rid_len);
        w->rid_len = m->rid_len;
        w->svc = s;
        memcpy(w->user, m->user, sizeof w->user);
        log_info("ledger: worker %s ready for '%s'%s%s with credit %u",
                 bus_escape(r->name ? r->name : "?", shown, sizeof shown), s->name,
                 *variant ? " as " : "", variant, r->credit);
    }
    bus_escape(r->name ? r->name : "", w->name, sizeof w->name);
    w->capacity = r->credit;
    w->last_recv = bus_mono_ms();
}

/* Did the sender of a result (hash `who`, worker w or NULL) hold r's lease? The current lessee;
 * the one whose lease ended last (a late answer, README: Guarantees); or, for a request
 * re-queued at start and not leased since, any worker of its service. */
static bool result_allowed(const struct req *r, const struct worker *w, uint64_t who)
{
    if (r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED && r->lessee == who)
        return true;
    if (r->prev_lessee == who)
        return true;
    return r->recovered && w && w->svc == r->svc;
}

/* The lessee's attempt failed (its error, or a result that could not be taken): retry, or fail
 * the request when it is permanent or out of attempts. */
static void attempt_failed(ledger_t *l, struct req *r, const char *error, bool permanent)
{
    set_error(r, error);
    if (permanent || r->attempts >= r->max_attempts) {
        finish(l, r, OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_FAILED);
        return;
    }
    struct service *s = r->svc;
    s->inflight--;
    if (r->worker && r->worker->inflight)
        r->worker->inflight--;
    enqueue(s, r, false);
    persist_req(l, r);
}

/* A result that is not taken: counted, a warning at most every BAD_LOG_MS, an Error back. */
static void refuse_result(ledger_t *l, struct bus_msg *m, const struct worker *w,
                          const struct req *r, const char *why)
{
    l->refused_results++;
    uint64_t held = 0;
    char note[64];
    if (bus_ratelog_ok(&l->forged_log, bus_mono_ms(), &held))
        log_warn("ledger: result for %s (%s) from worker %s refused: %s%s", r->id, r->svc->name,
                 w ? w->name : "(never said Ready)", why, held_note(held, note, sizeof note));
    bus_send_error(l->workers, m->rid, m->rid_len, m->env->corr,
                   OAIF__V1__ERROR_CODE__ERROR_CODE_DENIED, r->id, "result for %s refused: %s",
                   r->id, why);
}

static void on_result(ledger_t *l, struct bus_msg *m, struct worker *w)
{
    Oaif__V1__Result *res = m->env->result;
    size_t idlen = res->id ? strlen(res->id) : 0;
    struct req *r = idlen ? hmap_get(l->reqs, res->id, idlen) : NULL;
    if (!r || r->finished) {
        log_debug("ledger: late result for %s ignored", res->id ? res->id : "");
        return;
    }
    uint64_t who = peer_hash(m->rid, m->rid_len, m->user);
    bool lessee = r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED && r->lessee == who;
    if (!lessee && !result_allowed(r, w, who)) {
        refuse_result(l, m, w, r, "this worker holds no lease on it");
        return;
    }
    if (res->ok) {
        char why[300], msg[400];
        /* All or nothing: records a peer could not write, or a kind its service does not
         * write, fail the attempt (the request goes to another worker). */
        for (size_t i = 0; i < res->n_records; i++) {
            const Oaif__V1__Record *rec = res->records[i];
            int rc = res->n_records > PUT_RECORDS_MAX ? ERR_TOOBIG
                                                      : check_record(l, rec, why, sizeof why);
            if (rc == ERR_TOOBIG && res->n_records > PUT_RECORDS_MAX)
                snprintf(why, sizeof why, "%zu records, over the limit of %d", res->n_records,
                         PUT_RECORDS_MAX);
            if (!rc && !kinds_service_writes(r->svc->name, rec->kind)) {
                snprintf(why, sizeof why, "service '%s' does not write %s records (kinds.c)",
                         r->svc->name, kinds_name(rec->kind));
                rc = ERR_INVAL;
            }
            if (rc) {
                snprintf(msg, sizeof msg, "record %zu: %s", i, why);
                refuse_result(l, m, w, r, msg);
                if (lessee)
                    attempt_failed(l, r, msg, false);
                return;
            }
        }
        for (size_t i = 0; i < res->n_records; i++) {
            int rc = stage_record(l, res->records[i], false, why, sizeof why);
            if (rc && rc != ERR_EXISTS)
                log_warn("ledger: result for %s: record %zu not stored: %s", r->id, i, why);
        }
        if (r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_QUEUED) {
            /* It was re-queued (lease expired) but the first lessee answered after all:
             * take the answer and unlink it from the queue. */
            struct service *s = r->svc;
            struct req **pp = &s->qhead, *prev = NULL;
            while (*pp && *pp != r) {
                prev = *pp;
                pp = &(*pp)->qnext;
            }
            if (*pp) {
                *pp = r->qnext;
                if (s->qtail == r)
                    s->qtail = prev;
                s->queued--;
            }
            r->phase = OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED;
            s->inflight++;
            r->worker = NULL;
        }
        r->reply = malloc(res->payload.len ? res->payload.len : 1);
        if (r->reply) {
            if (res->payload.len) /* an empty payload has no data */
                memcpy(r->reply, res->payload.data, res->payload.len);
            r->reply_len = res->payload.len;
        }
        finish(l, r, OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_DONE);
        return;
    }
    if (!lessee)
        return; /* an error from a stale lessee changes nothing */
    attempt_failed(l, r, res->error && *res->error ? res->error : "worker failed without a reason",
                   res->permanent);
}

/* A worker we do not know (we restarted, or declared it dead): make it say READY again. */
static void ask_to_register(ledger_t *l, struct bus_msg *m)
{
    Oaif__V1__Disconnect d = OAIF__V1__DISCONNECT__INIT;
    d.reason = "unknown worker: send READY";
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_DISCONNECT;
    env.disconnect = &d;
    bus_send(l->workers, m->rid, m->rid_len, &env);
}

static void on_worker(ledger_t *l, struct bus_msg *m)
{
    struct worker *w = worker_find(l, m->rid, m->rid_len);
    if (w && strcmp(w->user, m->user) != 0) {
        /* Another CURVE key on this worker's routing id (a handover): not that worker. */
        l->dropped++;
        uint64_t held = 0;
        char note[64];
        if (bus_ratelog_ok(&l->refused_log, bus_mono_ms(), &held))
            log_warn("ledger: a message on worker %s's routing id from another CURVE key "
                     "refused%s",
                     w->name, held_note(held, note, sizeof note));
        bus_send_error(l->workers, m->rid, m->rid_len, m->env->corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_DENIED, NULL,
                       "this routing id belongs to a worker with another key");
        return;
    }
    if (w)
        w->last_recv = bus_mono_ms();
    switch (m->env->body_case) {
    case OAIF__V1__ENVELOPE__BODY_READY:
        on_ready(l, m);
        break;
    case OAIF__V1__ENVELOPE__BODY_RESULT:
        on_result(l, m, w);
        if (!w) {
            ask_to_register(l, m); /* accepted, but we do not know this worker */
        }
        break;
    case OAIF__V1__ENVELOPE__BODY_HEARTBEAT:
        if (!w) {
            ask_to_register(l, m);
        }
        break;
    case OAIF__V1__ENVELOPE__BODY_DISCONNECT:
        if (w)
            worker_remove(l, w, "worker said goodbye");
        break;
    default:
        l->dropped++;
        bus_send_error(l->workers, m->rid, m->rid_len, m->env->corr,
                       OAIF__V1__ERROR_CODE__ERROR_CODE_UNKNOWN, NULL,
                       "command %d is not a worker command", (int)m->env->body_case);
    }
}

/* ---- timers and dispatch ------------------------------------------------------------------- */

static void timers(ledger_t *l)
{
    uint64_t now = bus_mono_ms();
    if (now - l->last_timer_mono < 50)
        return;
    l->last_timer_mono = now;
    uint64_t dead_after = (uint64_t)l->cfg.liveness * (uint64_t)l->cfg.heartbeat_ms;
    /* Dead workers. */
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *v;
    for (;;) {
        struct worker *dead = NULL;
        pos = 0;
        while (hmap_next(l->wk, &pos, &key, &klen, &v)) {
            struct worker *w = v;
            if (now - w->last_recv > dead_after) {
                dead = w;
                break;
            }
            if (now - w->last_send >= (uint64_t)l->cfg.heartbeat_ms) {
                Oaif__V1__Heartbeat hb = OAIF__V1__HEARTBEAT__INIT;
                Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
                env.body_case = OAIF__V1__ENVELOPE__BODY_HEARTBEAT;
                env.heartbeat = &hb;
                send_to_worker(l, w, &env);
            }
        }
        if (!dead)
            break;
        worker_remove(l, dead, "silent for too many heartbeat intervals");
    }
    /* Expired leases. */
    struct req *expired[256];
    size_t n;
    do {
        n = 0;
        pos = 0;
        while (hmap_next(l->reqs, &pos, NULL, NULL, &v) && n < 256) {
            struct req *r = v;
            if (r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED && !r->finished &&
                r->deadline_mono <= now)
                expired[n++] = r;
        }
        for (size_t i = 0; i < n; i++)
            lease_lost(l, expired[i], "lease expired");
    } while (n == 256);
}

static void dispatch(ledger_t *l)
{
    size_t spos = 0;
    void *sv;
    while (hmap_next(l->services, &spos, NULL, NULL, &sv)) {
        struct service *s = sv;
        if (!s->qhead)
            continue;
        /* Workers of this service with free credit, round-robin. */
        size_t wpos = 0;
        void *wv;
        struct worker *ws[1024];
        size_t nw = 0;
        while (hmap_next(l->wk, &wpos, NULL, NULL, &wv) && nw < 1024) {
            struct worker *w = wv;
            if (w->svc == s && w->inflight < w->capacity)
                ws[nw++] = w;
        }
        if (!nw)
            continue;
        size_t i = s->rr++ % nw, idle = 0;
        while (s->qhead && idle < nw) {
            struct worker *w = ws[i];
            i = (i + 1) % nw;
            if (w->inflight >= w->capacity) {
                idle++;
                continue;
            }
            idle = 0;
            struct req *r = s->qhead;
            s->qhead = r->qnext;
            if (!s->qhead)
                s->qtail = NULL;
            r->qnext = NULL;
            s->queued--;
            s->inflight++;
            w->inflight++;
            r->attempts++;
            r->phase = OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED;
            r->worker = w;
            r->lessee = peer_hash(w->rid, w->rid_len, w->user);
            r->recovered = false;
            r->deadline_mono = bus_mono_ms() + r->lease_ms;
            /* Not persisted: the request is already durable as open, and recover() re-queues
             * every open request. A ledger crash thus forgets the attempt in progress; a
             * worker crash does not (lease_lost persists the count). */
            Oaif__V1__Request q = OAIF__V1__REQUEST__INIT;
            q.id = r->id;
            q.service = s->name;
            q.payload.data = r->payload;
            q.payload.len = r->len;
            q.attempt = r->attempts;
            q.deadline_ms = bus_now_ms() + r->lease_ms;
            Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
            env.body_case = OAIF__V1__ENVELOPE__BODY_REQUEST;
            env.request = &q;
            queue_out(l, l->workers, w->rid, w->rid_len, &env, r);
        }
    }
}

/* ---- commit and after ---------------------------------------------------------------------- */

static void answer_finished(ledger_t *l, struct req *r)
{
    Oaif__V1__Reply rep = OAIF__V1__REPLY__INIT;
    rep.id = r->id;
    rep.service = r->svc->name;
    rep.outcome = r->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_DONE
                      ? OAIF__V1__OUTCOME__OUTCOME_OK
                      : OAIF__V1__OUTCOME__OUTCOME_FAILED;
    rep.payload.data = r->reply;
    rep.payload.len = r->reply_len;
    rep.error = r->last_error ? r->last_error : "";
    rep.attempts = r->attempts;
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.body_case = OAIF__V1__ENVELOPE__BODY_REPLY;
    env.reply = &rep;
    for (struct waiter *w = r->waiters; w; w = w->next)
        bus_send(l->clients, w->rid, w->rid_len, &env); /* a vanished client asks again */
}

static double now_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Send what generation g's commit made true, then empty it. */
static int flush_gen(ledger_t *l, struct gen *g)
{
    /* Leases, acks, duplicate replies. */
    for (size_t i = 0; i < g->nout; i++) {
        struct outmsg *o = &g->out[i];
        if (o->lease) {
            /* Still this worker's lease? (It may have died, and the request moved on.) */
            struct worker *w = hmap_get(l->wk, o->rid, o->rid_len);
            if (!w || w != o->to || o->lease->worker != w ||
                o->lease->phase != OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED) {
                free(o->data);
                continue;
            }
        }
        bool sent = zmq_send(o->sock, o->rid, o->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                    zmq_send(o->sock, o->data, o->len, ZMQ_DONTWAIT) >= 0;
        if (o->lease) {
            if (sent)
                o->to->last_send = bus_mono_ms();
            else /* the worker vanished: forget it; its leases go back to the queue */
                worker_remove(l, o->to, "unreachable");
        }
        free(o->data);
    }
    g->nout = 0;
    /* Replies to waiters of finished requests; then they leave memory. */
    for (size_t i = 0; i < g->nfin; i++) {
        struct req *r = g->finished[i];
        answer_finished(l, r);
        hmap_del(l->reqs, r->id, strlen(r->id));
        req_free(r);
    }
    g->nfin = 0;
    /* Events: hints that a record was committed. */
    for (size_t i = 0; i < g->nevs; i++) {
        struct committed *c = &g->evs[i];
        if (l->events) {
            Oaif__V1__Event ev = OAIF__V1__EVENT__INIT;
            ev.kind = (Oaif__V1__RecordKind)c->kind;
            ev.id = c->id;
            ev.seq = c->seq;
            Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
            env.body_case = OAIF__V1__ENVELOPE__BODY_EVENT;
            env.event = &ev;
            env.version = BUS_PROTOCOL_VERSION;
            size_t n = oaif__v1__envelope__get_packed_size(&env);
            uint8_t buf[1024];
            if (n <= sizeof buf) {
                oaif__v1__envelope__pack(&env, buf);
                const char *topic = kinds_name(c->kind);
                zmq_send(l->events, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(l->events, buf, n, ZMQ_DONTWAIT);
            }
        }
        free(c->id);
    }
    g->nevs = 0;
    if (hmap_count(g->staged)) {
        hmap_destroy(&g->staged);
        g->staged = hmap_new();
        if (!g->staged)
            return ERR_NOMEM;
    }
    return ERR_OK;
}

static void *committer_main(void *arg)
{
    ledger_t *l = arg;
    struct committer *cm = &l->cm;
    void *done = zmq_socket(cm->zctx, ZMQ_PAIR);
    int zero = 0;
    zmq_setsockopt(done, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(done, cm->endpoint);
    pthread_mutex_lock(&cm->mu);
    for (;;) {
        while (!cm->job && !cm->stop)
            pthread_cond_wait(&cm->cv, &cm->mu);
        if (!cm->job)
            break; /* stop, with nothing left to write */
        kv_batch_t *b = cm->job;
        pthread_mutex_unlock(&cm->mu);
        double t0 = now_ms_f();
        int rc = kv_write(cm->kv, b, cm->sync);
        double ms = now_ms_f() - t0;
        pthread_mutex_lock(&cm->mu);
        cm->rc = rc;
        cm->ms = ms;
        cm->job = NULL;
        zmq_send(done, "c", 1, 0);
    }
    pthread_mutex_unlock(&cm->mu);
    zmq_close(done);
    return NULL;
}

/* The commit thread finished the other generation: send what it made true. */
static int on_committed(ledger_t *l)
{
    char c;
    while (zmq_recv(l->done_sock, &c, 1, ZMQ_DONTWAIT) >= 0)
        ;
    pthread_mutex_lock(&l->cm.mu);
    bool busy = l->cm.job != NULL;
    int rc = l->cm.rc;
    double ms = l->cm.ms;
    pthread_mutex_unlock(&l->cm.mu);
    if (busy || !l->committing)
        return ERR_OK;
    if (rc)
        return rc; /* nothing it held was made true: send nothing, stop */
    l->commit_ms[l->ncommit++ % COMMIT_RING] = ms;
    l->committing = false;
    struct gen *done = l->g == &l->gen[0] ? &l->gen[1] : &l->gen[0];
    kv_batch_clear(done->batch);
    return flush_gen(l, done);
}

/* End of a turn: hand the filled generation to the commit thread if it is free. A generation
 * with nothing to write is flushed at once, but only when no earlier one is still committing
 * (its sends may depend on that one: a lease of a request submitted there). */
static int commit_and_send(ledger_t *l)
{
    if (l->committing)
        return ERR_OK; /* keep filling; handed over when the commit thread is done */
    if (l->counters_dirty) {
        put_counter(l, "requests_total", l->requests_total);
        l->counters_dirty = false;
    }
    struct gen *g = l->g;
    if (kv_batch_count(g->batch) == 0) {
        if (l->full && bus_mono_ms() >= l->full_next_check)
            room_for(l, 0); /* nothing waits: see whether space is back (for /healthz) */
        return flush_gen(l, g);
    }
    /* No room: the generation waits (its acks unsent) until there is. */
    if (!room_for(l, kv_batch_bytes(g->batch)))
        return ERR_OK;
    if (!l->cm.started) { /* no commit thread (it could not start): commit inline */
        double t0 = now_ms_f();
        int rc = kv_write(l->kv, g->batch, l->cfg.sync);
        if (rc)
            return rc;
        l->commit_ms[l->ncommit++ % COMMIT_RING] = now_ms_f() - t0;
        kv_batch_clear(g->batch);
        return flush_gen(l, g);
    }
    pthread_mutex_lock(&l->cm.mu);
    l->cm.job = g->batch;
    pthread_cond_signal(&l->cm.cv);
    pthread_mutex_unlock(&l->cm.mu);
    l->committing = true;
    l->g = g == &l->gen[0] ? &l->gen[1] : &l->gen[0];
    return ERR_OK;
}

int ledger_poll(ledger_t *l, int timeout_ms)
{
    zmq_pollitem_t items[3] = {{l->clients, 0, ZMQ_POLLIN, 0},
                               {l->workers, 0, ZMQ_POLLIN, 0},
                               {l->done_sock, 0, ZMQ_POLLIN, 0}};
    /* Wake for lease deadlines and heartbeats at least every heartbeat/4. */
    int cap = l->cfg.heartbeat_ms / 4 > 10 ? l->cfg.heartbeat_ms / 4 : 10;
    if (timeout_ms < 0 || timeout_ms > cap)
        timeout_ms = cap;
    int rc = zmq_poll(items, l->done_sock ? 3 : 2, timeout_ms);
    if (rc < 0)
        return zmq_errno() == EINTR ? ERR_INTR : ERR_IO;
    if (l->done_sock && (items[2].revents & ZMQ_POLLIN)) {
        rc = on_committed(l);
        if (rc)
            return rc;
    }
    int budget = l->cfg.batch_max;
    size_t turn_bytes = 0;
    bool more = true;
    while (more && budget > 0) {
        more = false;
        for (int s = 0; s < 2 && budget > 0; s++) {
            void *sock = s == 0 ? l->clients : l->workers;
            struct bus_msg m;
            int r = bus_recv(sock, true, &m);
            if (r == ERR_AGAIN)
                continue;
            more = true;
            budget--;
            turn_bytes += m.bytes;
            if (turn_bytes > TURN_BYTES_MAX)
                budget = 0; /* the rest waits for the next turn: timers, commits, /healthz */
            if (r == ERR_PROTO) {
                l->dropped++;
                uint64_t held = 0;
                char note[64];
                if (bus_ratelog_ok(&l->bad_log[s], bus_mono_ms(), &held))
                    log_warn("ledger: %s sent a bad message: %s%s",
                             s == 0 ? "a client" : "a worker", m.error,
                             held_note(held, note, sizeof note));
                bus_send_error(sock, m.rid, m.rid_len, m.corr, (Oaif__V1__ErrorCode)m.code, NULL,
                               "%s", m.error);
                continue;
            }
            if (r != ERR_OK)
                continue;
            if (s == 0)
                on_client(l, &m);
            else
                on_worker(l, &m);
            bus_msg_clear(&m);
        }
    }
    timers(l);
    dispatch(l);
    return commit_and_send(l);
}

/* ---- status -------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

Oaif__V1__Status *ledger_status(ledger_t *l)
{
    Oaif__V1__Status *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    oaif__v1__status__init(st);
    size_t ns = hmap_count(l->services);
    st->services = calloc(ns + 1, sizeof *st->services);
    st->records = calloc(NKINDS, sizeof *st->records);
    if (!st->services || !st->records) {
        ledger_status_free(st);
        return NULL;
    }
    uint64_t sec = bus_mono_ms() / 1000;
    size_t pos = 0;
    void *v;
    while (hmap_next(l->services, &pos, NULL, NULL, &v)) {
        struct service *s = v;
        Oaif__V1__ServiceStatus *ss = calloc(1, sizeof *ss);
        if (!ss)
            break;
        oaif__v1__service_status__init(ss);
        ss->name = s->name;
        ss->queued = s->queued;
        ss->in_flight = s->inflight;
        ss->completed = s->completed;
        ss->failed = s->failed;
        ss->redelivered = s->redelivered;
        uint64_t done = 0;
        for (int i = 0; i < RATE_SLOTS; i++)
            if (s->rate_sec[i] + RATE_SLOTS > sec && s->rate_sec[i] != sec)
                done += s->rate_slot[i];
        ss->rate = (double)done / (RATE_SLOTS - 1);
        size_t wpos = 0;
        void *wv;
        while (hmap_next(l->wk, &wpos, NULL, NULL, &wv)) {
            struct worker *w = wv;
            if (w->svc == s) {
                ss->workers++;
                ss->credit += w->capacity > w->inflight ? w->capacity - w->inflight : 0;
            }
        }
        st->services[st->n_services++] = ss;
    }
    for (int k = 1; k < NKINDS; k++) {
        Oaif__V1__RecordCount *rc = calloc(1, sizeof *rc);
        if (!rc)
            break;
        oaif__v1__record_count__init(rc);
        rc->kind = (Oaif__V1__RecordKind)k;
        rc->count = l->count[k];
        rc->last_seq = l->seq[k];
        st->records[st->n_records++] = rc;
    }
    st->dead_letters = l->dead_letters;
    st->requests_total = l->requests_total;
    st->dropped_messages = l->dropped;
    st->uptime_ms = bus_mono_ms() - l->start_mono;
    size_t nc = l->ncommit < COMMIT_RING ? l->ncommit : COMMIT_RING;
    if (nc) {
        double tmp[COMMIT_RING];
        memcpy(tmp, l->commit_ms, nc * sizeof *tmp);
        qsort(tmp, nc, sizeof *tmp, cmp_double);
        st->commit_p50_ms = tmp[nc / 2];
        st->commit_p99_ms = tmp[(nc * 99) / 100];
    }
    return st;
}

void ledger_status_free(Oaif__V1__Status *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_services; i++)
        free(s->services[i]);
    for (size_t i = 0; i < s->n_records; i++)
        free(s->records[i]);
    free(s->services);
    free(s->records);
    free(s);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

/* Rebuild queues from the store: every open request goes back to its service's queue. */
static int recover(ledger_t *l)
{
    for (int k = 1; k < NKINDS; k++) {
        char cname[32];
        snprintf(cname, sizeof cname, "count/%s", kinds_name(k));
        int crc = ERR_OK;
        l->count[k] = get_counter(l, cname, &crc);
        if (crc) {
            log_error("ledger: counter %s: %s", cname, err_str(crc));
            return crc;
        }
        kv_iter_t *it = kv_iter_new(l->kv, CF_SEQIDX);
        if (!it)
            return ERR_NOMEM;
        uint8_t key[9];
        key[0] = (uint8_t)(k + 1);
        memset(key + 1, 0, 8);
        kv_iter_seek(it, key, 9);
        if (kv_iter_valid(it))
            kv_iter_prev(it);
        else
            kv_iter_seek_last(it);
        if (kv_iter_valid(it)) {
            size_t kn;
            const uint8_t *p = kv_iter_key(it, &kn);
            if (kn == 9 && p[0] == (uint8_t)k)
                l->seq[k] = rd_be64(p + 1);
        }
        crc = kv_iter_status(it);
        kv_iter_destroy(&it);
        if (crc)
            return crc;
    }
    int crc = ERR_OK;
    l->requests_total = get_counter(l, "requests_total", &crc);
    l->dead_letters = get_counter(l, "dead_letters", &crc);
    if (crc)
        return crc;
    kv_iter_t *it = kv_iter_new(l->kv, CF_PENDING);
    if (!it)
        return ERR_NOMEM;
    size_t n = 0;
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t kn;
        const char *id = kv_iter_key(it, &kn);
        void *v = NULL;
        size_t vn = 0;
        int grc = kv_get(l->kv, CF_REQUESTS, id, kn, &v, &vn);
        if (grc == ERR_NOTFOUND)
            continue;
        Oaif__V1__RequestState *st = grc ? NULL : oaif__v1__request_state__unpack(NULL, vn, v);
        free(v);
        if (!st) {
            /* An open request that cannot be read would be lost without a word. */
            log_error("ledger: open request '%.*s' in %s: %s", (int)(kn > 256 ? 256 : kn), id,
                      l->cfg.db_path, grc ? err_str(grc) : "not a RequestState (damaged)");
            kv_iter_destroy(&it);
            return grc ? grc : ERR_CORRUPT;
        }
        struct service *s = service_get_ex(l, st->service, true);
        struct req *r = calloc(1, sizeof *r);
        if (!s || !r) {
            free(r);
            oaif__v1__request_state__free_unpacked(st, NULL);
            kv_iter_destroy(&it);
            return ERR_NOMEM;
        }
        r->id = strdup(st->id);
        r->payload = malloc(st->payload.len ? st->payload.len : 1);
        if (!r->id || !r->payload || hmap_put(l->reqs, r->id, strlen(r->id), r)) {
            req_free(r);
            oaif__v1__request_state__free_unpacked(st, NULL);
            kv_iter_destroy(&it);
            return ERR_NOMEM;
        }
        if (st->payload.len) /* an empty payload has no data */
            memcpy(r->payload, st->payload.data, st->payload.len);
        r->len = st->payload.len;
        r->svc = s;
        r->attempts = st->attempts;
        r->max_attempts = st->max_attempts;
        r->lease_ms = st->lease_ms;
        r->redeliveries = st->redeliveries;
        r->submitted_ms = st->submitted_ms;
        if (st->last_error && *st->last_error)
            r->last_error = strdup(st->last_error);
        if (st->phase == OAIF__V1__REQUEST_PHASE__REQUEST_PHASE_LEASED) {
            r->redeliveries++;
            s->redelivered++;
        }
        r->recovered = true;
        enqueue(s, r, false);
        oaif__v1__request_state__free_unpacked(st, NULL);
        n++;
    }
    int rc = kv_iter_status(it);
    kv_iter_destroy(&it);
    if (n)
        log_info("ledger: recovered %zu open requests from the store", n);
    /* the services' variants */
    it = rc ? NULL : kv_iter_new(l->kv, CF_META);
    if (!rc && !it)
        return ERR_NOMEM;
    size_t plen = strlen(VARIANT_PREFIX);
    for (kv_iter_seek(it, VARIANT_PREFIX, plen); !rc && it && kv_iter_valid(it); kv_iter_next(it)) {
        size_t kn = 0, vn = 0;
        const char *k = kv_iter_key(it, &kn);
        const char *v = kv_iter_value(it, &vn);
        if (kn <= plen || memcmp(k, VARIANT_PREFIX, plen) != 0)
            break;
        char name[BUS_NAME_MAX + 1], var[BUS_ID_MAX + 1];
        if (kn - plen > BUS_NAME_MAX || vn == 0 || vn > BUS_ID_MAX) {
            log_error("ledger: the stored variant of '%.*s' is damaged", (int)(kn - plen),
                      k + plen);
            rc = ERR_CORRUPT;
            break;
        }
        memcpy(name, k + plen, kn - plen);
        name[kn - plen] = '\0';
        memcpy(var, v, vn);
        var[vn] = '\0';
        struct service *sv = service_get(l, name);
        if (!sv) {
            rc = ERR_NOMEM;
            break;
        }
        free(sv->variant);
        sv->variant = strdup(var);
        if (!sv->variant) {
            rc = ERR_NOMEM;
            break;
        }
        log_info("ledger: service '%s' is served by '%s' (from the store)", name, var);
    }
    if (it) {
        if (!rc)
            rc = kv_iter_status(it);
        kv_iter_destroy(&it);
    }
    return rc;
}

static int bind_sock(ledger_t *l, void **sock, int type, const char *ep, char *bound,
                     size_t boundlen)
{
    char why[300];
    if (bus_endpoint_check(ep, why, sizeof why)) {
        log_error("ledger: %s", why);
        return ERR_INVAL;
    }
    *sock = zmq_socket(l->zctx, type);
    if (!*sock)
        return ERR_IO;
    int rc = bus_setup_socket(*sock, true, type, l->cfg.max_msg, &l->cfg.curve);
    if (rc)
        return rc;
    if (sock == &l->workers) {
        /* A worker keeps its routing id across reconnects (busworker.c), and its new connection
         * takes over the old one: its leases, and its late results, stay its own. */
        int one = 1;
        zmq_setsockopt(*sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    }
    if (zmq_bind(*sock, ep) != 0) {
        log_error("ledger: bind %s: %s", ep, zmq_strerror(zmq_errno()));
        return ERR_IO;
    }
    size_t n = boundlen;
    zmq_getsockopt(*sock, ZMQ_LAST_ENDPOINT, bound, &n);
    return ERR_OK;
}

int ledger_new(ledger_t **out, const struct ledger_config *cfg, void *zctx)
{
    *out = NULL;
    ledger_t *l = calloc(1, sizeof *l);
    if (!l)
        return ERR_NOMEM;
    l->cfg = *cfg;
    if (cfg->batch_max < 1 || cfg->heartbeat_ms <= 0 || cfg->liveness < 2 || !cfg->db_path ||
        !cfg->client_bind || !cfg->worker_bind) {
        log_error("ledger: the configuration is not whole (start from ledger_config_defaults)");
        free(l);
        return ERR_INVAL;
    }
    l->zctx = zctx;
    l->start_mono = bus_mono_ms();
    size_t msg = cfg->max_msg ? cfg->max_msg : BUS_DEFAULT_MAX_MSG;
    l->reply_max = msg > 8192 ? msg - 4096 : msg;
    l->max_record = cfg->max_record && cfg->max_record < msg / 4 ? cfg->max_record : msg / 4;
    l->scan_page_bytes = SCAN_MAX_BYTES < msg / 4 ? SCAN_MAX_BYTES : msg / 4;
    /* A limit under the default would refuse the default itself. */
    if (l->cfg.max_attempts_limit < l->cfg.max_attempts)
        l->cfg.max_attempts_limit = l->cfg.max_attempts;
    if (l->cfg.lease_limit_ms < l->cfg.lease_ms)
        l->cfg.lease_limit_ms = l->cfg.lease_ms;
    l->bad_log[0].every_ms = l->bad_log[1].every_ms = BAD_LOG_MS;
    l->forged_log.every_ms = l->refused_log.every_ms = BAD_LOG_MS;
    l->reqs = hmap_new();
    l->services = hmap_new();
    l->wk = hmap_new();
    l->g = &l->gen[0];
    pthread_mutex_init(&l->cm.mu, NULL);
    pthread_cond_init(&l->cm.cv, NULL);
    bool ok = l->reqs && l->services && l->wk;
    for (int i = 0; i < 2; i++) {
        l->gen[i].batch = kv_batch_new();
        l->gen[i].staged = hmap_new();
        ok = ok && l->gen[i].batch && l->gen[i].staged;
    }
    if (!ok) {
        ledger_destroy(&l);
        return ERR_NOMEM;
    }
    struct kv_cf cfs[CF_KIND0 + NKINDS - 1];
    memset(cfs, 0, sizeof cfs);
    cfs[CF_REQUESTS].name = "requests";
    cfs[CF_PENDING].name = "pending";
    cfs[CF_PENDING].append_only = true; /* read only by recover()'s scan */
    cfs[CF_SEQIDX].name = "seqidx";
    cfs[CF_META].name = "counters";
    for (int k = 1; k < NKINDS; k++)
        cfs[kind_cf(k)].name = kinds_name(k);
    int rc = kv_open(&l->kv, cfg->db_path, cfs, CF_KIND0 + NKINDS - 1);
    if (!rc)
        rc = recover(l);
    if (!rc && l->cfg.curve.on) {
        rc = bus_zap_start(&l->zap, zctx, NULL, 0);
        if (!rc && l->cfg.curve_allow && l->cfg.curve_allow[0]) {
            char err[512];
            rc = bus_zap_allow_file(l->zap, l->cfg.curve_allow, err, sizeof err);
            if (rc)
                log_error("ledger: allow-list: %s", err);
        }
    }
    if (!rc)
        rc = bind_sock(l, &l->clients, ZMQ_ROUTER, cfg->client_bind, l->client_ep,
                       sizeof l->client_ep);
    if (!rc)
        rc = bind_sock(l, &l->workers, ZMQ_ROUTER, cfg->worker_bind, l->worker_ep,
                       sizeof l->worker_ep);
    if (!rc && cfg->events_bind && cfg->events_bind[0])
        rc = bind_sock(l, &l->events, ZMQ_PUB, cfg->events_bind, l->events_ep,
                       sizeof l->events_ep);
    if (!rc) {
        /* The commit thread, and the PAIR it signals on. */
        struct committer *cm = &l->cm;
        cm->kv = l->kv;
        cm->sync = l->cfg.sync;
        cm->zctx = zctx;
        snprintf(cm->endpoint, sizeof cm->endpoint, "inproc://oaif-ledger-commit-%p", (void *)l);
        l->done_sock = zmq_socket(zctx, ZMQ_PAIR);
        int zero = 0;
        if (!l->done_sock || zmq_setsockopt(l->done_sock, ZMQ_LINGER, &zero, sizeof zero) ||
            zmq_bind(l->done_sock, cm->endpoint) != 0)
            rc = ERR_IO;
        else if (pthread_create(&cm->thread, NULL, committer_main, l) == 0)
            cm->started = true;
        else
            log_warn("ledger: no commit thread; committing in the loop");
    }
    if (rc) {
        ledger_destroy(&l);
        return rc;
    }
    *out = l;
    return ERR_OK;
}

void ledger_destroy(ledger_t **pl)
{
    if (!pl || !*pl)
        return;
    ledger_t *l = *pl;
    if (l->cm.started) {
        /* A batch being written is finished first; what it made true is not sent (peers ask
         * again, and get the stored answers). */
        pthread_mutex_lock(&l->cm.mu);
        l->cm.stop = true;
        pthread_cond_signal(&l->cm.cv);
        pthread_mutex_unlock(&l->cm.mu);
        pthread_join(l->cm.thread, NULL);
    }
    pthread_mutex_destroy(&l->cm.mu);
    pthread_cond_destroy(&l->cm.cv);
    if (l->done_sock)
        zmq_close(l->done_sock);
    if (l->clients)
        zmq_close(l->clients);
    if (l->workers)
        zmq_close(l->workers);
    if (l->events)
        zmq_close(l->events);
    bus_zap_stop(&l->zap);
    size_t pos = 0;
    void *v;
    if (l->reqs) {
        while (hmap_next(l->reqs, &pos, NULL, NULL, &v))
            req_free(v);
        hmap_destroy(&l->reqs);
    }
    if (l->services) {
        pos = 0;
        while (hmap_next(l->services, &pos, NULL, NULL, &v)) {
            free(((struct service *)v)->name);
            free(((struct service *)v)->variant);
            free(v);
        }
        hmap_destroy(&l->services);
    }
    if (l->wk) {
        pos = 0;
        while (hmap_next(l->wk, &pos, NULL, NULL, &v))
            free(v);
        hmap_destroy(&l->wk);
    }
    for (int i = 0; i < 2; i++) {
        struct gen *g = &l->gen[i];
        hmap_destroy(&g->staged);
        for (size_t k = 0; k < g->nout; k++)
            free(g->out[k].data);
        free(g->out);
        for (size_t k = 0; k < g->nevs; k++)
            free(g->evs[k].id);
        free(g->evs);
        free(g->finished); /* the requests themselves were freed with l->reqs */
        kv_batch_destroy(&g->batch);
    }
    kv_close(&l->kv);
    free(l);
    *pl = NULL;
}

int ledger_allow_key(ledger_t *l, const char *z85)
{
    if (!l->zap)
        return ERR_INVAL;
    return bus_zap_allow_key(l->zap, z85);
}

void ledger_update_metrics(ledger_t *l, struct metrics *m)
{
    Oaif__V1__Status *st = ledger_status(l);
    if (!st)
        return;
    metrics_gauge_t *g;
    metrics_counter_t *c;
    for (size_t i = 0; i < st->n_services; i++) {
        Oaif__V1__ServiceStatus *s = st->services[i];
        const char *n = s->name;
        if (!metrics_gauge_register(m, &g, "oaif_ledger_workers", "Workers ready per service.",
                                    "service", n, NULL))
            metrics_gauge_set(g, s->workers);
        if (!metrics_gauge_register(m, &g, "oaif_ledger_queued", "Requests waiting for a worker.",
                                    "service", n, NULL))
            metrics_gauge_set(g, (double)s->queued);
        if (!metrics_gauge_register(m, &g, "oaif_ledger_in_flight", "Requests leased now.",
                                    "service", n, NULL))
            metrics_gauge_set(g, (double)s->in_flight);
        if (!metrics_counter_register(m, &c, "oaif_ledger_completed_total",
                                      "Requests answered since the ledger started.", "service", n,
                                      NULL))
            metrics_counter_add(c, (double)s->completed - metrics_counter_value(c));
        if (!metrics_counter_register(m, &c, "oaif_ledger_failed_total",
                                      "Requests failed (dead letters) since the ledger started.",
                                      "service", n, NULL))
            metrics_counter_add(c, (double)s->failed - metrics_counter_value(c));
        if (!metrics_counter_register(m, &c, "oaif_ledger_redelivered_total",
                                      "Leases that expired or whose worker died.", "service", n,
                                      NULL))
            metrics_counter_add(c, (double)s->redelivered - metrics_counter_value(c));
    }
    for (size_t i = 0; i < st->n_records; i++) {
        const char *kn = kinds_name(st->records[i]->kind);
        if (kn && !metrics_gauge_register(m, &g, "oaif_ledger_records", "Records stored per kind.",
                                          "kind", kn, NULL))
            metrics_gauge_set(g, (double)st->records[i]->count);
    }
    if (!metrics_gauge_register(m, &g, "oaif_ledger_dead_letters", "Failed requests, all time.",
                                NULL))
        metrics_gauge_set(g, (double)st->dead_letters);
    if (!metrics_gauge_register(m, &g, "oaif_ledger_bad_messages",
                                "Malformed messages since the ledger started.", NULL))
        metrics_gauge_set(g, (double)st->dropped_messages);
    if (!metrics_gauge_register(m, &g, "oaif_ledger_commit_p99_seconds",
                                "p99 of the last 1024 group commits.", NULL))
        metrics_gauge_set(g, st->commit_p99_ms / 1000);
    if (!metrics_gauge_register(m, &g, "oaif_ledger_curve_denied",
                                "Connections refused by the allow-list.", NULL))
        metrics_gauge_set(g, (double)bus_zap_denied(l->zap));
    if (!metrics_gauge_register(m, &g, "oaif_ledger_disk_full",
                                "1 while writes are refused for lack of disk space.", NULL))
        metrics_gauge_set(g, l->full ? 1 : 0);
    ledger_status_free(st);
}

const char *ledger_client_endpoint(const ledger_t *l)
{
    return l->client_ep;
}

const char *ledger_worker_endpoint(const ledger_t *l)
{
    return l->worker_ep;
}

const char *ledger_events_endpoint(const ledger_t *l)
{
    return l->events_ep;
}

const char *ledger_unavailable(const ledger_t *l)
{
    return l->full ? "the disk of ledger.data_dir is full: writes are refused until space returns"
                   : NULL;
}
