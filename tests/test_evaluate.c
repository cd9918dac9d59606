/* test_evaluate - a policy against the SFT model (services/trainer/evaluate.h) and `oaif eval`:
 * the win rate is what the noise-free rules make of the two models' greedy answers (correct
 * beats wrong, so wins minus losses is the difference in correct answers), a model against itself
 * ties everywhere (greedy, and sampled on common random numbers), accuracy is counted per family,
 * a length instruction decides between two right or two wrong answers, and bad input is refused
 * with the problem named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "err.h"
#include "evaluate.h"
#include "sft.h"
#include "testproc.h"
#include "trainer_opts.h"

#define N 70 /* ten eval prompts a family */

struct fx {
    char dir[256];
    char trained[300], other[300];
    nn_model_t *a, *b; /* a short SFT run; a model of another seed, trained less */
    tok_t *tk;
};

static nn_model_t *quick_sft(uint64_t seed, long steps)
{
    struct trainer_sft_opts o;
    if (trainer_sft_quick_defaults(&o))
        fail_msg("trainer_sft_quick_defaults failed");
    o.seed = seed;
    o.steps = steps;
    o.warmup = 10;
    o.eval_n = 0;
    o.no_progress = true;
    nn_model_t *m = NULL;
    struct trainer_sft_result r;
    char err[512] = "";
    int rc = trainer_sft_train(&o, &m, &r, err, sizeof err);
    trainer_sft_release(&o);
    if (rc)
        fail_msg("trainer_sft_train: %s", err);
    return m;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-evaluate-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->a = quick_sft(1, 150);
    f->b = quick_sft(2, 60);
    char err[512];
    snprintf(f->trained, sizeof f->trained, "%s/a", f->dir);
    snprintf(f->other, sizeof f->other, "%s/b", f->dir);
    if (nn_checkpoint_save(f->a, f->trained, err, sizeof err) ||
        nn_checkpoint_save(f->b, f->other, err, sizeof err) ||
        trainer_tokenizer(&f->tk, nn_model_config(f->a), NULL, err, sizeof err)) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nn_model_destroy(&f->a);
    nn_model_destroy(&f->b);
    tok_destroy(&f->tk);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Right answers of one side, summed over the families; *n = the answers counted, `draws` a
 * prompt. */
static int side_total_draws(const struct trainer_side *s, int *n, int draws)
{
    int correct = 0;
    *n = 0;
    for (int k = 0; k < TASK_FAMILY_COUNT; k++) {
        assert_int_equal(s->fam_n[k], draws * N / TASK_FAMILY_COUNT);
        assert_true(s->fam_correct[k] >= 0 && s->fam_correct[k] <= s->fam_n[k]);
        correct += s->fam_correct[k];
        *n += s->fam_n[k];
    }
    return correct;
}

static int side_total(const struct trainer_side *s, int *n)
{
    return side_total_draws(s, n, 1);
}

static void test_model_against_itself_ties(void **state)
{
    struct fx *f = *state;
    struct trainer_comparison c;
    char err[512] = "";
    assert_int_equal(trainer_compare(f->a, f->a, f->tk, TRAINER_TASK_SEED, N, 48, NULL, NULL, NULL,
                                     &c, err, sizeof err),
                     ERR_OK);
    assert_int_equal(c.n, N);
    assert_int_equal(c.ties, N);
    assert_int_equal(c.wins + c.losses, 0);
    assert_true(c.win_rate == 0.5);
    assert_true(c.policy.accuracy == c.sft.accuracy);
    assert_true(c.policy.mean_length == c.sft.mean_length);
    int n = 0;
    assert_int_equal(side_total(&c.policy, &n), (int)(c.policy.accuracy * N + 0.5));
    assert_int_equal(n, N);
}

static void test_wins_are_correct_answers_the_other_lacks(void **state)
{
    struct fx *f = *state;
    struct trainer_comparison c;
    char err[512] = "";
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, NULL, NULL, NULL,
                                     &c, err, sizeof err),
                     ERR_OK);
    int n = 0;
    int pa = side_total(&c.policy, &n), pb = side_total(&c.sft, &n);
    print_message("150 steps against 60: accuracy %.1f%% vs %.1f%%, %d wins %d ties %d losses\n",
                  100 * c.policy.accuracy, 100 * c.sft.accuracy, c.wins, c.ties, c.losses);
    /* the longer run answers more right, and the rules see only correctness here */
    assert_true(pa > pb);
    assert_int_equal(c.wins - c.losses, pa - pb);
    assert_int_equal(c.wins + c.ties + c.losses, N);
    assert_true(c.win_rate > 0.5);
    assert_true(c.win_rate == (c.wins + 0.5 * c.ties) / N);
    /* by question: every row in one, each family's rows in its questions, and the habit's
     * questions and the rest add up to the whole */
    struct trainer_tally sum = {0};
    int fam_rows[TASK_FAMILY_COUNT] = {0};
    for (int q = 0; q < TASK_QUESTION_COUNT; q++) {
        const struct trainer_tally *t = &c.by_question[q];
        assert_int_equal(t->wins + t->ties + t->losses, t->n);
        assert_int_equal(t->wins - t->losses, t->policy_correct - t->sft_correct);
        sum.n += t->n;
        sum.wins += t->wins;
        sum.losses += t->losses;
        sum.policy_correct += t->policy_correct;
        sum.sft_correct += t->sft_correct;
        const char *qn = task_question_name((enum task_question)q);
        for (int k = 0; k < TASK_FAMILY_COUNT; k++)
            if (!strncmp(qn, task_family_name((enum task_family)k),
                         strlen(task_family_name((enum task_family)k))))
                fam_rows[k] += t->n;
    }
    assert_int_equal(sum.n, N);
    assert_int_equal(sum.wins, c.wins);
    assert_int_equal(sum.losses, c.losses);
    assert_int_equal(sum.policy_correct, pa);
    assert_int_equal(sum.sft_correct, pb);
    for (int k = 0; k < TASK_FAMILY_COUNT; k++)
        assert_int_equal(fam_rows[k], c.policy.fam_n[k]);
    struct trainer_tally habit = trainer_tally_habit(&c, true),
                         rest = trainer_tally_habit(&c, false);
    assert_true(habit.n > 0 && rest.n > habit.n);
    assert_int_equal(habit.n + rest.n, N);
    assert_int_equal(habit.wins + rest.wins, c.wins);
    assert_int_equal(habit.ties + rest.ties, c.ties);
    assert_true(trainer_tally_win_rate(&habit) == (habit.wins + 0.5 * habit.ties) / habit.n);

    /* the other way round: the mirror image */
    struct trainer_comparison r;
    assert_int_equal(trainer_compare(f->b, f->a, f->tk, TRAINER_TASK_SEED, N, 48, NULL, NULL, NULL,
                                     &r, err, sizeof err),
                     ERR_OK);
    assert_int_equal(r.wins, c.losses);
    assert_int_equal(r.losses, c.wins);
    assert_true(r.win_rate + c.win_rate > 0.999 && r.win_rate + c.win_rate < 1.001);

    /* "Prefer shorter responses.": two right or two wrong answers of different lengths are
     * decided too, so there are no more ties than without the instruction */
    struct trainer_comparison s;
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, NULL,
                                     "Prefer shorter responses.", NULL, &s, err, sizeof err),
                     ERR_OK);
    assert_true(s.ties <= c.ties);
    assert_int_equal(s.wins + s.ties + s.losses, N);
}

static void test_bad_input_is_named(void **state)
{
    struct fx *f = *state;
    struct trainer_comparison c;
    char err[512] = "";
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, NULL, "be nice",
                                     NULL, &c, err, sizeof err),
                     ERR_INVAL);
    assert_non_null(strstr(err, "be nice"));
    assert_int_not_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, 0, 48, NULL, NULL,
                                         NULL, &c, err, sizeof err),
                         ERR_OK);
    assert_non_null(strstr(err, "n = 0"));
}

/* Sampled answers, several draws a prompt: draw j of one model meets draw j of the other on the
 * same random stream, so a model against itself still ties on every draw; the tallies run over
 * prompts times draws; the same seed gives the same answers and another seed others; and greedy
 * decoding with more than one draw is refused. */
static void test_sampled_draws(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    struct trainer_decode d = {.temperature = 1.0, .top_p = 1.0, .draws = 3, .seed = 7};
    struct trainer_comparison c, g, again, other;
    assert_int_equal(trainer_compare(f->a, f->a, f->tk, TRAINER_TASK_SEED, N, 48, &d, NULL, NULL,
                                     &c, err, sizeof err),
                     ERR_OK);
    assert_int_equal(c.n, N);
    assert_int_equal(c.draws, 3);
    assert_int_equal(c.ties, 3 * N);
    assert_true(c.win_rate == 0.5);
    assert_true(c.policy.accuracy == c.sft.accuracy);
    int n = 0;
    side_total_draws(&c.policy, &n, 3);
    assert_int_equal(n, 3 * N); /* every draw is counted in its family */

    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, &d, NULL, NULL,
                                     &c, err, sizeof err),
                     ERR_OK);
    n = 0;
    int pa = side_total_draws(&c.policy, &n, 3), pb = side_total_draws(&c.sft, &n, 3);
    assert_int_equal(c.wins + c.ties + c.losses, 3 * N);
    assert_int_equal(c.wins - c.losses, pa - pb);
    assert_true(c.win_rate == (c.wins + 0.5 * c.ties) / (3 * N));
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, &d, NULL, NULL,
                                     &again, err, sizeof err),
                     ERR_OK);
    assert_int_equal(again.wins, c.wins);
    assert_int_equal(again.losses, c.losses);
    assert_true(again.policy.mean_length == c.policy.mean_length);
    /* sampling at temperature 1 is not the greedy answer, and another seed draws others */
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, NULL, NULL, NULL,
                                     &g, err, sizeof err),
                     ERR_OK);
    d.seed = 8;
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, &d, NULL, NULL,
                                     &other, err, sizeof err),
                     ERR_OK);
    print_message("greedy %.3f vs sampled %.3f / %.3f (seeds 7, 8); length %.2f vs %.2f / %.2f\n",
                  g.policy.accuracy, c.policy.accuracy, other.policy.accuracy, g.policy.mean_length,
                  c.policy.mean_length, other.policy.mean_length);
    assert_true(g.policy.mean_length != c.policy.mean_length ||
                g.policy.accuracy != c.policy.accuracy);
    assert_true(other.policy.mean_length != c.policy.mean_length ||
                other.policy.accuracy != c.policy.accuracy || other.wins != c.wins);

    struct trainer_decode bad = {.temperature = 0, .top_p = 1, .draws = 2};
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, &bad, NULL, NULL,
                                     &c, err, sizeof err),
                     ERR_INVAL);
    assert_non_null(strstr(err, "2 draws"));
    bad = (struct trainer_decode){.temperature = 1, .top_p = 0, .draws = 1};
    assert_int_equal(trainer_compare(f->a, f->b, f->tk, TRAINER_TASK_SEED, N, 48, &bad, NULL, NULL,
                                     &c, err, sizeof err),
                     ERR_INVAL);
    assert_non_null(strstr(err, "top_p"));
}

/* Run `oaif eval ARGS`, stdout and stderr into out; the exit code. */
static int oaif_eval(char *out, size_t cap, const char *fmt, ...)
{
    char args[1024], cmd[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s eval %s 2>&1", tp_bin("services/oaif/oaif"), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state)
{
    struct fx *f = *state;
    char out[8192];
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s --sft %s --n %d --max-new 48",
                               f->trained, f->trained, N),
                     0);
    assert_non_null(strstr(out, "accuracy by family"));
    assert_non_null(strstr(out, " maxmin "));
    assert_non_null(strstr(out, "50.0% (0 wins, 70 ties, 0 losses)"));
    assert_non_null(strstr(out, "maxmin smallest"));
    assert_non_null(strstr(out, "the SFT habit's"));
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s --sft %s --n %d --max-new 48 --json",
                               f->trained, f->other, N),
                     0);
    assert_non_null(strstr(out, "\"n\":70"));
    assert_non_null(strstr(out, "\"win_rate\":"));
    const char *hj = strstr(out, "\"habit\":{\"n\":"),
               *qj = strstr(out, "\"maxmin smallest\":{\"n\":");
    assert_true(hj && qj && strstr(out, "\"rest\":{\"n\":"));
    int habit_n = atoi(hj + 13), smallest_n = atoi(qj + 23), smallest_lines = 0;
    assert_true(smallest_n > 0 && habit_n > smallest_n);

    /* --samples: a line per prompt, and its outcomes and right answers add up to the summary */
    char path[300], line[4096];
    int wins = -1, ties = -1, losses = -1, pw = 0, pt = 0, pl = 0, lines = 0, pok = 0, sok = 0;
    const char *w = strstr(out, "\"wins\":"), *t = strstr(out, "\"ties\":"),
               *l = strstr(out, "\"losses\":");
    assert_true(w && t && l);
    wins = atoi(w + 7);
    ties = atoi(t + 7);
    losses = atoi(l + 9);
    snprintf(path, sizeof path, "%s/answers.jsonl", f->dir);
    assert_int_equal(oaif_eval(out, sizeof out,
                               "--policy %s --sft %s --n %d --max-new 48 "
                               "--samples %s",
                               f->trained, f->other, N, path),
                     0);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof line, fp)) {
        lines++;
        assert_non_null(strstr(line, "\"prompt\":"));
        assert_non_null(strstr(line, "\"reference\":"));
        pw += strstr(line, "\"outcome\":\"win\"") != NULL;
        pt += strstr(line, "\"outcome\":\"tie\"") != NULL;
        pl += strstr(line, "\"outcome\":\"loss\"") != NULL;
        pok += strstr(line, "\"policy_correct\":true") != NULL;
        sok += strstr(line, "\"sft_correct\":true") != NULL;
        smallest_lines += strstr(line, "\"question\":\"maxmin smallest\"") != NULL;
    }
    fclose(fp);
    assert_int_equal(lines, N);
    assert_int_equal(smallest_lines, smallest_n);
    assert_int_equal(pw, wins);
    assert_int_equal(pt, ties);
    assert_int_equal(pl, losses);
    assert_int_equal(pw - pl, pok - sok); /* correct beats wrong, nothing else counts */
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s --sft %s --n 7 --samples %s/no/such/x",
                               f->trained, f->other, f->dir),
                     1);
    assert_non_null(strstr(out, "no/such/x"));
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s/missing --sft %s", f->dir, f->trained),
                     1);
    assert_non_null(strstr(out, "missing"));
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s --n zero", f->trained), 2);
    assert_non_null(strstr(out, "--n"));
    assert_int_equal(oaif_eval(out, sizeof out, "--n 7"), 2);
    assert_non_null(strstr(out, "oaif eval: --policy DIR is required"));
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s stray", f->trained), 2);
    assert_non_null(strstr(out, "unexpected argument 'stray'"));
    /* --help: the table, with its defaults (the evaluation of oaif sft's) */
    assert_int_equal(oaif_eval(out, sizeof out, "--help"), 0);
    assert_non_null(strstr(out, "--n N  oaif.eval.n"));
    assert_non_null(strstr(out, "default 350"));

    /* sampled: a line per prompt and draw, draws numbered from 0 */
    assert_int_equal(oaif_eval(out, sizeof out,
                               "--policy %s --sft %s --n %d --max-new 48 --temperature 0.9 "
                               "--draws 2 --seed 3 --samples %s",
                               f->trained, f->trained, N, path),
                     0);
    assert_non_null(strstr(out, "x 2 draws at temperature 0.9"));
    assert_non_null(strstr(out, "50.0% (0 wins, 140 ties, 0 losses)"));
    fp = fopen(path, "r");
    assert_non_null(fp);
    int d0 = 0, d1 = 0;
    lines = 0;
    while (fgets(line, sizeof line, fp)) {
        lines++;
        d0 += strstr(line, "\"draw\":0,") != NULL;
        d1 += strstr(line, "\"draw\":1,") != NULL;
    }
    fclose(fp);
    assert_int_equal(lines, 2 * N);
    assert_int_equal(d0, N);
    assert_int_equal(d1, N);
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s --draws 4", f->trained), 2);
    assert_non_null(strstr(out, "--temperature"));
    /* the flag and the bad value named (`oaif eval` parses its numbers itself since the CLI's
     * option tables: "flag --temperature: expected a number in [0, 100], got 'hot'") */
    assert_int_equal(oaif_eval(out, sizeof out, "--policy %s --temperature hot", f->trained), 2);
    assert_non_null(strstr(out, "--temperature"));
    assert_non_null(strstr(out, "'hot'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_against_itself_ties),
        cmocka_unit_test(test_wins_are_correct_answers_the_other_lacks),
        cmocka_unit_test(test_bad_input_is_named),
        cmocka_unit_test(test_sampled_draws),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests_name("evaluate", tests, setup, teardown);
}
