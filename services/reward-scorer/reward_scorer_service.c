/* reward_scorer_service.c - see reward_scorer_service.h. */
#include "reward_scorer_service.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "busopts.h"
#include "busworker.h"
#include "err.h"
#include "log.h"

/* A checkpoint scan that takes longer than one heartbeat interval (at least 200 ms) is tried
 * again later: the poll thread must not miss heartbeats. */
#define LEDGER_QUERY_MS(s)                                                                         \
    ((s)->cfg->bus.heartbeat_ms > 200 ? (int)(s)->cfg->bus.heartbeat_ms : 200)
#define RESCAN_RETRY_MS 1000 /* after a failed read of the ledger's checkpoints */
#define FIRST_RETRY_MS  100  /* ... before the first one succeeded (the connection is new) */
#define QUIET_FAIL_MS   5000 /* failed reads before the first success are logged after this */
#define WAIT_POLL_MS    100  /* poll cap while requests wait for members */
#define EXPIRE_SLACK_MS 250  /* a waiting request fails this long before its lease ends */
#define PLAN_MAX        REWARD_SCORER_MEMBERS_MAX

/* One request handed to the engine thread, and its outcome. */
struct job {
    struct bus_req *req;
    Oaif__V1__ScoreRequest *pb;
    int rc;
    struct reward_scorer_result *res;
    char why[1024];
};

/* A request received and not yet handed over. */
struct waiting {
    struct bus_req *req;
    Oaif__V1__ScoreRequest *pb;
    struct waiting *next;
};

struct series {
    metrics_counter_t *requests, *ok, *failed, *bad, *texts, *tokens, *truncated, *records;
    metrics_counter_t *loads, *load_failed;
    metrics_gauge_t *loaded, *waiting;
    metrics_histogram_t *seconds;
};

struct reward_scorer_service {
    const struct reward_scorer_config *cfg; /* borrowed */
    reward_scorer_t *scorer;
    bus_worker_t *worker;
    bus_client_t *client;
    void *sub;
    struct bus_curve curve;
    int wake[2]; /* the threads write a byte to wake[1] when they finish something */

    /* shared with the threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo, *done;
    struct reward_member_ref *lq; /* [nlq] member versions for the loader, one per member */
    size_t nlq;
    struct reward_member_ref loading_ref;
    bool loading;
    bool replan; /* a load failed: plan again (an older version may do) */
    struct reward_scorer_service_stats st;
    bool quit;

    /* the poll thread's */
    pthread_t engine_th, loader_th;
    struct waiting *wq_head, *wq_tail;
    size_t nwaiting;
    struct bus_rescan rescan;       /* events are hints: the ledger's records say what is new */
    uint64_t fail_since;            /* the first failed read of a streak (0: none) */
    struct reward_member_ref *plan; /* [PLAN_MAX] scratch of rescan() */
    struct reward_scorer_service_stats seen;
    struct series m;
    bool metrics_on;
    bool engine_on, loader_on, mu_on, cv_on;
    bool busy;       /* a job is with the engine */
    bool scanned;    /* the ledger's checkpoints were read at least once */
    bool wait_logged;
    size_t serving; /* members in memory, last logged */
};

static void wake_main(reward_scorer_service_t *s)
{
    char b = 1;
    ssize_t n = write(s->wake[1], &b, 1); /* a full pipe already wakes the poll */
    (void)n;
}

/* ---- the threads -------------------------------------------------------------------------- */

static void set_threads(const reward_scorer_service_t *s)
{
    if (s->cfg->threads > 0)
        omp_set_num_threads(s->cfg->threads);
}

static void *loader_main(void *arg)
{
    reward_scorer_service_t *s = arg;
    set_threads(s);
    const char *ens = s->cfg->ensemble;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        if (s->nlq == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct reward_member_ref ref = s->lq[0];
        memmove(s->lq, s->lq + 1, (s->nlq - 1) * sizeof *s->lq);
        s->nlq--;
        s->loading = true;
        s->loading_ref = ref;
        pthread_mutex_unlock(&s->mu);

        char why[1024] = "";
        uint64_t t0 = bus_mono_ms();
        int rc = reward_scorer_load(s->scorer, &ref, why, sizeof why);
        int64_t have = reward_scorer_member_version(s->scorer, ref.member);
        if (rc && have >= 0)
            log_error("refused %s; %s/m%u@v%lld keeps answering", why, ens, ref.member,
                      (long long)have);
        else if (rc)
            log_error("refused %s; member m%u has no version in memory", why, ref.member);
        else
            log_info("%s/m%u@v%u loaded from %s in %.2f s (sha256 %.12s...)", ens, ref.member,
                     ref.version, ref.dir, (double)(bus_mono_ms() - t0) / 1000.0, ref.sha256);

        pthread_mutex_lock(&s->mu);
        s->loading = false;
        if (rc) {
            s->st.load_failures++;
            s->replan = true;
        } else {
            s->st.loads++;
        }
        wake_main(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *engine_main(void *arg)
{
    reward_scorer_service_t *s = arg;
    set_threads(s);
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        if (!s->todo) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct job *j = s->todo;
        s->todo = NULL;
        pthread_mutex_unlock(&s->mu);
        j->rc = reward_scorer_run(s->scorer, j->pb, &j->res, j->why, sizeof j->why);
        pthread_mutex_lock(&s->mu);
        s->done = j;
        wake_main(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Threads start with every signal blocked: SIGTERM and SIGINT go to the poll thread. */
static int start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc ? ERR_NOMEM : ERR_OK;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

/* Queue ref for the loader unless that version is being loaded or queued already; a queued older
 * version of the same member is replaced. */
static void want_load(reward_scorer_service_t *s, const struct reward_member_ref *ref)
{
    pthread_mutex_lock(&s->mu);
    bool skip = s->loading && s->loading_ref.member == ref->member &&
                s->loading_ref.version == ref->version &&
                !strcmp(s->loading_ref.sha256, ref->sha256);
    size_t i = 0;
    while (i < s->nlq && s->lq[i].member != ref->member)
        i++;
    if (!skip && i < s->nlq && s->lq[i].version == ref->version &&
        !strcmp(s->lq[i].sha256, ref->sha256))
        skip = true;
    if (!skip) {
        s->lq[i] = *ref; /* lq holds PLAN_MAX: one entry per member */
        if (i == s->nlq)
            s->nlq++;
        pthread_cond_broadcast(&s->cv);
        log_info("%s/m%u@v%u is the newest in the ledger; loading it in the background",
                 s->cfg->ensemble, ref->member, ref->version);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Reads the ledger's checkpoint records and queues every member version worth loading. false
 * when the ledger could not be read (then the next try comes sooner). */
static bool rescan(reward_scorer_service_t *s)
{
    Oaif__V1__Checkpoint **cks = NULL;
    size_t n = 0, cap = 0;
    uint64_t after = 0;
    bool ok = true;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(s->client, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, after,
                                 1000, LEDGER_QUERY_MS(s), &env);
        if (rc) {
            /* the first query on a new connection often misses its short deadline: quiet */
            uint64_t now = bus_mono_ms();
            if (!s->fail_since)
                s->fail_since = now;
            if (s->scanned || now - s->fail_since >= QUIET_FAIL_MS) {
                log_warn("reading the ledger's checkpoints: %s%s%s; trying again later",
                         err_str(rc), rc == ERR_REMOTE ? ": " : "",
                         rc == ERR_REMOTE ? bus_client_last_error(s->client) : "");
                s->fail_since = now;
            }
            ok = false;
            break;
        }
        Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; rs && i < rs->n_records; i++) {
            Oaif__V1__Checkpoint *c = oaif__v1__checkpoint__unpack(NULL, rs->records[i]->data.len,
                                                                   rs->records[i]->data.data);
            if (!c)
                continue;
            if (!reward_scorer_is_member(s->scorer, c)) {
                oaif__v1__checkpoint__free_unpacked(c, NULL);
                continue;
            }
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 16;
                Oaif__V1__Checkpoint **g = realloc(cks, nc * sizeof(Oaif__V1__Checkpoint *));
                if (!g) {
                    oaif__v1__checkpoint__free_unpacked(c, NULL);
                    continue;
                }
                cks = g;
                cap = nc;
            }
            cks[n++] = c;
        }
        bool more = rs && rs->more;
        after = rs ? rs->next_seq : after;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            break;
    }
    if (ok) {
        size_t k = reward_scorer_plan(s->scorer, cks, n, s->plan, PLAN_MAX);
        for (size_t i = 0; i < k && i < PLAN_MAX; i++)
            want_load(s, &s->plan[i]);
        if (n == 0 && !s->wait_logged)
            log_info("waiting: the ledger has no reward checkpoint of ensemble '%s' yet",
                     s->cfg->ensemble);
        s->wait_logged = n == 0;
        s->scanned = true;
        s->fail_since = 0;
    }
    for (size_t i = 0; i < n; i++)
        oaif__v1__checkpoint__free_unpacked(cks[i], NULL);
    free(cks);
    return ok;
}

/* Whether requests should wait: the ledger not read yet, or a member with nothing in memory is
 * being loaded. */
static bool must_wait(reward_scorer_service_t *s)
{
    if (!s->scanned)
        return true;
    pthread_mutex_lock(&s->mu);
    bool wait = s->loading && reward_scorer_member_version(s->scorer, s->loading_ref.member) < 0;
    for (size_t i = 0; !wait && i < s->nlq; i++)
        wait = reward_scorer_member_version(s->scorer, s->lq[i].member) < 0;
    pthread_mutex_unlock(&s->mu);
    return wait;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void fail_request(reward_scorer_service_t *s, const char *id, const char *why,
                         bool permanent)
{
    log_warn("score %s: %s%s", id, why, permanent ? " (permanent)" : "");
    bus_worker_fail(s->worker, id, why, permanent);
    pthread_mutex_lock(&s->mu);
    s->st.failures++;
    if (permanent)
        s->st.bad_requests++;
    pthread_mutex_unlock(&s->mu);
}

static void free_job(struct job *j)
{
    reward_scorer_result_free(&j->res); /* borrows from the request: first */
    oaif__v1__score_request__free_unpacked(j->pb, NULL);
    bus_req_free(&j->req);
    free(j);
}

static void finish_job(reward_scorer_service_t *s, struct job *j)
{
    if (j->rc == ERR_OK) {
        struct reward_scorer_result *r = j->res;
        int rc = bus_worker_reply(s->worker, j->req->id, r->packed, r->packed_len, r->records,
                                  r->n_records);
        if (rc)
            log_warn("score %s: the reply could not be sent (%s); the ledger will re-lease it",
                     j->req->id, err_str(rc));
        log_debug("score %s: %zu texts x %zu members, %llu tokens in %.3f s%s", j->req->id,
                  r->n_texts, r->n_members, (unsigned long long)r->tokens, r->seconds,
                  r->n_records ? " (+ Scores record)" : "");
        pthread_mutex_lock(&s->mu);
        s->st.replies++;
        s->st.texts += r->n_texts;
        s->st.tokens += r->tokens;
        s->st.truncated += r->truncated;
        s->st.records += r->n_records;
        pthread_mutex_unlock(&s->mu);
        if (s->metrics_on)
            metrics_histogram_observe(s->m.seconds, r->seconds);
    } else {
        fail_request(s, j->req->id, j->why, reward_scorer_error_permanent(j->rc));
    }
    free_job(j);
    s->busy = false;
}

static void enqueue(reward_scorer_service_t *s, struct bus_req *req)
{
    pthread_mutex_lock(&s->mu);
    s->st.requests++;
    pthread_mutex_unlock(&s->mu);
    Oaif__V1__ScoreRequest *pb = oaif__v1__score_request__unpack(NULL, req->len, req->payload);
    if (!pb) {
        fail_request(s, req->id, "score request: the payload is not a ScoreRequest", true);
        bus_req_free(&req);
        return;
    }
    struct waiting *w = calloc(1, sizeof *w);
    if (!w) {
        fail_request(s, req->id, "reward-scorer: out of memory", false);
        oaif__v1__score_request__free_unpacked(pb, NULL);
        bus_req_free(&req);
        return;
    }
    w->req = req;
    w->pb = pb;
    if (s->wq_tail)
        s->wq_tail->next = w;
    else
        s->wq_head = w;
    s->wq_tail = w;
    s->nwaiting++;
}

static struct waiting *dequeue(reward_scorer_service_t *s)
{
    struct waiting *w = s->wq_head;
    if (w) {
        s->wq_head = w->next;
        if (!s->wq_head)
            s->wq_tail = NULL;
        s->nwaiting--;
    }
    return w;
}

static void dispatch(reward_scorer_service_t *s)
{
    if (s->busy || !s->wq_head || must_wait(s))
        return;
    struct waiting *w = dequeue(s);
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        fail_request(s, w->req->id, "reward-scorer: out of memory", false);
        oaif__v1__score_request__free_unpacked(w->pb, NULL);
        bus_req_free(&w->req);
        free(w);
        return;
    }
    j->req = w->req;
    j->pb = w->pb;
    free(w);
    pthread_mutex_lock(&s->mu);
    s->todo = j;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    s->busy = true;
}

/* Requests that waited for the members until their lease nearly ended go back. */
static void expire_waiting(reward_scorer_service_t *s)
{
    if (!s->wq_head || !must_wait(s))
        return;
    char why[1200], ready[1024] = "";
    if (!s->scanned)
        snprintf(why, sizeof why, "waiting to read the ledger's checkpoints (ensemble '%s')",
                 s->cfg->ensemble);
    else if (!reward_scorer_ready(s->scorer, ready, sizeof ready))
        snprintf(why, sizeof why, "waiting for members to load: %s", ready);
    else
        snprintf(why, sizeof why, "waiting for members of ensemble '%s' to load", s->cfg->ensemble);
    uint64_t now = bus_now_ms();
    struct waiting **pp = &s->wq_head;
    s->wq_tail = NULL;
    while (*pp) {
        struct waiting *w = *pp;
        if (w->req->deadline_ms && w->req->deadline_ms <= now + EXPIRE_SLACK_MS) {
            *pp = w->next;
            s->nwaiting--;
            fail_request(s, w->req->id, why, false);
            oaif__v1__score_request__free_unpacked(w->pb, NULL);
            bus_req_free(&w->req);
            free(w);
        } else {
            s->wq_tail = w;
            pp = &w->next;
        }
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

int reward_scorer_service_poll(reward_scorer_service_t *s, int timeout_ms)
{
    zmq_pollitem_t items[3];
    int n = 0;
    items[n++] = (zmq_pollitem_t){bus_worker_socket(s->worker), 0, ZMQ_POLLIN, 0};
    items[n++] = (zmq_pollitem_t){NULL, s->wake[0], ZMQ_POLLIN, 0};
    if (s->sub)
        items[n++] = (zmq_pollitem_t){s->sub, 0, ZMQ_POLLIN, 0};
    int t = timeout_ms;
    int tick = bus_worker_next_tick_ms(s->worker);
    if (t < 0 || tick < t)
        t = tick;
    t = bus_rescan_wait_ms(&s->rescan, t);
    if (s->wq_head && t > WAIT_POLL_MS)
        t = WAIT_POLL_MS;
    if (t < 0)
        t = 0;
    if (zmq_poll(items, n, t) < 0)
        return zmq_errno() == EINTR ? ERR_INTR : ERR_IO;
    char buf[64];
    while (read(s->wake[0], buf, sizeof buf) > 0)
        ;
    bus_worker_tick(s->worker);
    bus_rescan_drain(&s->rescan, s->sub);

    pthread_mutex_lock(&s->mu);
    struct job *done = s->done;
    s->done = NULL;
    if (s->replan) {
        s->replan = false;
        s->rescan.now = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (done)
        finish_job(s, done);

    if (bus_rescan_due(&s->rescan)) {
        uint64_t retry = s->scanned ? RESCAN_RETRY_MS : FIRST_RETRY_MS;
        bus_rescan_done(&s->rescan, rescan(s), (uint64_t)s->cfg->rescan_ms, retry);
    }
    int rc;
    for (;;) {
        struct bus_req *req = NULL;
        rc = bus_worker_recv(s->worker, 0, &req);
        if (rc != ERR_OK)
            break;
        enqueue(s, req);
    }
    if (rc == ERR_TIMEOUT || rc == ERR_AGAIN)
        rc = ERR_OK;
    size_t loaded = reward_scorer_loaded(s->scorer);
    if (loaded != s->serving) {
        log_info("serving ensemble '%s' with %zu member%s", s->cfg->ensemble, loaded,
                 loaded == 1 ? "" : "s");
        s->serving = loaded;
    }
    dispatch(s);
    expire_waiting(s);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int register_metrics(reward_scorer_service_t *s, metrics_t *reg)
{
    struct series *m = &s->m;
    const char *e = s->cfg->ensemble;
    static const double bounds[] = {0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    int rc = 0;
#define C(field, name, help, ...)                                                                  \
    if (!rc)                                                                                       \
    rc = metrics_counter_register(reg, &m->field, name, help, "ensemble", e, ##__VA_ARGS__, NULL)
    C(requests, "oaif_reward_scorer_requests_total", "Score requests received.");
    C(ok, "oaif_reward_scorer_results_total", "Results sent, by result.", "result", "ok");
    C(failed, "oaif_reward_scorer_results_total", "Results sent, by result.", "result", "failed");
    C(bad, "oaif_reward_scorer_bad_requests_total", "Requests failed permanently.");
    C(texts, "oaif_reward_scorer_texts_total", "Texts scored (each by every member).");
    C(tokens, "oaif_reward_scorer_tokens_total", "Tokens through the members' forwards.");
    C(truncated, "oaif_reward_scorer_truncated_texts_total",
      "Texts whose response was cut to fit a member's context (per member).");
    C(records, "oaif_reward_scorer_scores_records_total", "Scores records sent with replies.");
    C(loads, "oaif_reward_scorer_loads_total", "Member versions read, by result.", "result", "ok");
    C(load_failed, "oaif_reward_scorer_loads_total", "Member versions read, by result.", "result",
      "failed");
#undef C
    if (!rc)
        rc = metrics_gauge_register(reg, &m->loaded, "oaif_reward_scorer_members_loaded",
                                    "Members in memory.", "ensemble", e, NULL);
    if (!rc)
        rc = metrics_gauge_register(reg, &m->waiting, "oaif_reward_scorer_waiting_requests",
                                    "Requests received and not yet scoring.", "ensemble", e, NULL);
    if (!rc)
        rc = metrics_histogram_register(reg, &m->seconds, "oaif_reward_scorer_request_seconds",
                                        "Forward time of every member per request.", bounds,
                                        sizeof bounds / sizeof bounds[0], "ensemble", e, NULL);
    return rc;
}

static void add_u(metrics_counter_t *c, uint64_t now, uint64_t seen)
{
    if (now > seen)
        metrics_counter_add(c, (double)(now - seen));
}

void reward_scorer_service_stats(reward_scorer_service_t *s,
                                 struct reward_scorer_service_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

void reward_scorer_service_update_metrics(reward_scorer_service_t *s)
{
    if (!s->metrics_on)
        return;
    struct reward_scorer_service_stats st;
    reward_scorer_service_stats(s, &st);
    struct reward_scorer_service_stats *o = &s->seen;
    struct series *m = &s->m;
    add_u(m->requests, st.requests, o->requests);
    add_u(m->ok, st.replies, o->replies);
    add_u(m->failed, st.failures, o->failures);
    add_u(m->bad, st.bad_requests, o->bad_requests);
    add_u(m->texts, st.texts, o->texts);
    add_u(m->tokens, st.tokens, o->tokens);
    add_u(m->truncated, st.truncated, o->truncated);
    add_u(m->records, st.records, o->records);
    add_u(m->loads, st.loads, o->loads);
    add_u(m->load_failed, st.load_failures, o->load_failures);
    *o = st;
    metrics_gauge_set(m->loaded, (double)reward_scorer_loaded(s->scorer));
    metrics_gauge_set(m->waiting, (double)s->nwaiting);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int reward_scorer_service_new(reward_scorer_service_t **out, const struct reward_scorer_config *cfg,
                              void *zctx, metrics_t *metrics, char *why, size_t whylen)
{
    *out = NULL;
    reward_scorer_service_t *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->cfg = cfg;
    s->wake[0] = s->wake[1] = -1;
    bus_rescan_init(&s->rescan);
    const struct bus_opts *bus = &cfg->bus;
    int rc = bus_curve_client(&s->curve, bus->curve_secret_key, bus->ledger_public_key,
                              "reward_scorer.curve_secret_key", why, whylen);
    if (!rc)
        rc = reward_scorer_new(&s->scorer, cfg, why, whylen);
    if (!rc && cfg->credit < 1) {
        rc = ERR_INVAL;
        snprintf(why, whylen, "reward_scorer.credit: %d is below 1", cfg->credit);
    }
    if (rc)
        goto out_destroy;
    rc = ERR_NOMEM;
    s->lq = calloc(PLAN_MAX, sizeof *s->lq);
    s->plan = calloc(PLAN_MAX, sizeof *s->plan);
    if (!s->lq || !s->plan) {
        snprintf(why, whylen, "out of memory");
        goto out_destroy;
    }
    if (pipe(s->wake) != 0) {
        s->wake[0] = s->wake[1] = -1;
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        goto out_destroy;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(s->wake[i], F_SETFL, fcntl(s->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(s->wake[i], F_SETFD, FD_CLOEXEC);
    }
    if (pthread_mutex_init(&s->mu, NULL))
        goto out_destroy;
    s->mu_on = true;
    if (pthread_cond_init(&s->cv, NULL))
        goto out_destroy;
    s->cv_on = true;
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
    if (rc)
        goto out_destroy;
    rc = start_thread(&s->loader_th, loader_main, s);
    if (rc) {
        snprintf(why, whylen, "cannot start the loader thread");
        goto out_destroy;
    }
    s->loader_on = true;
    rc = start_thread(&s->engine_th, engine_main, s);
    if (rc) {
        snprintf(why, whylen, "cannot start the engine thread");
        goto out_destroy;
    }
    s->engine_on = true;
    rc = bus_opts_worker(bus, &s->curve, zctx, "score", (unsigned)cfg->credit, cfg->worker_name,
                         &s->worker, why, whylen);
    if (rc)
        goto out_destroy;
    *out = s;
    return ERR_OK;
out_destroy:
    reward_scorer_service_destroy(&s);
    return rc;
}

void reward_scorer_service_destroy(reward_scorer_service_t **ps)
{
    if (!ps || !*ps)
        return;
    reward_scorer_service_t *s = *ps;
    if (s->mu_on) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        if (s->cv_on)
            pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (s->engine_on)
        pthread_join(s->engine_th, NULL);
    if (s->loader_on)
        pthread_join(s->loader_th, NULL);
    /* a job handed over but never taken, or finished but never collected */
    if (s->todo)
        free_job(s->todo);
    if (s->done)
        free_job(s->done);
    struct waiting *w;
    while ((w = dequeue(s))) {
        oaif__v1__score_request__free_unpacked(w->pb, NULL);
        bus_req_free(&w->req);
        free(w);
    }
    bus_worker_destroy(&s->worker);
    if (s->sub)
        zmq_close(s->sub);
    bus_client_destroy(&s->client);
    reward_scorer_destroy(&s->scorer);
    free(s->lq);
    free(s->plan);
    if (s->cv_on)
        pthread_cond_destroy(&s->cv);
    if (s->mu_on)
        pthread_mutex_destroy(&s->mu);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    memset(&s->curve, 0, sizeof s->curve);
    free(s);
    *ps = NULL;
}

reward_scorer_t *reward_scorer_service_scorer(reward_scorer_service_t *s)
{
    return s->scorer;
}
