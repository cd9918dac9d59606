/* cmd_judge.c - `oaif judge try [options] PROMPT FIRST SECOND`: one pair through the configured
 * judge, configured exactly as the annotator-proxy is: its option table (annotator_opts_spec, the
 * run file's `annotator` section, the ANNOTATOR_* variables, its flags), loaded here with this
 * verb's own rows; the work is annotator_try (annotator_try.h). Prints the verdict, the
 * probability from each order, their disagreement, tokens, cost and latency, or with --json one
 * JSON object. Exit status: 0 a verdict, 1 the judgement failed, 2 bad usage or configuration. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotator_opts.h"
#include "annotator_try.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"

static const char verb[] = "oaif judge try";

static const char usage[] =
    "usage: oaif judge try [--json] [--reference R] [--pair-id ID] [--seed N]\n"
    "                      [annotator options] PROMPT FIRST SECOND\n"
    "  One prompt and two responses through the configured judge: the verdict, the probability\n"
    "  from each order, their disagreement, tokens, cost and latency. The judge is configured as\n"
    "  for annotator-proxy (run file --config FILE or OAIF_CONFIG, ANNOTATOR_* variables, flags:\n"
    "  oaif judge try --help lists them); --instruction TEXT is this request's instruction.\n"
    "  Exit status: 0 a verdict, 1 the judgement failed, 2 bad usage or configuration.\n";

static const char summary[] =
    "PROMPT FIRST SECOND (or --prompt, --first, --second): one prompt and two responses through\n"
    "the judge configured as for annotator-proxy (the run file's annotator section, the\n"
    "ANNOTATOR_* variables, the flags below); --instruction is this request's instruction.\n"
    "Exit status: 0 a verdict, 1 the judgement failed, 2 bad usage or configuration.";

/* What `oaif judge try` loads: the annotator's options and the request. */
struct try_opts {
    struct annotator_opts annotator;
    char *texts[3]; /* prompt, first, second: flags, else the positional arguments */
    char *reference, *pair_id;
    uint64_t seed;
    bool json;
};

#define T struct try_opts
static const struct cfg_option own_rows[] = {
    CFG_STRING_OPT(T, texts[0], .key = "oaif.judge.prompt", .flag = "--prompt",
                   .help = "The prompt (or the first positional argument)."),
    CFG_STRING_OPT(T, texts[1], .key = "oaif.judge.first", .flag = "--first",
                   .help = "The first response (or the next positional argument)."),
    CFG_STRING_OPT(T, texts[2], .key = "oaif.judge.second", .flag = "--second",
                   .help = "The second response (or the next positional argument)."),
    CFG_STRING_OPT(T, reference, .key = "oaif.judge.reference", .flag = "--reference",
                   .help = "A reference answer, for the templates that show one."),
    CFG_STRING_OPT(T, pair_id, .key = "oaif.judge.pair_id", .def = "try", .flag = "--pair-id",
                   .help = "The request's pair id."),
    CFG_UINT64_OPT(T, seed, .key = "oaif.judge.seed", .def = "0", .flag = "--seed",
                   .help = "The request's seed (the rules judge's label noise)."),
    CFG_BOOL_OPT(T, json, .key = "oaif.judge.json", .flag = "--json",
                 .help = "The outcome as one JSON object on stdout."),
};
#undef T
#define N_OWN (sizeof own_rows / sizeof own_rows[0])

/* The table: the annotator's rows, then ours, into *rows (malloc'd; free after the last cfg call
 * on spec) and *spec. ERR_OK or ERR_NOMEM. */
static int make_spec(struct cfg_spec *spec, struct cfg_option **rows)
{
    size_t na = annotator_opts_spec.n_options;
    struct cfg_option *r = calloc(na + N_OWN, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    for (size_t i = 0; i < na; i++) {
        r[i] = annotator_opts_spec.options[i];
        r[i].offset += offsetof(struct try_opts, annotator);
    }
    memcpy(r + na, own_rows, sizeof own_rows);
    *spec = (struct cfg_spec){
        .name = verb,
        .summary = summary,
        .sections = annotator_opts_spec.sections, /* its section's keys are checked, as there */
        .options = r,
        .n_options = na + N_OWN,
        .conf_size = sizeof(struct try_opts),
    };
    *rows = r;
    return ERR_OK;
}

static const char *winner_name(enum annotator_winner w)
{
    return w == ANNOTATOR_WINNER_FIRST ? "first" : w == ANNOTATOR_WINNER_SECOND ? "second" : "tie";
}

static const char *failure_name(enum annotator_failure f)
{
    static const char *const names[] = {"none",    "transport", "http", "parse",
                                        "refusal", "backend",   "local"};
    return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

static void print_text(const struct annotator_outcome *o, double tie_band)
{
    printf("judge         %s\n", o->judge);
    if (o->rc == ERR_OK)
        printf("verdict       %s%s  (P(first better) = %.4f; tie within 0.5 +- %g)\n",
               winner_name(o->winner), o->winner == ANNOTATOR_WINNER_TIE ? "" : " is better",
               o->prob_first, tie_band);
    else
        printf("verdict       none: the judgement failed (%s%s): %s\n", failure_name(o->failure),
               o->permanent ? ", permanent" : "", o->error);
    for (unsigned i = 0; i < o->norders; i++) {
        const struct annotator_order_result *x = &o->orders[i];
        double pf = x->swapped ? 1 - x->prob_first : x->prob_first;
        printf("order %s     P(shown first better) = %.4f -> P(first better) = %.4f; answer "
               "\"%s\"%s",
               x->swapped ? "B,A" : "A,B", x->prob_first, pf, x->verdict,
               x->has_logprobs ? " (log-probs)" : "");
        if (x->attempts) /* a judge API call */
            printf("; tokens %u+%u; cost %.6g; latency %.1f ms; attempts %u", x->prompt_tokens,
                   x->completion_tokens, x->cost, x->latency_ms, x->attempts);
        printf("\n");
        if (x->verdict_line) /* where the verdict stood, and which token gave the probability */
            printf("              verdict at line %u, column %u; probability from %s%s%s%s\n",
                   x->verdict_line, x->verdict_column,
                   x->has_logprobs ? "the log-probs of token \"" : "none (no log-probs",
                   x->has_logprobs ? x->lp_token : (x->lp_note[0] ? ": " : ""),
                   x->has_logprobs ? "\"" : x->lp_note, x->has_logprobs ? "" : ")");
        if (x->has_logprobs)
            printf("              (position %d of the answer's log-probs)\n", x->lp_index);
        if (x->cached_tokens || x->cache_write_tokens)
            printf("              prompt tokens from the cache %u, written to it %u\n",
                   x->cached_tokens, x->cache_write_tokens);
    }
    if (o->rc == ERR_OK)
        printf("disagreement  %.4f%s\n", o->disagreement,
               o->norders == 2 ? "  (|p_AB - (1 - p_BA)|)" : "  (one order)");
    if (o->noise_flipped)
        printf("noise         the simulated label noise flipped this label\n");
    printf("tokens        %u prompt + %u completion\n", o->prompt_tokens, o->completion_tokens);
    printf("cost          %.6g\n", o->cost);
    printf("latency       %.1f ms\n", o->latency_ms);
}

static void print_json(const struct annotator_outcome *o)
{
    json_t *orders = json_array();
    for (unsigned i = 0; i < o->norders; i++) {
        const struct annotator_order_result *x = &o->orders[i];
        json_array_append_new(
            orders, json_pack("{s:b, s:f, s:f, s:s, s:b, s:I, s:I, s:f, s:f, s:I}", "swapped",
                              x->swapped, "prob_shown_first", x->prob_first, "prob_first",
                              x->swapped ? 1 - x->prob_first : x->prob_first, "verdict", x->verdict,
                              "has_logprobs", x->has_logprobs, "prompt_tokens",
                              (json_int_t)x->prompt_tokens, "completion_tokens",
                              (json_int_t)x->completion_tokens, "cost", x->cost, "latency_ms",
                              x->latency_ms, "attempts", (json_int_t)x->attempts));
        json_t *last = json_array_get(orders, json_array_size(orders) - 1);
        if (last && x->verdict_line) {
            json_object_set_new(last, "verdict_line", json_integer(x->verdict_line));
            json_object_set_new(last, "verdict_column", json_integer(x->verdict_column));
            json_object_set_new(last, "logprob_token",
                                x->has_logprobs ? json_string(x->lp_token) : json_null());
            json_object_set_new(last, "logprob_index", json_integer(x->lp_index));
            if (x->lp_note[0])
                json_object_set_new(last, "logprob_note", json_string(x->lp_note));
        }
        if (last) {
            json_object_set_new(last, "cached_tokens", json_integer(x->cached_tokens));
            json_object_set_new(last, "cache_write_tokens", json_integer(x->cache_write_tokens));
        }
    }
    json_t *j = json_pack(
        "{s:s, s:b, s:o, s:I, s:I, s:f, s:f}", "judge", o->judge, "ok", o->rc == ERR_OK, "orders",
        orders, "prompt_tokens", (json_int_t)o->prompt_tokens, "completion_tokens",
        (json_int_t)o->completion_tokens, "cost", o->cost, "latency_ms", o->latency_ms);
    if (j && o->rc == ERR_OK) {
        json_object_set_new(j, "winner", json_string(winner_name(o->winner)));
        json_object_set_new(j, "prob_first", json_real(o->prob_first));
        json_object_set_new(j, "disagreement", json_real(o->disagreement));
        json_object_set_new(j, "noise_flipped", json_boolean(o->noise_flipped));
    } else if (j) {
        json_object_set_new(j, "error", json_string(o->error));
        json_object_set_new(j, "failure", json_string(failure_name(o->failure)));
        json_object_set_new(j, "permanent", json_boolean(o->permanent));
    }
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

/* Asks the judge t describes; prints the outcome. Returns the exit status. */
static int ask(const struct try_opts *t)
{
    const struct annotator_opts *o = &t->annotator;
    struct annotator_request req = {
        .pair_id = t->pair_id,
        .prompt = t->texts[0],
        .responses = {t->texts[1], t->texts[2]},
        .instruction = o->instruction && *o->instruction ? o->instruction : NULL,
        .reference = t->reference,
        .seed = t->seed,
    };
    struct annotator_try_result *r = malloc(sizeof *r);
    if (!r) {
        cli_error(verb, "out of memory");
        return 1;
    }
    char why[1024];
    int status, rc = annotator_try(o, &req, r, why, sizeof why);
    if (rc) {
        cli_error(verb, "%s", why);
        status = r->asked ? 1 : 2;
    } else {
        if (t->json)
            print_json(&r->o);
        else
            print_text(&r->o, o->judge.tie_band);
        status = r->o.rc == ERR_OK ? 0 : 1;
    }
    free(r);
    return status;
}

/* `oaif judge try ARGS`. */
static int judge_try(int argc, char **argv)
{
    struct cfg_spec spec;
    struct cfg_option *rows = NULL;
    if (make_spec(&spec, &rows)) {
        cli_error(verb, "out of memory");
        return 1;
    }
    struct try_opts t = {0};
    int npos, status, rc = cli_load(verb, &spec, &t, argc, argv, 3, &npos);
    if (rc) {
        free(rows);
        return cli_exit_status(rc);
    }
    /* the positional arguments fill the texts not given by flags, in order */
    int k = 0;
    for (int i = 0; i < npos; i++) {
        while (k < 3 && t.texts[k])
            k++;
        if (k == 3) {
            cli_error(verb, "unexpected argument '%.60s' (PROMPT FIRST SECOND are already given)",
                      argv[i]);
            status = 2;
            goto out;
        }
        t.texts[k] = strdup(argv[i]);
        if (!t.texts[k]) {
            cli_error(verb, "out of memory");
            status = 1;
            goto out;
        }
    }
    if (!t.texts[0] || !t.texts[1] || !t.texts[2]) {
        cli_error(verb, "needs PROMPT FIRST SECOND (see oaif judge try --help)");
        status = 2;
    } else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_error(verb, "curl_global_init failed");
        status = 1;
    } else {
        status = ask(&t);
        curl_global_cleanup();
    }
out:
    cfg_release(&spec, &t);
    free(rows);
    return status;
}

int cmd_judge(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "try"))
        return judge_try(argc - 1, argv + 1);
    if (argc >= 1 &&
        (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help"))) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "oaif judge: unknown or missing verb%s%s\n%s", argc ? " " : "",
            argc ? argv[0] : "", usage);
    return 2;
}
