/* annotator_try.c - see annotator_try.h. */
#include "annotator_try.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "annotator.h"
#include "annotator_opts.h"
#include "annotator_scorer.h"
#include "buf.h"
#include "busclient.h"
#include "err.h"
#include "log.h"

static const char usage[] =
    "usage: oaif judge try [--json] [--reference R] [--pair-id ID] [--seed N]\n"
    "                      [annotator options] PROMPT FIRST SECOND\n"
    "  One prompt and two responses through the configured judge: the verdict, the probability\n"
    "  from each order, their disagreement, tokens, cost and latency. The judge is configured as\n"
    "  for annotator-proxy (run file --config FILE or OAIF_CONFIG, ANNOTATOR_* variables, flags:\n"
    "  see `annotator-proxy --help`); --instruction TEXT is this request's instruction.\n"
    "  Exit status: 0 a verdict, 1 the judgement failed, 2 bad usage or configuration.\n";

struct try_args {
    const char *texts[3]; /* prompt, first, second */
    const char *reference, *pair_id;
    uint64_t seed;
    bool json;
};

/* Does the annotator flag `name` (no "=value") take the next argument as its value? */
static bool flag_takes_value(const char *name)
{
    if (strcmp(name, "--config") == 0)
        return true;
    for (size_t i = 0; i < annotator_opts_spec.n_options; i++) {
        const struct cfg_option *o = &annotator_opts_spec.options[i];
        if (!o->flag)
            continue;
        size_t fl = strlen(o->flag);
        if (strcmp(name, o->flag) == 0)
            return o->type != CFG_BOOL;
        if ((o->flags & CFG_SECRET) && strncmp(name, o->flag, fl) == 0 &&
            strcmp(name + fl, "-file") == 0)
            return true;
    }
    return false;
}

/* Splits argv into our own arguments (into a) and the annotator's flags (into cfg_argv, after a
 * program name). Returns 0, or 2 after printing the problem. */
static int parse_args(int argc, char **argv, struct try_args *a, char **cfg_argv, int *cfg_argc)
{
    int n = 0;
    cfg_argv[n++] = "oaif judge try";
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!s)
            break; /* argv ends at its NULL whatever argc says */
        bool ours_v = !strcmp(s, "--reference") || !strcmp(s, "--pair-id") ||
                      !strcmp(s, "--seed") || !strcmp(s, "--prompt") || !strcmp(s, "--first") ||
                      !strcmp(s, "--second");
        if (!strcmp(s, "--json")) {
            a->json = true;
        } else if (ours_v) {
            if (!v) {
                fprintf(stderr, "oaif judge try: %s needs a value\n", s);
                return 2;
            }
            i++;
            if (!strcmp(s, "--reference")) {
                a->reference = v;
            } else if (!strcmp(s, "--pair-id")) {
                a->pair_id = v;
            } else if (!strcmp(s, "--seed")) {
                char *end;
                errno = 0;
                unsigned long long x = strtoull(v, &end, 10);
                if (errno || *end || !*v || *v == '-') {
                    fprintf(stderr,
                            "oaif judge try: --seed: expected an unsigned integer, got "
                            "'%s'\n",
                            v);
                    return 2;
                }
                a->seed = x;
            } else {
                int k = !strcmp(s, "--prompt") ? 0 : !strcmp(s, "--first") ? 1 : 2;
                a->texts[k] = v;
            }
        } else if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            cfg_argv[n++] = (char *)s;
        } else if (strncmp(s, "--", 2) == 0 && s[2]) {
            cfg_argv[n++] = (char *)s;
            if (!strchr(s, '=') && flag_takes_value(s) && v) {
                cfg_argv[n++] = (char *)v;
                i++;
            }
        } else {
            /* positional: the first of prompt, first, second not given otherwise */
            int k = 0;
            while (k < 3 && a->texts[k])
                k++;
            if (k == 3) {
                fprintf(stderr,
                        "oaif judge try: unexpected argument '%.60s' (PROMPT FIRST "
                        "SECOND are already given)\n",
                        s);
                return 2;
            }
            a->texts[k] = s;
        }
    }
    cfg_argv[n] = NULL;
    *cfg_argc = n;
    return 0;
}

struct try_result {
    bool done;
    struct annotator_outcome o;
    char error[1024], judge[256];
};

static void on_done(void *user, const struct annotator_outcome *o)
{
    struct try_result *r = user;
    r->done = true;
    r->o = *o;
    snprintf(r->error, sizeof r->error, "%s", o->error ? o->error : "");
    snprintf(r->judge, sizeof r->judge, "%s", o->judge ? o->judge : "");
    r->o.error = r->error;
    r->o.judge = r->judge;
    r->o.pair_id = "";
}

static const char *winner_name(enum annotator_winner w)
{
    return w == ANNOTATOR_WINNER_FIRST ? "first" : w == ANNOTATOR_WINNER_SECOND ? "second" : "tie";
}

static const char *const fail_names[] = {"none",    "transport", "http", "parse",
                                         "refusal", "backend",   "local"};

static void print_text(const struct try_result *r, double tie_band)
{
    const struct annotator_outcome *o = &r->o;
    printf("judge         %s\n", r->judge);
    if (o->rc == ERR_OK)
        printf("verdict       %s%s  (P(first better) = %.4f; tie within 0.5 +- %g)\n",
               winner_name(o->winner), o->winner == ANNOTATOR_WINNER_TIE ? "" : " is better",
               o->prob_first, tie_band);
    else
        printf("verdict       none: the judgement failed (%s%s): %s\n", fail_names[o->failure],
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

static void print_json(const struct try_result *r)
{
    const struct annotator_outcome *o = &r->o;
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
    }
    json_t *j = json_pack(
        "{s:s, s:b, s:o, s:I, s:I, s:f, s:f}", "judge", r->judge, "ok", o->rc == ERR_OK, "orders",
        orders, "prompt_tokens", (json_int_t)o->prompt_tokens, "completion_tokens",
        (json_int_t)o->completion_tokens, "cost", o->cost, "latency_ms", o->latency_ms);
    if (j && o->rc == ERR_OK) {
        json_object_set_new(j, "winner", json_string(winner_name(o->winner)));
        json_object_set_new(j, "prob_first", json_real(o->prob_first));
        json_object_set_new(j, "disagreement", json_real(o->disagreement));
        json_object_set_new(j, "noise_flipped", json_boolean(o->noise_flipped));
    } else if (j) {
        json_object_set_new(j, "error", json_string(o->error));
        json_object_set_new(j, "failure", json_string(fail_names[o->failure]));
        json_object_set_new(j, "permanent", json_boolean(o->permanent));
    }
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

/* Runs the judgement described by a with the judge the options describe. */
static int run_try(const struct annotator_opts *o, const struct try_args *a)
{
    void *zctx = NULL;
    bus_client_t *client = NULL;
    annotator_scorer_t *scorer = NULL;
    annotator_t *judge = NULL;
    struct annotator_judge_ctx ctx;
    char why[512] = "";
    int status = 2;
    int rc = ERR_OK;
    bool rm = o->judge.backend == ANNOTATOR_BACKEND_REWARD_MODEL;
    struct bus_curve curve;
    if (rm) { /* the reward-model judge asks the score service, through the ledger */
        rc = annotator_opts_curve(o, &curve, why, sizeof why);
        zctx = rc ? NULL : zmq_ctx_new();
        struct bus_client_opts co = {
            .endpoint = o->bus.clients_endpoint, .curve = &curve, .max_msg = o->bus.max_message};
        if (!rc)
            rc = zctx ? bus_client_new(&client, zctx, &co) : ERR_NOMEM;
        if (!rc)
            rc = annotator_scorer_new(&scorer, client, o->score_timeout_ms);
        if (rc && !why[0])
            snprintf(why, sizeof why, "bus.clients_endpoint %s: %s", o->bus.clients_endpoint,
                     err_str(rc));
    }
    if (!rc)
        rc = annotator_opts_judge(o, &ctx, rm ? annotator_scorer_score : NULL, scorer, &judge, why,
                                  sizeof why);
    if (rc) {
        fprintf(stderr, "oaif judge try: %s\n", why[0] ? why : err_str(rc));
        goto out;
    }
    struct annotator_request req = {
        .pair_id = a->pair_id ? a->pair_id : "try",
        .prompt = a->texts[0],
        .responses = {a->texts[1], a->texts[2]},
        .instruction = o->instruction && *o->instruction ? o->instruction : NULL,
        .reference = a->reference,
        .seed = a->seed,
    };
    struct try_result r;
    memset(&r, 0, sizeof r);
    rc = annotator_submit(judge, &req, on_done, &r);
    if (rc) {
        fprintf(stderr, "oaif judge try: the judge refused the request: %s\n", err_str(rc));
        goto out;
    }
    while (!r.done) {
        rc = annotator_poll(judge, scorer && annotator_scorer_pending(scorer) ? 5 : 100, NULL, 0);
        if (!rc && scorer)
            rc = annotator_scorer_poll(scorer, 0);
        if (rc) {
            fprintf(stderr, "oaif judge try: %s\n", err_str(rc));
            status = 1;
            goto out;
        }
    }
    if (a->json)
        print_json(&r);
    else
        print_text(&r, o->judge.tie_band);
    status = r.o.rc == ERR_OK ? 0 : 1;
out:
    annotator_destroy(&judge);
    annotator_scorer_destroy(&scorer);
    bus_client_destroy(&client);
    if (zctx)
        zmq_ctx_term(zctx);
    return status;
}

int annotator_cli_try(int argc, char **argv)
{
    struct try_args a;
    memset(&a, 0, sizeof a);
    char **cfg_argv = calloc((size_t)argc + 2, sizeof *cfg_argv);
    if (!cfg_argv)
        return 1;
    int cfg_argc = 0;
    int status = parse_args(argc, argv, &a, cfg_argv, &cfg_argc);
    bool help = false;
    for (int i = 1; i < cfg_argc; i++)
        help = help || !strcmp(cfg_argv[i], "--help") || !strcmp(cfg_argv[i], "-h");
    if (help) {
        fputs(usage, stdout);
        printf("\nannotator options:\n");
        fflush(stdout);
    }
    struct annotator_opts o;
    if (!status) {
        buf_t errs;
        buf_init(&errs, 0);
        int rc = annotator_opts_load(&o, cfg_argc, cfg_argv, &errs);
        if (rc == CFG_HELP) {
            status = -1;
        } else if (rc) {
            fprintf(stderr, "oaif judge try: %.*s", (int)errs.len,
                    errs.data ? (const char *)errs.data : "bad configuration\n");
            status = 2;
        }
        buf_free(&errs);
    }
    if (!status && (!a.texts[0] || !a.texts[1] || !a.texts[2])) {
        fprintf(stderr, "oaif judge try: needs PROMPT FIRST SECOND\n%s", usage);
        annotator_opts_release(&o);
        status = 2;
    }
    if (!status) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "oaif judge try: curl_global_init failed\n");
            status = 1;
        } else {
            status = run_try(&o, &a);
            curl_global_cleanup();
        }
        annotator_opts_release(&o);
    }
    free(cfg_argv);
    return status < 0 ? 0 : status;
}

int annotator_cli_judge(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "try") == 0)
        return annotator_cli_try(argc - 1, argv + 1);
    if (argc >= 1 &&
        (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help"))) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "oaif judge: unknown or missing verb%s%s\n%s", argc ? " " : "",
            argc ? argv[0] : "", usage);
    return 2;
}
