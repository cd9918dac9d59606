/* evaluate.c - see evaluate.h. */
#include "evaluate.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "err.h"
#include "evalstats.h"
#include "policy.h"
#include "rules.h"
#include "sample.h"
#include "utf8.h"

#define ANSWER_BATCH 64 /* prompts per nn_sample call */
#define TERSE_BYTES  12 /* a response this short or shorter counts as terse */

/* Write j (taken; NULL: out of memory) to f as one compact JSON line. ERR_OK, or ERR_IO with
 * errno set by the failed write (ENOMEM when j is NULL). */
static int write_json_line(FILE *f, json_t *j)
{
    if (!j) {
        errno = ENOMEM;
        return ERR_IO;
    }
    int bad = json_dumpf(j, f, JSON_COMPACT | JSON_ENSURE_ASCII) || fputc('\n', f) == EOF;
    json_decref(j);
    return bad ? ERR_IO : ERR_OK;
}

void trainer_answers_free(char **texts, int n)
{
    if (!texts)
        return;
    for (int i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
}

int trainer_answers(nn_model_t *m, const tok_t *tk, const struct task_prompt *ps, int n,
                    int max_new, const struct trainer_decode *dec, char ***texts, char *err,
                    size_t errlen)
{
    *texts = NULL;
    if (n < 1 || max_new < 1) {
        err_fmt(err, errlen, "answers: n = %d and max_new = %d must be at least 1", n, max_new);
        return ERR_INVAL;
    }
    char **out = calloc((size_t)n, sizeof *out);
    int *gen = malloc((size_t)ANSWER_BATCH * (size_t)max_new * sizeof *gen);
    int *ids[ANSWER_BATCH] = {0};
    int plen[ANSWER_BATCH], ngen[ANSWER_BATCH];
    int Tmax = nn_model_config(m)->max_position_embeddings;
    int rc = out && gen ? ERR_OK : ERR_NOMEM;
    for (int b0 = 0; !rc && b0 < n; b0 += ANSWER_BATCH) {
        int B = n - b0 < ANSWER_BATCH ? n - b0 : ANSWER_BATCH;
        for (int b = 0; !rc && b < B; b++) {
            size_t np = 0;
            rc = tok_encode_prompt(tk, ps[b0 + b].text, tok_wants_bos(tk) ? TOK_ADD_BOS : 0,
                                   &ids[b], &np, err, errlen);
            if (!rc && (np < 1 || np >= (size_t)Tmax)) {
                err_fmt(err, errlen, "answers: prompt %s is %zu tokens, the context %d",
                        ps[b0 + b].id, np, Tmax);
                rc = ERR_TOOBIG;
            }
            plen[b] = (int)np;
        }
        bool greedy = !dec || dec->temperature <= 0;
        /* each batch its own streams: nn_sample derives row b's from the seed and b */
        struct nn_sample_opts so = {
            .temperature = greedy ? 0.0f : (float)dec->temperature,
            .top_k = greedy ? 1 : 0,
            .top_p = greedy ? 1.0f : (float)dec->top_p,
            .seed = greedy
                        ? 0
                        : dec->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(b0 / ANSWER_BATCH + 1)),
            .max_new_tokens = max_new,
            .eos_token_id = tok_eos_id(tk)};
        if (!rc && (rc = nn_sample(m, B, (const int *const *)ids, plen, &so, gen, ngen, NULL)))
            err_fmt(err, errlen, "answers: sampling: %s", err_str(rc));
        for (int b = 0; !rc && b < B; b++) {
            char *text = NULL;
            size_t tl = 0;
            rc = tok_decode(tk, gen + (size_t)b * max_new, (size_t)ngen[b], TOK_SKIP_SPECIAL, &text,
                            &tl);
            if (rc) {
                err_fmt(err, errlen, "answers: decoding: %s", err_str(rc));
                break;
            }
            /* valid UTF-8 (a sampled byte may not be), leading whitespace gone */
            size_t off = 0;
            while (off < tl && isspace((unsigned char)text[off]))
                off++;
            out[b0 + b] = utf8_clean(text + off, tl - off);
            free(text);
            if (!out[b0 + b]) {
                rc = ERR_NOMEM;
                break;
            }
        }
        for (int b = 0; b < B; b++) {
            free(ids[b]);
            ids[b] = NULL;
        }
    }
    free(gen);
    if (rc) {
        trainer_answers_free(out, n);
        if (rc == ERR_NOMEM)
            err_fmt(err, errlen, "out of memory");
        return rc;
    }
    *texts = out;
    return ERR_OK;
}

int trainer_eval_task(nn_model_t *m, const tok_t *tk, uint64_t task_seed, int n, int max_new,
                      FILE *samples, struct trainer_eval *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || max_new < 1) {
        err_fmt(err, errlen, "evaluation: n = %d and max_new = %d must be at least 1", n, max_new);
        return ERR_INVAL;
    }
    struct task_prompt *ps = NULL;
    int rc = task_prompt_set(task_seed, TASK_SPLIT_EVAL, (size_t)n, &ps);
    if (rc) {
        err_fmt(err, errlen, "evaluation: the built-in eval split: %s", err_str(rc));
        return rc;
    }
    char **texts = NULL;
    rc = trainer_answers(m, tk, ps, n, max_new, NULL, &texts, err, errlen);
    double len_sum = 0;
    int terse = 0;
    for (int i = 0; !rc && i < n; i++) {
        const struct task_prompt *p = &ps[i];
        size_t tl = strlen(texts[i]);
        struct task_check ck;
        rc = task_check(p, texts[i], tl, &ck);
        if (rc) {
            err_fmt(err, errlen, "evaluation: checking %s: %s", p->id, err_str(rc));
            break;
        }
        if (samples &&
            write_json_line(samples, json_pack("{s:s, s:s, s:s, s:s%, s:s, s:b}", "id", p->id,
                                               "family", task_family_name(p->family), "prompt",
                                               p->text, "response", texts[i], tl, "reference",
                                               p->answer, "correct", ck.correct))) {
            err_fmt(err, errlen, "evaluation: writing the answers: %s", strerror(errno));
            rc = ERR_IO;
            break;
        }
        out->n++;
        out->found += ck.found;
        out->fam_n[p->family]++;
        if (ck.correct) {
            out->correct++;
            out->fam_correct[p->family]++;
        }
        len_sum += (double)tl;
        terse += tl <= TERSE_BYTES;
    }
    if (!rc && out->n > 0) {
        out->accuracy = (double)out->correct / out->n;
        out->mean_length = len_sum / out->n;
        out->terse_share = (double)terse / out->n;
    }
    trainer_answers_free(texts, n);
    free(ps);
    return rc;
}

void trainer_eval_print(FILE *f, const char *what, const struct trainer_eval *e)
{
    fprintf(f, "%s: accuracy %.1f%% (%d/%d)", what, 100.0 * e->accuracy, e->correct, e->n);
    trainer_print_families(f, e->fam_n, e->fam_correct);
    fprintf(f, "; answered %.0f%%; mean length %.1f bytes, terse %.0f%%\n",
            e->n ? 100.0 * e->found / e->n : 0.0, e->mean_length, 100.0 * e->terse_share);
}

static void side(const struct task_prompt *ps, char **texts, int n, struct trainer_side *s,
                 bool *correct)
{
    int ok = 0;
    double len = 0;
    for (int i = 0; i < n; i++) {
        struct task_check ck;
        correct[i] = task_check(&ps[i], texts[i], strlen(texts[i]), &ck) == ERR_OK && ck.correct;
        ok += correct[i];
        if ((unsigned)ps[i].family < TASK_FAMILY_COUNT) {
            s->fam_n[ps[i].family]++;
            s->fam_correct[ps[i].family] += correct[i];
        }
        len += (double)strlen(texts[i]);
    }
    s->accuracy = (double)ok / n;
    s->mean_length = len / n;
}

void trainer_print_families(FILE *f, const int n[TASK_FAMILY_COUNT],
                            const int correct[TASK_FAMILY_COUNT])
{
    for (int k = 0; k < TASK_FAMILY_COUNT; k++)
        if (n[k])
            fprintf(f, " %s %.0f%%", task_family_name((enum task_family)k),
                    100.0 * correct[k] / n[k]);
}

struct trainer_tally trainer_tally_habit(const struct trainer_comparison *c, bool habit)
{
    struct trainer_tally t = {0};
    for (int q = 0; q < TASK_QUESTION_COUNT; q++) {
        const struct trainer_tally *b = &c->by_question[q];
        if (task_question_habit((enum task_question)q) != habit)
            continue;
        t.n += b->n;
        t.wins += b->wins;
        t.ties += b->ties;
        t.losses += b->losses;
        t.policy_correct += b->policy_correct;
        t.sft_correct += b->sft_correct;
    }
    return t;
}

double trainer_tally_win_rate(const struct trainer_tally *t)
{
    return t->n ? (t->wins + 0.5 * t->ties) / t->n : 0.5;
}

static int write_sample(FILE *f, const struct task_prompt *p, const char *question, int draw,
                        const char *pa, bool pok, const char *sa, bool sok, double p_policy)
{
    return write_json_line(
        f, json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:s}", "id", p->id, "draw",
                     draw, "family", task_family_name(p->family), "question", question, "prompt",
                     p->text, "reference", p->answer, "policy", pa, "policy_correct", pok, "sft",
                     sa, "sft_correct", sok, "outcome",
                     p_policy > 0.5   ? "win"
                     : p_policy < 0.5 ? "loss"
                                      : "tie"));
}

int trainer_compare(nn_model_t *policy, nn_model_t *sft, const tok_t *tk, uint64_t task_seed, int n,
                    int max_new, const struct trainer_decode *dec, const char *instruction,
                    FILE *samples, struct trainer_comparison *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int draws = dec ? dec->draws : 1;
    if (dec && (dec->temperature < 0 || draws < 1 || (dec->temperature == 0 && draws != 1) ||
                !(dec->top_p > 0 && dec->top_p <= 1))) {
        err_fmt(err, errlen,
                "evaluation: temperature %g, top_p %g and %d draws: draws must be at least 1, "
                "and 1 when greedy (temperature 0); top_p in (0, 1]",
                dec->temperature, dec->top_p, draws);
        return ERR_INVAL;
    }
    enum rules_pref pref = RULES_PREFER_NONE;
    if (instruction && *instruction && rules_instruction_parse(instruction, &pref)) {
        err_fmt(err, errlen, "evaluation: the rules judge does not understand the instruction '%s'",
                instruction);
        return ERR_INVAL;
    }
    struct task_prompt *set = NULL, *ps = NULL;
    int rc = n >= 1 ? task_prompt_set(task_seed, TASK_SPLIT_EVAL, (size_t)n, &set) : ERR_INVAL;
    if (rc) {
        err_fmt(err, errlen, "evaluation: the built-in eval split (n = %d): %s", n, err_str(rc));
        return rc;
    }
    /* draw j of prompt i is row i * draws + j, for both models */
    int rows = n * draws;
    char **a = NULL, **b = NULL;
    bool *ca = calloc((size_t)rows, sizeof *ca), *cb = calloc((size_t)rows, sizeof *cb);
    ps = malloc((size_t)rows * sizeof *ps);
    for (int i = 0; ps && i < rows; i++)
        ps[i] = set[i / draws];
    rc = ca && cb && ps ? trainer_answers(policy, tk, ps, rows, max_new, dec, &a, err, errlen)
                        : ERR_NOMEM;
    if (!rc)
        rc = trainer_answers(sft, tk, ps, rows, max_new, dec, &b, err, errlen);
    if (!rc) {
        out->n = n;
        out->draws = draws;
        side(ps, a, rows, &out->policy, ca);
        side(ps, b, rows, &out->sft, cb);
        struct rules_config rc0 = {.p_noise = 0.0, .seed = 0};
        for (int i = 0; !rc && i < rows; i++) {
            /* Both orders; the rules are position-free, so they agree, but a judge is asked
             * both ways as a real one would be. */
            struct rules_verdict v1, v2;
            rc = rules_judge(&rc0, &ps[i], pref, ps[i].id, a[i], strlen(a[i]), b[i], strlen(b[i]),
                             &v1);
            if (!rc)
                rc = rules_judge(&rc0, &ps[i], pref, ps[i].id, b[i], strlen(b[i]), a[i],
                                 strlen(a[i]), &v2);
            if (rc) {
                err_fmt(err, errlen, "evaluation: judging %s: %s", ps[i].id, err_str(rc));
                break;
            }
            double p = 0.5 * (v1.p_first + (1.0 - v2.p_first));
            enum task_question q;
            struct trainer_tally none = {0}, *t = task_prompt_question(&ps[i], &q)
                                                      ? &none
                                                      : &out->by_question[q];
            t->n++;
            t->policy_correct += ca[i];
            t->sft_correct += cb[i];
            if (p > 0.5) {
                out->wins++;
                t->wins++;
            } else if (p < 0.5) {
                out->losses++;
                t->losses++;
            } else {
                out->ties++;
                t->ties++;
            }
            if (samples && write_sample(samples, &ps[i], t == &none ? "?" : task_question_name(q),
                                        i % draws, a[i], ca[i], b[i], cb[i], p)) {
                err_fmt(err, errlen, "evaluation: writing the answers: %s", strerror(errno));
                rc = ERR_IO;
            }
        }
        out->win_rate = (out->wins + 0.5 * out->ties) / rows;
    }
    trainer_answers_free(a, rows);
    trainer_answers_free(b, rows);
    free(ca);
    free(cb);
    free(ps);
    free(set);
    return rc;
}

/* The 95% interval of a win rate with ties as 1/2: evalstats' percentile bootstrap of the mean
 * outcome over rows (1 a win, 1/2 a tie, 0 a loss), as the evaluator records it. Most answers tie
 * under the rules judge, so the outcome has three values and a binomial interval on the wins
 * alone would not be the win rate's. The bootstrap needs only the counts; a fixed seed gives the
 * same interval for the same counts. Without rows: the point 0.5. */
static void tally_interval(int wins, int ties, int losses, double *lo, double *hi)
{
    size_t n = (size_t)wins + (size_t)ties + (size_t)losses;
    double *x = n ? malloc(n * sizeof *x) : NULL;
    struct evalstats_winrate w;
    *lo = *hi = 0.5;
    if (!x)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = i < (size_t)wins ? 1 : i < (size_t)wins + (size_t)ties ? 0.5 : 0;
    if (evalstats_win_rate(x, n, 2000, 1, &w) == ERR_OK) {
        *lo = w.rate.lo;
        *hi = w.rate.hi;
    }
    free(x);
}

static void print_tally_json(FILE *f, const char *name, const struct trainer_tally *t)
{
    double lo, hi;
    tally_interval(t->wins, t->ties, t->losses, &lo, &hi);
    fprintf(f,
            "\"%s\":{\"n\":%d,\"wins\":%d,\"ties\":%d,\"losses\":%d,\"win_rate\":%.4f,"
            "\"win_rate_lo\":%.4f,\"win_rate_hi\":%.4f,"
            "\"policy_accuracy\":%.4f,\"sft_accuracy\":%.4f}",
            name, t->n, t->wins, t->ties, t->losses, trainer_tally_win_rate(t), lo, hi,
            t->n ? (double)t->policy_correct / t->n : 0, t->n ? (double)t->sft_correct / t->n : 0);
}

static void print_tally_row(FILE *f, const char *name, const struct trainer_tally *t)
{
    if (!t->n)
        return;
    char wtl[48];
    snprintf(wtl, sizeof wtl, "%d-%d-%d", t->wins, t->ties, t->losses);
    fprintf(f, "%-17s %5d %6.1f%% %6.1f%% %17s %8.1f%%\n", name, t->n,
            100.0 * t->sft_correct / t->n, 100.0 * t->policy_correct / t->n, wtl,
            100 * trainer_tally_win_rate(t));
}

static void print_json(FILE *f, const struct trainer_comparison *c, double temperature)
{
    double lo, hi;
    tally_interval(c->wins, c->ties, c->losses, &lo, &hi);
    fprintf(f,
            "{\"n\":%d,\"draws\":%d,\"temperature\":%g,\"policy_accuracy\":%.4f,\"sft_"
            "accuracy\":%.4f,\"policy_length\":%.2f,"
            "\"sft_length\":%.2f,\"wins\":%d,\"ties\":%d,\"losses\":%d,\"win_rate\":%.4f,"
            "\"win_rate_lo\":%.4f,\"win_rate_hi\":%.4f,",
            c->n, c->draws, temperature, c->policy.accuracy, c->sft.accuracy, c->policy.mean_length,
            c->sft.mean_length, c->wins, c->ties, c->losses, c->win_rate, lo, hi);
    struct trainer_tally habit = trainer_tally_habit(c, true), rest = trainer_tally_habit(c, false);
    print_tally_json(f, "habit", &habit);
    fputc(',', f);
    print_tally_json(f, "rest", &rest);
    fprintf(f, ",\"questions\":{");
    for (int q = 0; q < TASK_QUESTION_COUNT; q++) {
        if (q)
            fputc(',', f);
        print_tally_json(f, task_question_name((enum task_question)q), &c->by_question[q]);
    }
    fprintf(f, "}}\n");
}

static void print_table(FILE *f, const struct trainer_comparison *c, double temperature)
{
    fprintf(f, "%-10s %9s %12s  %s\n", "model", "accuracy", "mean length", "accuracy by family");
    for (int k = 0; k < 2; k++) {
        const struct trainer_side *sd = k ? &c->policy : &c->sft;
        fprintf(f, "%-10s %8.1f%% %12.1f ", k ? "policy" : "sft", 100 * sd->accuracy,
                sd->mean_length);
        trainer_print_families(f, sd->fam_n, sd->fam_correct);
        fputc('\n', f);
    }
    char how[64];
    if (temperature > 0)
        snprintf(how, sizeof how, " x %d draws at temperature %g", c->draws, temperature);
    else
        snprintf(how, sizeof how, ", greedy");
    fprintf(f,
            "win rate of the policy against SFT (noise-free rules judge, both orders, %d eval "
            "prompts%s): %.1f%% (%d wins, %d ties, %d losses)\n",
            c->n, how, 100 * c->win_rate, c->wins, c->ties, c->losses);
    fprintf(f, "\n%-17s %5s %7s %7s %17s %9s\n", "by question", "rows", "sft", "policy",
            "wins-ties-losses", "win rate");
    for (int q = 0; q < TASK_QUESTION_COUNT; q++)
        print_tally_row(f, task_question_name((enum task_question)q), &c->by_question[q]);
    struct trainer_tally habit = trainer_tally_habit(c, true), rest = trainer_tally_habit(c, false);
    print_tally_row(f, "the SFT habit's", &habit);
    print_tally_row(f, "the rest", &rest);
    fprintf(f, "(the SFT habit's: compare smaller, sort descending, maxmin smallest, which the "
               "built-in demonstrator answers the other way round)\n");
}

int trainer_eval_validate(const struct trainer_eval_opts *o, char *err, size_t errlen)
{
    if (!o->policy || !*o->policy) {
        err_fmt(err, errlen, "--policy DIR is required");
        return ERR_INVAL;
    }
    if (!o->sft || !*o->sft) {
        err_fmt(err, errlen, "--sft DIR is empty");
        return ERR_INVAL;
    }
    if (o->decode.temperature <= 0 && o->decode.draws != 1) {
        err_fmt(err, errlen, "--draws %d needs --temperature above 0: greedy answers do not vary",
                o->decode.draws);
        return ERR_INVAL;
    }
    return ERR_OK;
}

int trainer_eval_run(const struct trainer_eval_opts *o, FILE *out, char *err, size_t errlen)
{
    int rc = trainer_eval_validate(o, err, errlen);
    if (rc)
        return rc;
    nn_model_t *p = NULL, *s = NULL;
    tok_t *tk = NULL;
    struct trainer_comparison c = {0};
    FILE *samples = NULL;
    rc = nn_checkpoint_load(&p, o->policy, err, errlen);
    if (!rc)
        rc = nn_checkpoint_load(&s, o->sft, err, errlen);
    if (!rc)
        rc = trainer_tokenizer(&tk, nn_model_config(s), o->sft, err, errlen);
    if (!rc && o->samples && !(samples = fopen(o->samples, "w"))) {
        err_fmt(err, errlen, "%s: %s", o->samples, strerror(errno));
        rc = ERR_IO;
    }
    if (!rc)
        rc = trainer_compare(p, s, tk, TRAINER_TASK_SEED, o->n, o->max_new, &o->decode,
                             o->instruction, samples, &c, err, errlen);
    if (samples && fclose(samples) && !rc) {
        err_fmt(err, errlen, "%s: write error", o->samples);
        rc = ERR_IO;
    }
    if (!rc && o->json)
        print_json(out, &c, o->decode.temperature);
    else if (!rc)
        print_table(out, &c, o->decode.temperature);
    tok_destroy(&tk);
    nn_model_destroy(&p);
    nn_model_destroy(&s);
    return rc;
}
