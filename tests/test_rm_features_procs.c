/* test_rm_features_procs - `oaif rm features` as a real process against a real ledger process: a
 * tiny member of ensemble "e" is trained with `oaif rm train` on a toy set whose labels come from
 * a rules judge (some with noise_flipped set); the CSV the verb writes has one row per held-out
 * text, chosen then rejected, pairs by id, with the noise flags the labels carry; its rewards are
 * the member's (the reward scorer's load and forward), the features it projects are what the
 * reward head reads (score.weight . feature = reward), and pc1, pc2 are those of nn_pca_fit on
 * the features the test collects itself; two runs give the same bytes (file and stdout); --split
 * all and --limit select; a set without noise information leaves the columns empty; bad flags,
 * a missing member and too few pairs are named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busclient.h"
#include "checkpoint.h"
#include "err.h"
#include "model.h"
#include "pca.h"
#include "reward_scorer.h"
#include "rm_data.h"
#include "rmfixture.h"
#include "trainer_opts.h"

#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 280
#endif

#define NPAIRS  48 /* pairs of dataset "toy" */
#define HOLDOUT "0.4"

static bool is_noisy(int i)
{
    return i % 5 == 2;
}

/* "toy": the good word wins; the rules judge's label names it except on noisy pairs
 * (noise_flipped). "plain": 6 pairs labeled by an importer that says nothing of noise. */
static void put_pairs(struct rmfx *f)
{
    static const char *good[] = {"yes", "sure", "right", "true", "correct", "indeed"};
    static const char *bad[] = {"no", "wrong", "false", "never", "nope", "bad"};
    static char ids[NPAIRS + 6][32], prompts[NPAIRS][64];
    Oaif__V1__Record rec[2 * (NPAIRS + 6)];
    uint8_t *bufs[2 * (NPAIRS + 6)];
    size_t n = 0;
    uint64_t s = 5;
    for (int i = 0; i < NPAIRS + 6; i++) {
        bool toy = i < NPAIRS;
        snprintf(ids[i], sizeof ids[i], toy ? "imp-toy-%04d" : "imp-plain-%04d", i);
        if (toy)
            snprintf(prompts[i], sizeof prompts[i], "q%d: is %c?", i,
                     'a' + (int)(nn_rng_next(&s) % 26));
        bool good_first = i % 2 == 0;
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        r0.text = (char *)(good_first ? good : bad)[nn_rng_next(&s) % 6];
        r1.text = (char *)(good_first ? bad : good)[nn_rng_next(&s) % 6];
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
        p.id = ids[i];
        p.prompt = toy ? prompts[i] : "is it?";
        p.n_responses = 2;
        p.responses = rs;
        p.run = toy ? "toy" : "plain";
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, ids[i], &p.base);
        n++;
        bool first = good_first != (toy && is_noisy(i));
        Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
        l.id = ids[i];
        l.pair_id = ids[i];
        l.winner = first ? OAIF__V1__WINNER__WINNER_FIRST : OAIF__V1__WINNER__WINNER_SECOND;
        l.prob_first = first ? 1.0 : 0.0;
        l.judge = toy ? "rules:test" : "import:test";
        l.noise_flipped = toy && is_noisy(i);
        rmfx_pack(&rec[n], &bufs[n], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, ids[i], &l.base);
        n++;
    }
    rmfx_put(f, "test-features-pairs", rec, bufs, n);
}

static int setup(void **state)
{
    struct rmfx *f = rmfx_open("rm-features", TEST_WATCHDOG_S);
    if (!f)
        return -1;
    put_pairs(f);
    static char out[1 << 15];
    char args[1500];
    snprintf(args, sizeof args,
             "rm train --dataset toy --init %s --checkpoints %s --batch 8 --epochs 2 --lr 3e-3 "
             "--warmup 5 --holdout " HOLDOUT " --ensemble e --member 0 --seed 3",
             f->init, f->ckpt);
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0) {
        fprintf(stderr, "oaif %s: exit %d:\n%s", args, rc, out);
        rmfx_close(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    return rmfx_close(*state);
}

/* One row of the CSV. */
struct row {
    char id[64], side[16], label_correct[8], noise_flipped[8];
    double reward, pc1, pc2;
};

/* Parses the CSV in text (header checked) into rows; returns how many. */
static size_t parse_csv(char *text, struct row *rows, size_t cap)
{
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "pair_id,side,label_correct,noise_flipped,reward,pc1,pc2");
    size_t n = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        assert_true(n < cap);
        struct row *r = &rows[n++];
        char *f[7] = {0};
        int k = 0;
        for (char *p = line; k < 7; k++) { /* empty fields are fields: no strtok here */
            f[k] = p;
            char *c = strchr(p, ',');
            if (!c) {
                k++;
                break;
            }
            *c = '\0';
            p = c + 1;
        }
        if (k != 7)
            fail_msg("row %zu: %d fields, want 7", n, k);
        snprintf(r->id, sizeof r->id, "%s", f[0]);
        snprintf(r->side, sizeof r->side, "%s", f[1]);
        snprintf(r->label_correct, sizeof r->label_correct, "%s", f[2]);
        snprintf(r->noise_flipped, sizeof r->noise_flipped, "%s", f[3]);
        r->reward = atof(f[4]);
        r->pc1 = atof(f[5]);
        r->pc2 = atof(f[6]);
    }
    return n;
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strdup(buf);
}

/* The member as the test loads it itself: the scorer with features, and the engine's model for
 * its score head. */
struct member {
    reward_scorer_t *s;
    nn_model_t *m;
};

static void load_member(struct rmfx *f, struct member *mb, bus_client_t *c)
{
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
    char err[1024];
    assert_int_equal(reward_scorer_new(&mb->s, &sc, err, sizeof err), ERR_OK);
    struct reward_member_ref ref;
    assert_int_equal(reward_scorer_plan(mb->s, cks, nck, &ref, 1), 1);
    assert_int_equal(reward_scorer_load(mb->s, &ref, err, sizeof err), ERR_OK);
    reward_scorer_keep_features(mb->s, true);
    assert_int_equal(nn_checkpoint_load(&mb->m, ref.dir, err, sizeof err), ERR_OK);
    for (size_t i = 0; i < nck; i++)
        oaif__v1__checkpoint__free_unpacked(cks[i], NULL);
    free(cks);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

static void assert_close(double got, double want, const char *what, const char *id)
{
    if (fabs(got - want) > 2e-5 * fabs(want) + 2e-5)
        fail_msg("%s of %s: %.9g, want %.9g", what, id, got, want);
}

/* The verb's rows against the member's rewards and features of the same pairs. */
static void check_rows(struct rmfx *f, const struct row *rows, size_t nrows, bool all, int limit)
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
    struct member mb = {0};
    load_member(f, &mb, c);
    const struct nn_tensor *w = nn_model_find_tensor(mb.m, "score.weight");
    assert_non_null(w);
    size_t C = (size_t)w->shape[1];
    float *x = malloc(2 * d.n * C * sizeof *x);
    double *r = malloc(2 * d.n * sizeof *r);
    assert_true(x && r);
    size_t n = 0;
    for (size_t i = 0; i < d.n && (limit <= 0 || n < 2 * (size_t)limit); i++) {
        if (!all && !d.pairs[i].heldout)
            continue;
        char *texts[2] = {d.pairs[i].chosen, d.pairs[i].rejected};
        Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
        req.prompt = d.pairs[i].prompt;
        req.n_texts = 2;
        req.texts = texts;
        struct reward_scorer_result *res = NULL;
        assert_int_equal(reward_scorer_run(mb.s, &req, &res, err, sizeof err), ERR_OK);
        assert_int_equal(res->feature_dims[0], C);
        for (int t = 0; t < 2; t++, n++) {
            const float *h = res->features[0] + t * C;
            double dot = 0;
            for (size_t k = 0; k < C; k++)
                dot += (double)h[k] * w->data[k];
            /* the feature is what the reward head reads */
            assert_close(dot, res->scores[t], "score.weight . feature", d.pairs[i].id);
            memcpy(x + n * C, h, C * sizeof *x);
            r[n] = res->scores[t];
            assert_true(n < nrows);
            const struct row *row = &rows[n];
            assert_string_equal(row->id, d.pairs[i].id);
            assert_string_equal(row->side, t ? "rejected" : "chosen");
            bool noisy = is_noisy(atoi(d.pairs[i].id + strlen("imp-toy-")));
            assert_string_equal(row->noise_flipped, noisy ? "1" : "0");
            assert_string_equal(row->label_correct, noisy ? "0" : "1");
            assert_close(row->reward, r[n], "reward", row->id);
        }
        reward_scorer_result_free(&res);
    }
    assert_int_equal(n, nrows);
    struct nn_pca p;
    assert_int_equal(nn_pca_fit(&p, x, n, C, 2, err, sizeof err), ERR_OK);
    for (size_t t = 0; t < n; t++) {
        assert_close(rows[t].pc1, p.scores[2 * t], "pc1", rows[t].id);
        assert_close(rows[t].pc2, p.scores[2 * t + 1], "pc2", rows[t].id);
    }
    nn_pca_free(&p);
    free(x);
    free(r);
    nn_model_destroy(&mb.m);
    reward_scorer_destroy(&mb.s);
    trainer_rm_data_free(&d);
    trainer_rm_release(&ro);
    bus_client_destroy(&c);
}

/* Runs oaif ARGS; out: its stdout alone, or with stderr after 2>&1 at the end of args. */
static void run_ok(char *out, size_t len, const char *args)
{
    int rc = rmfx_oaif_stdout(out, len, args);
    if (rc != 0)
        fail_msg("oaif %s: exit %d:\n%s", args, rc, out);
}

static void test_csv_matches_the_members_features(void **state)
{
    struct rmfx *f = *state;
    static char out[1 << 16];
    static struct row rows[2 * NPAIRS];
    char args[1500], csv[400];
    snprintf(csv, sizeof csv, "%s/features.csv", f->dir);
    snprintf(args, sizeof args,
             "rm features --ensemble e --dataset toy --holdout " HOLDOUT
             " --checkpoints %s --out %s 2>&1",
             f->ckpt, csv);
    run_ok(out, sizeof out, args);
    fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "e/m0@v1"));
    assert_non_null(strstr(out, "pc1 explains"));
    char *text = read_file(csv), *copy = strdup(text);
    size_t n = parse_csv(copy, rows, 2 * NPAIRS);
    assert_true(n >= 4 && n < 2 * NPAIRS); /* the held-out pairs alone */
    check_rows(f, rows, n, false, 0);
    free(copy);

    /* a second run, to stdout: the same bytes (the summary goes to stderr) */
    snprintf(args, sizeof args,
             "rm features --ensemble e --member 0 --dataset toy --holdout " HOLDOUT
             " --checkpoints %s",
             f->ckpt);
    run_ok(out, sizeof out, args);
    assert_string_equal(out, text);
    free(text);

    /* every pair, the first 7 by id */
    snprintf(args, sizeof args,
             "rm features --ensemble e --dataset toy --holdout " HOLDOUT
             " --split all --limit 7 --checkpoints %s --out %s",
             f->ckpt, csv);
    run_ok(out, sizeof out, args);
    text = read_file(csv);
    assert_int_equal(parse_csv(text, rows, 2 * NPAIRS), 14);
    assert_string_equal(rows[0].id, "imp-toy-0000");
    assert_string_equal(rows[13].id, "imp-toy-0006");
    check_rows(f, rows, 14, true, 7);
    free(text);
}

static void test_a_set_without_noise_information(void **state)
{
    struct rmfx *f = *state;
    static char out[1 << 16];
    static struct row rows[16];
    char args[1500];
    snprintf(args, sizeof args,
             "rm features --ensemble e --dataset plain --split all --checkpoints %s", f->ckpt);
    run_ok(out, sizeof out, args);
    assert_int_equal(parse_csv(out, rows, 16), 12);
    for (int i = 0; i < 12; i++) {
        assert_string_equal(rows[i].label_correct, "");
        assert_string_equal(rows[i].noise_flipped, "");
        assert_true(isfinite(rows[i].pc1) && isfinite(rows[i].pc2));
    }
}

static void expect_exit(const char *args, int want_rc, const char *want)
{
    static char out[1 << 14];
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != want_rc || !strstr(out, want))
        fail_msg("oaif %s: exit %d, expected %d and '%s' in:\n%s", args, rc, want_rc, want, out);
}

static void test_bad_flags_and_missing_things_are_named(void **state)
{
    struct rmfx *f = *state;
    char args[1500];
    expect_exit("rm features --dataset toy --split sideways", 2, "--split");
    expect_exit("rm features --dataset toy --limit -1", 2, "--limit");
    expect_exit("rm features --dataset toy --member -1", 2, "--member");
    expect_exit("rm features --dataset toy --json", 2, "--json");
    expect_exit("rm features --dataset toy --run r", 2, "--dataset");
    expect_exit("rm features --help", 0, "--out");
    expect_exit("rm --help", 0, "oaif rm features");
    snprintf(args, sizeof args,
             "rm features --ensemble e --member 3 --dataset toy --checkpoints %s", f->ckpt);
    expect_exit(args, 1, "no reward checkpoint");
    snprintf(args, sizeof args,
             "rm features --ensemble e --dataset toy --split all --limit 1 --checkpoints %s",
             f->ckpt);
    expect_exit(args, 1, "at least 2");
    snprintf(args, sizeof args,
             "rm features --ensemble e --dataset toy --checkpoints %s --out %s/no/such/dir/x.csv",
             f->ckpt, f->dir);
    expect_exit(args, 1, "--out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_matches_the_members_features),
        cmocka_unit_test(test_a_set_without_noise_information),
        cmocka_unit_test(test_bad_flags_and_missing_things_are_named),
    };
    return cmocka_run_group_tests_name("rm_features_procs", tests, setup, teardown);
}
