/* test_evaluator_procs - the evaluator with real processes on a tiny run: a ledger, a sampler with
 * tiny random policies (SFT v0 and versions 1..4 published as checkpoints), two judges (the rules
 * annotator-proxy serving `annotate`, the training judge, which must never be asked, and one
 * serving `annotate-eval`, the evaluation judge), held-out and training prompts of the built-in
 * task in the ledger, and the evaluator with --every 2.
 *
 * The evaluator is SIGKILLed once, while its judgements of v2 wait in the ledger for a judge that
 * is not there yet; the evaluation judge then starts, and so does a new evaluator (without --run:
 * it follows the checkpoints' run, and must ask the same questions). Checked: an
 * EvalResult for v2 and v4 only, with consistent numbers (wins + ties + losses = prompts, the
 * win rate with ties as 1/2 inside its interval, accuracy from the checker, the run and seed);
 * each prompt judged exactly once per version (the ledger's completed counts: 2 x 12 judgements,
 * none of the training judge) and the baseline's answers drawn once (sample requests: 3 batches
 * for each version and 3 for the baseline); an EvaluateRequest through the ledger for v2 answers
 * with the stored result, one for v3 evaluates it (with the baseline's answers from the ledger);
 * a request for another baseline fails permanently with the reason.
 *
 * Then the reward-model accuracy and `oaif eval --version`: labeled pairs of the run are put in the
 * ledger, a two-member ensemble "e" is trained on them by `oaif rm train` (the SFT model as init,
 * a quarter held out), a reward-scorer serves it, and an evaluator with --rm-ensemble e is asked
 * for v1 by `oaif eval --version 1 --json` (the real binary, through the ledger): its
 * EvalResult.rm_accuracy and rm_pairs equal what `oaif rm eval --split heldout` prints for the
 * ensemble's mean on the same pairs, and the record in the ledger is the one printed; v2, evaluated
 * before, is answered from its record (text mode, without a reward-model line); another baseline is
 * refused with the evaluator's reason and exit status 1. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

#include "bus.h"
#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "rmfixture.h"
#include "task.h"
#include "testproc.h"
#include "tpbus.h"

#define NEVAL  12 /* held-out prompts the evaluator uses */
#define NTRAIN 5  /* training prompts it must leave alone */

struct fx {
    char dir[256], store[300], log[300], ep[300];
    char cep[256], wep[256], eep[256];
    pid_t ledger, sampler, judge_train, judge_eval, evaluator, scorer;
    void *zctx;
    bus_client_t *c;
};

static struct fx F;

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
                    "--endpoints-file",
                    f->ep,
                    NULL};
    f->ledger = tp_spawn(argv, f->log);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep, "workers", f->wep, sizeof f->wep, 10000));
    assert_true(tp_read_kv(f->ep, "events", f->eep, sizeof f->eep, 10000));
}

/* A worker process of `bin` on the ledger, with its events when `events`, and the extra flags. */
static pid_t start(struct fx *f, const char *bin, const char *const *extra, bool events)
{
    char *argv[48] = {(char *)tp_bin(bin), "--clients", f->cep, "--workers", f->wep,
                      "--heartbeat",       "200ms"};
    int n = 7;
    if (events) {
        argv[n++] = "--events";
        argv[n++] = f->eep;
    }
    for (int i = 0; extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid_t p = tp_spawn(argv, f->log);
    assert_true(p > 0);
    return p;
}

static void start_judge(struct fx *f, pid_t *pid, const char *service)
{
    *pid = start(f, "services/annotator-proxy/annotator-proxy",
                 (const char *const[]){"--backend", "rules", "--service", service, NULL}, false);
    assert_true(tp_wait_workers(f->c, service, 1, 15000));
}

/* With named_run, --run test; else the evaluator follows each checkpoint's run (also "test"), and
 * must ask the very same questions. */
static void start_evaluator_with(struct fx *f, bool named_run, const char *rm_ensemble)
{
    const char *const args[] = {"--rm-ensemble",
                                rm_ensemble ? rm_ensemble : "",
                                "--rm-holdout",
                                "0.25",
                                "--seed",
                                "5",
                                "--every",
                                "2",
                                "--prompts",
                                "12",
                                "--batch",
                                "4",
                                "--max-new-tokens",
                                "12",
                                "--resamples",
                                "300",
                                "--rescan",
                                "60s",
                                "--instruction",
                                "Prefer shorter responses.",
                                named_run ? "--run" : NULL,
                                "test",
                                NULL};
    f->evaluator = start(f, "services/evaluator/evaluator", args, true);
    assert_true(tp_wait_workers(f->c, "evaluate", 1, 15000));
}

static void start_evaluator(struct fx *f, bool named_run)
{
    start_evaluator_with(f, named_run, NULL);
}

/* A tiny random policy of `version` in the store, recorded in the ledger. */
static void publish(struct fx *f, uint32_t version)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 256;
    nn_model_t *m = NULL;
    char err[256], dir[512], file[600], hex[65];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 100 + version, 0.5f);
    Oaif__V1__CheckpointKind kind = version == 0
                                        ? OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT
                                        : OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
    assert_int_equal(ckpt_dir(dir, sizeof dir, f->store, kind, version), ERR_OK);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.version = version;
    ck.kind = kind;
    ck.path = dir;
    ck.sha256 = hex;
    ck.created_ms = bus_now_ms();
    ck.run = "test";
    assert_int_equal(ckpt_publish(f->c, &ck, 5000), ERR_OK);
}

/* NEVAL held-out prompts of the built-in task (reference answers included) and NTRAIN training
 * ones, interleaved, in one put. */
static void put_prompts(struct fx *f)
{
    struct task_prompt *ev = NULL, *tr = NULL;
    assert_int_equal(task_prompt_set(3, TASK_SPLIT_EVAL, NEVAL, &ev), ERR_OK);
    assert_int_equal(task_prompt_set(3, TASK_SPLIT_TRAIN, NTRAIN, &tr), ERR_OK);
    Oaif__V1__Record recs[NEVAL + NTRAIN], *rp[NEVAL + NTRAIN];
    Oaif__V1__Prompt ps[NEVAL + NTRAIN];
    uint8_t *bufs[NEVAL + NTRAIN];
    size_t n = 0;
    for (size_t i = 0, e = 0, t = 0; i < NEVAL + NTRAIN; i++) {
        bool train = i % 3 == 1 && t < NTRAIN;
        const struct task_prompt *p = train ? &tr[t++] : &ev[e++];
        oaif__v1__prompt__init(&ps[n]);
        ps[n].id = (char *)p->id;
        ps[n].text = (char *)p->text;
        ps[n].family = (char *)task_family_name(p->family);
        ps[n].reference = (char *)p->answer;
        ps[n].split = train ? "train" : "eval";
        size_t len = oaif__v1__prompt__get_packed_size(&ps[n]);
        bufs[n] = malloc(len);
        assert_non_null(bufs[n]);
        oaif__v1__prompt__pack(&ps[n], bufs[n]);
        oaif__v1__record__init(&recs[n]);
        recs[n].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
        recs[n].id = (char *)p->id;
        recs[n].data.data = bufs[n];
        recs[n].data.len = len;
        rp[n] = &recs[n];
        n++;
    }
    assert_int_equal(bus_client_put(f->c, "prompts", rp, n, true, 10000), ERR_OK);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(ev);
    free(tr);
}

/* The EvalResult of version v (NULL when absent). */
static Oaif__V1__EvalResult *eval_result(struct fx *f, unsigned v)
{
    char id[128];
    snprintf(id, sizeof id, "eval-test-v%u-annotate-eval", v);
    const char *ids[1] = {id};
    Oaif__V1__Envelope *env = NULL;
    if (bus_client_get(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, ids, 1, 3000, &env))
        return NULL;
    Oaif__V1__EvalResult *r = NULL;
    if (env->records->n_records == 1)
        r = oaif__v1__eval_result__unpack(NULL, env->records->records[0]->data.len,
                                          env->records->records[0]->data.data);
    oaif__v1__envelope__free_unpacked(env, NULL);
    return r;
}

static Oaif__V1__EvalResult *wait_result(struct fx *f, unsigned v)
{
    for (int i = 0; i < 3000; i++) {
        Oaif__V1__EvalResult *r = eval_result(f, v);
        if (r)
            return r;
        usleep(20000);
    }
    fail_msg("no EvalResult for v%u", v);
    return NULL;
}

static unsigned eval_count(struct fx *f)
{
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_scan(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, 0, 100, 3000, &env), ERR_OK);
    unsigned n = (unsigned)env->records->n_records;
    oaif__v1__envelope__free_unpacked(env, NULL);
    return n;
}

static void check_result(const Oaif__V1__EvalResult *r, unsigned v)
{
    assert_int_equal(r->version, v);
    assert_int_equal(r->baseline_version, 0);
    assert_string_equal(r->run, "test");
    assert_int_equal(r->seed, 5);
    assert_int_equal(r->prompts, NEVAL);
    assert_int_equal(r->wins + r->ties + r->losses, NEVAL);
    assert_true(fabs(r->win_rate - (r->wins + 0.5 * r->ties) / NEVAL) < 1e-12);
    assert_true(r->win_rate_lo <= r->win_rate + 1e-12 && r->win_rate <= r->win_rate_hi + 1e-12);
    assert_true(r->lc_win_rate > 0 && r->lc_win_rate < 1);
    assert_true(r->accuracy >= 0 && r->accuracy <= 1);
    assert_true(strncmp(r->judge, "annotate-eval:", 14) == 0);
    bool checked = false, has_kl = false;
    for (size_t i = 0; i < r->n_metrics; i++) {
        if (!strcmp(r->metrics[i]->name, "checked"))
            checked = r->metrics[i]->value == NEVAL;
        if (!strcmp(r->metrics[i]->name, "has_kl"))
            has_kl = r->metrics[i]->value == 1;
    }
    assert_true(checked);
    /* the reference scored the policy's answers: two random models differ on them */
    assert_true(has_kl);
    assert_true(isfinite(r->kl) && r->kl != 0 && r->kl_se > 0);
    print_message("v%u: win rate %.3f [%.3f, %.3f] (%u-%u-%u), LC %.3f, accuracy %.3f, length "
                  "%.1f (baseline %.1f), KL %.3f (se %.3f), judge %s\n",
                  v, r->win_rate, r->win_rate_lo, r->win_rate_hi, r->wins, r->ties, r->losses,
                  r->lc_win_rate, r->accuracy, r->mean_length, r->baseline_mean_length, r->kl,
                  r->kl_se, r->judge);
}

/* Submits an EvaluateRequest and waits for its reply (the envelope; free it). */
static Oaif__V1__Envelope *evaluate(struct fx *f, const char *id, unsigned version,
                                    unsigned baseline)
{
    Oaif__V1__EvaluateRequest rq = OAIF__V1__EVALUATE_REQUEST__INIT;
    rq.version = version;
    rq.baseline_version = baseline;
    rq.run = "test";
    uint8_t buf[64];
    size_t n = oaif__v1__evaluate_request__pack(&rq, buf);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(f->c, "evaluate", id, buf, n, 60000, &env), ERR_OK);
    return env;
}

/* A SampleRequest of prompts ps[0..n) to version v (pinned), scoring `score` when not NULL; the
 * reply's envelope (free it). */
static Oaif__V1__Envelope *sample(struct fx *f, const char *id, uint32_t v, Oaif__V1__Prompt **ps,
                                  size_t n, Oaif__V1__Response **score)
{
    Oaif__V1__SamplingParams sp = OAIF__V1__SAMPLING_PARAMS__INIT;
    sp.max_new_tokens = 12;
    sp.seed = 3;
    sp.n = 1;
    Oaif__V1__SampleRequest rq = OAIF__V1__SAMPLE_REQUEST__INIT;
    rq.prompts = ps;
    rq.n_prompts = n;
    rq.sampling = &sp;
    rq.policy_version = v;
    rq.pin_version = true;
    rq.score = score;
    rq.n_score = score ? n : 0;
    size_t len = oaif__v1__sample_request__get_packed_size(&rq);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    oaif__v1__sample_request__pack(&rq, buf);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(f->c, "sample", id, buf, len, 60000, &env), ERR_OK);
    free(buf);
    return env;
}

static Oaif__V1__SampleReply *sample_ok(Oaif__V1__Envelope *env)
{
    if (env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK)
        fail_msg("sample failed: %s", env->reply->error);
    Oaif__V1__SampleReply *r =
        oaif__v1__sample_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    assert_non_null(r);
    return r;
}

/* The sampler's scoring mode, which the evaluator's KL rests on: the log-prob of a version's own
 * sampled answer scored again under that version is the one sampling reported; under another
 * version it differs; a token outside the vocabulary is refused permanently, naming it. */
static void check_scoring(struct fx *f)
{
    Oaif__V1__Prompt p1 = OAIF__V1__PROMPT__INIT, p2 = OAIF__V1__PROMPT__INIT;
    p1.id = "s1";
    p1.text = "What is 12 + 30?";
    p2.id = "s2";
    p2.text = "Reverse the word: planet";
    Oaif__V1__Prompt *ps[2] = {&p1, &p2};
    Oaif__V1__Envelope *e1 = sample(f, "score-sampled", 2, ps, 2, NULL);
    Oaif__V1__SampleReply *r1 = sample_ok(e1);
    Oaif__V1__Response *given[2] = {r1->pairs[0]->responses[0], r1->pairs[1]->responses[0]};
    Oaif__V1__Envelope *e2 = sample(f, "score-self", 2, ps, 2, given);
    Oaif__V1__SampleReply *r2 = sample_ok(e2);
    Oaif__V1__Envelope *e3 = sample(f, "score-ref", 0, ps, 2, given);
    Oaif__V1__SampleReply *r3 = sample_ok(e3);
    for (int i = 0; i < 2; i++) {
        const Oaif__V1__Response *a = given[i], *b = r2->pairs[i]->responses[0];
        const Oaif__V1__Response *c = r3->pairs[i]->responses[0];
        print_message("answer %d (%u tokens): log pi %.5f, scored again %.5f, log pi_ref %.5f\n", i,
                      a->num_tokens, a->logprob, b->logprob, c->logprob);
        assert_int_equal(b->n_token_ids, a->n_token_ids);
        assert_true(fabs(b->logprob - a->logprob) < 1e-3 * (1 + fabs(a->logprob)));
        assert_string_equal(b->text, a->text);
        if (a->n_token_ids)
            assert_true(fabs(c->logprob - a->logprob) > 1e-3);
    }
    int32_t bad_ids[1] = {100000};
    Oaif__V1__Response bad = OAIF__V1__RESPONSE__INIT;
    bad.token_ids = bad_ids;
    bad.n_token_ids = 1;
    Oaif__V1__Response *badp[1] = {&bad};
    Oaif__V1__Envelope *e4 = sample(f, "score-bad", 2, ps, 1, badp);
    assert_int_equal(e4->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_non_null(strstr(e4->reply->error, "score[0].token_ids[0]: 100000 is out of range"));
    assert_int_equal(e4->reply->attempts, 1);
    oaif__v1__sample_reply__free_unpacked(r1, NULL);
    oaif__v1__sample_reply__free_unpacked(r2, NULL);
    oaif__v1__sample_reply__free_unpacked(r3, NULL);
    oaif__v1__envelope__free_unpacked(e1, NULL);
    oaif__v1__envelope__free_unpacked(e2, NULL);
    oaif__v1__envelope__free_unpacked(e3, NULL);
    oaif__v1__envelope__free_unpacked(e4, NULL);
}

static void test_evaluator_survives_sigkill_and_judges_nothing_twice(void **state)
{
    struct fx *f = *state;
    put_prompts(f);
    for (uint32_t v = 0; v <= 4; v++)
        publish(f, v);
    f->sampler =
        start(f, "services/sampler/sampler",
              (const char *const[]){"--checkpoint-dir", f->store, "--threads", "1", NULL}, true);
    assert_true(tp_wait_workers(f->c, "sample", 1, 15000));
    start_judge(f, &f->judge_train, "annotate");
    start_evaluator(f, true);

    /* No evaluation judge yet: v2's judgements wait in the ledger. Then the evaluator dies. */
    unsigned w;
    uint64_t queued = 0, done = 0;
    for (int i = 0; i < 3000 && queued < NEVAL; i++) {
        tp_service_status(f->c, "annotate-eval", &w, &queued, &done);
        usleep(20000);
    }
    assert_int_equal(queued, NEVAL);
    tp_stop(f->evaluator, SIGKILL);
    f->evaluator = 0;
    assert_int_equal(eval_count(f), 0);

    start_judge(f, &f->judge_eval, "annotate-eval");
    for (int i = 0; i < 3000 && done < NEVAL; i++) {
        tp_service_status(f->c, "annotate-eval", &w, &queued, &done);
        usleep(20000);
    }
    assert_int_equal(done, NEVAL); /* judged by the judge, for no one (the asker is gone) */
    start_evaluator(f, false);
    Oaif__V1__EvalResult *r2 = wait_result(f, 2), *r4 = wait_result(f, 4);
    check_result(r2, 2);
    check_result(r4, 4);
    assert_null(eval_result(f, 1));
    assert_null(eval_result(f, 3));
    tp_service_status(f->c, "annotate-eval", &w, &queued, &done);
    assert_int_equal(done, 2 * NEVAL); /* each prompt once per version, the kill notwithstanding */
    tp_service_status(f->c, "annotate", &w, &queued, &done);
    assert_int_equal(done, 0); /* the training judge was never asked */
    tp_service_status(f->c, "sample", &w, &queued, &done);
    /* v2's and v4's answers (3 batches each) and the reference's scoring of them (3 each), and
     * the baseline's answers once */
    assert_int_equal(done, 3 + 3 + 3 + 3 + 3);

    /* Through the ledger: v2 again is the stored result; v3 is evaluated now. */
    Oaif__V1__Envelope *env = evaluate(f, "ask-v2", 2, 0);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_OK);
    Oaif__V1__EvaluateReply *rep =
        oaif__v1__evaluate_reply__unpack(NULL, env->reply->payload.len, env->reply->payload.data);
    assert_non_null(rep);
    assert_true(rep->result->win_rate == r2->win_rate && rep->result->version == 2);
    oaif__v1__evaluate_reply__free_unpacked(rep, NULL);
    oaif__v1__envelope__free_unpacked(env, NULL);
    env = evaluate(f, "ask-v3", 3, 0);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_OK);
    oaif__v1__envelope__free_unpacked(env, NULL);
    Oaif__V1__EvalResult *r3 = eval_result(f, 3);
    assert_non_null(r3);
    check_result(r3, 3);
    tp_service_status(f->c, "sample", &w, &queued, &done);
    assert_int_equal(done, 15 + 3 + 3); /* v3's answers and their scoring; not the baseline's */
    env = evaluate(f, "ask-other-baseline", 3, 1);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_FAILED);
    assert_non_null(strstr(env->reply->error, "baseline_version"));
    assert_int_equal(env->reply->attempts, 1); /* permanent: not retried */
    oaif__v1__envelope__free_unpacked(env, NULL);
    oaif__v1__eval_result__free_unpacked(r2, NULL);
    oaif__v1__eval_result__free_unpacked(r3, NULL);
    oaif__v1__eval_result__free_unpacked(r4, NULL);

    check_scoring(f);
    int st = tp_stop(f->evaluator, SIGTERM);
    f->evaluator = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* NPAIRS labeled pairs of run "test" (a right and a wrong answer; the label picks the right one
 * but for every 5th pair) in one put. */
#define NPAIRS 48
static void put_labeled_pairs(struct fx *f)
{
    static const char *const good[] = {"42", "7", "yes", "blue", "100", "no"};
    static const char *const bad[] = {"I do not know", "maybe later", "x",
                                      "hmm, 12 or so", "?",           "the answer is unclear"};
    static char ids[NPAIRS][32], pr[NPAIRS][64];
    Oaif__V1__Record rec[2 * NPAIRS], *rp[2 * NPAIRS];
    uint8_t *bufs[2 * NPAIRS];
    size_t n = 0;
    for (int i = 0; i < NPAIRS; i++) {
        snprintf(ids[i], sizeof ids[i], "test-pair-%03d", i);
        snprintf(pr[i], sizeof pr[i], "Question %d: what is it?", i);
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        r0.text = (char *)good[i % 6];
        r1.text = (char *)bad[(i / 6) % 6];
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        p.id = ids[i];
        p.prompt = pr[i];
        p.responses = rs;
        p.n_responses = 2;
        p.run = "test";
        p.policy_version = 1;
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids[i], &p.base);
        rp[n] = &rec[n];
        n++;
        bool first = i % 5 != 0;
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = ids[i];
        l.pair_id = ids[i];
        l.winner = first ? OAIF__V1__WINNER__WINNER_FIRST : OAIF__V1__WINNER__WINNER_SECOND;
        l.prob_first = first ? 1.0 : 0.0;
        l.judge = "rules:test";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, ids[i], &l.base);
        rp[n] = &rec[n];
        n++;
    }
    assert_int_equal(bus_client_put(f->c, "test-labeled-pairs", rp, n, true, 10000), ERR_OK);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
}

/* The number after "KEY": in a JSON text (the first one), or NAN. */
static double json_num(const char *text, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(text, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

static void test_rm_accuracy_through_oaif_eval_version(void **state)
{
    struct fx *f = *state;
    static char out[1 << 16];
    char args[1200], rmdir_[300], sft[400];
    snprintf(rmdir_, sizeof rmdir_, "%.200s/rm", f->dir);
    assert_int_equal(mkdir(rmdir_, 0755), 0);
    assert_int_equal(
        ckpt_dir(sft, sizeof sft, f->store, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT, 0),
        ERR_OK);
    setenv("BUS_CLIENTS_ENDPOINT", f->cep, 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    put_labeled_pairs(f);
    for (int m = 0; m < 2; m++) {
        snprintf(args, sizeof args,
                 "rm train --run test --init %s --checkpoints %s --batch 8 --epochs 1 --lr 3e-3 "
                 "--warmup 2 --holdout 0.25 --ensemble e --member %d --seed %d",
                 sft, rmdir_, m, m + 3);
        int rc = rmfx_oaif(out, sizeof out, args);
        if (rc != 0)
            fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    }
    /* what `oaif rm eval` says of the ensemble's mean on the held-out pairs */
    snprintf(args, sizeof args,
             "rm eval --run test --ensemble e --checkpoints %s --holdout 0.25 --split heldout "
             "--json",
             rmdir_);
    int rc = rmfx_oaif_stdout(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    const char *mean = strstr(out, "\"model\":\"e/mean\"");
    assert_non_null(mean);
    double want_acc = json_num(mean, "accuracy"), want_pairs = json_num(mean, "pairs");
    print_message("oaif rm eval: ensemble mean accuracy %.4f on %.0f held-out pairs\n", want_acc,
                  want_pairs);
    assert_true(want_pairs >= 4);

    f->scorer = start(f, "services/reward-scorer/reward-scorer",
                      (const char *const[]){"--ensemble", "e", "--checkpoint-dir", rmdir_,
                                            "--threads", "1", NULL},
                      true);
    assert_true(tp_wait_workers(f->c, "score", 1, 15000));
    if (f->evaluator > 0)
        tp_stop(f->evaluator, SIGTERM);
    start_evaluator_with(f, true, "e");

    rc = rmfx_oaif_stdout(out, sizeof out, "eval --version 1 --run test --json --wait 60s");
    if (rc != 0)
        fail_msg("oaif eval --version 1: exit %d:\n%s", rc, out);
    print_message("oaif eval --version 1 --json: %.300s\n", out);
    Oaif__V1__EvalResult *r1 = eval_result(f, 1);
    assert_non_null(r1);
    check_result(r1, 1);
    bool has_rm = false;
    double rm_pairs = 0;
    for (size_t i = 0; i < r1->n_metrics; i++) {
        if (!strcmp(r1->metrics[i]->name, "has_rm_accuracy"))
            has_rm = r1->metrics[i]->value == 1;
        if (!strcmp(r1->metrics[i]->name, "rm_pairs"))
            rm_pairs = r1->metrics[i]->value;
    }
    assert_true(has_rm);
    assert_true(rm_pairs == want_pairs);
    /* rm eval prints 4 decimals */
    assert_true(fabs(r1->rm_accuracy - want_acc) < 6e-5);
    /* what was printed is the record */
    assert_true(json_num(out, "rm_accuracy") == r1->rm_accuracy);
    assert_true(json_num(out, "win_rate") == r1->win_rate || r1->win_rate == 0);
    assert_int_equal((int)json_num(out, "version"), 1);
    oaif__v1__eval_result__free_unpacked(r1, NULL);

    /* v2 was evaluated before the ensemble: answered from its record, no reward-model line */
    Oaif__V1__EvalResult *r2 = eval_result(f, 2);
    assert_non_null(r2);
    assert_int_equal(rmfx_oaif_stdout(out, sizeof out, "eval --version 2 --run test"), 0);
    char want[128];
    snprintf(want, sizeof want, "win rate     %.4f  95%% [%.4f, %.4f]", r2->win_rate,
             r2->win_rate_lo, r2->win_rate_hi);
    if (!strstr(out, want))
        fail_msg("'%s' not in:\n%s", want, out);
    assert_null(strstr(out, "RM accuracy"));
    oaif__v1__eval_result__free_unpacked(r2, NULL);

    /* refused by the evaluator: exit 1 with its reason */
    rc = rmfx_oaif(out, sizeof out, "eval --version 3 --run test --baseline 1 --wait 30s");
    assert_int_equal(rc, 1);
    if (!strstr(out, "baseline_version: this evaluator compares with version 0"))
        fail_msg("no reason in:\n%s", out);
    int st = tp_stop(f->evaluator, SIGTERM);
    f->evaluator = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int setup(void **state)
{
    struct fx *f = &F;
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-evaluator-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->store, sizeof f->store, "%.200s/ckpt", f->dir);
    assert_int_equal(mkdir(f->store, 0755), 0);
    snprintf(f->log, sizeof f->log, "%.200s/services.log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%.200s/endpoints", f->dir);
    tp_watchdog(290, "evaluator_procs", f->log);
    start_ledger(f);
    f->zctx = zmq_ctx_new();
    struct bus_client_opts o = {.endpoint = f->cep};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    pid_t *ps[] = {&f->evaluator,   &f->scorer,  &f->judge_eval,
                   &f->judge_train, &f->sampler, &f->ledger};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (*ps[i] > 0)
            tp_stop(*ps[i], SIGTERM);
    bus_client_destroy(&f->c);
    zmq_ctx_term(f->zctx);
    if (!getenv("OAIF_KEEP_LOGS")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "left %s\n", f->dir);
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    tp_watchdog(0, NULL, NULL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evaluator_survives_sigkill_and_judges_nothing_twice),
        cmocka_unit_test(test_rm_accuracy_through_oaif_eval_version),
    };
    return cmocka_run_group_tests_name("evaluator_procs", tests, setup, teardown);
}
