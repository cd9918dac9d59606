/* test_reward_scorer_procs - the score service with real processes: a `ledger` (with its events)
 * and `reward-scorer` replicas, driven through the ledger with ScoreRequests by a real bus client,
 * as the strength estimator and the annotator's reward-model judge would. Reward models are
 * made with the engine (random, with a reward head) and recorded as Checkpoint records of kind
 * REWARD naming their ensemble and member. Every member's reward of every text equals the
 * engine's own forward on the same text; a request naming a pair commits its Scores record with
 * the reply; bad requests fail at once naming the field; a member file that does not match its
 * record is refused (the log names the file) while the previous version keeps answering; a newer
 * version is picked up from the ledger's event; two replicas both serve; a scorer with no member
 * answers with a clear error; SIGTERM exits 0. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <limits.h>
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
#include "tokenizer.h"
#include "tpbus.h"
#include "tpmetrics.h"

#define MAX_SCORERS 4

struct fx {
    char dir[256], store[300];
    char ledger_log[300], ep_file[300];
    char cep[256], wep[256], eep[256];
    pid_t ledger;
    pid_t scorers[MAX_SCORERS];
    char logs[MAX_SCORERS][300];
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
                    "20s",
                    "--max-attempts",
                    "2",
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

/* Scorer `k` with the common flags and the NULL-terminated extra ones; its log is f->logs[k]. */
static void start_scorer(struct fx *f, int k, const char *const *extra)
{
    unsigned before = tp_workers_of(f->c, "score");
    char log[sizeof f->logs[k]];
    snprintf(log, sizeof log, "%.200s/scorer%d.log", f->dir, k);
    memcpy(f->logs[k], log, sizeof log);
    char *argv[48] = {(char *)tp_bin("services/reward-scorer/reward-scorer"),
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
                      "--rescan",
                      "60s"}; /* new versions below come from the events, not the rescan */
    int n = 15;
    for (int i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->scorers[k] = tp_spawn(argv, f->logs[k]);
    assert_true(f->scorers[k] > 0);
    assert_true(tp_wait_workers(f->c, "score", before + 1, 15000));
}

static void stop_scorers(struct fx *f)
{
    for (int k = 0; k < MAX_SCORERS; k++) {
        if (f->scorers[k] <= 0)
            continue;
        int st = tp_stop(f->scorers[k], SIGTERM);
        f->scorers[k] = 0;
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_true(tp_wait_workers(f->c, "score", 0, 15000));
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return strdup("");
    buf_t b;
    buf_init(&b, 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, fp)) > 0)
        assert_int_equal(buf_append(&b, tmp, n), ERR_OK);
    fclose(fp);
    char *s = buf_steal(&b);
    return s ? s : strdup("");
}

/* Waits up to ~15 s for a line of `log` holding every one of the NULL-terminated strings; returns
 * that line (malloc'd). */
static char *wait_log_line(const char *log, ...)
{
    const char *needles[8];
    size_t nn = 0;
    va_list ap;
    va_start(ap, log);
    for (const char *s = va_arg(ap, const char *); s && nn < 8; s = va_arg(ap, const char *))
        needles[nn++] = s;
    va_end(ap);
    for (int tries = 0; tries < 300; tries++) {
        char *text = read_file(log);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            size_t k = 0;
            while (k < nn && strstr(line, needles[k]))
                k++;
            if (k == nn) {
                char *copy = strdup(line);
                free(text);
                return copy;
            }
        }
        free(text);
        usleep(50000);
    }
    fail_msg("no line in %s with '%s'", log, needles[0]);
    return NULL;
}

/* ---- reward models ------------------------------------------------------------------------ */

/* Writes member `member` version `version` of ensemble `ens` (a random reward model; `big`: one
 * that takes a while to score a batch) into the store and records it in the ledger; with
 * `corrupt`, the file is changed after its sha256 was taken. dir receives the member's
 * directory. */
static void publish_model(struct fx *f, const char *ens, uint32_t member, uint32_t version,
                          uint64_t seed, bool corrupt, bool big, char *dir, size_t dirlen)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = big ? 128 : 32;
    c.intermediate_size = big ? 256 : 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = big ? 256 : 128;
    c.reward_head = true;
    nn_model_t *m = NULL;
    char err[256], file[PATH_MAX + 32], hex[65], id[128];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.5f);
    snprintf(dir, dirlen, "%s/reward-%s-m%u-v%06u", f->store, ens, member, version);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    if (corrupt) {
        FILE *fp = fopen(file, "r+b");
        assert_non_null(fp);
        fseek(fp, -8, SEEK_END);
        fputs("XXXX", fp);
        fclose(fp);
    }
    snprintf(id, sizeof id, "reward-%s-m%u-v%u", ens, member, version);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.id = id;
    ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    ck.version = version;
    ck.ensemble = (char *)ens;
    ck.member = member;
    ck.path = dir;
    ck.sha256 = hex;
    ck.created_ms = bus_now_ms();
    ck.run = "test";
    assert_int_equal(ckpt_publish(f->c, &ck, 5000), ERR_OK);
}

static void publish_member(struct fx *f, const char *ens, uint32_t member, uint32_t version,
                           uint64_t seed, bool corrupt, char *dir, size_t dirlen)
{
    publish_model(f, ens, member, version, seed, corrupt, false, dir, dirlen);
}

/* The engine's own reward of `text` under the model in `dir`, as the policy sees the pair: the
 * byte tokenizer's rendering of the default template, one space, the text, EOS. */
static double direct_reward(const char *dir, const char *prompt, const char *text)
{
    nn_model_t *m = NULL;
    char err[512], head[1024];
    assert_int_equal(nn_checkpoint_load(&m, dir, err, sizeof err), ERR_OK);
    snprintf(head, sizeof head, "Human: %s\n\nAssistant:%s", prompt,
             text[0] && text[0] != ' ' ? " " : "");
    size_t hl = strlen(head), tl = strlen(text);
    int T = (int)(hl + tl + 1);
    int *ids = malloc((size_t)T * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < hl; i++)
        ids[i] = (unsigned char)head[i];
    for (size_t i = 0; i < tl; i++)
        ids[hl + i] = (unsigned char)text[i];
    ids[T - 1] = TOK_BYTE_EOS;
    assert_int_equal(nn_model_reserve(m, 1, T, false), ERR_OK);
    struct nn_batch b = {.B = 1, .T = T, .tokens = ids, .lengths = &T};
    struct nn_fwd_opts fo = {.logits = false};
    assert_int_equal(nn_model_forward(m, &b, &fo), ERR_OK);
    double r = nn_model_rewards(m)[0];
    free(ids);
    nn_model_destroy(&m);
    return r;
}

/* ---- requests ----------------------------------------------------------------------------- */

static size_t pack_score(const char *prompt, char **texts, size_t n, const char *pair_id,
                         uint8_t *buf, size_t cap)
{
    Oaif__V1__ScoreRequest r = OAIF__V1__SCORE_REQUEST__INIT;
    r.prompt = (char *)prompt;
    r.texts = texts;
    r.n_texts = n;
    r.pair_id = (char *)(pair_id ? pair_id : "");
    size_t len = oaif__v1__score_request__get_packed_size(&r);
    assert_true(len <= cap);
    oaif__v1__score_request__pack(&r, buf);
    return len;
}

static Oaif__V1__Envelope *call_raw(struct fx *f, const char *id, const void *buf, size_t n)
{
    Oaif__V1__Envelope *env = NULL;
    int rc = bus_client_call(f->c, "score", id, buf, n, 30000, &env);
    if (rc)
        fail_msg("request %s: %s", id, err_str(rc));
    assert_non_null(env->reply);
    return env;
}

/* A request that may fail: its reply, or NULL with the error in why. */
static Oaif__V1__ScoreReply *try_score(struct fx *f, const char *id, const char *prompt,
                                       char **texts, size_t n, const char *pair_id, char *why,
                                       size_t whylen)
{
    uint8_t buf[8192];
    size_t len = pack_score(prompt, texts, n, pair_id, buf, sizeof buf);
    Oaif__V1__Envelope *env = call_raw(f, id, buf, len);
    Oaif__V1__ScoreReply *r = NULL;
    if (env->reply->outcome == OAIF__V1__OUTCOME__OUTCOME_OK) {
        r = oaif__v1__score_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
        assert_non_null(r);
    } else {
        snprintf(why, whylen, "%s", env->reply->error);
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    return r;
}

/* A request that must succeed. */
static Oaif__V1__ScoreReply *score(struct fx *f, const char *id, const char *prompt, char **texts,
                                   size_t n, const char *pair_id)
{
    char why[2048];
    Oaif__V1__ScoreReply *r = try_score(f, id, prompt, texts, n, pair_id, why, sizeof why);
    if (!r)
        fail_msg("request %s failed: %s", id, why);
    return r;
}

/* A request that must fail after `attempts` attempts (0: any): its error contains each of the
 * NULL-terminated strings. */
static void score_fails(struct fx *f, const char *id, const void *buf, size_t n, unsigned attempts,
                        ...)
{
    const char *says[8];
    size_t nsays = 0;
    va_list ap;
    va_start(ap, attempts);
    for (const char *s = va_arg(ap, const char *); s && nsays < 8; s = va_arg(ap, const char *))
        says[nsays++] = s;
    va_end(ap);
    Oaif__V1__Envelope *env = call_raw(f, id, buf, n);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    if (attempts)
        assert_int_equal(env->reply->attempts, attempts);
    for (size_t i = 0; i < nsays; i++)
        if (!strstr(env->reply->error, says[i]))
            fail_msg("request %s: error '%s' does not say '%s'", id, env->reply->error, says[i]);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

/* Requests until one is answered by `n` members, member `name` among them (NULL: any); fails
 * after ~20 s. */
static void wait_members(struct fx *f, size_t n, const char *name, const char *tag)
{
    char *texts[1] = {"warm-up"};
    char last[2048] = "no answer";
    for (int i = 0; i < 100; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", tag, i);
        Oaif__V1__ScoreReply *r = try_score(f, id, "hello", texts, 1, NULL, last, sizeof last);
        bool done = false;
        if (r) {
            done = r->n_members == n;
            bool named = !name;
            for (size_t m = 0; m < r->n_members; m++)
                named = named || !strcmp(r->members[m], name);
            done = done && named;
            snprintf(last, sizeof last, "%zu members", r->n_members);
            oaif__v1__score_reply__free_unpacked(r, NULL);
        }
        if (done)
            return;
        usleep(200000);
    }
    fail_msg("the scorer never answered with %zu members (%s); last: %s", n, name ? name : "",
             last);
}

/* Checks reply r (for prompt and texts) against the engine on dirs[m] for member m. */
static void check_against_engine(const Oaif__V1__ScoreReply *r, const char *ens,
                                 const uint32_t *versions, char dirs[][PATH_MAX], size_t M,
                                 const char *prompt, char **texts, size_t n)
{
    assert_int_equal(r->n_members, M);
    assert_int_equal(r->n_scores, M * n);
    for (size_t m = 0; m < M; m++) {
        char name[128];
        snprintf(name, sizeof name, "%s/m%zu@v%u", ens, m, versions[m]);
        assert_string_equal(r->members[m], name);
        for (size_t i = 0; i < n; i++)
            assert_float_equal(r->scores[m * n + i], direct_reward(dirs[m], prompt, texts[i]),
                               1e-5);
    }
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* The value of the series line starting with `prefix` in scorer k's /metrics; -1 if none. */
static double scorer_metric(struct fx *f, int k, const char *prefix)
{
    char *line = wait_log_line(f->logs[k], "metrics on 127.0.0.1:", (const char *)NULL);
    int port = atoi(strstr(line, "metrics on 127.0.0.1:") + strlen("metrics on 127.0.0.1:"));
    free(line);
    return tp_metric(port, prefix);
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void test_every_member_scores_and_a_pair_is_committed(void **state)
{
    (void)state;
    struct fx *f = &F;
    char dirs[3][PATH_MAX];
    publish_member(f, "ens3", 0, 1, 101, false, dirs[0], sizeof dirs[0]);
    publish_member(f, "ens3", 1, 1, 102, false, dirs[1], sizeof dirs[1]);
    start_scorer(
        f, 0,
        (const char *const[]){"--ensemble", "ens3", "--members", "3", "--max-texts", "4", NULL});
    /* the third member comes after the start: the event makes the scorer read it */
    publish_member(f, "ens3", 2, 1, 103, false, dirs[2], sizeof dirs[2]);
    wait_members(f, 3, NULL, "warm3");

    char *texts[3] = {"forty-seven", " 47", ""};
    const char *prompt = "What is 12 + 35?";
    Oaif__V1__ScoreReply *r = score(f, "s3", prompt, texts, 3, NULL);
    uint32_t v1[3] = {1, 1, 1};
    check_against_engine(r, "ens3", v1, dirs, 3, prompt, texts, 3);
    oaif__v1__score_reply__free_unpacked(r, NULL);

    /* a pair: its Scores record is committed with the reply */
    char *pair[2] = {"Saturn.", "Mars."};
    r = score(f, "s3-pair", "Name a gas giant.", pair, 2, "pair-1");
    Oaif__V1__Envelope *env = NULL;
    const char *ids[1] = {"pair-1"};
    assert_int_equal(
        bus_client_get(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES, ids, 1, 5000, &env),
        ERR_OK);
    assert_int_equal(env->records->n_records, 1);
    const Oaif__V1__Record *rec = env->records->records[0];
    Oaif__V1__Scores *sc = oaif__v1__scores__unpack(NULL, rec->data.len, rec->data.data);
    assert_non_null(sc);
    assert_string_equal(sc->pair_id, "pair-1");
    assert_int_equal(sc->n_members, 3);
    assert_int_equal(sc->n_first, 3);
    assert_int_equal(sc->n_second, 3);
    for (size_t m = 0; m < 3; m++) {
        assert_string_equal(sc->members[m], r->members[m]);
        assert_true(sc->first[m] == r->scores[m * 2]);
        assert_true(sc->second[m] == r->scores[m * 2 + 1]);
        assert_float_equal(sc->first[m], direct_reward(dirs[m], "Name a gas giant.", pair[0]),
                           1e-5);
    }
    oaif__v1__scores__free_unpacked(sc, NULL);
    oaif__v1__envelope__free_unpacked(env, NULL);
    oaif__v1__score_reply__free_unpacked(r, NULL);

    /* bad requests fail at once (one attempt), naming the field */
    uint8_t buf[4096];
    size_t n = pack_score(prompt, texts, 0, NULL, buf, sizeof buf);
    score_fails(f, "bad-none", buf, n, 1, "texts", (const char *)NULL);
    char *five[5] = {"a", "b", "c", "d", "e"};
    n = pack_score(prompt, five, 5, NULL, buf, sizeof buf);
    score_fails(f, "bad-many", buf, n, 1, "texts", "limit of 4", (const char *)NULL);
    const uint8_t garbage[] = {0x0a, 0xff, 0x01};
    score_fails(f, "garbage", garbage, sizeof garbage, 1, "not a ScoreRequest", (const char *)NULL);
    stop_scorers(f);
}

static void test_a_corrupt_member_is_refused_and_a_newer_one_picked_up(void **state)
{
    (void)state;
    struct fx *f = &F;
    char dirs[2][PATH_MAX], bad[PATH_MAX], newer[PATH_MAX];
    publish_member(f, "ensc", 0, 1, 201, false, dirs[0], sizeof dirs[0]);
    publish_member(f, "ensc", 1, 1, 202, false, dirs[1], sizeof dirs[1]);
    start_scorer(f, 0, (const char *const[]){"--ensemble", "ensc", "--members", "2", NULL});
    wait_members(f, 2, NULL, "warmc");

    /* version 2 of member 1 does not match its record: refused, version 1 keeps answering */
    publish_member(f, "ensc", 1, 2, 203, true, bad, sizeof bad);
    char *line = wait_log_line(f->logs[0], "refused", "ensc/m1@v2", "model.safetensors",
                               "ensc/m1@v1 keeps answering", (const char *)NULL);
    assert_non_null(strstr(line, bad));
    free(line);
    char *texts[2] = {"Jupiter is the largest.", "Mars."};
    const char *prompt = "Which planet is the largest?";
    Oaif__V1__ScoreReply *r = score(f, "c-after-corrupt", prompt, texts, 2, NULL);
    uint32_t v11[2] = {1, 1};
    check_against_engine(r, "ensc", v11, dirs, 2, prompt, texts, 2);
    oaif__v1__score_reply__free_unpacked(r, NULL);

    /* version 3, sound: picked up from the event, and its rewards are version 3's */
    publish_member(f, "ensc", 1, 3, 204, false, newer, sizeof newer);
    wait_members(f, 2, "ensc/m1@v3", "warmc3");
    r = score(f, "c-v3", prompt, texts, 2, NULL);
    snprintf(dirs[1], sizeof dirs[1], "%s", newer);
    uint32_t v13[2] = {1, 3};
    check_against_engine(r, "ensc", v13, dirs, 2, prompt, texts, 2);
    oaif__v1__score_reply__free_unpacked(r, NULL);
    stop_scorers(f);
}

/* bus_client_poll's callback: counts ok replies into *(int *)ctx. */
static void on_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    if (reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("request %s failed: %s", reply->id, reply->error);
    (*(int *)ctx)++;
}

static void test_two_replicas_both_serve(void **state)
{
    (void)state;
    struct fx *f = &F;
    char dir[PATH_MAX];
    publish_model(f, "ensr", 0, 1, 301, false, true, dir, sizeof dir);
    const char *const extra[] = {"--ensemble", "ensr", "--metrics-port", "0", NULL};
    start_scorer(f, 0, extra);
    start_scorer(f, 1, extra);
    /* each answers once, so that both have the member in memory */
    const char *ok = "oaif_reward_scorer_results_total{ensemble=\"ensr\",result=\"ok\"}";
    double before[2] = {0, 0};
    for (int i = 0; i < 100 && !(before[0] > 0 && before[1] > 0); i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "warmr%d", i);
        wait_members(f, 1, "ensr/m0@v1", tag);
        usleep(100000);
        before[0] = scorer_metric(f, 0, ok);
        before[1] = scorer_metric(f, 1, ok);
    }
    /* 12 requests of 32 texts at once: each takes a while, so the ledger leases to both (credit
     * 1 each) */
    char text[200], *texts[32];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    for (int i = 0; i < 32; i++)
        texts[i] = text;
    for (int i = 0; i < 12; i++) {
        static uint8_t buf[16384];
        char id[32];
        snprintf(id, sizeof id, "r-%d", i);
        size_t n = pack_score("Count.", texts, 32, NULL, buf, sizeof buf);
        assert_int_equal(bus_client_submit(f->c, "score", id, buf, n, 0, 0), ERR_OK);
    }
    int got = 0;
    for (int i = 0; i < 600 && got < 12; i++)
        assert_true(bus_client_poll(f->c, 100, on_reply, &got) >= 0);
    assert_int_equal(got, 12);
    double a = 0, b = 0;
    for (int i = 0; i < 100 && a + b < 12; i++) { /* the counters reach /metrics every 500 ms */
        usleep(100000);
        a = scorer_metric(f, 0, ok) - before[0];
        b = scorer_metric(f, 1, ok) - before[1];
    }
    /* more than 12 is allowed: on a loaded machine a lease can run out while a replica scores,
     * and the request is scored again by the other (at least once; the caller got one reply) */
    if (a + b < 12)
        fail_msg("the replicas scored %g and %g of 12 requests", a, b);
    if (!(a > 0 && b > 0))
        fail_msg("one replica did all the work: %g and %g requests", a, b);
    stop_scorers(f);
}

static void test_no_member_is_a_clear_error(void **state)
{
    (void)state;
    struct fx *f = &F;
    start_scorer(f, 0, (const char *const[]){"--ensemble", "nothing", NULL});
    char *texts[1] = {"x"};
    uint8_t buf[1024];
    size_t n = pack_score("p", texts, 1, NULL, buf, sizeof buf);
    /* retryable (another replica may have members): the ledger tries twice, then fails it */
    score_fails(f, "none", buf, n, 2, "ensemble 'nothing'", "no member is loaded",
                "no reward checkpoint", (const char *)NULL);
    stop_scorers(f);
}

/* ---- fixture ------------------------------------------------------------------------------ */

/* A failed test leaves no scorer behind for the next one. */
static int test_teardown(void **state)
{
    (void)state;
    bool any = false;
    for (int k = 0; k < MAX_SCORERS; k++)
        if (F.scorers[k] > 0) {
            tp_stop(F.scorers[k], SIGKILL);
            F.scorers[k] = 0;
            any = true;
        }
    for (int i = 0; any && i < 300 && tp_workers_of(F.c, "score") != 0; i++)
        usleep(20000);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    struct fx *f = &F;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-reward-scorer-procs-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->store, sizeof f->store, "%.200s/checkpoints", f->dir);
    snprintf(f->ledger_log, sizeof f->ledger_log, "%.200s/ledger.log", f->dir);
    snprintf(f->ep_file, sizeof f->ep_file, "%.200s/endpoints", f->dir);
    if (mkdir(f->store, 0755) != 0)
        return -1;
    f->zctx = zmq_ctx_new();
    start_ledger(f);
    struct bus_client_opts o = {.endpoint = f->cep, .resend_ms = 300, .reannounce_ms = 500};
    return bus_client_new(&f->c, f->zctx, &o) == ERR_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    struct fx *f = &F;
    bus_client_destroy(&f->c);
    for (int k = 0; k < MAX_SCORERS; k++)
        if (f->scorers[k] > 0)
            tp_stop(f->scorers[k], SIGKILL);
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
        cmocka_unit_test_teardown(test_every_member_scores_and_a_pair_is_committed, test_teardown),
        cmocka_unit_test_teardown(test_a_corrupt_member_is_refused_and_a_newer_one_picked_up,
                                  test_teardown),
        cmocka_unit_test_teardown(test_two_replicas_both_serve, test_teardown),
        cmocka_unit_test_teardown(test_no_member_is_a_clear_error, test_teardown),
    };
    return cmocka_run_group_tests_name("reward_scorer_procs", tests, group_setup, group_teardown);
}
