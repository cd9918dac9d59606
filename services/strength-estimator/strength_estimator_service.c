/* strength_estimator_service.c - see strength_estimator_service.h. */
#include "strength_estimator_service.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "busclient.h"
#include "busopts.h"
#include "busworker.h"
#include "err.h"
#include "log.h"

/* A synchronous read of the ledger that takes longer than one heartbeat interval (at least
 * 200 ms) is tried again later: the poll thread must not miss heartbeats. */
#define LEDGER_QUERY_MS(s)                                                                         \
    ((s)->cfg->bus.heartbeat_ms > 200 ? (int)(s)->cfg->bus.heartbeat_ms : 200)
#define DIST_PAGES_PER_TURN 20   /* Strength pages (1000 records) read per loop turn */
#define DIST_REFRESH_MS     1000 /* the distribution is read this often with nothing to decide */
#define RETRY_MS            1000 /* after a failed read of the ledger */
#define PENDING_POLL_MS     100  /* poll cap while score requests are pending (their resends) */
#define EXPIRE_SLACK_MS     250 /* a waiting request is given back this long before its lease ends */
#define MEMBERS_MAX         1024 /* member indices 0 .. MAX-1, as the reward-scorer's */
#define MEMBERS_KEY_MAX     (MEMBERS_MAX * 24)
#define N_ACTIONS           7 /* Oaif__V1__StrengthAction values */

/* One estimate request in progress. */
struct job {
    struct bus_req *req;
    Oaif__V1__EstimateRequest *pb;
    char score_id[96];
    int ask;                      /* which ask of the score service (0 first) */
    Oaif__V1__ScoreReply *scores; /* once the score service answered */
    uint64_t t0;                  /* received, monotonic ms */
    struct job *next;
};

struct series {
    metrics_counter_t *requests, *ok, *failed, *bad, *expired, *asks, *strengths;
    metrics_counter_t *actions[N_ACTIONS];
    metrics_gauge_t *mu[5], *dist_n, *in_progress;
    metrics_histogram_t *seconds;
};

static const double mu_quantiles[5] = {0.1, 0.25, 0.5, 0.75, 0.9};

struct strength_estimator_service {
    const struct strength_estimator_config *cfg; /* borrowed */
    bus_worker_t *worker;
    bus_client_t *client;
    void *sub;
    struct bus_curve curve;
    struct job *jobs; /* in progress, newest first */
    size_t njobs;

    /* the ensemble's members, from the ledger's checkpoint records */
    int64_t versions[MEMBERS_MAX];
    char members_key[MEMBERS_KEY_MAX];
    uint64_t ck_seq; /* checkpoint scan cursor */
    bool ck_read;    /* read at least once */
    struct bus_rescan rescan; /* events are hints: the ledger's records say what is new */

    /* the running distribution, from the ledger's Strength records */
    strength_dist_t *dist;
    uint64_t dist_seq;    /* Strength scan cursor */
    bool dist_caught_up;  /* the last read reached the end */
    uint64_t next_dist;   /* next read when nothing waits on it */
    char dist_error[512]; /* the last read's failure, "" after a success */

    struct strength_estimator_service_stats st, seen;
    struct series m;
    bool metrics_on;
};

/* ---- the ledger's records ----------------------------------------------------------------- */

static void log_read_error(strength_estimator_service_t *s, const char *what, int rc, char *out,
                           size_t outlen)
{
    snprintf(out, outlen, "reading the ledger's %s: %s%s%s", what, err_str(rc),
             rc == ERR_REMOTE ? ": " : "",
             rc == ERR_REMOTE ? bus_client_last_error(s->client) : "");
}

/* Reads the reward checkpoints committed since the cursor and folds them into the member
 * versions. false when the ledger could not be read. */
static bool rescan_members(strength_estimator_service_t *s)
{
    bool changed = false;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(s->client, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT,
                                 s->ck_seq, 1000, LEDGER_QUERY_MS(s), &env);
        if (rc) {
            char why[600];
            log_read_error(s, "checkpoints", rc, why, sizeof why);
            if (s->ck_read)
                log_warn("%s; trying again later", why);
            return false;
        }
        Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; rs && i < rs->n_records; i++) {
            Oaif__V1__Checkpoint *c = oaif__v1__checkpoint__unpack(NULL, rs->records[i]->data.len,
                                                                   rs->records[i]->data.data);
            if (c && strength_members_note(s->cfg->ensemble, c, s->versions, MEMBERS_MAX))
                changed = true;
            if (c)
                oaif__v1__checkpoint__free_unpacked(c, NULL);
        }
        bool more = rs && rs->more;
        if (rs)
            s->ck_seq = rs->next_seq > s->ck_seq ? rs->next_seq : s->ck_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            break;
    }
    if (changed || !s->ck_read) {
        strength_members_key(s->versions, MEMBERS_MAX, s->members_key, sizeof s->members_key);
        log_info("ensemble '%s' in the ledger: %s", s->cfg->ensemble,
                 s->members_key[0] ? s->members_key : "no member yet");
    }
    s->ck_read = true;
    return true;
}

/* Reads up to `pages` pages of Strength records committed since the cursor into the
 * distribution. ERR_OK (s->dist_caught_up says whether it reached the end), or the read's error
 * (its text in s->dist_error). */
static int read_strengths(strength_estimator_service_t *s, int pages)
{
    for (int p = 0; p < pages; p++) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(s->client, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH,
                                 s->dist_seq, 1000, LEDGER_QUERY_MS(s), &env);
        if (rc) {
            log_read_error(s, "strengths", rc, s->dist_error, sizeof s->dist_error);
            s->dist_caught_up = false;
            return rc;
        }
        s->dist_error[0] = '\0';
        Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; rs && i < rs->n_records; i++) {
            Oaif__V1__Strength *st = oaif__v1__strength__unpack(NULL, rs->records[i]->data.len,
                                                                rs->records[i]->data.data);
            if (st && st->ensemble && !strcmp(st->ensemble, s->cfg->ensemble) && st->pair_id &&
                *st->pair_id) {
                if (strength_dist_add(s->dist, st->pair_id, st->mean) == ERR_OK)
                    s->st.strengths++;
            }
            if (st)
                oaif__v1__strength__free_unpacked(st, NULL);
        }
        bool more = rs && rs->more;
        if (rs)
            s->dist_seq = rs->next_seq > s->dist_seq ? rs->next_seq : s->dist_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
        s->dist_caught_up = !more;
        if (!more)
            break;
    }
    return ERR_OK;
}

/* ---- jobs --------------------------------------------------------------------------------- */

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->scores)
        oaif__v1__score_reply__free_unpacked(j->scores, NULL);
    if (j->pb)
        oaif__v1__estimate_request__free_unpacked(j->pb, NULL);
    bus_req_free(&j->req);
    free(j);
}

/* Unlinks j from the list (it must be there). */
static void job_remove(strength_estimator_service_t *s, struct job *j)
{
    for (struct job **pp = &s->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            s->njobs--;
            return;
        }
}

static void fail_request(strength_estimator_service_t *s, const char *id, const char *why,
                         bool permanent, bool bad)
{
    log_warn("estimate %s: %s%s", id, why, permanent ? " (permanent)" : "");
    bus_worker_fail(s->worker, id, why, permanent);
    s->st.failures++;
    s->st.bad_requests += bad;
}

static void fail_job(strength_estimator_service_t *s, struct job *j, const char *why,
                     bool permanent)
{
    fail_request(s, j->req->id, why, permanent, false);
    job_remove(s, j);
    job_free(j);
}

/* Asks the score service for job j's pair under the current ask number. */
static void ask_score(strength_estimator_service_t *s, struct job *j)
{
    const Oaif__V1__Pair *p = j->pb->pair;
    strength_score_id(s->cfg->ensemble, p->id, s->members_key, j->ask, j->score_id,
                      sizeof j->score_id);
    char *texts[2] = {p->responses[0]->text, p->responses[1]->text};
    Oaif__V1__ScoreRequest sr = OAIF__V1__SCORE_REQUEST__INIT;
    sr.prompt = p->prompt;
    sr.texts = texts;
    sr.n_texts = 2;
    /* no pair_id: the Scores record is committed with the estimate, not with the score */
    size_t len = oaif__v1__score_request__get_packed_size(&sr);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        fail_job(s, j, "strength-estimator: out of memory", false);
        return;
    }
    oaif__v1__score_request__pack(&sr, buf);
    int rc = bus_client_submit(s->client, "score", j->score_id, buf, len,
                               (unsigned)s->cfg->score_lease_ms, 0);
    free(buf);
    if (rc == ERR_EXISTS) /* another estimate of this pair asked it already: share the answer */
        rc = ERR_OK;
    else if (rc == ERR_OK)
        s->st.score_asks++;
    if (rc) {
        char why[256];
        snprintf(why, sizeof why, "submitting score request %s: %s", j->score_id, err_str(rc));
        fail_job(s, j, why, false);
        return;
    }
    log_debug("estimate %s: pair %s asks score %s (ask %d, members %s)", j->req->id, p->id,
              j->score_id, j->ask, s->members_key);
}

/* bus_client_poll's callback: a score reply for every job waiting on it. */
static void on_score_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    strength_estimator_service_t *s = ctx;
    struct job *next;
    for (struct job *j = s->jobs; j; j = next) {
        next = j->next;
        if (j->scores || strcmp(j->score_id, reply->id) != 0)
            continue;
        if (reply->outcome == OAIF__V1__OUTCOME__OUTCOME_OK) {
            j->scores =
                oaif__v1__score_reply__unpack(NULL, reply->payload.len, reply->payload.data);
            if (!j->scores) {
                char why[256];
                snprintf(why, sizeof why, "score request %s: the reply is not a ScoreReply",
                         reply->id);
                fail_job(s, j, why, false);
            }
            continue;
        }
        if (j->ask + 1 < s->cfg->score_asks) {
            log_info("estimate %s: score request %s failed (%s); asking again", j->req->id,
                     reply->id, reply->error ? reply->error : "no reason");
            j->ask++;
            ask_score(s, j);
            continue;
        }
        char why[1200];
        snprintf(why, sizeof why, "score: %d request%s failed, the last (%s) with: %s",
                 s->cfg->score_asks, s->cfg->score_asks == 1 ? "" : "s", reply->id,
                 reply->error ? reply->error : "no reason");
        fail_job(s, j, why, true); /* a retry would read the same stored failures */
    }
}

static void receive(strength_estimator_service_t *s, struct bus_req *req)
{
    s->st.requests++;
    char why[1024];
    Oaif__V1__EstimateRequest *pb =
        oaif__v1__estimate_request__unpack(NULL, req->len, req->payload);
    if (!pb) {
        fail_request(s, req->id, "estimate request: the payload is not an EstimateRequest", true,
                     true);
        bus_req_free(&req);
        return;
    }
    if (strength_request_check(pb, why, sizeof why)) {
        char msg[1100];
        snprintf(msg, sizeof msg, "estimate request: %s", why);
        fail_request(s, req->id, msg, true, true);
        oaif__v1__estimate_request__free_unpacked(pb, NULL);
        bus_req_free(&req);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        fail_request(s, req->id, "strength-estimator: out of memory", false, false);
        oaif__v1__estimate_request__free_unpacked(pb, NULL);
        bus_req_free(&req);
        return;
    }
    j->req = req;
    j->pb = pb;
    j->t0 = bus_mono_ms();
    j->next = s->jobs;
    s->jobs = j;
    s->njobs++;
    if (s->ck_read)
        ask_score(s, j); /* else once the members are known (start_waiting) */
}

/* Jobs received before the members were read ask now. */
static void start_waiting(strength_estimator_service_t *s)
{
    struct job *next;
    for (struct job *j = s->jobs; j; j = next) {
        next = j->next;
        if (!j->score_id[0] && !j->scores)
            ask_score(s, j);
    }
}

static bool needs_quantile(const strength_estimator_service_t *s)
{
    const struct strength_rules *r = &s->cfg->rules;
    return r->policy == STRENGTH_POLICY_FLIP && r->flip_quantile > 0;
}

/* Jobs with their scores: decide and reply. */
static void finish_ready(strength_estimator_service_t *s)
{
    bool any = false;
    for (struct job *j = s->jobs; j && !any; j = j->next)
        any = j->scores != NULL;
    if (!any)
        return;
    /* what was committed since the last read, this replica's replies and the others' */
    int rc = read_strengths(s, DIST_PAGES_PER_TURN);
    s->next_dist = bus_mono_ms() + DIST_REFRESH_MS;
    if (needs_quantile(s) && (rc || !s->dist_caught_up)) {
        if (!rc) {
            s->next_dist = bus_mono_ms(); /* still reading: the next turn goes on at once */
            return;
        }
        /* the ledger could not be read: wait for a later read, but give a request back before
         * its lease ends, with the reason */
        s->next_dist = bus_mono_ms() + RETRY_MS;
        uint64_t now = bus_now_ms();
        struct job *next;
        for (struct job *j = s->jobs; j; j = next) {
            next = j->next;
            if (j->scores && j->req->deadline_ms && j->req->deadline_ms <= now + EXPIRE_SLACK_MS)
                fail_job(s, j, s->dist_error, false);
        }
        return;
    }
    struct job *next;
    for (struct job *j = s->jobs; j; j = next) {
        next = j->next;
        if (!j->scores)
            continue;
        struct strength_result *r = NULL;
        char why[1024] = "";
        rc = strength_estimate(s->cfg, j->pb, j->scores, s->dist, &r, why, sizeof why);
        if (rc) {
            fail_job(s, j, why, false);
            continue;
        }
        rc = bus_worker_reply(s->worker, j->req->id, r->packed, r->packed_len, r->records,
                              r->n_records);
        if (rc)
            log_warn("estimate %s: the reply could not be sent (%s); the ledger will re-lease it",
                     j->req->id, err_str(rc));
        const struct strength_decision *d = &r->decision;
        log_debug("estimate %s: pair %s mu %.4f sigma %.4f over %zu members: %s (%s)", j->req->id,
                  j->pb->pair->id, r->mu, r->sigma, r->n_members, strength_action_name(d->action),
                  d->reason);
        s->st.replies++;
        if ((int)d->action >= 0 && (int)d->action < N_ACTIONS)
            s->st.actions[d->action]++;
        if (s->metrics_on)
            metrics_histogram_observe(s->m.seconds, (double)(bus_mono_ms() - j->t0) / 1000.0);
        strength_result_free(&r); /* borrows the request's pair id: first */
        job_remove(s, j);
        job_free(j);
    }
}

/* Jobs whose lease ended are forgotten: the ledger has re-leased them. */
static void expire(strength_estimator_service_t *s)
{
    uint64_t now = bus_now_ms();
    struct job *next;
    for (struct job *j = s->jobs; j; j = next) {
        next = j->next;
        if (j->req->deadline_ms && j->req->deadline_ms < now) {
            log_warn("estimate %s: the lease ended while waiting for score %s; the ledger "
                     "re-leases it",
                     j->req->id, j->score_id[0] ? j->score_id : "(not asked yet)");
            s->st.expired++;
            job_remove(s, j);
            job_free(j);
        }
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

int strength_estimator_service_poll(strength_estimator_service_t *s, int timeout_ms)
{
    zmq_pollitem_t items[3];
    int n = 0;
    items[n++] = (zmq_pollitem_t){bus_worker_socket(s->worker), 0, ZMQ_POLLIN, 0};
    items[n++] = (zmq_pollitem_t){bus_client_socket(s->client), 0, ZMQ_POLLIN, 0};
    if (s->sub)
        items[n++] = (zmq_pollitem_t){s->sub, 0, ZMQ_POLLIN, 0};
    int t = timeout_ms;
    int tick = bus_worker_next_tick_ms(s->worker);
    if (t < 0 || tick < t)
        t = tick;
    t = bus_rescan_wait_ms(&s->rescan, t);
    uint64_t now = bus_mono_ms();
    int left = s->next_dist > now ? (int)(s->next_dist - now) : 0;
    t = left < t ? left : t;
    if (bus_client_pending(s->client) && t > PENDING_POLL_MS)
        t = PENDING_POLL_MS;
    if (t < 0)
        t = 0;
    if (zmq_poll(items, n, t) < 0)
        return zmq_errno() == EINTR ? ERR_INTR : ERR_IO;
    bus_worker_tick(s->worker);
    bus_rescan_drain(&s->rescan, s->sub);

    if (bus_rescan_due(&s->rescan)) {
        bool was = s->ck_read;
        bool ok = rescan_members(s);
        bus_rescan_done(&s->rescan, ok, (uint64_t)s->cfg->rescan_ms, RETRY_MS);
        if (ok && !was)
            start_waiting(s);
    }
    int rc;
    for (;;) {
        struct bus_req *req = NULL;
        rc = bus_worker_recv(s->worker, 0, &req);
        if (rc != ERR_OK)
            break;
        receive(s, req);
    }
    if (rc == ERR_TIMEOUT || rc == ERR_AGAIN)
        rc = ERR_OK;
    int got = bus_client_poll(s->client, 0, on_score_reply, s);
    if (got == ERR_INTR && !rc)
        rc = ERR_INTR;
    finish_ready(s);
    if (bus_mono_ms() >= s->next_dist) {
        /* keeps the distribution (and /metrics) current, and loads it after a start */
        int r = read_strengths(s, DIST_PAGES_PER_TURN);
        s->next_dist = bus_mono_ms() + (r ? RETRY_MS : s->dist_caught_up ? DIST_REFRESH_MS : 0);
    }
    expire(s);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int register_metrics(strength_estimator_service_t *s, metrics_t *reg)
{
    struct series *m = &s->m;
    const char *e = s->cfg->ensemble;
    static const double bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    int rc = 0;
#define C(field, name, help, ...)                                                                  \
    if (!rc)                                                                                       \
    rc = metrics_counter_register(reg, &m->field, name, help, "ensemble", e, ##__VA_ARGS__, NULL)
    C(requests, "oaif_strength_estimator_requests_total", "Estimate requests received.");
    C(ok, "oaif_strength_estimator_results_total", "Results sent, by result.", "result", "ok");
    C(failed, "oaif_strength_estimator_results_total", "Results sent, by result.", "result",
      "failed");
    C(bad, "oaif_strength_estimator_bad_requests_total", "Malformed requests (failed at once).");
    C(expired, "oaif_strength_estimator_expired_total",
      "Requests whose lease ended while they waited (re-leased by the ledger).");
    C(asks, "oaif_strength_estimator_score_requests_total", "Score requests submitted.");
    C(strengths, "oaif_strength_estimator_strengths_read_total",
      "Strength records of the ensemble read from the ledger.");
    for (int a = 1; a < N_ACTIONS; a++)
        C(actions[a], "oaif_strength_estimator_actions_total", "Estimates answered, by action.",
          "action", strength_action_name(a));
#undef C
    for (int i = 0; i < 5 && !rc; i++) {
        char q[16];
        snprintf(q, sizeof q, "%g", mu_quantiles[i]);
        rc = metrics_gauge_register(reg, &m->mu[i], "oaif_strength_estimator_mu",
                                    "Quantiles of mu in the running distribution, by q.",
                                    "ensemble", e, "q", q, NULL);
    }
    if (!rc)
        rc = metrics_gauge_register(reg, &m->dist_n, "oaif_strength_estimator_distribution_size",
                                    "Strengths in the running distribution.", "ensemble", e, NULL);
    if (!rc)
        rc = metrics_gauge_register(reg, &m->in_progress, "oaif_strength_estimator_in_progress",
                                    "Requests received and not yet answered.", "ensemble", e, NULL);
    if (!rc)
        rc = metrics_histogram_register(reg, &m->seconds, "oaif_strength_estimator_request_seconds",
                                        "From receiving a request to its reply.", bounds,
                                        sizeof bounds / sizeof bounds[0], "ensemble", e, NULL);
    return rc;
}

static void add_u(metrics_counter_t *c, uint64_t now, uint64_t seen)
{
    if (now > seen)
        metrics_counter_add(c, (double)(now - seen));
}

void strength_estimator_service_stats(const strength_estimator_service_t *s,
                                      struct strength_estimator_service_stats *out)
{
    *out = s->st;
}

void strength_estimator_service_update_metrics(strength_estimator_service_t *s)
{
    if (!s->metrics_on)
        return;
    const struct strength_estimator_service_stats *st = &s->st;
    struct strength_estimator_service_stats *o = &s->seen;
    struct series *m = &s->m;
    add_u(m->requests, st->requests, o->requests);
    add_u(m->ok, st->replies, o->replies);
    add_u(m->failed, st->failures, o->failures);
    add_u(m->bad, st->bad_requests, o->bad_requests);
    add_u(m->expired, st->expired, o->expired);
    add_u(m->asks, st->score_asks, o->score_asks);
    add_u(m->strengths, st->strengths, o->strengths);
    for (int a = 1; a < N_ACTIONS; a++)
        add_u(m->actions[a], st->actions[a], o->actions[a]);
    *o = *st;
    for (int i = 0; i < 5; i++) {
        double v;
        if (strength_dist_quantile(s->dist, mu_quantiles[i], &v))
            metrics_gauge_set(m->mu[i], v);
    }
    metrics_gauge_set(m->dist_n, (double)strength_dist_count(s->dist));
    metrics_gauge_set(m->in_progress, (double)s->njobs);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int strength_estimator_service_new(strength_estimator_service_t **out,
                                   const struct strength_estimator_config *cfg, void *zctx,
                                   metrics_t *metrics, char *why, size_t whylen)
{
    *out = NULL;
    strength_estimator_service_t *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->cfg = cfg;
    bus_rescan_init(&s->rescan);
    for (size_t m = 0; m < MEMBERS_MAX; m++)
        s->versions[m] = -1;
    const struct bus_opts *bus = &cfg->bus;
    int rc = strength_rules_check(&cfg->rules, why, whylen);
    if (!rc && (!cfg->ensemble || !*cfg->ensemble)) {
        rc = ERR_INVAL;
        snprintf(why, whylen, "strength_estimator.ensemble: empty");
    }
    if (!rc && cfg->credit < 1) {
        rc = ERR_INVAL;
        snprintf(why, whylen, "strength_estimator.credit: %d is below 1", cfg->credit);
    }
    if (!rc && cfg->score_asks < 1) {
        rc = ERR_INVAL;
        snprintf(why, whylen, "strength_estimator.score_asks: %d is below 1", cfg->score_asks);
    }
    if (!rc && cfg->window < 0) {
        rc = ERR_INVAL;
        snprintf(why, whylen, "strength_estimator.window: %d is below 0", cfg->window);
    }
    if (!rc)
        rc = bus_curve_client(&s->curve, bus->curve_secret_key, bus->ledger_public_key,
                              "strength_estimator.curve_secret_key", why, whylen);
    if (rc)
        goto out_destroy;
    s->dist = strength_dist_new((size_t)cfg->window);
    if (!s->dist) {
        rc = ERR_NOMEM;
        snprintf(why, whylen, "out of memory");
        goto out_destroy;
    }
    if (metrics) {
        rc = register_metrics(s, metrics);
        if (rc) {
            snprintf(why, whylen, "metrics: cannot register the series (%s)", err_str(rc));
            goto out_destroy;
        }
        s->metrics_on = true;
    }
    rc = bus_opts_client(bus, &s->curve, zctx, &s->client, why, whylen);
    if (!rc)
        rc = bus_opts_events(bus, &s->curve, zctx, "checkpoints", &s->sub, why, whylen);
    if (!rc)
        rc = bus_opts_worker(bus, &s->curve, zctx, "estimate", (unsigned)cfg->credit,
                             cfg->worker_name, &s->worker, why, whylen);
    if (rc)
        goto out_destroy;
    *out = s;
    return ERR_OK;
out_destroy:
    strength_estimator_service_destroy(&s);
    return rc;
}

void strength_estimator_service_destroy(strength_estimator_service_t **ps)
{
    if (!ps || !*ps)
        return;
    strength_estimator_service_t *s = *ps;
    while (s->jobs) {
        struct job *j = s->jobs;
        s->jobs = j->next;
        job_free(j);
    }
    bus_worker_destroy(&s->worker);
    if (s->sub)
        zmq_close(s->sub);
    bus_client_destroy(&s->client);
    strength_dist_destroy(&s->dist);
    memset(&s->curve, 0, sizeof s->curve);
    free(s);
    *ps = NULL;
}
