/* sampler_service.c - see sampler_service.h. */
#include "sampler_service.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "busopts.h"
#include "busworker.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"

/* A checkpoint look-up that takes longer than one heartbeat interval (at least 200 ms) is tried
 * again later: the poll thread must not miss heartbeats. */
#define LEDGER_QUERY_MS(s)                                                                         \
    ((s)->cfg->bus.heartbeat_ms > 200 ? (int)(s)->cfg->bus.heartbeat_ms : 200)
#define RESCAN_RETRY_MS 1000 /* after a failed read of the ledger's checkpoints */
#define WAIT_POLL_MS    100  /* poll cap while requests wait for a first version */
#define EXPIRE_SLACK_MS 250  /* a waiting request fails this long before its lease ends */

/* One request handed to the engine thread, and its outcome. */
struct job {
    struct bus_req *req;
    Oaif__V1__SampleRequest *pb;
    bool load; /* load the pinned version first */
    uint32_t version;
    char dir[PATH_MAX];
    char sha[65];
    int64_t deadline_ms; /* http_now_ms() clock; 0: none */
    int rc;
    struct sampler_result *res;
    char why[1024];
};

/* A request received and not yet handed over. */
struct waiting {
    struct bus_req *req;
    Oaif__V1__SampleRequest *pb;
    struct waiting *next;
};

/* A version for the loader thread. */
struct load_req {
    bool want;
    uint32_t version;
    char dir[PATH_MAX];
    char sha[65];
};

struct series {
    metrics_counter_t *requests, *ok, *failed, *bad, *responses, *tokens, *loads, *load_failed;
    metrics_gauge_t *version, *loaded, *waiting;
    metrics_histogram_t *seconds;
};

struct sampler_service {
    const struct sampler_config *cfg; /* borrowed */
    sampler_t *sampler;
    bus_worker_t *worker;
    bus_client_t *client;
    void *sub;
    struct bus_curve curve;
    int wake[2]; /* the threads write a byte to wake[1] when they finish something */

    /* shared with the threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo, *done;
    struct load_req load;
    uint32_t loading_version;
    uint32_t failed_version; /* with failed_sha: a record that failed to load, not retried */
    char failed_sha[65];
    struct sampler_service_stats st;
    bool quit, loading, failed_valid;

    /* the poll thread's */
    pthread_t engine_th, loader_th;
    struct waiting *wq_head, *wq_tail;
    size_t nwaiting;
    struct bus_rescan rescan; /* events are hints: the ledger's records say what is new */
    int64_t serving; /* the newest version last logged */
    struct sampler_service_stats seen;
    struct series m;
    bool builtin, metrics_on;
    bool engine_on, loader_on, mu_on, cv_on;
    bool busy; /* a job is with the engine */
    bool wait_logged;
};

static void wake_main(sampler_service_t *s)
{
    char b = 1;
    ssize_t n = write(s->wake[1], &b, 1); /* a full pipe already wakes the poll */
    (void)n;
}

/* ---- the threads -------------------------------------------------------------------------- */

static void set_threads(const sampler_service_t *s)
{
    if (s->cfg->threads > 0)
        omp_set_num_threads(s->cfg->threads);
}

static void *loader_main(void *arg)
{
    sampler_service_t *s = arg;
    set_threads(s);
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        if (!s->load.want) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct load_req lr = s->load;
        s->load.want = false;
        s->loading = true;
        s->loading_version = lr.version;
        pthread_mutex_unlock(&s->mu);

        char why[1024] = "";
        uint64_t t0 = bus_mono_ms();
        int rc = sampler_load(s->sampler, lr.version, lr.dir, lr.sha, why, sizeof why);
        if (rc)
            log_error("policy version %u not loaded, still serving version %lld: %s (%s)",
                      lr.version, (long long)sampler_newest(s->sampler), why, err_str(rc));
        else
            log_info("policy version %u loaded from %s in %.2f s (sha256 %.12s...)", lr.version,
                     lr.dir, (double)(bus_mono_ms() - t0) / 1000.0, lr.sha[0] ? lr.sha : "-");

        pthread_mutex_lock(&s->mu);
        s->loading = false;
        if (rc) {
            s->st.load_failures++;
            s->failed_valid = true;
            s->failed_version = lr.version;
            memcpy(s->failed_sha, lr.sha, sizeof s->failed_sha);
        } else {
            s->st.loads++;
        }
        wake_main(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void run_job(sampler_service_t *s, struct job *j)
{
    if (j->load) {
        char why[900];
        uint64_t t0 = bus_mono_ms();
        j->rc = sampler_load(s->sampler, j->version, j->dir, j->sha, why, sizeof why);
        pthread_mutex_lock(&s->mu);
        if (j->rc)
            s->st.load_failures++;
        else
            s->st.loads++;
        pthread_mutex_unlock(&s->mu);
        if (j->rc) {
            snprintf(j->why, sizeof j->why, "policy_version: %s", why);
            if (j->rc != ERR_NOMEM && j->rc != ERR_IO)
                j->rc = ERR_NOTFOUND; /* missing or corrupt: a bad request for this version */
            return;
        }
        log_info("policy version %u (pinned by %s) loaded from %s in %.2f s", j->version,
                 j->req->id, j->dir, (double)(bus_mono_ms() - t0) / 1000.0);
    }
    j->rc =
        sampler_run(s->sampler, j->req->id, j->pb, j->deadline_ms, &j->res, j->why, sizeof j->why);
}

static void *engine_main(void *arg)
{
    sampler_service_t *s = arg;
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
        run_job(s, j);
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

/* Where version c lives: the record's path when it holds weights here (what the trainer wrote:
 * a run's version 0 is its own reference, which need not be the store's sft-v000000), else the
 * store's <kind>-v<version> under our checkpoint_dir (the store mounted elsewhere than where the
 * trainer saw it). The loader checks the weights against the record's sha256 either way. */
static void checkpoint_path(const sampler_service_t *s, const Oaif__V1__Checkpoint *c, char *out,
                            size_t outlen)
{
    char file[PATH_MAX + 32];
    struct stat st;
    if (c->path && *c->path) {
        snprintf(file, sizeof file, "%s/%s", c->path, NN_CKPT_WEIGHTS);
        if (stat(file, &st) == 0 && (size_t)snprintf(out, outlen, "%s", c->path) < outlen)
            return;
    }
    if (ckpt_dir(out, outlen, s->cfg->checkpoint_dir, c->kind, c->version) != ERR_OK)
        *out = '\0';
}

static void want_load(sampler_service_t *s, const Oaif__V1__Checkpoint *c)
{
    const char *sha = c->sha256 ? c->sha256 : "";
    pthread_mutex_lock(&s->mu);
    bool skip =
        (s->failed_valid && s->failed_version == c->version && !strcmp(s->failed_sha, sha)) ||
        (s->loading && s->loading_version == c->version) ||
        (s->load.want && s->load.version == c->version);
    if (!skip) {
        s->load.want = true;
        s->load.version = c->version;
        checkpoint_path(s, c, s->load.dir, sizeof s->load.dir);
        snprintf(s->load.sha, sizeof s->load.sha, "%s", sha);
        pthread_cond_broadcast(&s->cv);
        log_info("policy version %u (%s) is the newest in the ledger; loading it in the "
                 "background",
                 c->version, c->id ? c->id : "");
    }
    pthread_mutex_unlock(&s->mu);
}

/* Reads the ledger's newest policy checkpoint and asks the loader for it when it is newer than
 * what we have. false when the ledger could not be read (then the next try comes sooner). */
static bool rescan(sampler_service_t *s)
{
    if (!s->builtin)
        return true;
    int64_t newest = sampler_newest(s->sampler);
    if (!s->cfg->reload_on_publish && newest >= 0)
        return true;
    Oaif__V1__Checkpoint *c = NULL;
    int rc = ckpt_find_policy(s->client, -1, LEDGER_QUERY_MS(s), &c);
    if (rc == ERR_NOTFOUND) {
        if (newest < 0 && !s->wait_logged) {
            log_info("waiting: the ledger has no policy checkpoint yet (requests wait until one "
                     "is published and loaded)");
            s->wait_logged = true;
        }
        return true;
    }
    if (rc) {
        log_warn("reading the ledger's checkpoints: %s%s%s; trying again later", err_str(rc),
                 rc == ERR_REMOTE ? ": " : "",
                 rc == ERR_REMOTE ? bus_client_last_error(s->client) : "");
        return false;
    }
    if ((int64_t)c->version > newest)
        want_load(s, c);
    oaif__v1__checkpoint__free_unpacked(c, NULL);
    return true;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void fail_request(sampler_service_t *s, const char *id, const char *why, bool permanent)
{
    log_warn("sample %s: %s%s", id, why, permanent ? " (permanent)" : "");
    bus_worker_fail(s->worker, id, why, permanent);
    s->st.failures++;
    if (permanent)
        s->st.bad_requests++;
}

static void finish_job(sampler_service_t *s, struct job *j)
{
    if (j->rc == ERR_OK) {
        struct sampler_result *r = j->res;
        int rc = bus_worker_reply(s->worker, j->req->id, r->packed, r->packed_len, r->records,
                                  r->n_records);
        if (rc)
            log_warn("sample %s: the reply could not be sent (%s); the ledger will re-lease it",
                     j->req->id, err_str(rc));
        log_debug("sample %s: %zu prompts x %u from version %u, %llu tokens in %.3f s + %.3f s",
                  j->req->id, r->n_prompts, r->n, r->version, (unsigned long long)r->tokens,
                  r->gen_seconds, r->score_seconds);
        s->st.replies++;
        s->st.responses += r->n_prompts * r->n;
        s->st.tokens += r->tokens;
        if (s->metrics_on)
            metrics_histogram_observe(s->m.seconds, r->gen_seconds + r->score_seconds);
    } else {
        fail_request(s, j->req->id, j->why, sampler_error_permanent(j->rc));
    }
    sampler_result_free(&j->res); /* borrows from the request: first */
    oaif__v1__sample_request__free_unpacked(j->pb, NULL);
    bus_req_free(&j->req);
    free(j);
    s->busy = false;
}

static void enqueue(sampler_service_t *s, struct bus_req *req)
{
    s->st.requests++;
    Oaif__V1__SampleRequest *pb = oaif__v1__sample_request__unpack(NULL, req->len, req->payload);
    if (!pb) {
        fail_request(s, req->id, "sample request: the payload is not a SampleRequest", true);
        bus_req_free(&req);
        return;
    }
    struct waiting *w = calloc(1, sizeof *w);
    if (!w) {
        fail_request(s, req->id, "sampler: out of memory", false);
        oaif__v1__sample_request__free_unpacked(pb, NULL);
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

static struct waiting *dequeue(sampler_service_t *s)
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

/* The ledger's record of a pinned version that is not in memory. ERR_OK with the job's dir and
 * sha filled; else why says what is wrong. */
static int resolve_pinned(sampler_service_t *s, struct job *j, char *why, size_t whylen)
{
    Oaif__V1__Checkpoint *c = NULL;
    int rc = ckpt_find_policy(s->client, j->version, LEDGER_QUERY_MS(s), &c);
    if (rc == ERR_NOTFOUND) {
        snprintf(why, whylen,
                 "policy_version: version %u is unknown (the ledger has no policy "
                 "checkpoint with that version)",
                 j->version);
        return rc;
    }
    if (rc) {
        snprintf(why, whylen, "policy_version: cannot look version %u up in the ledger (%s)",
                 j->version, err_str(rc));
        return ERR_AGAIN;
    }
    checkpoint_path(s, c, j->dir, sizeof j->dir);
    snprintf(j->sha, sizeof j->sha, "%s", c->sha256 ? c->sha256 : "");
    oaif__v1__checkpoint__free_unpacked(c, NULL);
    j->load = true;
    return ERR_OK;
}

static void dispatch(sampler_service_t *s)
{
    while (!s->busy && s->wq_head) {
        struct waiting *w = s->wq_head;
        bool pinned = w->pb->pin_version;
        if (s->builtin && !pinned && sampler_newest(s->sampler) < 0)
            return; /* wait for a first version */
        dequeue(s);
        struct job *j = calloc(1, sizeof *j);
        if (!j) {
            fail_request(s, w->req->id, "sampler: out of memory", false);
            oaif__v1__sample_request__free_unpacked(w->pb, NULL);
            bus_req_free(&w->req);
            free(w);
            continue;
        }
        j->req = w->req;
        j->pb = w->pb;
        free(w);
        uint64_t now = bus_now_ms();
        if (j->req->deadline_ms > now)
            j->deadline_ms = http_now_ms() + (int64_t)(j->req->deadline_ms - now);
        j->version = j->pb->policy_version;
        if (s->builtin && pinned && !sampler_has(s->sampler, j->version)) {
            char why[600];
            int rc = resolve_pinned(s, j, why, sizeof why);
            if (rc) {
                fail_request(s, j->req->id, why, rc == ERR_NOTFOUND);
                oaif__v1__sample_request__free_unpacked(j->pb, NULL);
                bus_req_free(&j->req);
                free(j);
                continue;
            }
        }
        pthread_mutex_lock(&s->mu);
        s->todo = j;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        s->busy = true;
    }
}

/* Requests that waited for a first version until their lease nearly ended go back. */
static void expire_waiting(sampler_service_t *s)
{
    if (!s->builtin || !s->wq_head || sampler_newest(s->sampler) >= 0)
        return;
    uint64_t now = bus_now_ms();
    struct waiting **pp = &s->wq_head;
    s->wq_tail = NULL;
    while (*pp) {
        struct waiting *w = *pp;
        if (!w->pb->pin_version && w->req->deadline_ms &&
            w->req->deadline_ms <= now + EXPIRE_SLACK_MS) {
            *pp = w->next;
            s->nwaiting--;
            fail_request(s, w->req->id,
                         "policy_version: no policy version is loaded yet (waiting for the ledger "
                         "to publish one)",
                         false);
            oaif__v1__sample_request__free_unpacked(w->pb, NULL);
            bus_req_free(&w->req);
            free(w);
        } else {
            s->wq_tail = w;
            pp = &w->next;
        }
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

int sampler_service_poll(sampler_service_t *s, int timeout_ms)
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
    if (s->builtin)
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
    pthread_mutex_unlock(&s->mu);
    if (done)
        finish_job(s, done);

    if (s->builtin && bus_rescan_due(&s->rescan))
        bus_rescan_done(&s->rescan, rescan(s), (uint64_t)s->cfg->rescan_ms, RESCAN_RETRY_MS);
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
    int64_t newest = sampler_newest(s->sampler);
    if (newest != s->serving && newest >= 0) {
        log_info("serving policy version %lld", (long long)newest);
        s->serving = newest;
    }
    dispatch(s);
    expire_waiting(s);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int register_metrics(sampler_service_t *s, metrics_t *reg)
{
    struct series *m = &s->m;
    const char *b = s->builtin ? "builtin" : "remote";
    static const double bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
    int rc = 0;
#define C(field, name, help, ...)                                                                  \
    if (!rc)                                                                                       \
    rc = metrics_counter_register(reg, &m->field, name, help, "backend", b, ##__VA_ARGS__, NULL)
    C(requests, "oaif_sampler_requests_total", "Sample requests received.");
    C(ok, "oaif_sampler_results_total", "Results sent, by result.", "result", "ok");
    C(failed, "oaif_sampler_results_total", "Results sent, by result.", "result", "failed");
    C(bad, "oaif_sampler_bad_requests_total", "Requests failed permanently.");
    C(responses, "oaif_sampler_responses_total", "Responses generated.");
    C(tokens, "oaif_sampler_tokens_total", "Tokens generated.");
    C(loads, "oaif_sampler_loads_total", "Policy versions read, by result.", "result", "ok");
    C(load_failed, "oaif_sampler_loads_total", "Policy versions read, by result.", "result",
      "failed");
#undef C
    if (!rc)
        rc = metrics_gauge_register(reg, &m->version, "oaif_sampler_policy_version",
                                    "The newest policy version loaded (-1: none).", "backend", b,
                                    NULL);
    if (!rc)
        rc = metrics_gauge_register(reg, &m->loaded, "oaif_sampler_loaded_versions",
                                    "Policy versions in memory.", "backend", b, NULL);
    if (!rc)
        rc =
            metrics_gauge_register(reg, &m->waiting, "oaif_sampler_waiting_requests",
                                   "Requests received and not yet generating.", "backend", b, NULL);
    if (!rc)
        rc = metrics_histogram_register(reg, &m->seconds, "oaif_sampler_request_seconds",
                                        "Generation and scoring time per request.", bounds,
                                        sizeof bounds / sizeof bounds[0], "backend", b, NULL);
    return rc;
}

static void add_u(metrics_counter_t *c, uint64_t now, uint64_t seen)
{
    if (now > seen)
        metrics_counter_add(c, (double)(now - seen));
}

void sampler_service_stats(sampler_service_t *s, struct sampler_service_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

void sampler_service_update_metrics(sampler_service_t *s)
{
    if (!s->metrics_on)
        return;
    struct sampler_service_stats st;
    sampler_service_stats(s, &st);
    struct sampler_service_stats *o = &s->seen;
    struct series *m = &s->m;
    add_u(m->requests, st.requests, o->requests);
    add_u(m->ok, st.replies, o->replies);
    add_u(m->failed, st.failures, o->failures);
    add_u(m->bad, st.bad_requests, o->bad_requests);
    add_u(m->responses, st.responses, o->responses);
    add_u(m->tokens, st.tokens, o->tokens);
    add_u(m->loads, st.loads, o->loads);
    add_u(m->load_failed, st.load_failures, o->load_failures);
    *o = st;
    uint32_t v[64];
    metrics_gauge_set(m->version, (double)sampler_newest(s->sampler));
    metrics_gauge_set(m->loaded, (double)(s->builtin ? sampler_loaded(s->sampler, v, 64) : 1));
    metrics_gauge_set(m->waiting, (double)s->nwaiting);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int sampler_service_new(sampler_service_t **out, const struct sampler_config *cfg, void *zctx,
                        metrics_t *metrics, char *why, size_t whylen)
{
    *out = NULL;
    sampler_service_t *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->cfg = cfg;
    s->wake[0] = s->wake[1] = -1;
    s->serving = -1;
    bus_rescan_init(&s->rescan);
    const struct bus_opts *bus = &cfg->bus;
    int rc = bus_curve_client(&s->curve, bus->curve_secret_key, bus->ledger_public_key,
                              "sampler.curve_secret_key", why, whylen);
    if (!rc)
        rc = sampler_new(&s->sampler, cfg, why, whylen);
    if (rc)
        goto out_destroy;
    s->builtin = cfg->backend == SAMPLER_BACKEND_BUILTIN;
    rc = ERR_NOMEM;
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
    if (s->builtin) {
        rc = bus_opts_client(bus, &s->curve, zctx, &s->client, why, whylen);
        if (!rc && cfg->reload_on_publish)
            rc = bus_opts_events(bus, &s->curve, zctx, "checkpoints", &s->sub, why, whylen);
        if (rc)
            goto out_destroy;
        rc = start_thread(&s->loader_th, loader_main, s);
        if (rc) {
            snprintf(why, whylen, "cannot start the loader thread");
            goto out_destroy;
        }
        s->loader_on = true;
    }
    rc = start_thread(&s->engine_th, engine_main, s);
    if (rc) {
        snprintf(why, whylen, "cannot start the engine thread");
        goto out_destroy;
    }
    s->engine_on = true;
    rc = bus_opts_worker(bus, &s->curve, zctx, "sample", 1, cfg->worker_name, &s->worker, why,
                         whylen);
    if (rc)
        goto out_destroy;
    *out = s;
    return ERR_OK;
out_destroy:
    sampler_service_destroy(&s);
    return rc;
}

void sampler_service_destroy(sampler_service_t **ps)
{
    if (!ps || !*ps)
        return;
    sampler_service_t *s = *ps;
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
    struct job *js[2] = {s->todo, s->done};
    for (int i = 0; i < 2; i++)
        if (js[i]) {
            sampler_result_free(&js[i]->res);
            oaif__v1__sample_request__free_unpacked(js[i]->pb, NULL);
            bus_req_free(&js[i]->req);
            free(js[i]);
        }
    struct waiting *w;
    while ((w = dequeue(s))) {
        oaif__v1__sample_request__free_unpacked(w->pb, NULL);
        bus_req_free(&w->req);
        free(w);
    }
    bus_worker_destroy(&s->worker);
    if (s->sub)
        zmq_close(s->sub);
    bus_client_destroy(&s->client);
    sampler_destroy(&s->sampler);
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

sampler_t *sampler_service_sampler(sampler_service_t *s)
{
    return s->sampler;
}
