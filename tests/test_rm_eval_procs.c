/* test_rm_eval_procs - `oaif rm eval` as a real process against a real ledger process: two tiny
 * members of ensemble "e" are trained with `oaif rm train` on a separable toy set whose labels
 * come from a rules judge (some with noise_flipped set: the stored winner is the wrong one) and,
 * for some pairs, from a second judge that agrees on some and not on others; the accuracies the
 * verb prints (--json) equal those the test computes from the members' rewards (the reward
 * scorer's load and forward); the noise-free accuracy differs from the stored one as the flips
 * say; bad flags are named. `oaif strength annotate` on the same members: mu, sigma, the AUC of -mu
 * for the noise-flipped labels, the groups, the flip file, the Strength records and the Part II
 * file equal what the test computes from the members' rewards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busclient.h"
#include "checkpoint.h"
#include "err.h"
#include "model.h"
#include "reward_scorer.h"
#include "rm_data.h"
#include "rmfixture.h"
#include "trainer_opts.h"

#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 280
#endif

#define NPAIRS  80 /* pairs of dataset "toy" */
#define HOLDOUT "0.4"

/* Which pairs the noise flipped, which a second judge labeled, and whether it agreed. */
static bool is_noisy(int i)
{
    return i % 5 == 2;
}
static bool has_second(int i)
{
    return i % 3 == 0;
}
static bool second_agrees(int i)
{
    return i % 6 == 0;
}

/* "toy": the good word is the true winner; the rules judge's label names it except on noisy
 * pairs (noise_flipped, the other winner). A second judge ("other") labels some pairs first (so
 * the rules judge's label is the latest, the stored one), agreeing with the stored winner on
 * some. */
static void put_pairs(struct rmfx *f)
{
    static const char *good[] = {"yes", "sure", "right", "true", "correct", "indeed"};
    static const char *bad[] = {"no", "wrong", "false", "never", "nope", "bad"};
    static char ids[NPAIRS][32], lids[NPAIRS][32], prompts[NPAIRS][64];
    Oaif__V1__Record rec[2 * NPAIRS];
    uint8_t *bufs[2 * NPAIRS];
    size_t n = 0;
    uint64_t s = 31;
    for (int i = 0; i < NPAIRS; i++) { /* the second judge's labels, committed first */
        snprintf(ids[i], sizeof ids[i], "imp-toy-%04d", i);
        snprintf(lids[i], sizeof lids[i], "other-%04d", i);
        if (!has_second(i))
            continue;
        bool stored_first = (i % 2 == 0) != is_noisy(i);
        bool first = second_agrees(i) ? stored_first : !stored_first;
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = lids[i];
        l.pair_id = ids[i];
        l.winner = first ? OAIF__V1__WINNER__WINNER_FIRST : OAIF__V1__WINNER__WINNER_SECOND;
        l.prob_first = first ? 1.0 : 0.0;
        l.judge = "other";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, lids[i], &l.base);
        n++;
    }
    rmfx_put(f, "test-toy-second", rec, bufs, n);
    n = 0;
    for (int i = 0; i < NPAIRS; i++) {
        char c[16], r[16];
        snprintf(prompts[i], sizeof prompts[i], "q%d: is %c%c?", i,
                 'a' + (int)(nn_rng_next(&s) % 26), 'a' + (int)(nn_rng_next(&s) % 26));
        snprintf(c, sizeof c, "%s", good[nn_rng_next(&s) % 6]);
        snprintf(r, sizeof r, "%s", bad[nn_rng_next(&s) % 6]);
        bool good_first = i % 2 == 0;
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        r0.text = good_first ? c : r;
        r1.text = good_first ? r : c;
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        p.id = ids[i];
        p.prompt = prompts[i];
        p.n_responses = 2;
        p.responses = rs;
        p.run = "toy";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids[i], &p.base);
        n++;
        bool first = good_first != is_noisy(i);
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = ids[i];
        l.pair_id = ids[i];
        l.winner = first ? OAIF__V1__WINNER__WINNER_FIRST : OAIF__V1__WINNER__WINNER_SECOND;
        l.prob_first = first ? 1.0 : 0.0;
        l.judge = "rules:test";
        l.noise_flipped = is_noisy(i);
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, ids[i], &l.base);
        n++;
    }
    rmfx_put(f, "test-toy-pairs", rec, bufs, n);
    /* "plain": labels from one judge that says nothing of noise */
    static char pids[8][32];
    n = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(pids[i], sizeof pids[i], "imp-plain-%04d", i);
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        r0.text = (char *)good[i % 6];
        r1.text = (char *)bad[i % 6];
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        p.id = pids[i];
        p.prompt = "is it?";
        p.n_responses = 2;
        p.responses = rs;
        p.run = "plain";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, pids[i], &p.base);
        n++;
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = pids[i];
        l.pair_id = pids[i];
        l.winner = OAIF__V1__WINNER__WINNER_FIRST;
        l.prob_first = 1.0;
        l.judge = "import:test";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, pids[i], &l.base);
        n++;
    }
    rmfx_put(f, "test-plain-pairs", rec, bufs, n);
}

static int setup(void **state)
{
    struct rmfx *f = rmfx_open("rm-eval", TEST_WATCHDOG_S);
    if (!f)
        return -1;
    put_pairs(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    return rmfx_close(*state);
}

static void train_member(struct rmfx *f, int member)
{
    static char out[1 << 15];
    char args[1500];
    snprintf(args, sizeof args,
             "rm train --dataset toy --init %s --checkpoints %s --batch 8 --epochs 2 --lr 3e-3 "
             "--warmup 5 --holdout " HOLDOUT " --ensemble e --member %d --seed %d",
             f->init, f->ckpt, member, member + 7);
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
}

/* The expected numbers of one row, from rewards (chosen, rejected) of the held-out pairs. */
struct expect {
    size_t n, correct, nf_correct, ag_n, ag_correct;
    double sum, sumsq;
};

static void expect_add(struct expect *e, int i, double d)
{
    e->n++;
    e->correct += d > 0;
    e->nf_correct += is_noisy(i) ? d < 0 : d > 0;
    if (has_second(i) && second_agrees(i)) {
        e->ag_n++;
        e->ag_correct += d > 0;
    }
    e->sum += d;
    e->sumsq += d * d;
}

static int pair_number(const char *id)
{
    return atoi(id + strlen("imp-toy-"));
}

/* Scores pairs of "toy" (the held-out ones, or all) with the newest members of "e" (the scorer's
 * load, sha256 checked, and forward), calling fn with each pair's number, id and its members'
 * rewards (chosen, rejected; [2 * nm]). Returns nm. */
static size_t score_pairs(struct rmfx *f, bool heldout_only,
                          void (*fn)(void *ctx, int k, const char *id, const double *r, size_t nm),
                          void *ctx)
{
    struct bus_client_opts bo = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &bo), ERR_OK);
    struct trainer_rm_opts ro;
    assert_int_equal(trainer_rm_defaults(&ro), ERR_OK);
    ro.dataset = strdup("toy");
    ro.holdout = atof(HOLDOUT);
    struct trainer_rm_data d;
    char err[1024];
    assert_int_equal(trainer_rm_data_load(c, &ro, 5000, &d, err, sizeof err), ERR_OK);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_scan(c, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, 0, 1000, 5000, &env),
        ERR_OK);
    size_t nck = env->records ? env->records->n_records : 0;
    Oaif__V1__Checkpoint **cks = calloc(nck + 1, sizeof *cks);
    for (size_t i = 0; i < nck; i++)
        cks[i] = oaif__v1__checkpoint__unpack(NULL, env->records->records[i]->data.len,
                                              env->records->records[i]->data.data);
    struct reward_scorer_config sc = {
        .ensemble = "e", .checkpoint_dir = f->ckpt, .max_texts = 2, .max_tokens = 256};
    reward_scorer_t *s = NULL;
    assert_int_equal(reward_scorer_new(&s, &sc, err, sizeof err), ERR_OK);
    struct reward_member_ref refs[4];
    size_t nm = reward_scorer_plan(s, cks, nck, refs, 4);
    assert_int_equal(nm, 2);
    for (size_t m = 0; m < nm; m++)
        assert_int_equal(reward_scorer_load(s, &refs[m], err, sizeof err), ERR_OK);
    for (size_t i = 0; i < d.n; i++) {
        if (heldout_only && !d.pairs[i].heldout)
            continue;
        char *texts[2] = {d.pairs[i].chosen, d.pairs[i].rejected};
        Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
        req.prompt = d.pairs[i].prompt;
        req.n_texts = 2;
        req.texts = texts;
        struct reward_scorer_result *r = NULL;
        assert_int_equal(reward_scorer_run(s, &req, &r, err, sizeof err), ERR_OK);
        fn(ctx, pair_number(d.pairs[i].id), d.pairs[i].id, r->scores, nm);
        reward_scorer_result_free(&r);
    }
    reward_scorer_destroy(&s);
    for (size_t i = 0; i < nck; i++)
        oaif__v1__checkpoint__free_unpacked(cks[i], NULL);
    free(cks);
    oaif__v1__envelope__free_unpacked(env, NULL);
    trainer_rm_data_free(&d);
    trainer_rm_release(&ro);
    bus_client_destroy(&c);
    return nm;
}

static void expect_pair(void *ctx, int k, const char *id, const double *r, size_t nm)
{
    (void)id;
    struct expect *e = ctx;
    double mc = 0, mr = 0;
    for (size_t m = 0; m < nm; m++) {
        expect_add(&e[m], k, r[2 * m] - r[2 * m + 1]);
        mc += r[2 * m];
        mr += r[2 * m + 1];
    }
    expect_add(&e[nm], k, (mc - mr) / (double)nm);
}

/* The expected rows of `oaif rm eval` on the held-out pairs: e[0..nm) per member, e[nm] the
 * mean. Returns nm. */
static size_t compute(struct rmfx *f, struct expect *e, size_t cap)
{
    assert_true(cap >= 3);
    memset(e, 0, cap * sizeof *e);
    return score_pairs(f, true, expect_pair, e);
}

static void check_row(json_t *row, const struct expect *e)
{
    assert_non_null(row);
    double n = (double)e->n;
    assert_int_equal(json_integer_value(json_object_get(row, "pairs")), e->n);
    assert_true(fabs(json_number_value(json_object_get(row, "accuracy")) - e->correct / n) < 6e-5);
    assert_true(fabs(json_number_value(json_object_get(row, "noise_free_accuracy")) -
                     e->nf_correct / n) < 6e-5);
    assert_int_equal(json_integer_value(json_object_get(row, "agree_pairs")), e->ag_n);
    if (e->ag_n)
        assert_true(fabs(json_number_value(json_object_get(row, "agree_accuracy")) -
                         (double)e->ag_correct / (double)e->ag_n) < 6e-5);
    double mean = e->sum / n;
    assert_true(fabs(json_number_value(json_object_get(row, "mean_diff")) - mean) < 1e-5);
}

static void test_printed_accuracies_match_the_members_rewards(void **state)
{
    struct rmfx *f = *state;
    train_member(f, 0);
    train_member(f, 1);
    struct expect e[3];
    size_t nm = compute(f, e, 3);

    static char out[1 << 15];
    char args[1500];
    snprintf(args, sizeof args,
             "rm eval --ensemble e --dataset toy --holdout " HOLDOUT " --checkpoints %s --json",
             f->ckpt);
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    fprintf(stderr, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    json_t *rows = json_object_get(j, "rows");
    assert_int_equal(json_array_size(rows), nm + 1);
    for (size_t m = 0; m <= nm; m++)
        check_row(json_array_get(rows, m), &e[m]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "model")),
                        "e/m0@v1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, nm), "model")),
                        "e/mean");
    /* the noise flips some held-out stored labels: the noise-free accuracy differs from it */
    assert_true(e[nm].nf_correct != e[nm].correct);
    json_decref(j);

    /* one member, as a table */
    snprintf(args, sizeof args,
             "rm eval --ensemble e --member 1 --dataset toy --holdout " HOLDOUT " --checkpoints %s",
             f->ckpt);
    rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "e/m1@v1"));
    assert_null(strstr(out, "e/m0@"));
    char acc[32];
    snprintf(acc, sizeof acc, " %.4f ", (double)e[1].correct / (double)e[1].n);
    assert_non_null(strstr(out, acc));

    /* a set whose labels say nothing of noise and have one judge each: n/a (JSON null) */
    snprintf(args, sizeof args,
             "rm eval --ensemble e --dataset plain --split all --checkpoints %s --json", f->ckpt);
    rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    rows = json_object_get(j, "rows");
    assert_int_equal(json_array_size(rows), 3);
    json_t *row = json_array_get(rows, 2);
    assert_int_equal(json_integer_value(json_object_get(row, "pairs")), 8);
    assert_true(json_is_null(json_object_get(row, "noise_free_accuracy")));
    assert_true(json_is_null(json_object_get(row, "agree_accuracy")));
    json_decref(j);
    snprintf(args, sizeof args, "rm eval --ensemble e --dataset plain --split all --checkpoints %s",
             f->ckpt);
    assert_int_equal(rmfx_oaif(out, sizeof out, args), 0);
    fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "n/a"));
}

static void expect_usage_error(const char *args, const char *want)
{
    static char out[1 << 14];
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 2 || !strstr(out, want))
        fail_msg("oaif %s: exit %d, expected 2 and '%s' in:\n%s", args, rc, want, out);
}

static void test_bad_flags_are_named(void **state)
{
    (void)state;
    expect_usage_error("rm eval --dataset toy --split sideways", "--split");
    expect_usage_error("rm eval --dataset toy --no-such-flag 1", "--no-such-flag");
    expect_usage_error("rm eval --dataset toy --member 5000", "--member");
    expect_usage_error("rm eval --dataset toy --run r", "--dataset");
    static char out[1 << 14];
    assert_int_equal(rmfx_oaif(out, sizeof out, "rm eval --help"), 0);
    assert_non_null(strstr(out, "--split"));
}

/* What the test measures of each pair for `oaif strength annotate`. */
struct measure {
    char id[NPAIRS][32];
    double mu[NPAIRS], sigma[NPAIRS];
    bool seen[NPAIRS];
};

static void measure_pair(void *ctx, int k, const char *id, const double *r, size_t nm)
{
    struct measure *ms = ctx;
    double sum = 0, sq = 0;
    for (size_t m = 0; m < nm; m++)
        sum += r[2 * m] - r[2 * m + 1];
    double mu = sum / (double)nm;
    for (size_t m = 0; m < nm; m++)
        sq += (r[2 * m] - r[2 * m + 1] - mu) * (r[2 * m] - r[2 * m + 1] - mu);
    snprintf(ms->id[k], sizeof ms->id[k], "%s", id);
    ms->mu[k] = mu;
    ms->sigma[k] = sqrt(sq / (double)nm);
    ms->seen[k] = true;
}

struct strengths_seen {
    struct measure *ms;
    int n;
};

static void check_strength_record(struct strengths_seen *ss, const Oaif__V1__Record *rec)
{
    Oaif__V1__Strength *st = oaif__v1__strength__unpack(NULL, rec->data.len, rec->data.data);
    assert_non_null(st);
    int k = pair_number(st->pair_id);
    assert_true(k >= 0 && k < NPAIRS && ss->ms->seen[k]);
    assert_true(fabs(st->mean - ss->ms->mu[k]) < 1e-9);
    assert_true(fabs(st->std - ss->ms->sigma[k]) < 1e-9);
    assert_int_equal(st->members, 2);
    assert_string_equal(st->ensemble, "e");
    assert_int_equal(st->action, ss->ms->mu[k] < 0
                                     ? OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP
                                     : OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP);
    ss->n++;
    oaif__v1__strength__free_unpacked(st, NULL);
}

/* `oaif strength annotate`: mu and sigma of every pair over the members, the AUC of -mu for the
 * noise-flipped labels (here counted pair by pair, not from ranks), the share of flipped labels
 * per group, the flip file, the Strength records and the Part II file, which imports back. */
static void test_strength_annotate(void **state)
{
    struct rmfx *f = *state;
    train_member(f, 0);
    train_member(f, 1);
    static struct measure ms;
    memset(&ms, 0, sizeof ms);
    score_pairs(f, false, measure_pair, &ms);
    int n = 0, neg = 0, noisy = 0;
    double wins = 0, npos = 0, nnegc = 0;
    for (int i = 0; i < NPAIRS; i++) {
        if (!ms.seen[i])
            continue;
        n++;
        neg += ms.mu[i] < 0;
        noisy += is_noisy(i);
        if (!is_noisy(i))
            continue;
        npos++;
        for (int j = 0; j < NPAIRS; j++)
            if (ms.seen[j] && !is_noisy(j))
                wins += ms.mu[i] < ms.mu[j] ? 1.0 : ms.mu[i] == ms.mu[j] ? 0.5 : 0.0;
    }
    for (int j = 0; j < NPAIRS; j++)
        nnegc += ms.seen[j] && !is_noisy(j);
    double auc = wins / (npos * nnegc);
    assert_int_equal(n, NPAIRS);

    static char out[1 << 15];
    char args[1500], flips[320], part2[320];
    snprintf(flips, sizeof flips, "%s/flips.txt", f->dir);
    snprintf(part2, sizeof part2, "%s/part2.json", f->dir);
    snprintf(args, sizeof args,
             "strength annotate --ensemble e --dataset toy --holdout " HOLDOUT
             " --checkpoints %s --groups 4 --flip-out %s --out %s --commit --json",
             f->ckpt, flips, part2);
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    fprintf(stderr, "%s", out);
    json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "pairs")), n);
    assert_int_equal(json_integer_value(json_object_get(j, "mu_negative")), neg);
    assert_int_equal(json_integer_value(json_object_get(j, "flipped_by_rule")), neg);
    assert_int_equal(json_integer_value(json_object_get(j, "noise_flipped")), noisy);
    assert_true(fabs(json_number_value(json_object_get(j, "auc")) - auc) < 6e-5);
    /* the groups, by mu: 4 of 20 pairs, means rising, their flipped shares adding up */
    json_t *g = json_object_get(j, "groups");
    assert_int_equal(json_array_size(g), 4);
    double prev = -1e300, flipped = 0;
    for (size_t k = 0; k < 4; k++) {
        json_t *gk = json_array_get(g, k);
        assert_int_equal(json_integer_value(json_object_get(gk, "pairs")), NPAIRS / 4);
        double m = json_number_value(json_object_get(gk, "mean_mu"));
        assert_true(m >= prev);
        prev = m;
        flipped += json_number_value(json_object_get(gk, "noise_flipped")) * (NPAIRS / 4);
    }
    assert_true(fabs(flipped - noisy) < 1e-3);
    json_decref(j);

    /* the flip file: exactly the ids with mu < 0 */
    FILE *fp = fopen(flips, "r");
    assert_non_null(fp);
    char line[128];
    int nl = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = '\0';
        int k = pair_number(line);
        assert_true(ms.seen[k] && ms.mu[k] < 0);
        assert_string_equal(line, ms.id[k]);
        nl++;
    }
    fclose(fp);
    assert_int_equal(nl, neg);

    /* one Strength record a pair, as measured */
    struct bus_client_opts bo = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &bo), ERR_OK);
    struct strengths_seen ss = {.ms = &ms};
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_scan(c, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, 0, 1000, 5000, &env),
        ERR_OK);
    for (size_t i = 0; env->records && i < env->records->n_records; i++)
        check_strength_record(&ss, env->records->records[i]);
    oaif__v1__envelope__free_unpacked(env, NULL);
    bus_client_destroy(&c);
    assert_int_equal(ss.n, n);

    /* the Part II file imports back, with a strength for every pair */
    snprintf(args, sizeof args, "import pairs %s --format part2 --dataset back", part2);
    rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
    char want[64];
    snprintf(want, sizeof want, "imported %d pairs", n);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof want, "%d strengths", n);
    assert_non_null(strstr(out, want));

    /* the table form names the AUC; a bad split is named */
    snprintf(args, sizeof args,
             "strength annotate --ensemble e --dataset toy --holdout " HOLDOUT " --checkpoints %s",
             f->ckpt);
    assert_int_equal(rmfx_oaif(out, sizeof out, args), 0);
    fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "ROC AUC"));
    expect_usage_error("strength annotate --dataset toy --split sideways", "--split");
    expect_usage_error("strength annotate --dataset toy --run r", "--dataset");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_printed_accuracies_match_the_members_rewards, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strength_annotate, setup, teardown),
    };
    return cmocka_run_group_tests_name("rm_eval_procs", tests, NULL, NULL);
}
