/* evaluate.h - models on the built-in task's eval split: everything that answers, checks and
 * scores there.
 *
 * One model (trainer_eval_task): greedy answers checked by task_check; accuracy overall and per
 * family, mean response length in bytes. What SFT reports during and after training.
 * A policy against the SFT model (trainer_compare; with the checkpoints loaded and the results
 * printed, trainer_eval_run, which is `oaif eval`): answers of both (greedy, or sampled as the
 * policy samples in training, several draws per prompt), task accuracy and mean length of each,
 * and the win rate of the policy judged by the noise-free rules judge in both orders (ties count
 * 1/2). What the demo's summary table shows and the online loop records at its checkpoints; the
 * evaluator service does this through the ledger for any judge.
 * Not for: training (sft.h, online.h), the built-in model's shape or tokenizer (policy.h), the
 * options' table and defaults (trainer_opts.h; services/oaif/cmd_eval.c loads it). */
#ifndef TRAINER_EVALUATE_H
#define TRAINER_EVALUATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "task.h"
#include "tokenizer.h"

/* How answers are decoded. temperature 0 is greedy (draws must then be 1: greedy answers do not
 * vary); above 0, each of `draws` answers per prompt is sampled at that temperature and top_p from
 * a stream fixed by seed, the row and the draw, so two models are compared on common random
 * numbers (a model against itself ties on every draw). NULL wherever one is taken: greedy. */
struct trainer_decode {
    double temperature; /* 0: greedy */
    double top_p;       /* (0, 1]; 1: off */
    int draws;          /* answers per prompt, >= 1 */
    uint64_t seed;
};

/* Answers of m to prompts ps[0..n) (at most max_new tokens each), decoded as dec says, leading
 * whitespace stripped: (*texts)[i] malloc'd strings, the array too (trainer_answers_free).
 * Errors as trainer_eval_task. dec->draws is not used: repeat a prompt to draw it again. */
int trainer_answers(nn_model_t *m, const tok_t *tk, const struct task_prompt *ps, int n,
                    int max_new, const struct trainer_decode *dec, char ***texts, char *err,
                    size_t errlen);
void trainer_answers_free(char **texts, int n);

/* Per-family and overall results of trainer_eval_task. */
struct trainer_eval {
    int n, correct;
    int found;          /* responses from which task_check read an answer of the right kind */
    double accuracy;    /* correct / n, 0 when n == 0 */
    double mean_length; /* mean response length in bytes (leading separator space stripped) */
    double terse_share; /* share of responses of at most 12 bytes */
    int fam_n[TASK_FAMILY_COUNT], fam_correct[TASK_FAMILY_COUNT];
};

/* Greedy answers of `m` to the first n prompts of the built-in eval split under task_seed (in
 * batches of up to 64), each checked with task_check. Fills *out. When `samples` is not NULL,
 * writes one JSON line per prompt to it: id, family, prompt, response, reference, correct.
 * ERR_INVAL (n < 1, max_new < 1), ERR_TOOBIG (a prompt does not fit the model's context),
 * ERR_IO (a line of `samples` could not be written), ERR_NOMEM, or the engine's error; err
 * filled. */
int trainer_eval_task(nn_model_t *m, const tok_t *tk, uint64_t task_seed, int n, int max_new,
                      FILE *samples, struct trainer_eval *out, char *err, size_t errlen);

/* One line for a person: "<what>: accuracy 51.4% (36/70) add 40% ...; answered 97%; mean length
 * 9.1 bytes, terse 80%" and a newline, to f. */
void trainer_eval_print(FILE *f, const char *what, const struct trainer_eval *e);

struct trainer_side {
    double accuracy;                                              /* correct answers / n */
    double mean_length;                                           /* bytes */
    int fam_n[TASK_FAMILY_COUNT], fam_correct[TASK_FAMILY_COUNT]; /* by family */
};

/* The outcomes of some of the rows (a prompt and a draw). */
struct trainer_tally {
    int n;                           /* rows */
    int wins, ties, losses;          /* of the policy */
    int policy_correct, sft_correct; /* rows each model answered right */
};

struct trainer_comparison {
    int n;     /* prompts */
    int draws; /* answers per prompt and model; wins + ties + losses = n * draws */
    struct trainer_side policy, sft;
    int wins, ties, losses; /* of the policy, judged in both orders */
    double win_rate;        /* (wins + ties / 2) / (n * draws) */
    /* By question (a family and its direction, task_question): where the policy wins. */
    struct trainer_tally by_question[TASK_QUESTION_COUNT];
};

/* The rows of c's questions with task_question_habit(q) == habit, summed. */
struct trainer_tally trainer_tally_habit(const struct trainer_comparison *c, bool habit);
/* (wins + ties / 2) / n; 0.5 when n is 0. */
double trainer_tally_win_rate(const struct trainer_tally *t);

/* Writes " add 24% sub 12% ..." to f: the accuracy of each family with prompts (n[k] > 0). */
void trainer_print_families(FILE *f, const int n[TASK_FAMILY_COUNT],
                            const int correct[TASK_FAMILY_COUNT]);

/* Compare `policy` with `sft` on the first n eval prompts of the built-in task under task_seed,
 * answers decoded as dec says (NULL: greedy); draw j of the policy meets draw j of the SFT model.
 * Accuracy and length are means over all draws. The judge is the rules judge without noise and
 * with `instruction` (NULL: none). With `samples`, one JSON line per prompt and draw: id, draw,
 * family, question, prompt, reference, policy, policy_correct, sft, sft_correct, outcome (win,
 * tie or loss of the policy). */
int trainer_compare(nn_model_t *policy, nn_model_t *sft, const tok_t *tk, uint64_t task_seed, int n,
                    int max_new, const struct trainer_decode *dec, const char *instruction,
                    FILE *samples, struct trainer_comparison *out, char *err, size_t errlen);

/* The options of `oaif eval` (a policy against the SFT model). Filled by the option table
 * trainer_eval_opts_spec (trainer_opts.h), where each default is written, once. Strings are
 * malloc'd by cfg (trainer_eval_release() frees them); NULL is unset. */
struct trainer_eval_opts {
    char *policy;                 /* the policy's checkpoint directory; required */
    char *sft;                    /* the SFT model's checkpoint directory */
    int n;                        /* eval-split prompts, >= 1 */
    int max_new;                  /* most tokens per answer, >= 1 */
    struct trainer_decode decode; /* greedy, or sampled with several draws */
    char *instruction;            /* for the rules judge; NULL: none */
    char *samples;                /* NULL, or a file for every answer of both models (JSONL) */
    bool json;                    /* the results as one JSON object, not a table */
};

/* Checks what the table cannot: a policy is given, and more than one draw is sampled (temperature
 * above 0). ERR_INVAL with err naming the options (as their flags). */
int trainer_eval_validate(const struct trainer_eval_opts *o, char *err, size_t errlen);

/* `oaif eval`: loads the policy and the SFT checkpoints, compares them on the first o->n prompts of
 * the built-in task's eval split (trainer_compare; with o->samples, every answer written there)
 * and writes the results to `out`: a table (accuracy and mean length of each model, by family,
 * the win rate, and the tallies by question and of the SFT habit's questions against the rest),
 * or with o->json one JSON object on one line. Returns ERR_OK; ERR_INVAL for options that
 * trainer_eval_validate() refuses; or what loading, comparing or writing the samples returned,
 * with err saying what failed. */
int trainer_eval_run(const struct trainer_eval_opts *o, FILE *out, char *err, size_t errlen);

#endif /* TRAINER_EVALUATE_H */
