/* test_strength_estimator_procs - the estimate service with real processes: a `ledger`, a
 * `reward-scorer` serving an ensemble of tiny random reward models (recorded as Checkpoint records
 * of kind REWARD) and `strength-estimator` replicas, driven through the ledger with
 * EstimateRequests by a real bus client, as the trainer will.
 *  - Each reply's mu and sigma are those of its members' rewards, oriented by the label; the
 *    Scores and Strength records in the ledger equal the reply; the action follows mu < 0 until
 *    min_sample strengths exist, then the bottom q of the strengths committed before it, with the
 *    threshold the test computes from the earlier replies; bad requests fail at once naming the
 *    field and the process keeps serving; /metrics counts the actions.
 *  - The running distribution survives a restart (SIGTERM, and SIGKILL) and is shared by two
 *    replicas: every decision saw every strength committed before it, whichever replica made it.
 *  - An estimator SIGKILLed while it holds requests: another one finishes them; every pair is
 *    scored once and its Strength and Scores committed once (the ledger's sequence numbers say
 *    so), each reply equals the stored records, a repeated request id gets the stored reply byte
 *    for byte, and a new request for an estimated pair asks the same score question and gets the
 *    same mu and sigma without running the members again.
 *  - A long history (21,000 strengths, more than one loop turn reads) is read in full before a
 *    quantile decision; other ensembles' strengths are left out, a rewritten one counts once, and
 *    a window keeps the newest by commit order.
 *  - An estimate whose lease ends (twice) while its score waits for a scorer is forgotten and
 *    leased again; once a scorer comes it completes, with one score request run and one Strength
 *    committed.
 *  - A score that cannot be had (no member loaded) is asked for score_asks times, then the
 *    estimate fails for good with the scorer's reason, and nothing is committed. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "bus.h"
#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "testproc.h"
#include "tpbus.h"
#include "tpmetrics.h"

#define MAX_EST 4

struct fx {
    char dir[256], store[300];
    char ledger_log[300], ep_file[300], scorer_log[300];
    char cep[256], wep[256], eep[256];
    pid_t ledger, scorer;
    pid_t est[MAX_EST];
    char logs[MAX_EST][300];
    void *zctx;
    bus_client_t *c;
};

static struct fx F;

/* ---- processes ---------------------------------------------------------------------------- */

static void start_ledger(struct fx *f)
{
    char db[300];
    snprintf(db, sizeof db, "%s/db", f->dir);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--heartbeat",
                    "200ms",
                    "--lease",
                    "30s",
                    "--max-attempts",
                    "3",
                    "--sync=false",
                    "--endpoints-file",
                    f->ep_file,
                    NULL};
    f->ledger = tp_spawn(argv, f->ledger_log);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep_file, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep_file, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep_file, "events", f->eep, sizeof f->eep, 1000));
}

/* The ledger's status (free with oaif__v1__envelope__free_unpacked). */
static Oaif__V1__Envelope *status(struct fx *f)
{
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_status(f->c, 5000, &env), ERR_OK);
    return env;
}

static const Oaif__V1__ServiceStatus *service_of(const Oaif__V1__Envelope *env, const char *svc)
{
    for (size_t i = 0; i < env->status->n_services; i++)
        if (!strcmp(env->status->services[i]->name, svc))
            return env->status->services[i];
    return NULL;
}

static void start_scorer(struct fx *f, const char *ens, const char *members)
{
    snprintf(f->scorer_log, sizeof f->scorer_log, "%.200s/scorer.log", f->dir);
    char *argv[] = {(char *)tp_bin("services/reward-scorer/reward-scorer"),
                    "--clients",
                    f->cep,
                    "--workers",
                    f->wep,
                    "--events",
                    f->eep,
                    "--heartbeat",
                    "200ms",
                    "--checkpoint-dir",
                    f->store,
                    "--threads",
                    "1",
                    "--ensemble",
                    (char *)ens,
                    "--members",
                    (char *)members,
                    NULL};
    f->scorer = tp_spawn(argv, f->scorer_log);
    assert_true(f->scorer > 0);
    assert_true(tp_wait_workers(f->c, "score", 1, 15000));
}

/* Estimator `k` of ensemble `ens` with the NULL-terminated extra flags; its log is f->logs[k]. */
static void start_estimator(struct fx *f, int k, const char *ens, const char *const *extra)
{
    unsigned before = tp_workers_of(f->c, "estimate");
    /* Through a local buffer: f->dir and f->logs are one object, which gcc's -Wrestrict flags
     * once start_estimator is specialised for &F (RelWithDebInfo). */
    char log[sizeof f->logs[k]];
    snprintf(log, sizeof log, "%.200s/estimator%d.log", f->dir, k);
    memcpy(f->logs[k], log, sizeof log);
    char *argv[40] = {(char *)tp_bin("services/strength-estimator/strength-estimator"),
                      "--clients",
                      f->cep,
                      "--workers",
                      f->wep,
                      "--events",
                      f->eep,
                      "--heartbeat",
                      "200ms",
                      "--ensemble",
                      (char *)ens};
    int n = 11;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->est[k] = tp_spawn(argv, f->logs[k]);
    assert_true(f->est[k] > 0);
    assert_true(tp_wait_workers(f->c, "estimate", before + 1, 15000));
}

/* Stops estimator k with sig (SIGTERM: it must exit 0) and waits until the ledger has
 * `left` estimate workers. */
static void stop_estimator(struct fx *f, int k, int sig, unsigned left)
{
    int st = tp_stop(f->est[k], sig);
    f->est[k] = 0;
    if (sig == SIGTERM) {
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_true(tp_wait_workers(f->c, "estimate", left, 15000));
}

/* ---- reward models ------------------------------------------------------------------------ */

/* Writes member `member` (version 1) of ensemble `ens`, a random reward model (`big`: one that
 * takes a while to score), into the store and records it in the ledger. */
static void publish_member(struct fx *f, const char *ens, uint32_t member, uint64_t seed, bool big)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = big ? 128 : 32;
    c.intermediate_size = big ? 256 : 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 256;
    c.reward_head = true;
    nn_model_t *m = NULL;
    char err[256], dir[PATH_MAX], file[PATH_MAX + 32], hex[65], id[128];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.5f);
    snprintf(dir, sizeof dir, "%s/reward-%s-m%u-v%06u", f->store, ens, member, 1u);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    snprintf(id, sizeof id, "reward-%s-m%u-v1", ens, member);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.id = id;
    ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    ck.version = 1;
    ck.ensemble = (char *)ens;
    ck.member = member;
    ck.path = dir;
    ck.sha256 = hex;
    ck.created_ms = bus_now_ms();
    ck.run = "test";
    assert_int_equal(ckpt_publish(f->c, &ck, 5000), ERR_OK);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* The packed EstimateRequest for pair `pair_id` (texts derived from i), labeled `winner`, into
 * buf; its length. */
static size_t pack_estimate(const char *pair_id, int i, Oaif__V1__Winner winner, uint8_t *buf,
                            size_t cap)
{
    char prompt[64], a[160], b[160];
    snprintf(prompt, sizeof prompt, "What is %d + %d?", i, 2 * i + 1);
    snprintf(a, sizeof a, "The sum is %d.%.*s", 3 * i + 1, i % 7 * 3, "!!!!!!!!!!!!!!!!!!!!!");
    snprintf(b, sizeof b, "%d, I think, or maybe %d%.*s", i * 7 % 13, i + 5, i % 5 * 4,
             "????????????????????");
    Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
    r0.text = a;
    r1.text = b;
    Oaif__V1__Response *rs[2] = {&r0, &r1};
    Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
    p.id = (char *)pair_id;
    p.prompt = prompt;
    p.responses = rs;
    p.n_responses = 2;
    p.run = "test-run";
    Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
    l.pair_id = (char *)pair_id;
    l.winner = winner;
    Oaif__V1__EstimateRequest req = OAIF__V1__ESTIMATE_REQUEST__INIT;
    req.pair = &p;
    req.label = &l;
    size_t len = oaif__v1__estimate_request__get_packed_size(&req);
    assert_true(len <= cap);
    oaif__v1__estimate_request__pack(&req, buf);
    return len;
}

static Oaif__V1__Winner winner_of(int i)
{
    return i % 3 == 1 ? OAIF__V1__WINNER__WINNER_SECOND : OAIF__V1__WINNER__WINNER_FIRST;
}

/* Request `id` for pair `pair_id` (texts from i), which must succeed: the reply. */
static Oaif__V1__EstimateReply *estimate(struct fx *f, const char *id, const char *pair_id, int i)
{
    uint8_t buf[2048];
    size_t n = pack_estimate(pair_id, i, winner_of(i), buf, sizeof buf);
    Oaif__V1__Envelope *env = NULL;
    int rc = bus_client_call(f->c, "estimate", id, buf, n, 60000, &env);
    if (rc)
        fail_msg("estimate %s: %s", id, err_str(rc));
    if (env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("estimate %s failed: %s", id, env->reply->error);
    Oaif__V1__EstimateReply *r =
        oaif__v1__estimate_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    assert_non_null(r);
    oaif__v1__envelope__free_unpacked(env, NULL);
    return r;
}

/* A request that must fail at once: its error contains `says`. */
static void estimate_fails(struct fx *f, const char *id, const void *buf, size_t n,
                           const char *says)
{
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(f->c, "estimate", id, buf, n, 30000, &env), ERR_OK);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_int_equal(env->reply->attempts, 1);
    if (!strstr(env->reply->error, says))
        fail_msg("estimate %s: error '%s' does not say '%s'", id, env->reply->error, says);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

/* mu and sigma from the reply's own Scores, oriented by winner_of(i): they must be its
 * Strength's. */
static void check_mu_sigma(const Oaif__V1__EstimateReply *r, int i, size_t members)
{
    const Oaif__V1__Scores *s = r->scores;
    assert_int_equal(s->n_members, members);
    assert_int_equal(s->n_first, members);
    assert_int_equal(s->n_second, members);
    double sign = winner_of(i) == OAIF__V1__WINNER__WINNER_FIRST ? 1 : -1, sum = 0, ss = 0;
    for (size_t m = 0; m < members; m++)
        sum += sign * (s->first[m] - s->second[m]);
    double mu = sum / (double)members;
    for (size_t m = 0; m < members; m++) {
        double e = sign * (s->first[m] - s->second[m]) - mu;
        ss += e * e;
    }
    assert_float_equal(r->strength->mean, mu, 1e-12);
    assert_float_equal(r->strength->std, sqrt(ss / (double)members), 1e-12);
    assert_int_equal(r->strength->members, members);
}

/* The ledger's record of `kind` for pair `id`, unpacked by `unpack` (NULL when absent). */
static void *get_record(struct fx *f, Oaif__V1__RecordKind kind, const char *id,
                        void *(*unpack)(ProtobufCAllocator *, size_t, const uint8_t *))
{
    Oaif__V1__Envelope *env = NULL;
    const char *ids[1] = {id};
    assert_int_equal(bus_client_get(f->c, kind, ids, 1, 5000, &env), ERR_OK);
    void *m = NULL;
    if (env->records->n_records == 1)
        m = unpack(NULL, env->records->records[0]->data.len, env->records->records[0]->data.data);
    oaif__v1__envelope__free_unpacked(env, NULL);
    return m;
}

static void *unpack_strength(ProtobufCAllocator *a, size_t n, const uint8_t *d)
{
    return oaif__v1__strength__unpack(a, n, d);
}

static void *unpack_scores(ProtobufCAllocator *a, size_t n, const uint8_t *d)
{
    return oaif__v1__scores__unpack(a, n, d);
}

/* The ledger's Strength and Scores records of the reply's pair equal the reply, bit for bit. */
static void check_records(struct fx *f, const Oaif__V1__EstimateReply *r)
{
    const char *pid = r->strength->pair_id;
    Oaif__V1__Strength *st =
        get_record(f, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, pid, unpack_strength);
    Oaif__V1__Scores *sc =
        get_record(f, OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES, pid, unpack_scores);
    if (!st || !sc) {
        fail_msg("pair %s: no %s record in the ledger", pid, st ? "Scores" : "Strength");
        return; /* not reached: fail_msg jumps out */
    }
    assert_true(st->mean == r->strength->mean && st->std == r->strength->std);
    assert_int_equal(st->action, r->strength->action);
    assert_true(st->threshold == r->strength->threshold);
    assert_int_equal(st->sample, r->strength->sample);
    assert_string_equal(st->reason, r->strength->reason);
    assert_int_equal(sc->n_members, r->scores->n_members);
    for (size_t m = 0; m < sc->n_members; m++) {
        assert_string_equal(sc->members[m], r->scores->members[m]);
        assert_true(sc->first[m] == r->scores->first[m]);
        assert_true(sc->second[m] == r->scores->second[m]);
    }
    oaif__v1__strength__free_unpacked(st, NULL);
    oaif__v1__scores__free_unpacked(sc, NULL);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The type-1 q-quantile of vals[0..n). */
static double quantile(const double *vals, size_t n, double q)
{
    double *s = malloc(n * sizeof *s);
    assert_non_null(s);
    memcpy(s, vals, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_d);
    double k = ceil(q * (double)n - 1e-9) - 1;
    size_t i = k < 0 ? 0 : (size_t)k;
    double v = s[i < n ? i : n - 1];
    free(s);
    return v;
}

/* The flip policy's decision for reply r, given the mu of every earlier pair (prev[0..n)). */
static void check_flip_decision(const Oaif__V1__EstimateReply *r, const double *prev, size_t n,
                                double q, size_t min_sample)
{
    const Oaif__V1__Strength *s = r->strength;
    bool flip;
    if (n < min_sample) {
        assert_int_equal(s->sample, 0);
        flip = s->mean < 0;
    } else {
        if (s->sample != n)
            fail_msg("pair %s was decided on %llu strengths, %zu were committed before it",
                     s->pair_id, (unsigned long long)s->sample, n);
        double t = quantile(prev, n, q);
        assert_true(s->threshold == t);
        flip = s->mean <= t;
    }
    assert_int_equal(s->action, flip ? OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP
                                     : OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP);
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* The value of the series line starting with `prefix` in estimator k's /metrics; -1 if none. */
static double est_metric(struct fx *f, int k, const char *prefix)
{
    char port[16] = "";
    const char *needle = "metrics on 127.0.0.1:";
    for (int tries = 0; tries < 200 && !port[0]; tries++) {
        FILE *fp = fopen(f->logs[k], "r");
        char line[1024];
        while (fp && fgets(line, sizeof line, fp))
            if (strstr(line, needle))
                snprintf(port, sizeof port, "%d", atoi(strstr(line, needle) + strlen(needle)));
        if (fp)
            fclose(fp);
        if (!port[0])
            usleep(50000);
    }
    assert_true(port[0]);
    return tp_metric(atoi(port), prefix);
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void test_estimates_follow_the_scores_and_the_quantile_rule(void **state)
{
    (void)state;
    struct fx *f = &F;
    for (uint32_t m = 0; m < 3; m++)
        publish_member(f, "e3", m, 100 + m, false);
    start_scorer(f, "e3", "3");
    start_estimator(f, 0, "e3",
                    (const char *const[]){"--min-members", "3", "--policy", "flip",
                                          "--flip-quantile", "0.25", "--min-sample", "6",
                                          "--metrics-port", "0", NULL});
    enum { N = 14 };
    double mus[N];
    int flips = 0;
    for (int i = 0; i < N; i++) {
        char id[32], pid[32];
        snprintf(id, sizeof id, "q-%d", i);
        snprintf(pid, sizeof pid, "pair-e3-%d", i);
        Oaif__V1__EstimateReply *r = estimate(f, id, pid, i);
        check_mu_sigma(r, i, 3);
        assert_string_equal(r->strength->ensemble, "e3");
        assert_string_equal(r->strength->run, "test-run");
        assert_string_equal(r->scores->members[2], "e3/m2@v1");
        check_flip_decision(r, mus, (size_t)i, 0.25, 6);
        check_records(f, r);
        flips += r->strength->action == OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP;
        mus[i] = r->strength->mean;
        oaif__v1__estimate_reply__free_unpacked(r, NULL);
    }
    /* bad requests fail at once, naming the field; the estimator keeps serving */
    const uint8_t garbage[] = {0x0a, 0xff, 0x01};
    estimate_fails(f, "bad-garbage", garbage, sizeof garbage, "not an EstimateRequest");
    uint8_t buf[2048];
    size_t n = pack_estimate("pair-tie", 1, OAIF__V1__WINNER__WINNER_TIE, buf, sizeof buf);
    estimate_fails(f, "bad-tie", buf, n, "label.winner: a tie");
    n = pack_estimate("", 1, OAIF__V1__WINNER__WINNER_FIRST, buf, sizeof buf);
    estimate_fails(f, "bad-id", buf, n, "pair.id");
    Oaif__V1__EstimateReply *r = estimate(f, "q-after-bad", "pair-e3-after", 3);
    check_mu_sigma(r, 3, 3);
    flips += r->strength->action == OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP;
    oaif__v1__estimate_reply__free_unpacked(r, NULL);

    /* /metrics: actions by kind, the distribution (its size, its median), bad requests */
    const char *flip = "oaif_strength_estimator_actions_total{ensemble=\"e3\",action=\"flip\"}";
    const char *keep = "oaif_strength_estimator_actions_total{ensemble=\"e3\",action=\"keep\"}";
    const char *size = "oaif_strength_estimator_distribution_size{ensemble=\"e3\"}";
    double a = 0, b = 0, d = 0;
    for (int i = 0; i < 60 && !(a + b == N + 1 && d == N + 1); i++) {
        usleep(100000); /* the counters reach /metrics every 500 ms; the size after a read */
        a = est_metric(f, 0, flip);
        b = est_metric(f, 0, keep);
        d = est_metric(f, 0, size);
    }
    assert_true(a == flips);
    assert_true(a + b == N + 1);
    assert_true(d == N + 1);
    double bad = est_metric(f, 0, "oaif_strength_estimator_bad_requests_total{ensemble=\"e3\"}");
    assert_true(bad == 3);
    assert_true(est_metric(f, 0, "oaif_strength_estimator_mu{ensemble=\"e3\",q=\"0.5\"}") != -1);
    assert_true(
        est_metric(f, 0, "oaif_strength_estimator_request_seconds_count{ensemble=\"e3\"}") ==
        N + 1);
    stop_estimator(f, 0, SIGTERM, 0);
}

/* Pairs pair-<ens>-i, i in [from, to), one after another under the flip policy (q, min_sample):
 * each decision must have seen mus[0..i), the mu of every pair before it; mus[i] is filled. */
static void estimate_flips(struct fx *f, const char *ens, int from, int to, double *mus, double q,
                           size_t min_sample)
{
    for (int i = from; i < to; i++) {
        char id[48], pid[48];
        snprintf(id, sizeof id, "r-%s-%d", ens, i);
        snprintf(pid, sizeof pid, "pair-%s-%d", ens, i);
        Oaif__V1__EstimateReply *r = estimate(f, id, pid, i);
        check_flip_decision(r, mus, (size_t)i, q, min_sample);
        mus[i] = r->strength->mean;
        oaif__v1__estimate_reply__free_unpacked(r, NULL);
    }
}

static void test_the_distribution_survives_restarts_and_is_shared_by_replicas(void **state)
{
    (void)state;
    struct fx *f = &F;
    for (uint32_t m = 0; m < 2; m++)
        publish_member(f, "eq", m, 200 + m, false);
    start_scorer(f, "eq", "2");
    const char *const flags[] = {
        "--min-members", "2", "--policy", "flip", "--flip-quantile", "0.3", "--min-sample", "5",
        "--window",      "0", NULL};
    enum { N = 16 };
    double mus[N];
    /* one estimator: pairs 0..7 */
    start_estimator(f, 0, "eq", flags);
    estimate_flips(f, "eq", 0, 8, mus, 0.3, 5);
    /* stopped; two new replicas: each decision saw all 8, and every one since, whichever
     * replica committed it */
    stop_estimator(f, 0, SIGTERM, 0);
    start_estimator(f, 1, "eq", flags);
    start_estimator(f, 2, "eq", flags);
    estimate_flips(f, "eq", 8, 13, mus, 0.3, 5);
    /* both killed: a fresh one reads them all back */
    stop_estimator(f, 1, SIGKILL, 1);
    stop_estimator(f, 2, SIGKILL, 0);
    start_estimator(f, 3, "eq", flags);
    estimate_flips(f, "eq", 13, N, mus, 0.3, 5);
    stop_estimator(f, 3, SIGTERM, 0);
}

/* bus_client_poll's callback: keeps each reply's payload by the request's index ("k-<i>"). */
struct collected {
    uint8_t *payload[64];
    size_t len[64];
    int n;
};

static void on_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    struct collected *c = ctx;
    if (reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("request %s failed: %s", reply->id, reply->error);
    int i = atoi(reply->id + 2);
    assert_true(i >= 0 && i < 64 && !c->payload[i]);
    c->payload[i] = malloc(reply->payload.len ? reply->payload.len : 1);
    assert_non_null(c->payload[i]);
    memcpy(c->payload[i], reply->payload.data, reply->payload.len);
    c->len[i] = reply->payload.len;
    c->n++;
}

/* bus_client_poll's callback for a single request: its payload at index 0. */
static void on_late_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    struct collected *c = ctx;
    if (reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("request %s failed: %s", reply->id, reply->error);
    c->payload[0] = malloc(reply->payload.len ? reply->payload.len : 1);
    assert_non_null(c->payload[0]);
    memcpy(c->payload[0], reply->payload.data, reply->payload.len);
    c->len[0] = reply->payload.len;
    c->n++;
}

struct counts {
    uint64_t strength_seq, strength_n, scores_seq, scores_n, scored, redelivered;
};

static struct counts counts_now(struct fx *f)
{
    struct counts c = {0};
    Oaif__V1__Envelope *env = status(f);
    for (size_t i = 0; i < env->status->n_records; i++) {
        const Oaif__V1__RecordCount *rc = env->status->records[i];
        if (rc->kind == OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH) {
            c.strength_seq = rc->last_seq;
            c.strength_n = rc->count;
        } else if (rc->kind == OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES) {
            c.scores_seq = rc->last_seq;
            c.scores_n = rc->count;
        }
    }
    const Oaif__V1__ServiceStatus *s = service_of(env, "score");
    c.scored = s ? s->completed : 0;
    s = service_of(env, "estimate");
    c.redelivered = s ? s->redelivered : 0;
    oaif__v1__envelope__free_unpacked(env, NULL);
    return c;
}

static void test_an_estimator_killed_mid_run_loses_and_repeats_nothing(void **state)
{
    (void)state;
    struct fx *f = &F;
    for (uint32_t m = 0; m < 2; m++)
        publish_member(f, "ek", m, 300 + m, true); /* slow enough that requests queue */
    start_scorer(f, "ek", "2");
    const char *const flags[] = {"--min-members", "2", "--policy", "flip", "--credit", "6", NULL};
    start_estimator(f, 0, "ek", flags);
    struct counts before = counts_now(f);
    enum { N = 24 };
    uint8_t buf[2048];
    for (int i = 0; i < N; i++) {
        char id[32], pid[32];
        snprintf(id, sizeof id, "k-%d", i);
        snprintf(pid, sizeof pid, "pair-ek-%d", i);
        size_t n = pack_estimate(pid, i, winner_of(i), buf, sizeof buf);
        assert_int_equal(bus_client_submit(f->c, "estimate", id, buf, n, 0, 0), ERR_OK);
    }
    struct collected got = {0};
    for (int i = 0; i < 600 && got.n < 3; i++)
        assert_true(bus_client_poll(f->c, 100, on_reply, &got) >= 0);
    assert_true(got.n >= 3);
    /* it holds leased requests now (credit 6, the scorer is slower than it) */
    Oaif__V1__Envelope *env = status(f);
    const Oaif__V1__ServiceStatus *es = service_of(env, "estimate");
    assert_non_null(es);
    if (es->in_flight == 0)
        fail_msg("the estimator held no request when it was to be killed (%d answered)", got.n);
    oaif__v1__envelope__free_unpacked(env, NULL);
    stop_estimator(f, 0, SIGKILL, 0);
    start_estimator(f, 1, "ek", flags);
    for (int i = 0; i < 1800 && got.n < N; i++)
        assert_true(bus_client_poll(f->c, 100, on_reply, &got) >= 0);
    assert_int_equal(got.n, N);

    /* every pair scored once, its Strength and Scores committed once */
    struct counts after = counts_now(f);
    assert_true(after.redelivered > before.redelivered);
    assert_int_equal(after.strength_seq - before.strength_seq, N);
    assert_int_equal(after.strength_n - before.strength_n, N);
    assert_int_equal(after.scores_seq - before.scores_seq, N);
    assert_int_equal(after.scores_n - before.scores_n, N);
    assert_int_equal(after.scored - before.scored, N);
    for (int i = 0; i < N; i++) {
        Oaif__V1__EstimateReply *r =
            oaif__v1__estimate_reply__unpack(NULL, got.len[i], got.payload[i]);
        assert_non_null(r);
        check_mu_sigma(r, i, 2);
        check_records(f, r);
        oaif__v1__estimate_reply__free_unpacked(r, NULL);
    }
    /* a repeated request id: the stored reply, byte for byte */
    for (int i = 0; i < N; i += 5) {
        char id[32], pid[32];
        snprintf(id, sizeof id, "k-%d", i);
        snprintf(pid, sizeof pid, "pair-ek-%d", i);
        size_t n = pack_estimate(pid, i, winner_of(i), buf, sizeof buf);
        Oaif__V1__Envelope *e = NULL;
        assert_int_equal(bus_client_call(f->c, "estimate", id, buf, n, 30000, &e), ERR_OK);
        assert_int_equal(e->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_OK);
        assert_int_equal(e->reply->payload.len, got.len[i]);
        assert_memory_equal(e->reply->payload.data, got.payload[i], got.len[i]);
        oaif__v1__envelope__free_unpacked(e, NULL);
    }
    /* a new request for an estimated pair asks the same score question: the same mu and sigma,
     * and the members do not run again */
    for (int i = 0; i < 3; i++) {
        char id[32], pid[32];
        snprintf(id, sizeof id, "again-%d", i);
        snprintf(pid, sizeof pid, "pair-ek-%d", i);
        Oaif__V1__EstimateReply *r = estimate(f, id, pid, i);
        Oaif__V1__EstimateReply *first =
            oaif__v1__estimate_reply__unpack(NULL, got.len[i], got.payload[i]);
        assert_true(r->strength->mean == first->strength->mean);
        assert_true(r->strength->std == first->strength->std);
        oaif__v1__estimate_reply__free_unpacked(first, NULL);
        oaif__v1__estimate_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(counts_now(f).scored - before.scored, N);
    for (int i = 0; i < N; i++)
        free(got.payload[i]);
    stop_estimator(f, 1, SIGTERM, 0);
}

static void test_an_estimate_that_outlives_its_lease_waiting_for_scores_completes_once(void **state)
{
    (void)state;
    struct fx *f = &F;
    for (uint32_t m = 0; m < 2; m++)
        publish_member(f, "el", m, 500 + m, false);
    start_estimator(f, 0, "el", (const char *const[]){"--metrics-port", "0", NULL});
    struct counts before = counts_now(f);
    /* no scorer yet: the score request waits in the ledger's queue while the estimate's lease
     * (1.5 s) ends, twice; the estimator forgets it, the ledger leases it again, and the new
     * attempt waits on the same score request */
    uint8_t buf[2048];
    size_t n = pack_estimate("pair-el-0", 0, OAIF__V1__WINNER__WINNER_FIRST, buf, sizeof buf);
    assert_int_equal(bus_client_submit(f->c, "estimate", "late-0", buf, n, 1500, 20), ERR_OK);
    const char *expired = "oaif_strength_estimator_expired_total{ensemble=\"el\"}";
    double e = 0;
    for (int i = 0; i < 100 && e < 2; i++) {
        usleep(100000);
        e = est_metric(f, 0, expired);
    }
    assert_true(e >= 2);
    start_scorer(f, "el", "2");
    struct collected got = {0};
    for (int i = 0; i < 300 && got.n < 1; i++)
        assert_true(bus_client_poll(f->c, 100, on_late_reply, &got) >= 0);
    assert_int_equal(got.n, 1);
    struct counts after = counts_now(f);
    assert_true(after.redelivered - before.redelivered >= 2);
    assert_int_equal(after.scored - before.scored, 1); /* one score request, asked each time */
    assert_int_equal(after.strength_seq - before.strength_seq, 1);
    Oaif__V1__EstimateReply *r = oaif__v1__estimate_reply__unpack(NULL, got.len[0], got.payload[0]);
    assert_non_null(r);
    check_mu_sigma(r, 0, 2);
    check_records(f, r);
    oaif__v1__estimate_reply__free_unpacked(r, NULL);
    free(got.payload[0]);
    stop_estimator(f, 0, SIGTERM, 0);
}

/* Puts Strength records for pairs "<prefix>-<i>", i in [from, to), mu = mu_of(i), of ensemble
 * ens, in puts of 1000. */
static double mu_of(int i)
{
    return (double)((i * 7919) % 20011) / 1000.0 - 5.0; /* distinct, in no order */
}

static void put_strengths(struct fx *f, const char *ens, const char *prefix, int from, int to)
{
    enum { PAGE = 1000 };
    static Oaif__V1__Record recs[PAGE];
    static Oaif__V1__Record *ptrs[PAGE];
    static uint8_t bufs[PAGE][128];
    static char ids[PAGE][48];
    for (int at = from; at < to; at += PAGE) {
        int n = to - at < PAGE ? to - at : PAGE;
        for (int k = 0; k < n; k++) {
            snprintf(ids[k], sizeof ids[k], "%s-%d", prefix, at + k);
            Oaif__V1__Strength st = OAIF__V1__STRENGTH__INIT;
            st.id = ids[k];
            st.pair_id = ids[k];
            st.mean = mu_of(at + k);
            st.ensemble = (char *)ens;
            size_t len = oaif__v1__strength__get_packed_size(&st);
            assert_true(len <= sizeof bufs[k]);
            oaif__v1__strength__pack(&st, bufs[k]);
            oaif__v1__record__init(&recs[k]);
            recs[k].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH;
            recs[k].id = ids[k];
            recs[k].data.data = bufs[k];
            recs[k].data.len = len;
            ptrs[k] = &recs[k];
        }
        char put_id[64];
        snprintf(put_id, sizeof put_id, "put-%s-%d", prefix, at);
        assert_int_equal(bus_client_put(f->c, put_id, ptrs, (size_t)n, false, 10000), ERR_OK);
    }
}

static void test_a_long_history_is_read_in_pages_before_a_quantile_decision(void **state)
{
    (void)state;
    struct fx *f = &F;
    /* 21,000 strengths of ensemble eh (more than the 20 pages a loop turn reads), 2,000 of
     * another ensemble in between (not counted), and 500 of eh written twice (counted once, with
     * their second value) */
    enum { N = 21000 };
    put_strengths(f, "eh", "hist", 0, 10000);
    put_strengths(f, "other", "hist-other", 0, 2000);
    put_strengths(f, "eh", "hist", 10000, N);
    put_strengths(f, "eh", "hist", 3000, 3500); /* the same values again: replaced, not added */
    static double mus[N + 1];
    for (int i = 0; i < N; i++)
        mus[i] = mu_of(i);
    for (uint32_t m = 0; m < 2; m++)
        publish_member(f, "eh", m, 400 + m, false);
    start_scorer(f, "eh", "2");
    start_estimator(f, 0, "eh",
                    (const char *const[]){"--policy", "flip", "--flip-quantile", "0.1",
                                          "--min-sample", "5", "--window", "0", NULL});
    Oaif__V1__EstimateReply *r = estimate(f, "h-0", "pair-eh-0", 0);
    check_flip_decision(r, mus, N, 0.1, 5);
    mus[N] = r->strength->mean;
    oaif__v1__estimate_reply__free_unpacked(r, NULL);
    stop_estimator(f, 0, SIGTERM, 0);
    /* a window of 1000: the newest by commit order, i.e. hist-10001 .. hist-20999 less the
     * rewritten ones (3000 .. 3499 are newer now), the 500 rewritten, and pair-eh-0 */
    start_estimator(f, 1, "eh",
                    (const char *const[]){"--policy", "flip", "--flip-quantile", "0.1",
                                          "--min-sample", "5", "--window", "1000", NULL});
    double last[1000];
    size_t k = 0;
    for (int i = N - 499; i < N; i++)
        last[k++] = mu_of(i);
    for (int i = 3000; i < 3500; i++)
        last[k++] = mu_of(i);
    last[k++] = mus[N];
    assert_int_equal(k, 1000);
    r = estimate(f, "h-1", "pair-eh-1", 1);
    check_flip_decision(r, last, 1000, 0.1, 5);
    oaif__v1__estimate_reply__free_unpacked(r, NULL);
    stop_estimator(f, 1, SIGTERM, 0);
}

static void test_a_score_that_cannot_be_had_fails_the_estimate_naming_why(void **state)
{
    (void)state;
    struct fx *f = &F;
    /* a scorer with no member: each score request fails (retryable) until the ledger gives up;
     * the estimator asks twice (--score-asks 2), then fails the estimate for good */
    start_scorer(f, "empty", "0");
    start_estimator(f, 0, "empty", (const char *const[]){"--score-asks", "2", NULL});
    uint8_t buf[2048];
    size_t n = pack_estimate("pair-empty", 1, OAIF__V1__WINNER__WINNER_FIRST, buf, sizeof buf);
    estimate_fails(f, "no-scores", buf, n, "score: 2 requests failed");
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(f->c, "estimate", "no-scores", buf, n, 30000, &env), ERR_OK);
    assert_non_null(strstr(env->reply->error, "no member is loaded"));
    oaif__v1__envelope__free_unpacked(env, NULL);
    /* nothing was committed for the pair */
    assert_null(
        get_record(f, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, "pair-empty", unpack_strength));
    stop_estimator(f, 0, SIGTERM, 0);
}

/* ---- fixture ------------------------------------------------------------------------------ */

/* A test leaves no estimator or scorer behind for the next one. */
static int test_teardown(void **state)
{
    (void)state;
    for (int k = 0; k < MAX_EST; k++)
        if (F.est[k] > 0) {
            tp_stop(F.est[k], SIGKILL);
            F.est[k] = 0;
        }
    if (F.scorer > 0) {
        int st = tp_stop(F.scorer, SIGTERM);
        F.scorer = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "the scorer did not exit 0 on SIGTERM\n");
    }
    for (int i = 0; i < 300 && (tp_workers_of(F.c, "score") || tp_workers_of(F.c, "estimate")); i++)
        usleep(20000);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    struct fx *f = &F;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-strength-estimator-procs-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->store, sizeof f->store, "%.200s/checkpoints", f->dir);
    snprintf(f->ledger_log, sizeof f->ledger_log, "%.200s/ledger.log", f->dir);
    snprintf(f->ep_file, sizeof f->ep_file, "%.200s/endpoints", f->dir);
    if (mkdir(f->store, 0755) != 0)
        return -1;
    setenv("OMP_NUM_THREADS", "1", 1);
    tp_watchdog(400, "strength_estimator_procs", f->ledger_log);
    f->zctx = zmq_ctx_new();
    start_ledger(f);
    struct bus_client_opts o = {.endpoint = f->cep, .resend_ms = 300, .reannounce_ms = 500};
    return bus_client_new(&f->c, f->zctx, &o) == ERR_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    struct fx *f = &F;
    tp_watchdog(0, NULL, NULL);
    bus_client_destroy(&f->c);
    for (int k = 0; k < MAX_EST; k++)
        if (f->est[k] > 0)
            tp_stop(f->est[k], SIGKILL);
    if (f->scorer > 0)
        tp_stop(f->scorer, SIGKILL);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    curl_global_cleanup();
    if (getenv("KEEP_LOGS") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %.200s", f->dir);
        if (system(cmd) != 0)
            return -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_estimates_follow_the_scores_and_the_quantile_rule,
                                  test_teardown),
        cmocka_unit_test_teardown(test_the_distribution_survives_restarts_and_is_shared_by_replicas,
                                  test_teardown),
        cmocka_unit_test_teardown(test_an_estimator_killed_mid_run_loses_and_repeats_nothing,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_score_that_cannot_be_had_fails_the_estimate_naming_why,
                                  test_teardown),
        cmocka_unit_test_teardown(test_a_long_history_is_read_in_pages_before_a_quantile_decision,
                                  test_teardown),
        cmocka_unit_test_teardown(
            test_an_estimate_that_outlives_its_lease_waiting_for_scores_completes_once,
            test_teardown),
    };
    return cmocka_run_group_tests_name("strength_estimator_procs", tests, group_setup,
                                       group_teardown);
}
