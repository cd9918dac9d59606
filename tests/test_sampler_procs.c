/* test_sampler_procs - the sample service with real processes: a `ledger` (with its events) and
 * `sampler` replicas, driven through the ledger with SampleRequests as the trainer and the
 * evaluator would. A request sent before any policy exists waits until version 0 is published;
 * replies and their Pair records; determinism by seed; error replies naming the field; hot
 * reload when version 1 is published (the next requests report it) while the old one stays
 * pinnable; a pinned version that was evicted is read back from disk; a corrupt checkpoint is
 * refused (the sampler keeps serving the version it has); the remote backend against a fake
 * /v1/completions server in this process; SIGTERM exits 0. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "fake_completions.h"
#include "model.h"
#include "testproc.h"
#include "tpbus.h"

struct fx {
    char dir[256], store[300];
    char ledger_log[300], sampler_log[300], ep_file[300];
    char cep[256], wep[256], eep[256];
    pid_t ledger, sampler;
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

/* A sampler with the common flags and the NULL-terminated extra ones. */
static void start_sampler(struct fx *f, const char *const *extra)
{
    char *argv[48] = {(char *)tp_bin("services/sampler/sampler"),
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
                      "60s"}; /* reloads below come from the events, not the rescan */
    int n = 15;
    for (int i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->sampler = tp_spawn(argv, f->sampler_log);
    assert_true(f->sampler > 0);
    assert_true(tp_wait_workers(f->c, "sample", 1, 15000));
}

static void stop_sampler(struct fx *f)
{
    int st = tp_stop(f->sampler, SIGTERM);
    f->sampler = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(tp_wait_workers(f->c, "sample", 0, 15000));
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static void write_version(struct fx *f, uint32_t version, uint64_t seed, char *dir, size_t len)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 128;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.5f);
    assert_int_equal(ckpt_dir(dir, len, f->store,
                              version == 0 ? OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT
                                           : OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY,
                              version),
                     ERR_OK);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

/* Writes version `version` and records it in the ledger (with a wrong sha256 if asked). */
static void publish(struct fx *f, uint32_t version, uint64_t seed, bool wrong_sha)
{
    char dir[512], file[600], hex[65], err[256];
    write_version(f, version, seed, dir, sizeof dir);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    if (wrong_sha)
        hex[0] = hex[0] == '0' ? '1' : '0';
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.version = version;
    c.kind = version == 0 ? OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT
                          : OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
    c.path = dir;
    c.sha256 = hex;
    c.created_ms = bus_now_ms();
    c.run = "test";
    assert_int_equal(ckpt_publish(f->c, &c, 5000), ERR_OK);
}

/* ---- requests ----------------------------------------------------------------------------- */

struct sreq {
    size_t nprompts;
    unsigned n, max_new;
    uint64_t seed;
    bool pin;
    uint32_t version;
    float top_p;
};

static size_t pack_sample(const struct sreq *q, uint8_t *buf, size_t cap)
{
    static char *texts[4] = {"What is 12 + 35?", "Reverse the word 'stone'.",
                             "How many a in 'banana'?", "Which is smaller, 41 or 14?"};
    static char *ids[4] = {"q0", "q1", "q2", "q3"};
    Oaif__V1__Prompt p[4];
    Oaif__V1__Prompt *pp[4];
    for (size_t i = 0; i < q->nprompts; i++) {
        oaif__v1__prompt__init(&p[i]);
        p[i].id = ids[i];
        p[i].text = texts[i];
        pp[i] = &p[i];
    }
    Oaif__V1__SamplingParams sp = OAIF__V1__SAMPLING_PARAMS__INIT;
    sp.n = q->n;
    sp.max_new_tokens = q->max_new;
    sp.seed = q->seed;
    sp.temperature = 1.0f;
    sp.top_p = q->top_p;
    Oaif__V1__SampleRequest r = OAIF__V1__SAMPLE_REQUEST__INIT;
    r.prompts = pp;
    r.n_prompts = q->nprompts;
    r.sampling = &sp;
    r.pin_version = q->pin;
    r.policy_version = q->version;
    r.run = "test";
    size_t n = oaif__v1__sample_request__get_packed_size(&r);
    assert_true(n <= cap);
    oaif__v1__sample_request__pack(&r, buf);
    return n;
}

static Oaif__V1__Envelope *call_raw(struct fx *f, const char *id, const void *buf, size_t n)
{
    Oaif__V1__Envelope *env = NULL;
    int rc = bus_client_call(f->c, "sample", id, buf, n, 20000, &env);
    if (rc)
        fail_msg("request %s: %s", id, err_str(rc));
    assert_non_null(env->reply);
    return env;
}

/* A request that must succeed: its reply (free with sample_reply__free_unpacked). */
static Oaif__V1__SampleReply *sample(struct fx *f, const char *id, const struct sreq *q)
{
    uint8_t buf[4096];
    size_t n = pack_sample(q, buf, sizeof buf);
    Oaif__V1__Envelope *env = call_raw(f, id, buf, n);
    if (env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("request %s failed: %s", id, env->reply->error);
    Oaif__V1__SampleReply *r =
        oaif__v1__sample_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    assert_non_null(r);
    oaif__v1__envelope__free_unpacked(env, NULL);
    return r;
}

/* A request that must fail: its error contains each of the NULL-terminated strings. */
static void sample_fails(struct fx *f, const char *id, const void *buf, size_t n, unsigned attempts,
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

static void sample_bad(struct fx *f, const char *id, const struct sreq *q, const char *says)
{
    uint8_t buf[4096];
    size_t n = pack_sample(q, buf, sizeof buf);
    sample_fails(f, id, buf, n, 1, says, (const char *)NULL);
}

/* bus_client_poll's callback: the SampleReply of an ok reply into *(Oaif__V1__SampleReply **)ctx.
 */
static void on_reply(void *ctx, const Oaif__V1__Reply *reply)
{
    Oaif__V1__SampleReply **out = ctx;
    if (reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("request %s failed: %s", reply->id, reply->error);
    *out = oaif__v1__sample_reply__unpack(NULL, reply->payload.len, reply->payload.data);
}

/* Requests (unpinned) until one reports `version`; fails after ~15 s. */
static void wait_serving(struct fx *f, uint32_t version, const char *tag)
{
    struct sreq q = {.nprompts = 1, .n = 2, .max_new = 4, .seed = 1};
    for (int i = 0; i < 150; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", tag, i);
        Oaif__V1__SampleReply *r = sample(f, id, &q);
        uint32_t v = r->policy_version;
        oaif__v1__sample_reply__free_unpacked(r, NULL);
        if (v == version)
            return;
        usleep(100000);
    }
    fail_msg("the sampler never served version %u", version);
}

static bool same_samples(const Oaif__V1__SampleReply *a, const Oaif__V1__SampleReply *b)
{
    if (a->n_pairs != b->n_pairs)
        return false;
    for (size_t i = 0; i < a->n_pairs; i++)
        for (size_t j = 0; j < a->pairs[i]->n_responses; j++) {
            const Oaif__V1__Response *x = a->pairs[i]->responses[j], *y = b->pairs[i]->responses[j];
            if (x->n_token_ids != y->n_token_ids || strcmp(x->text, y->text) != 0 ||
                memcmp(x->token_ids, y->token_ids, x->n_token_ids * sizeof(int32_t)) != 0)
                return false;
        }
    return true;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void test_builtin_through_the_ledger(void **state)
{
    (void)state;
    struct fx *f = &F;
    start_sampler(f, (const char *const[]){"--max-loaded", "2", NULL});
    /* a request before any policy exists waits until one is published */
    struct sreq q = {.nprompts = 4, .n = 2, .max_new = 12, .seed = 9};
    uint8_t buf[4096];
    size_t n = pack_sample(&q, buf, sizeof buf);
    assert_int_equal(bus_client_submit(f->c, "sample", "early", buf, n, 0, 0), ERR_OK);
    usleep(300000);
    publish(f, 0, 1, false);
    Oaif__V1__SampleReply *early = NULL;
    for (int i = 0; i < 200 && !early; i++)
        assert_true(bus_client_poll(f->c, 100, on_reply, &early) >= 0);
    assert_non_null(early);
    assert_int_equal(early->policy_version, 0);
    assert_int_equal(early->n_pairs, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(early->pairs[i]->n_responses, 2);
        for (size_t j = 0; j < 2; j++) {
            const Oaif__V1__Response *r = early->pairs[i]->responses[j];
            assert_true(r->num_tokens >= 1 && r->num_tokens <= 12);
            assert_int_equal(r->n_token_ids, r->num_tokens);
            assert_true(r->logprob < 0.0);
            assert_int_equal(r->policy_version, 0);
        }
    }
    /* the pairs were committed with the reply, under "<request id>/<index>" */
    const char *ids[4] = {"early/0", "early/1", "early/2", "early/3"};
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_get(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids, 4, 5000, &env), ERR_OK);
    assert_int_equal(env->records->n_records, 4);
    assert_int_equal(env->records->n_missing, 0);
    for (size_t i = 0; i < 4; i++) {
        const Oaif__V1__Record *rec = env->records->records[i];
        Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, rec->data.len, rec->data.data);
        assert_non_null(p);
        assert_string_equal(p->id, rec->id);
        assert_int_equal(p->n_responses, 2);
        assert_int_equal(p->policy_version, 0);
        assert_string_equal(p->run, "test");
        size_t k = (size_t)(rec->id[strlen(rec->id) - 1] - '0');
        assert_string_equal(p->prompt_id, early->pairs[k]->prompt_id);
        assert_string_equal(p->responses[1]->text, early->pairs[k]->responses[1]->text);
        oaif__v1__pair__free_unpacked(p, NULL);
    }
    oaif__v1__envelope__free_unpacked(env, NULL);

    /* determinism: another request id with the same seed gives the same samples */
    Oaif__V1__SampleReply *again = sample(f, "again", &q);
    assert_true(same_samples(early, again));
    oaif__v1__sample_reply__free_unpacked(again, NULL);
    q.seed = 10;
    Oaif__V1__SampleReply *other = sample(f, "other", &q);
    assert_false(same_samples(early, other));
    oaif__v1__sample_reply__free_unpacked(other, NULL);
    oaif__v1__sample_reply__free_unpacked(early, NULL);

    /* bad requests fail at once (one attempt), naming the field */
    struct sreq bad = {.nprompts = 1, .n = 2, .max_new = 4, .top_p = 2.0f};
    sample_bad(f, "bad-top-p", &bad, "sampling.top_p");
    bad = (struct sreq){.nprompts = 1, .n = 99, .max_new = 4};
    sample_bad(f, "bad-n", &bad, "sampling.n");
    bad = (struct sreq){.nprompts = 0, .n = 2, .max_new = 4};
    sample_bad(f, "bad-none", &bad, "prompts");
    bad = (struct sreq){.nprompts = 1, .n = 2, .max_new = 4, .pin = true, .version = 9};
    sample_bad(f, "bad-version", &bad, "version 9 is unknown");
    const uint8_t garbage[] = {0x0a, 0xff, 0x01};
    sample_fails(f, "garbage", garbage, sizeof garbage, 1, "not a SampleRequest",
                 (const char *)NULL);

    /* hot reload: version 1 is published; the next requests report it */
    publish(f, 1, 2, false);
    wait_serving(f, 1, "reload1");
    struct sreq pin0 = {.nprompts = 2, .n = 2, .max_new = 6, .seed = 3, .pin = true, .version = 0};
    Oaif__V1__SampleReply *r0 = sample(f, "pin0", &pin0);
    assert_int_equal(r0->policy_version, 0); /* still in memory (max_loaded 2) */
    assert_int_equal(r0->pairs[1]->responses[0]->policy_version, 0);
    oaif__v1__sample_reply__free_unpacked(r0, NULL);

    /* version 2: version 1 (least recently used) leaves memory; pinning it reads it back */
    publish(f, 2, 3, false);
    wait_serving(f, 2, "reload2");
    struct sreq pin1 = {.nprompts = 1, .n = 2, .max_new = 6, .seed = 3, .pin = true, .version = 1};
    Oaif__V1__SampleReply *r1 = sample(f, "pin1", &pin1);
    assert_int_equal(r1->policy_version, 1);
    oaif__v1__sample_reply__free_unpacked(r1, NULL);

    /* a corrupt version 3 (its sha256 does not match): refused, version 2 still served */
    publish(f, 3, 4, true);
    usleep(500000);
    struct sreq un = {.nprompts = 1, .n = 2, .max_new = 4, .seed = 5};
    Oaif__V1__SampleReply *r2 = sample(f, "after-corrupt", &un);
    assert_int_equal(r2->policy_version, 2);
    oaif__v1__sample_reply__free_unpacked(r2, NULL);
    struct sreq pin3 = {.nprompts = 1, .n = 2, .max_new = 4, .pin = true, .version = 3};
    n = pack_sample(&pin3, buf, sizeof buf);
    sample_fails(f, "pin3", buf, n, 1, "version 3", "sha256", (const char *)NULL);
    stop_sampler(f);
}

static void test_remote_backend_through_the_ledger(void **state)
{
    (void)state;
    struct fx *f = &F;
    struct fake_completions fc = {0};
    assert_int_equal(fake_completions_start(&fc), 0);
    start_sampler(f, (const char *const[]){"--backend", "remote", "--base-url", fc.base_url,
                                           "--model", "policy", "--remote-version", "5",
                                           "--backoff-base", "10ms", "--max-attempts", "3", NULL});
    atomic_store(&fc.fail_first, 1); /* one 503 first: retried */
    struct sreq q = {.nprompts = 2, .n = 2, .max_new = 64, .seed = 4};
    Oaif__V1__SampleReply *r = sample(f, "remote", &q);
    assert_int_equal(r->policy_version, 5);
    assert_int_equal(r->n_pairs, 2);
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 2; j++) {
            const Oaif__V1__Response *x = r->pairs[i]->responses[j];
            assert_int_equal(x->text[0], 'r');
            assert_int_equal(x->policy_version, 5);
            assert_int_equal(x->finish, OAIF__V1__FINISH_REASON__FINISH_REASON_EOS);
            assert_true(x->num_tokens > 0 && x->logprob < 0.0);
        }
    assert_int_equal(atomic_load(&fc.requests), 5);
    oaif__v1__sample_reply__free_unpacked(r, NULL);
    struct sreq pin = {.nprompts = 1, .n = 2, .max_new = 4, .pin = true, .version = 1};
    sample_bad(f, "remote-pin", &pin, "serves version 5");
    stop_sampler(f);
    fake_completions_stop(&fc);
}

/* A failed test leaves no sampler behind for the next one. */
static int test_teardown(void **state)
{
    (void)state;
    if (F.sampler > 0) {
        tp_stop(F.sampler, SIGKILL);
        F.sampler = 0;
        for (int i = 0; i < 300 && tp_workers_of(F.c, "sample") != 0; i++)
            usleep(20000);
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    struct fx *f = &F;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-sampler-procs-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->store, sizeof f->store, "%.200s/checkpoints", f->dir);
    snprintf(f->ledger_log, sizeof f->ledger_log, "%.200s/ledger.log", f->dir);
    snprintf(f->sampler_log, sizeof f->sampler_log, "%.200s/sampler.log", f->dir);
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
    if (f->sampler > 0)
        tp_stop(f->sampler, SIGKILL);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
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
        cmocka_unit_test_teardown(test_builtin_through_the_ledger, test_teardown),
        cmocka_unit_test_teardown(test_remote_backend_through_the_ledger, test_teardown),
    };
    return cmocka_run_group_tests_name("sampler_procs", tests, group_setup, group_teardown);
}
