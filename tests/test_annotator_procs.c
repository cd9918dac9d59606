/* test_annotator_procs - the annotate service with real processes: a `ledger`, `annotator-proxy`
 * replicas and the fake judge, driven through the ledger with AnnotateRequests as the trainer
 * would. Every backend (openai with log-probs, anthropic, rules, reward-model against a real
 * `reward-scorer` serving a two-member ensemble), the cache in the ledger, failures that become
 * dead letters and never labels, the API key absent from every output, two replicas sharing the
 * load, and `oaif judge try`. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "busclient.h"
#include "ckpt.h"
#include "err.h"
#include "fake_judge_run.h"
#include "testproc.h"
#include "tpbus.h"

static const char *const KEY = "sk-proj-PROCTESTKEY-0123456789abcdefghijklmnop";

static struct fake_judge fj; /* one for the whole group; reset per test */

struct fx {
    char dir[256];
    char ledger_log[300], proxy_log[300], ep_file[300], key_file[300];
    char cep[256], wep[256];
    pid_t ledger;
    pid_t proxies[4];
    int nproxies;
    void *zctx;
    bus_client_t *c;
};

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
                    "",
                    "--heartbeat",
                    "200ms",
                    "--lease",
                    "5s",
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
}

/* Starts an annotator-proxy with the common flags and the NULL-terminated extra ones, and waits
 * until the ledger has one more annotate worker. */
static pid_t start_proxy(struct fx *f, const char *const *extra)
{
    unsigned before = tp_workers_of(f->c, "annotate");
    char tdir[400];
    snprintf(tdir, sizeof tdir, "%s", JUDGE_TEMPLATES);
    char *argv[64] = {(char *)tp_bin("services/annotator-proxy/annotator-proxy"),
                      "--clients",
                      f->cep,
                      "--workers",
                      f->wep,
                      "--heartbeat",
                      "200ms",
                      "--template-dir",
                      tdir,
                      "--base-url",
                      fj.base_url,
                      "--model",
                      "judge-1",
                      "--backoff-base",
                      "10ms",
                      "--backoff-max",
                      "40ms",
                      "--max-attempts",
                      "2",
                      "--timeout",
                      "5s"};
    int n = 21;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid_t p = tp_spawn(argv, f->proxy_log);
    assert_true(p > 0);
    f->proxies[f->nproxies++] = p;
    assert_true(tp_wait_workers(f->c, "annotate", before + 1, 15000));
    return p;
}

/* Stops every proxy (SIGTERM: they must exit 0) and waits until the ledger has none. */
static void stop_proxies(struct fx *f)
{
    for (int i = 0; i < f->nproxies; i++) {
        int st = tp_stop(f->proxies[i], SIGTERM);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    f->nproxies = 0;
    assert_true(tp_wait_workers(f->c, "annotate", 0, 15000));
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-annot-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->ledger_log, sizeof f->ledger_log, "%s/ledger.log", f->dir);
    snprintf(f->proxy_log, sizeof f->proxy_log, "%s/proxy.log", f->dir);
    snprintf(f->ep_file, sizeof f->ep_file, "%s/endpoints", f->dir);
    snprintf(f->key_file, sizeof f->key_file, "%s/judge.key", f->dir);
    FILE *kf = fopen(f->key_file, "w");
    if (!kf)
        return -1;
    fprintf(kf, "%s\n", KEY);
    fclose(kf);
    chmod(f->key_file, 0600);
    f->zctx = zmq_ctx_new();
    *state = f;
    start_ledger(f);
    struct bus_client_opts o = {.endpoint = f->cep, .resend_ms = 300, .reannounce_ms = 500};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);
    setenv("BUS_CLIENTS_ENDPOINT", f->cep, 1); /* for the oaif verbs */
    return fake_judge_reset(&fj);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    bus_client_destroy(&f->c);
    for (int i = 0; i < f->nproxies; i++)
        tp_stop(f->proxies[i], SIGKILL);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    if (getenv("KEEP_LOGS") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            return -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return fake_judge_start(&fj, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    fake_judge_stop(&fj);
    curl_global_cleanup();
    return 0;
}

/* ---- requests ----------------------------------------------------------------------------- */

struct ann {
    const char *pair_id, *prompt, *r0, *r1, *instruction, *reference;
};

static size_t pack_request(const struct ann *a, uint8_t *buf, size_t cap)
{
    Oaif__V1__Response r[2] = {OAIF__V1__RESPONSE__INIT, OAIF__V1__RESPONSE__INIT};
    Oaif__V1__Response *rp[2] = {&r[0], &r[1]};
    r[0].text = (char *)a->r0;
    r[1].text = (char *)a->r1;
    Oaif__V1__Pair pair = OAIF__V1__PAIR__INIT;
    pair.id = (char *)a->pair_id;
    pair.prompt = (char *)a->prompt;
    pair.responses = rp;
    pair.n_responses = 2;
    Oaif__V1__AnnotateRequest req = OAIF__V1__ANNOTATE_REQUEST__INIT;
    req.pair = &pair;
    req.instruction = (char *)(a->instruction ? a->instruction : "");
    req.reference = (char *)(a->reference ? a->reference : "");
    size_t n = oaif__v1__annotate_request__get_packed_size(&req);
    assert_true(n <= cap);
    oaif__v1__annotate_request__pack(&req, buf);
    return n;
}

/* Submits request `id` and waits for its reply; returns the envelope (free it). */
static Oaif__V1__Envelope *annotate_env(struct fx *f, const char *id, const struct ann *a)
{
    uint8_t buf[4096];
    size_t n = pack_request(a, buf, sizeof buf);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(f->c, "annotate", id, buf, n, 15000, &env), ERR_OK);
    assert_non_null(env->reply);
    return env;
}

/* As annotate_env, for a request that must succeed: its Label (free it). */
static Oaif__V1__Label *annotate(struct fx *f, const char *id, const struct ann *a)
{
    Oaif__V1__Envelope *env = annotate_env(f, id, a);
    if (env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("request %s failed: %s", id, env->reply->error);
    Oaif__V1__AnnotateReply *ar =
        oaif__v1__annotate_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    assert_non_null(ar);
    assert_non_null(ar->label);
    Oaif__V1__Label *l = ar->label;
    ar->label = NULL;
    oaif__v1__annotate_reply__free_unpacked(ar, NULL);
    oaif__v1__envelope__free_unpacked(env, NULL);
    return l;
}

/* The stored record of kind k and id, or NULL. */
static Oaif__V1__Record *get_record(struct fx *f, Oaif__V1__RecordKind k, const char *id)
{
    Oaif__V1__Envelope *env = NULL;
    const char *ids[1] = {id};
    assert_int_equal(bus_client_get(f->c, k, ids, 1, 5000, &env), ERR_OK);
    Oaif__V1__Record *r = NULL;
    if (env->records && env->records->n_records == 1) {
        r = env->records->records[0];
        env->records->records[0] = NULL;
        env->records->n_records = 0;
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    return r;
}

static Oaif__V1__Label *stored_label(struct fx *f, const char *id)
{
    Oaif__V1__Record *r = get_record(f, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, id);
    if (!r)
        return NULL;
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, r->data.len, r->data.data);
    oaif__v1__record__free_unpacked(r, NULL);
    assert_non_null(l);
    return l;
}

static long judge_requests(void)
{
    json_t *s = fake_judge_stats(&fj);
    assert_non_null(s);
    long n = (long)json_integer_value(json_object_get(s, "requests"));
    json_decref(s);
    return n;
}

/* Runs a command with stdout and stderr captured; returns the exit status. */
static int run_cmd(char *out, size_t outlen, const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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

/* The metrics port a proxy logged ("metrics on 127.0.0.1:PORT"), the n-th such line. */
static int metrics_port(struct fx *f, int nth)
{
    for (int tries = 0; tries < 100; tries++) {
        char *log = read_file(f->proxy_log);
        const char *p = log;
        int found = -1;
        for (int i = 0; (p = strstr(p, "metrics on 127.0.0.1:")); i++, p++)
            if (i == nth)
                found = atoi(p + strlen("metrics on 127.0.0.1:"));
        free(log);
        if (found > 0)
            return found;
        usleep(20000);
    }
    fail_msg("no metrics port in the proxy log");
    return -1;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, ptr, size * nmemb) ? 0 : size * nmemb;
}

static char *http_get_metrics(int port)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    buf_t b;
    buf_init(&b, 0);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    char *s = buf_steal(&b);
    return s ? s : strdup("");
}

/* The value of the first series line starting with `prefix` in a /metrics text; -1 if none. */
static double metric(const char *text, const char *prefix)
{
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            const char *sp = strchr(p + strlen(prefix), ' ');
            return sp ? atof(sp + 1) : -1;
        }
    }
    return -1;
}

/* ---- (a) openai with log-probs ------------------------------------------------------------ */

static void test_openai_logprobs_label_through_the_ledger(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--backend", "openai", "--extra-header", "X-Fake-Logprobs: 1", NULL};
    start_proxy(f, extra);
    struct ann a = {"pair-a", "Which planet is the largest?", "Jupiter. GOOD", "Mars. BAD", NULL,
                    NULL};
    Oaif__V1__Label *l = annotate(f, "req-a1", &a);
    assert_string_equal(l->id, "req-a1");
    assert_string_equal(l->pair_id, "pair-a");
    assert_string_equal(l->judge, "openai/judge-1/helpful");
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST);
    assert_float_equal(l->prob_first, 0.9, 1e-6); /* the fake judge's p, from the log-probs */
    assert_int_equal(l->n_orders, 2);
    assert_false(l->orders[0]->swapped);
    assert_true(l->orders[1]->swapped);
    assert_true(l->orders[0]->has_logprobs && l->orders[1]->has_logprobs);
    assert_float_equal(l->orders[0]->prob_first, 0.9, 1e-6);
    assert_float_equal(l->orders[1]->prob_first, 0.1, 1e-6);
    assert_float_equal(l->disagreement, 0, 1e-9);
    assert_true(l->prompt_tokens > 0);
    assert_false(l->cached);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(judge_requests(), 2); /* both orders */

    /* the label is a record of the ledger, under the request id */
    l = stored_label(f, "req-a1");
    assert_non_null(l);
    assert_string_equal(l->pair_id, "pair-a");
    assert_int_equal(l->n_orders, 2);
    oaif__v1__label__free_unpacked(l, NULL);

    /* the other way round */
    struct ann b = {"pair-a2", "Which planet is the largest?", "Mars. BAD", "Jupiter. GOOD", NULL,
                    NULL};
    l = annotate(f, "req-a2", &b);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_SECOND);
    assert_float_equal(l->prob_first, 0.1, 1e-6);
    oaif__v1__label__free_unpacked(l, NULL);
    stop_proxies(f);
}

/* ---- (b) anthropic ------------------------------------------------------------------------ */

static void test_anthropic_label_through_the_ledger(void **state)
{
    struct fx *f = *state;
    /* from a run file: a header with a comma needs a YAML list (a flag splits at commas) */
    char path[400];
    snprintf(path, sizeof path, "%s/run.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("annotator:\n  backend: anthropic\n  template: alpaca_eval\n"
          "  extra_headers:\n    - \"X-Fake-Answers: m,M\"\n",
          fp);
    fclose(fp);
    const char *extra[] = {"--config", path, NULL};
    start_proxy(f, extra);
    struct ann a = {"pair-b", "Name a gas giant.", "Mars. BAD", "Saturn. GOOD", NULL, NULL};
    Oaif__V1__Label *l = annotate(f, "req-b1", &a);
    assert_string_equal(l->judge, "anthropic/judge-1/alpaca_eval");
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_SECOND);
    assert_float_equal(l->prob_first, 0, 0);
    assert_int_equal(l->n_orders, 2);
    assert_false(l->orders[0]->has_logprobs);
    oaif__v1__label__free_unpacked(l, NULL);
    json_t *s = fake_judge_stats(&fj);
    assert_int_equal(json_integer_value(json_object_get(s, "messages")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "chat")), 0);
    json_decref(s);
    stop_proxies(f);
}

/* ---- (c) rules ---------------------------------------------------------------------------- */

static void test_rules_correct_shorter_and_noise(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--backend", "rules", NULL};
    start_proxy(f, extra);
    /* correct beats wrong, in either position, with or without a reference */
    struct ann a = {"pair-c1", "What is 47 + 38?", "The answer is 84.", "85", NULL, "85"};
    Oaif__V1__Label *l = annotate(f, "req-c1", &a);
    assert_string_equal(l->judge, "rules/noise=0/seed=1");
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_SECOND);
    assert_false(l->noise_flipped);
    assert_int_equal(l->n_orders, 1);
    assert_string_equal(l->orders[0]->verdict, "correct beats wrong");
    oaif__v1__label__free_unpacked(l, NULL);
    struct ann a2 = {"pair-c2", "What is 47 + 38?", "It is 85.", "It is 86.", NULL, NULL};
    l = annotate(f, "req-c2", &a2);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST);
    oaif__v1__label__free_unpacked(l, NULL);
    /* both correct: a tie without an instruction, the shorter with "prefer shorter" */
    struct ann t = {"pair-c3", "What is 47 + 38?", "The answer is 85.", "85", NULL, "85"};
    l = annotate(f, "req-c3", &t);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_TIE);
    oaif__v1__label__free_unpacked(l, NULL);
    t.pair_id = "pair-c4";
    t.instruction = "prefer shorter responses";
    l = annotate(f, "req-c4", &t);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_SECOND);
    assert_string_equal(l->orders[0]->verdict, "shorter wins");
    oaif__v1__label__free_unpacked(l, NULL);
    /* an instruction the rules cannot follow is an error, never a label */
    t.pair_id = "pair-c5";
    t.instruction = "be nice";
    Oaif__V1__Envelope *env = annotate_env(f, "req-c5", &t);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_non_null(strstr(env->reply->error, "no preference"));
    oaif__v1__envelope__free_unpacked(env, NULL);
    assert_null(stored_label(f, "req-c5"));
    stop_proxies(f);

    /* noise 1: every decided label is flipped, and says so (for evaluation) */
    const char *noisy[] = {"--backend",
                           "rules",
                           "--noise",
                           "1",
                           "--noise-seed",
                           "3",
                           "--instruction",
                           "prefer shorter responses",
                           NULL};
    start_proxy(f, noisy);
    l = annotate(f, "req-c6", &a);
    assert_string_equal(l->judge, "rules/noise=1/seed=3");
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST); /* the wrong one, flipped */
    assert_true(l->noise_flipped);
    oaif__v1__label__free_unpacked(l, NULL);
    /* the default instruction applies to requests without one */
    t.pair_id = "pair-c7";
    t.instruction = NULL;
    l = annotate(f, "req-c7", &t);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST); /* shorter is second; flipped */
    assert_true(l->noise_flipped);
    oaif__v1__label__free_unpacked(l, NULL);
    l = stored_label(f, "req-c7");
    assert_non_null(l);
    assert_true(l->noise_flipped);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(judge_requests(), 0); /* no HTTP judge involved */
    stop_proxies(f);
}

/* ---- (d) reward-model with the real score service ---------------------------------------- */

/* Writes member `member` of ensemble `ens` (a random reward model, by `oaif model init`) into
 * store and records it in the ledger as a reward checkpoint naming its ensemble and member. */
static void publish_member(struct fx *f, const char *store, const char *ens, uint32_t member,
                           unsigned seed)
{
    char dir[600], cmd[1200], out[4096], file[700], hex[65], err[256], id[128];
    snprintf(dir, sizeof dir, "%s/reward-%s-m%u-v%06u", store, ens, member, 1u);
    snprintf(cmd, sizeof cmd,
             "%s model init %s --reward-head --layers 2 --hidden 32 --heads 2 --kv-heads 1 "
             "--intermediate 64 --max-pos 128 --seed %u --std 0.5",
             tp_bin("services/oaif/oaif"), dir, seed);
    if (run_cmd(out, sizeof out, cmd) != 0)
        fail_msg("%s: %s", cmd, out);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    snprintf(id, sizeof id, "reward-%s-m%u-v1", ens, member);
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.id = id;
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    c.version = 1;
    c.ensemble = (char *)ens;
    c.member = member;
    c.path = dir;
    c.sha256 = hex;
    assert_int_equal(ckpt_publish(f->c, &c, 5000), ERR_OK);
}

/* Requests of service `svc` the ledger completed since it started. */
static uint64_t completed_of(struct fx *f, const char *svc)
{
    Oaif__V1__Envelope *env = NULL;
    uint64_t n = 0;
    assert_int_equal(bus_client_status(f->c, 3000, &env), ERR_OK);
    for (size_t i = 0; i < env->status->n_services; i++)
        if (!strcmp(env->status->services[i]->name, svc))
            n = env->status->services[i]->completed;
    oaif__v1__envelope__free_unpacked(env, NULL);
    return n;
}

static void test_reward_model_through_the_score_service(void **state)
{
    struct fx *f = *state;
    /* a two-member ensemble, served by a real reward-scorer */
    char store[300], scorer_log[300];
    snprintf(store, sizeof store, "%.200s/checkpoints", f->dir);
    snprintf(scorer_log, sizeof scorer_log, "%.200s/scorer.log", f->dir);
    assert_int_equal(mkdir(store, 0755), 0);
    publish_member(f, store, "ens-v1", 0, 7);
    publish_member(f, store, "ens-v1", 1, 8);
    char *sargv[] = {(char *)tp_bin("services/reward-scorer/reward-scorer"),
                     "--clients",
                     f->cep,
                     "--workers",
                     f->wep,
                     "--events",
                     "",
                     "--heartbeat",
                     "200ms",
                     "--checkpoint-dir",
                     store,
                     "--ensemble",
                     "ens-v1",
                     "--members",
                     "2",
                     "--threads",
                     "1",
                     NULL};
    pid_t scorer = tp_spawn(sargv, scorer_log);
    assert_true(scorer > 0);
    assert_true(tp_wait_workers(f->c, "score", 1, 15000));

    /* what the ensemble says of the two responses, asked directly */
    struct ann a = {"pair-d", "Name a gas giant.", "Mars.", "Saturn.", NULL, NULL};
    char *texts[2] = {(char *)a.r0, (char *)a.r1};
    Oaif__V1__ScoreRequest sr = OAIF__V1__SCORE_REQUEST__INIT;
    sr.prompt = (char *)a.prompt;
    sr.texts = texts;
    sr.n_texts = 2;
    uint8_t buf[1024];
    size_t n = oaif__v1__score_request__pack(&sr, buf);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(f->c, "score", "direct-d", buf, n, 30000, &env), ERR_OK);
    if (env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("score request failed: %s", env->reply->error);
    Oaif__V1__ScoreReply *rep =
        oaif__v1__score_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    assert_non_null(rep);
    assert_int_equal(rep->n_members, 2);
    assert_string_equal(rep->members[0], "ens-v1/m0@v1");
    assert_string_equal(rep->members[1], "ens-v1/m1@v1");
    assert_int_equal(rep->n_scores, 4);
    double d = (rep->scores[0] + rep->scores[2]) / 2 - (rep->scores[1] + rep->scores[3]) / 2;
    oaif__v1__score_reply__free_unpacked(rep, NULL);
    oaif__v1__envelope__free_unpacked(env, NULL);
    assert_true(d != 0.0);

    /* the annotator's reward-model judge gives the same: p = sigmoid(r_first - r_second) */
    const char *extra[] = {"--backend", "reward-model", "--name", "reward-model/ens-v1", NULL};
    start_proxy(f, extra);
    Oaif__V1__Label *l = annotate(f, "req-d1", &a);
    assert_string_equal(l->judge, "reward-model/ens-v1");
    assert_int_equal(l->winner,
                     d > 0 ? OAIF__V1__WINNER__WINNER_FIRST : OAIF__V1__WINNER__WINNER_SECOND);
    assert_float_equal(l->prob_first, 1 / (1 + exp(-d)), 1e-9);
    assert_int_equal(l->n_orders, 1);
    char verdict[32];
    snprintf(verdict, sizeof verdict, "%+.4g", d);
    assert_string_equal(l->orders[0]->verdict, verdict);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(completed_of(f, "score"), 2);
    /* the judge's request named the pair: the scorer committed the pair's Scores */
    Oaif__V1__Record *rec = get_record(f, OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES, "pair-d");
    assert_non_null(rec);
    Oaif__V1__Scores *sc = oaif__v1__scores__unpack(NULL, rec->data.len, rec->data.data);
    assert_non_null(sc);
    assert_int_equal(sc->n_members, 2);
    assert_float_equal((sc->first[0] + sc->first[1]) / 2 - (sc->second[0] + sc->second[1]) / 2, d,
                       1e-12);
    oaif__v1__scores__free_unpacked(sc, NULL);
    oaif__v1__record__free_unpacked(rec, NULL);
    /* the reward-model judge is cached too: the same question is not scored again */
    l = annotate(f, "req-d2", &a);
    assert_true(l->cached);
    assert_float_equal(l->prob_first, 1 / (1 + exp(-d)), 1e-9);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(completed_of(f, "score"), 2);
    stop_proxies(f);
    int st = tp_stop(scorer, SIGTERM);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(tp_wait_workers(f->c, "score", 0, 15000));
}

/* ---- (e) the cache ------------------------------------------------------------------------ */

static void test_cache_answers_identical_requests_without_the_judge(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--backend", "openai", NULL};
    start_proxy(f, extra);
    struct ann a = {"pair-e1", "Which is larger, 472 or 427?", "472 GOOD", "427 BAD", NULL, NULL};
    Oaif__V1__Label *l = annotate(f, "req-e1", &a);
    assert_false(l->cached);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(judge_requests(), 2);

    /* the same content under a new request id (and another pair id): from the ledger */
    a.pair_id = "pair-e2";
    l = annotate(f, "req-e2", &a);
    assert_true(l->cached);
    assert_string_equal(l->id, "req-e2");
    assert_string_equal(l->pair_id, "pair-e2");
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST);
    assert_int_equal(l->n_orders, 2);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(judge_requests(), 2); /* no second judge call */
    l = stored_label(f, "req-e2");
    assert_non_null(l);
    assert_true(l->cached);
    oaif__v1__label__free_unpacked(l, NULL);

    /* a different question is judged */
    a.r1 = "427 BAD, surely";
    l = annotate(f, "req-e3", &a);
    assert_false(l->cached);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(judge_requests(), 4);

    /* another judge configuration is another cache: a restart with another template asks */
    stop_proxies(f);
    const char *other[] = {"--backend", "openai", "--template", "helpful_short", NULL};
    start_proxy(f, other);
    a.r1 = "427 BAD";
    l = annotate(f, "req-e4", &a);
    assert_false(l->cached);
    oaif__v1__label__free_unpacked(l, NULL);
    assert_int_equal(judge_requests(), 6);
    stop_proxies(f);
}

/* ---- (f) failures ------------------------------------------------------------------------- */

static void test_judge_failure_is_a_dead_letter_not_a_label(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--backend", "openai", "--extra-header", "X-Fake-Mode: garbage", NULL};
    start_proxy(f, extra);
    struct ann a = {"pair-f", "Which planet is the largest?", "GOOD", "BAD", NULL, NULL};
    Oaif__V1__Envelope *env = annotate_env(f, "req-f1", &a);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_int_equal(env->reply->attempts, 2); /* the ledger's max_attempts */
    assert_non_null(strstr(env->reply->error, "not JSON"));
    assert_int_equal(env->reply->payload.len, 0);
    oaif__v1__envelope__free_unpacked(env, NULL);
    assert_null(stored_label(f, "req-f1"));
    assert_int_equal(judge_requests(), 4); /* two attempts of two orders */

    /* a request that is not an AnnotateRequest fails at once (permanent) */
    env = NULL;
    assert_int_equal(bus_client_call(f->c, "annotate", "req-f2", "\xff\xff\xff", 3, 15000, &env),
                     ERR_OK);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_int_equal(env->reply->attempts, 1);
    assert_non_null(strstr(env->reply->error, "not an AnnotateRequest"));
    oaif__v1__envelope__free_unpacked(env, NULL);
    /* and a pair with one response */
    Oaif__V1__Response r = OAIF__V1__RESPONSE__INIT;
    Oaif__V1__Response *rp[1] = {&r};
    r.text = "GOOD";
    Oaif__V1__Pair pair = OAIF__V1__PAIR__INIT;
    pair.id = "pair-f3";
    pair.prompt = "p";
    pair.responses = rp;
    pair.n_responses = 1;
    Oaif__V1__AnnotateRequest req = OAIF__V1__ANNOTATE_REQUEST__INIT;
    req.pair = &pair;
    uint8_t buf[256];
    size_t n = oaif__v1__annotate_request__pack(&req, buf);
    assert_int_equal(bus_client_call(f->c, "annotate", "req-f3", buf, n, 15000, &env), ERR_OK);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_non_null(strstr(env->reply->error, "has 1 responses, not 2"));
    oaif__v1__envelope__free_unpacked(env, NULL);
    stop_proxies(f);
}

/* ---- (g) the key ---------------------------------------------------------------------------- */

static bool bytes_contain(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

static void assert_no_key(const char *what, const char *text)
{
    if (strstr(text, KEY) || strstr(text, "PROCTESTKEY"))
        fail_msg("the API key appears in %s", what);
}

static void test_api_key_never_in_logs_records_or_metrics(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--backend", "openai", "--api-key-file", f->key_file, "--metrics-port",
                           "0",         NULL};
    start_proxy(f, extra);
    struct ann a = {"pair-g1", "Which planet is the largest?", "GOOD", "BAD", NULL, NULL};
    Oaif__V1__Label *l = annotate(f, "req-g1", &a);
    oaif__v1__label__free_unpacked(l, NULL);
    l = annotate(f, "req-g2", &a); /* cached */
    assert_true(l->cached);
    oaif__v1__label__free_unpacked(l, NULL);
    /* the key did reach the judge */
    json_t *s = fake_judge_stats(&fj);
    char want[200];
    snprintf(want, sizeof want, "Bearer %s", KEY);
    assert_string_equal(json_string_value(json_object_get(s, "last_authorization")), want);
    json_decref(s);
    usleep(700000); /* the metrics are refreshed every 500 ms */
    char *m = http_get_metrics(metrics_port(f, 0));
    assert_float_equal(metric(m, "oaif_judge_judgements_total{judge=\"openai/judge-1/helpful\","
                                 "result=\"ok\"}"),
                       1, 0);
    assert_float_equal(metric(m, "oaif_annotator_cache_total{judge=\"openai/judge-1/helpful\","
                                 "result=\"hit\"}"),
                       1, 0);
    assert_true(metric(m, "oaif_judge_tokens_total{judge=\"openai/judge-1/helpful\","
                          "kind=\"prompt\"}") > 0);
    assert_no_key("/metrics", m);
    free(m);
    stop_proxies(f);

    /* a judge that fails and echoes the key in its error body (HTTP 400: permanent) */
    static const char headers[] = "X-Fake-Fail: 1000,X-Fake-Fail-Status: 400,"
                                  "X-Fake-Echo-Auth: 1,X-Fake-Key: procs-echo";
    const char *echo[] = {"--backend", "openai", "--api-key-file", f->key_file, "--extra-header",
                          headers,     NULL};
    start_proxy(f, echo);
    a.r0 = "GOOD, another";
    Oaif__V1__Envelope *env = annotate_env(f, "req-g3", &a);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_int_equal(env->reply->attempts, 1); /* permanent: no retry */
    assert_non_null(strstr(env->reply->error, "HTTP 400"));
    assert_non_null(strstr(env->reply->error, "[REDACTED]")); /* the echo, redacted */
    assert_no_key("the failed reply", env->reply->error);
    oaif__v1__envelope__free_unpacked(env, NULL);
    stop_proxies(f);

    /* the proxies' log (their whole stderr), the ledger's log and records */
    char *log = read_file(f->proxy_log);
    assert_non_null(strstr(log, "annotator.api_key = \"***\""));
    assert_non_null(strstr(log, "api key set from annotator.api_key"));
    assert_no_key("the proxy log", log);
    free(log);
    log = read_file(f->ledger_log);
    assert_no_key("the ledger log", log);
    free(log);
    char out[65536], cmd[600];
    snprintf(cmd, sizeof cmd, "%s export labels", tp_bin("services/oaif/oaif"));
    assert_int_equal(run_cmd(out, sizeof out, cmd), 0);
    assert_non_null(strstr(out, "\"judge\":\"openai/judge-1/helpful\""));
    assert_no_key("oaif export labels", out);
    /* every record of every kind, as raw bytes (the cache holds packed Labels) */
    size_t nrec = 0;
    for (int k = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
         k <= OAIF__V1__RECORD_KIND__RECORD_KIND_META; k++) {
        Oaif__V1__Envelope *e = NULL;
        assert_int_equal(bus_client_scan(f->c, (Oaif__V1__RecordKind)k, 0, 0, 5000, &e), ERR_OK);
        for (size_t i = 0; i < e->records->n_records; i++) {
            const Oaif__V1__Record *rec = e->records->records[i];
            if (bytes_contain(rec->data.data, rec->data.len, KEY))
                fail_msg("the API key appears in record %s of kind %d", rec->id, k);
            nrec++;
        }
        oaif__v1__envelope__free_unpacked(e, NULL);
    }
    assert_true(nrec >= 3); /* two labels and a cache entry at least */
    /* the request states (their last errors) */
    const char *ids[] = {"req-g1", "req-g2", "req-g3"};
    env = NULL;
    assert_int_equal(bus_client_lookup(f->c, ids, 3, 5000, &env), ERR_OK);
    assert_int_equal(env->records->n_requests, 3);
    for (size_t i = 0; i < 3; i++) {
        const Oaif__V1__RequestState *rs = env->records->requests[i];
        assert_no_key("a request state", rs->last_error ? rs->last_error : "");
        assert_false(bytes_contain(rs->reply.data, rs->reply.len, KEY));
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
}

/* ---- (h) replicas ------------------------------------------------------------------------- */

static void test_two_replicas_share_the_load(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {
        "--backend", "openai",         "--credit",           "2", "--metrics-port",
        "0",         "--extra-header", "X-Fake-Latency: 60", NULL};
    start_proxy(f, extra);
    start_proxy(f, extra);
    enum { N = 16 };
    uint8_t buf[1024];
    for (int i = 0; i < N; i++) {
        char id[32], r0[64];
        snprintf(id, sizeof id, "req-h%d", i);
        snprintf(r0, sizeof r0, "GOOD answer number %d", i);
        struct ann a = {id, "Name a gas giant.", r0, "BAD", NULL, NULL};
        size_t n = pack_request(&a, buf, sizeof buf);
        assert_int_equal(bus_client_submit(f->c, "annotate", id, buf, n, 0, 0), ERR_OK);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int waited = 0; bus_client_pending(f->c) && waited < 20000; waited += 50)
        bus_client_poll(f->c, 50, NULL, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(bus_client_pending(f->c), 0);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* 16 judgements x 2 orders at 60 ms, 2 replicas x 2 in flight (x 2 orders): about 0.25 s;
     * one replica alone would need twice that */
    assert_true(secs < 5);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-h%d", i);
        Oaif__V1__Label *l = stored_label(f, id);
        assert_non_null(l);
        assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST);
        oaif__v1__label__free_unpacked(l, NULL);
    }
    usleep(700000);
    double served[2];
    for (int r = 0; r < 2; r++) {
        char *m = http_get_metrics(metrics_port(f, r));
        served[r] = metric(m, "oaif_annotator_requests_total{judge=\"openai/judge-1/helpful\"}");
        free(m);
    }
    assert_true(served[0] >= 1 && served[1] >= 1);
    assert_float_equal(served[0] + served[1], N, 0);
    json_t *s = fake_judge_stats(&fj);
    assert_true(json_integer_value(json_object_get(s, "max_in_flight")) >= 3);
    json_decref(s);
    stop_proxies(f);
}

/* ---- (i) oaif judge try -------------------------------------------------------------------- */

static void test_oaif_judge_try_prints_the_verdict(void **state)
{
    (void)state;
    char out[16384], cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s judge try --backend openai --base-url %s --model judge-1 --template-dir %s "
             "--extra-header 'X-Fake-Logprobs: 1' --price-input 2 --price-output 8 "
             "'Which planet is the largest?' 'Mars. BAD' 'Jupiter. GOOD'",
             tp_bin("services/oaif/oaif"), fj.base_url, JUDGE_TEMPLATES);
    assert_int_equal(run_cmd(out, sizeof out, cmd), 0);
    assert_non_null(strstr(out, "judge         openai/judge-1/helpful"));
    assert_non_null(strstr(out, "verdict       second is better  (P(first better) = 0.1000"));
    assert_non_null(strstr(out, "order A,B     P(shown first better) = 0.1000"));
    assert_non_null(strstr(out, "order B,A     P(shown first better) = 0.9000"));
    assert_non_null(strstr(out, "(log-probs)"));
    /* where the verdict stood, and the token its probability came from */
    assert_non_null(strstr(out, "verdict at line 1, column 1; probability from the log-probs of "
                                "token \"2\""));
    assert_non_null(strstr(out, "verdict at line 1, column 1; probability from the log-probs of "
                                "token \"1\""));
    assert_non_null(strstr(out, "(position 0 of the answer's log-probs)"));
    assert_non_null(strstr(out, "disagreement  0.0000"));
    assert_non_null(strstr(out, "tokens        "));
    assert_non_null(strstr(out, "cost          "));
    assert_null(strstr(out, "cost          0\n")); /* priced */
    assert_non_null(strstr(out, "latency       "));
    assert_int_equal(judge_requests(), 2);

    /* JSON, the rules judge, an instruction */
    snprintf(cmd, sizeof cmd,
             "%s judge try --json --backend rules --instruction 'prefer shorter responses' "
             "'What is 47 + 38?' 'The answer is 85.' '85'",
             tp_bin("services/oaif/oaif"));
    assert_int_equal(run_cmd(out, sizeof out, cmd), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "winner")), "second");
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);

    /* a failing judge: exit 1 and the reason */
    snprintf(cmd, sizeof cmd,
             "%s judge try --backend openai --base-url %s --model judge-1 --template-dir %s "
             "--max-attempts 1 --extra-header 'X-Fake-Mode: garbage' p GOOD BAD",
             tp_bin("services/oaif/oaif"), fj.base_url, JUDGE_TEMPLATES);
    assert_int_equal(run_cmd(out, sizeof out, cmd), 1);
    assert_non_null(strstr(out, "the judgement failed (parse"));
    /* bad usage: exit 2 */
    snprintf(cmd, sizeof cmd, "%s judge try --backend rules 'only a prompt'",
             tp_bin("services/oaif/oaif"));
    assert_int_equal(run_cmd(out, sizeof out, cmd), 2);
    assert_non_null(strstr(out, "needs PROMPT FIRST SECOND"));
    snprintf(cmd, sizeof cmd, "%s judge try --backend nonsense p a b",
             tp_bin("services/oaif/oaif"));
    assert_int_equal(run_cmd(out, sizeof out, cmd), 2);
    assert_non_null(strstr(out, "--backend"));
}

/* ---- the service's own configuration ------------------------------------------------------- */

static void test_proxy_help_and_bad_configuration(void **state)
{
    struct fx *f = *state;
    char out[65536], cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --help", tp_bin("services/annotator-proxy/annotator-proxy"));
    assert_int_equal(run_cmd(out, sizeof out, cmd), 0);
    assert_non_null(strstr(out, "--backend"));
    assert_non_null(strstr(out, "--api-key"));
    assert_non_null(strstr(out, "annotator.http.requests_per_minute"));
    /* an openai judge without a model: exit 2, naming the field */
    snprintf(cmd, sizeof cmd, "%s --backend openai --workers %s --clients %s",
             tp_bin("services/annotator-proxy/annotator-proxy"), f->wep, f->cep);
    assert_int_equal(run_cmd(out, sizeof out, cmd), 2);
    assert_non_null(strstr(out, "model: required"));
    /* a missing template names the file */
    snprintf(cmd, sizeof cmd, "%s --backend openai --model m --template nosuch",
             tp_bin("services/annotator-proxy/annotator-proxy"));
    assert_int_equal(run_cmd(out, sizeof out, cmd), 2);
    assert_non_null(strstr(out, "nosuch.txt"));
    /* an unknown key in the run file's annotator section */
    char path[400];
    snprintf(path, sizeof path, "%s/run.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("annotator:\n  backend: rules\n  tie_bnad: 0.1\n", fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s --config %s", tp_bin("services/annotator-proxy/annotator-proxy"),
             path);
    assert_int_equal(run_cmd(out, sizeof out, cmd), 2);
    assert_non_null(strstr(out, "tie_bnad"));
    assert_non_null(strstr(out, "tie_band"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_openai_logprobs_label_through_the_ledger, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_anthropic_label_through_the_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules_correct_shorter_and_noise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reward_model_through_the_score_service, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_answers_identical_requests_without_the_judge,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_judge_failure_is_a_dead_letter_not_a_label, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_api_key_never_in_logs_records_or_metrics, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_replicas_share_the_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oaif_judge_try_prints_the_verdict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_help_and_bad_configuration, setup, teardown),
    };
    return cmocka_run_group_tests_name("annotator_procs", tests, group_setup, group_teardown);
}
