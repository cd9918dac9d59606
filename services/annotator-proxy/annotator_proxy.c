/* annotator_proxy.c - see annotator_proxy.h. */
#include "annotator_proxy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "annotator_scorer.h"
#include "busclient.h"
#include "busopts.h"
#include "busworker.h"
#include "err.h"
#include "log.h"

#define BATCH_MAX      256  /* requests taken off the socket per turn */
#define CACHE_GET_MS   3000 /* a cache look-up that takes longer counts as a miss */
#define SCORE_POLL_MAX 5    /* ms: the bus client has no fd for us, so poll it this often */

struct job { /* one judgement in flight */
    annotator_proxy_t *p;
    char *id;
    char key[SHA256_HEX_LEN + 1];
    struct job *prev, *next; /* the proxy's jobs: freed at destroy if never called back */
};

/* The judge's totals as last copied into the metrics, and the series. */
struct series {
    metrics_counter_t *requests, *bad, *hits, *misses;
    metrics_counter_t *ok, *failed, *failed_by[ANNOTATOR_FAIL_LOCAL + 1];
    metrics_counter_t *first, *second, *ties, *calls, *attempts, *retries, *rate_waits;
    metrics_counter_t *ptok, *ctok, *cost, *latency, *disagree, *disagree_n;
    metrics_gauge_t *pending;
};

struct annotator_proxy {
    annotator_t *judge;
    struct annotator_judge_ctx ctx;
    bus_worker_t *worker;
    bus_client_t *client; /* cache look-ups and score requests; NULL when neither is needed */
    annotator_scorer_t *scorer;
    struct bus_curve curve;
    bool cache;
    char *instruction; /* the default instruction; NULL: none */
    bool more;         /* requests may be waiting on the socket: do not block */
    struct annotator_proxy_stats st, st_seen;
    struct annotator_totals tot_seen;
    struct series m;
    bool metrics_on;
    struct job *jobs;
};

static void job_unlink(annotator_proxy_t *p, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
}

static void job_free(struct job *j)
{
    free(j->id);
    free(j);
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Packs AnnotateReply{label} and the records, and replies. */
static void reply_label(annotator_proxy_t *p, const char *id, Oaif__V1__Label *label,
                        const char *cache_key)
{
    Oaif__V1__AnnotateReply ar = OAIF__V1__ANNOTATE_REPLY__INIT;
    ar.label = label;
    size_t rl = oaif__v1__annotate_reply__get_packed_size(&ar);
    size_t ll = oaif__v1__label__get_packed_size(label);
    uint8_t *rb = malloc(rl ? rl : 1), *lb = malloc(ll ? ll : 1);
    if (!rb || !lb) {
        free(rb);
        free(lb);
        log_error("annotate %s: out of memory packing the label", id);
        bus_worker_fail(p->worker, id, "annotator-proxy: out of memory", false);
        p->st.failures++;
        return;
    }
    oaif__v1__annotate_reply__pack(&ar, rb);
    oaif__v1__label__pack(label, lb);
    Oaif__V1__Record recs[2] = {OAIF__V1__RECORD__INIT, OAIF__V1__RECORD__INIT};
    Oaif__V1__Record *rp[2] = {&recs[0], &recs[1]};
    recs[0].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL;
    recs[0].id = (char *)id;
    recs[0].data.data = lb;
    recs[0].data.len = ll;
    size_t nrec = 1;
    if (cache_key) {
        recs[1].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_CACHE;
        recs[1].id = (char *)cache_key;
        recs[1].data.data = lb;
        recs[1].data.len = ll;
        nrec = 2;
    }
    bus_worker_reply(p->worker, id, rb, rl, rp, nrec);
    p->st.replies++;
    free(rb);
    free(lb);
}

static void on_judged(void *user, const struct annotator_outcome *o)
{
    struct job *j = user;
    annotator_proxy_t *p = j->p;
    if (o->rc != ERR_OK) {
        /* never a label: the ledger retries the request, or dead-letters it with this reason */
        log_warn("annotate %s: judge %s failed%s: %s", j->id, o->judge,
                 o->permanent ? " (permanently)" : "", o->error);
        bus_worker_fail(p->worker, j->id, o->error, o->permanent);
        p->st.failures++;
    } else {
        struct annotator_label l;
        if (annotator_fill_label(o, &l) == ERR_OK) {
            l.label.id = j->id;
            reply_label(p, j->id, &l.label, p->cache ? j->key : NULL);
        }
    }
    job_unlink(p, j);
    job_free(j);
}

/* ---- requests ----------------------------------------------------------------------------- */

struct item { /* a request of this turn's batch */
    struct bus_req *req;
    Oaif__V1__AnnotateRequest *pb;
    struct annotator_request ar;
    char key[SHA256_HEX_LEN + 1];
    bool hit;
};

static void fail_request(annotator_proxy_t *p, const char *id, const char *why)
{
    log_warn("annotate %s: bad request: %s", id, why);
    bus_worker_fail(p->worker, id, why, true);
    p->st.bad_requests++;
    p->st.failures++;
}

/* Parses one request into it; false (after failing it permanently) if it is not one. */
static bool parse_item(annotator_proxy_t *p, struct item *it)
{
    char why[256];
    it->pb = oaif__v1__annotate_request__unpack(NULL, it->req->len, it->req->payload);
    if (!it->pb) {
        fail_request(p, it->req->id, "annotate request: the payload is not an AnnotateRequest");
        return false;
    }
    if (annotator_request_from_pb(it->pb, &it->ar, why, sizeof why)) {
        fail_request(p, it->req->id, why);
        return false;
    }
    if (!it->ar.instruction && p->instruction)
        it->ar.instruction = p->instruction;
    uint64_t now = bus_now_ms();
    if (it->req->deadline_ms > now) /* no judge call starts after the lease ends */
        it->ar.deadline_ms = http_now_ms() + (int64_t)(it->req->deadline_ms - now);
    annotator_cache_key(p->judge, &it->ar, it->key);
    return true;
}

/* Answers a hit from the stored Label; false if the record is unusable (then judge it). */
static bool answer_from_cache(annotator_proxy_t *p, struct item *it, const Oaif__V1__Record *rec)
{
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, rec->data.len, rec->data.data);
    if (!l) {
        log_warn("annotate %s: cache entry %s is not a Label; judging again", it->req->id, it->key);
        return false;
    }
    char *saved_id = l->id, *saved_pair = l->pair_id;
    l->id = it->req->id;
    l->pair_id = (char *)(it->ar.pair_id ? it->ar.pair_id : "");
    l->cached = true;
    reply_label(p, it->req->id, l, NULL);
    l->id = saved_id;
    l->pair_id = saved_pair;
    oaif__v1__label__free_unpacked(l, NULL);
    return true;
}

/* One Get for the keys of the batch; marks hits and answers them. */
static void lookup_cache(annotator_proxy_t *p, struct item *items, size_t n)
{
    const char *keys[BATCH_MAX];
    size_t nk = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].pb && !items[i].hit)
            keys[nk++] = items[i].key;
    if (!nk)
        return;
    Oaif__V1__Envelope *env = NULL;
    int rc = bus_client_get(p->client, OAIF__V1__RECORD_KIND__RECORD_KIND_CACHE, keys, nk,
                            CACHE_GET_MS, &env);
    if (rc) {
        log_warn("cache look-up of %zu keys failed (%s%s%s); judging them", nk, err_str(rc),
                 rc == ERR_REMOTE ? ": " : "",
                 rc == ERR_REMOTE ? bus_client_last_error(p->client) : "");
        return;
    }
    const Oaif__V1__Records *recs = env->records;
    for (size_t r = 0; recs && r < recs->n_records; r++) {
        const Oaif__V1__Record *rec = recs->records[r];
        for (size_t i = 0; i < n; i++) {
            struct item *it = &items[i];
            if (it->pb && !it->hit && rec->id && strcmp(rec->id, it->key) == 0)
                it->hit = answer_from_cache(p, it, rec);
        }
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
}

static void submit_item(annotator_proxy_t *p, struct item *it)
{
    struct job *j = calloc(1, sizeof *j);
    char *id = strdup(it->req->id);
    if (!j || !id) {
        free(j);
        free(id);
        bus_worker_fail(p->worker, it->req->id, "annotator-proxy: out of memory", false);
        p->st.failures++;
        return;
    }
    j->p = p;
    j->id = id;
    memcpy(j->key, it->key, sizeof j->key);
    j->next = p->jobs;
    if (p->jobs)
        p->jobs->prev = j;
    p->jobs = j;
    int rc = annotator_submit(p->judge, &it->ar, on_judged, j);
    if (rc) {
        char why[160];
        snprintf(why, sizeof why, "annotator-proxy: the judge refused the request: %s",
                 err_str(rc));
        bus_worker_fail(p->worker, it->req->id, why, rc == ERR_INVAL);
        p->st.failures++;
        job_unlink(p, j);
        job_free(j);
    }
}

static void handle_batch(annotator_proxy_t *p, struct item *items, size_t n)
{
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) {
        p->st.requests++;
        if (parse_item(p, &items[i]))
            valid++;
    }
    if (valid && p->cache)
        lookup_cache(p, items, n);
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        if (it->pb && it->hit)
            p->st.cache_hits++;
        if (it->pb && !it->hit) {
            if (p->cache)
                p->st.cache_misses++;
            submit_item(p, it);
        }
        if (it->pb)
            oaif__v1__annotate_request__free_unpacked(it->pb, NULL);
        bus_req_free(&it->req);
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int zmq_fd(void *sock)
{
    int fd = -1;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) != 0)
        return -1;
    return fd;
}

static bool zmq_readable(void *sock)
{
    int ev = 0;
    size_t sz = sizeof ev;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) == 0 && (ev & ZMQ_POLLIN);
}

int annotator_proxy_poll(annotator_proxy_t *p, int timeout_ms)
{
    void *sock = bus_worker_socket(p->worker);
    struct pollfd pfd = {.fd = zmq_fd(sock), .events = POLLIN};
    int t = timeout_ms;
    int tick = bus_worker_next_tick_ms(p->worker);
    if (t < 0 || tick < t)
        t = tick;
    if (p->scorer && annotator_scorer_pending(p->scorer) && t > SCORE_POLL_MAX)
        t = SCORE_POLL_MAX;
    if (p->more || zmq_readable(sock))
        t = 0;
    p->more = false;
    int rc = annotator_poll(p->judge, t, pfd.fd >= 0 ? &pfd : NULL, pfd.fd >= 0 ? 1 : 0);
    if (rc)
        return rc;
    if (p->scorer) {
        rc = annotator_scorer_poll(p->scorer, 0);
        if (rc == ERR_INTR)
            return rc;
    }
    bus_worker_tick(p->worker);
    struct item *items = calloc(BATCH_MAX, sizeof *items);
    if (!items)
        return ERR_NOMEM;
    size_t n = 0;
    while (n < BATCH_MAX) {
        rc = bus_worker_recv(p->worker, 0, &items[n].req);
        if (rc != ERR_OK)
            break;
        n++;
    }
    if (n == BATCH_MAX)
        p->more = true;
    if (rc == ERR_TIMEOUT || rc == ERR_AGAIN)
        rc = ERR_OK;
    handle_batch(p, items, n);
    free(items);
    /* replies sent after the drain may have taken the fd's edge: look once more */
    if (zmq_readable(bus_worker_socket(p->worker)))
        p->more = true;
    return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int register_metrics(annotator_proxy_t *p, metrics_t *reg)
{
    const char *j = annotator_judge_id(p->judge);
    struct series *m = &p->m;
    static const char *const fail_names[] = {"none",    "transport", "http", "parse",
                                             "refusal", "backend",   "local"};
    int rc = 0;
#define C(field, name, help, ...)                                                                  \
    if (!rc)                                                                                       \
    rc = metrics_counter_register(reg, &m->field, name, help, "judge", __VA_ARGS__, NULL)
    C(requests, "oaif_annotator_requests_total", "Annotate requests received.", j);
    C(bad, "oaif_annotator_bad_requests_total", "Requests failed before reaching the judge.", j);
    C(hits, "oaif_annotator_cache_total", "Cache look-ups by result.", j, "result", "hit");
    C(misses, "oaif_annotator_cache_total", "Cache look-ups by result.", j, "result", "miss");
    C(ok, "oaif_judge_judgements_total", "Judgements completed, by result.", j, "result", "ok");
    C(failed, "oaif_judge_judgements_total", "Judgements completed, by result.", j, "result",
      "failed");
    for (int f = ANNOTATOR_FAIL_TRANSPORT; f <= ANNOTATOR_FAIL_LOCAL; f++)
        C(failed_by[f], "oaif_judge_failures_total", "Failed judgements by reason.", j, "reason",
          fail_names[f]);
    C(first, "oaif_judge_winners_total", "Labels by winner.", j, "winner", "first");
    C(second, "oaif_judge_winners_total", "Labels by winner.", j, "winner", "second");
    C(ties, "oaif_judge_winners_total", "Labels by winner.", j, "winner", "tie");
    C(calls, "oaif_judge_calls_total", "Judge calls completed (one per order).", j);
    C(attempts, "oaif_judge_http_attempts_total", "HTTP attempts made.", j);
    C(retries, "oaif_judge_http_retries_total", "HTTP attempts after the first.", j);
    C(rate_waits, "oaif_judge_rate_limit_waits_total", "Calls held back by a rate limit.", j);
    C(ptok, "oaif_judge_tokens_total", "Tokens by kind, from the API's usage.", j, "kind",
      "prompt");
    C(ctok, "oaif_judge_tokens_total", "Tokens by kind, from the API's usage.", j, "kind",
      "completion");
    C(cost, "oaif_judge_cost_total", "Cost from the configured price table.", j);
    /* Sums and their counts as counters named as promtool's lint wants (seconds, _total). */
    C(latency, "oaif_judge_latency_seconds_total", "Sum of judgement latencies (ok ones).", j);
    C(disagree, "oaif_judge_disagreement_total",
      "Sum of |p_AB - (1 - p_BA)| over two-order labels.", j);
    C(disagree_n, "oaif_judge_two_order_labels_total", "Two-order labels.", j);
#undef C
    if (!rc)
        rc = metrics_gauge_register(reg, &m->pending, "oaif_judge_pending",
                                    "Judgements in progress.", "judge", j, NULL);
    return rc;
}

static void add_u(metrics_counter_t *c, uint64_t now, uint64_t seen)
{
    if (now > seen)
        metrics_counter_add(c, (double)(now - seen));
}

static void add_d(metrics_counter_t *c, double now, double seen)
{
    if (now > seen)
        metrics_counter_add(c, now - seen);
}

void annotator_proxy_update_metrics(annotator_proxy_t *p)
{
    if (!p->metrics_on)
        return;
    struct annotator_totals t, *o = &p->tot_seen;
    struct series *m = &p->m;
    annotator_totals(p->judge, &t);
    add_u(m->requests, p->st.requests, p->st_seen.requests);
    add_u(m->bad, p->st.bad_requests, p->st_seen.bad_requests);
    add_u(m->hits, p->st.cache_hits, p->st_seen.cache_hits);
    add_u(m->misses, p->st.cache_misses, p->st_seen.cache_misses);
    add_u(m->ok, t.ok, o->ok);
    add_u(m->failed, t.failed, o->failed);
    for (int f = ANNOTATOR_FAIL_TRANSPORT; f <= ANNOTATOR_FAIL_LOCAL; f++)
        add_u(m->failed_by[f], t.failed_by[f], o->failed_by[f]);
    add_u(m->first, t.wins_first, o->wins_first);
    add_u(m->second, t.wins_second, o->wins_second);
    add_u(m->ties, t.ties, o->ties);
    add_u(m->calls, t.calls, o->calls);
    add_u(m->attempts, t.http_attempts, o->http_attempts);
    add_u(m->retries, t.http_retries, o->http_retries);
    add_u(m->rate_waits, t.rate_waits, o->rate_waits);
    add_u(m->ptok, t.prompt_tokens, o->prompt_tokens);
    add_u(m->ctok, t.completion_tokens, o->completion_tokens);
    add_d(m->cost, t.cost, o->cost);
    add_d(m->latency, t.latency_ms_sum / 1000, o->latency_ms_sum / 1000);
    add_d(m->disagree, t.disagreement_sum, o->disagreement_sum);
    add_u(m->disagree_n, t.disagreement_n, o->disagreement_n);
    metrics_gauge_set(m->pending, (double)annotator_pending(p->judge));
    p->tot_seen = t;
    p->st_seen = p->st;
}

/* ---- life cycle --------------------------------------------------------------------------- */

int annotator_proxy_new(annotator_proxy_t **out, const struct annotator_opts *o, void *zctx,
                        metrics_t *metrics, char *why, size_t whylen)
{
    *out = NULL;
    annotator_proxy_t *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    int rc = annotator_opts_curve(o, &p->curve, why, whylen);
    if (rc)
        goto out_destroy;
    p->cache = annotator_opts_cache(o);
    bool rm = o->judge.backend == ANNOTATOR_BACKEND_REWARD_MODEL;
    if (o->instruction && *o->instruction && !(p->instruction = strdup(o->instruction))) {
        rc = ERR_NOMEM;
        goto out_destroy;
    }
    if (p->cache || rm) {
        rc = bus_opts_client(&o->bus, &p->curve, zctx, &p->client, why, whylen);
        if (rc)
            goto out_destroy;
    }
    if (rm) {
        rc = annotator_scorer_new(&p->scorer, p->client, o->score_timeout_ms);
        if (rc)
            goto out_destroy;
    }
    rc = annotator_opts_judge(o, &p->ctx, rm ? annotator_scorer_score : NULL, p->scorer, &p->judge,
                              why, whylen);
    if (rc)
        goto out_destroy;
    if (metrics) {
        rc = register_metrics(p, metrics);
        if (rc) {
            snprintf(why, whylen, "metrics: cannot register the series (%s)", err_str(rc));
            goto out_destroy;
        }
        p->metrics_on = true;
    }
    /* The judge's identity (its id and a hash of what its answers depend on: the cache key of
     * an empty question), announced in Ready: the ledger never lets two judges share a service. */
    struct annotator_request probe = {
        .prompt = "", .responses = {"", ""}, .instruction = p->instruction};
    char key[SHA256_HEX_LEN + 1], variant[160];
    annotator_cache_key(p->judge, &probe, key);
    snprintf(variant, sizeof variant, "%.120s %.16s", annotator_judge_id(p->judge), key);
    rc = bus_opts_worker_variant(&o->bus, &p->curve, zctx, o->service, annotator_opts_credit(o),
                                 o->worker_name, variant, &p->worker, why, whylen);
    if (rc)
        goto out_destroy;
    *out = p;
    return ERR_OK;
out_destroy:
    annotator_proxy_destroy(&p);
    return rc;
}

void annotator_proxy_destroy(annotator_proxy_t **pp)
{
    if (!pp || !*pp)
        return;
    annotator_proxy_t *p = *pp;
    bus_worker_destroy(&p->worker);
    annotator_destroy(&p->judge); /* drops judgements in flight without callbacks */
    while (p->jobs) {
        struct job *j = p->jobs;
        p->jobs = j->next;
        job_free(j);
    }
    annotator_scorer_destroy(&p->scorer);
    bus_client_destroy(&p->client);
    free(p->instruction);
    memset(&p->curve, 0, sizeof p->curve);
    free(p);
    *pp = NULL;
}

annotator_t *annotator_proxy_judge(annotator_proxy_t *p)
{
    return p->judge;
}

void annotator_proxy_stats(const annotator_proxy_t *p, struct annotator_proxy_stats *out)
{
    *out = p->st;
}
