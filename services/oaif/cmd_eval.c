/* cmd_eval.c - `oaif eval`, in two modes:
 *  - `oaif eval --policy DIR`: a policy against the SFT model on the built-in task's eval split
 *    (accuracy, length, win rate by the noise-free rules judge in both orders), in this process.
 *    The options are the trainer's eval table (trainer_eval_opts_spec, trainer_opts.h, where each
 *    default is written); the work is trainer_eval_run (evaluate.h).
 *  - `oaif eval --version N [--run RUN]`: through the ledger, an `evaluate` request for version N
 *    of a run to the evaluator service (services/evaluator), which answers from the version's
 *    EvalResult when it has one and evaluates it otherwise; the EvalResult is printed (--json: the
 *    record as JSON). The options are the table below. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "evaluate.h"
#include "pbjson.h"
#include "trainer_opts.h"

struct eval_ledger_opts {
    struct cli_conn conn;
    int64_t version;
    char *run;
    int64_t baseline;
    int64_t wait_ms;
    bool json;
};

#define O struct eval_ledger_opts
static const struct cfg_option ledger_options[] = {
    CLI_CONN_OPTIONS(O, conn),
    CFG_LONG_OPT(O, version, .key = "oaif.eval.version", .min = 1, .max = 4294967295LL,
                 .flag = "--version",
                 .help = "The policy version evaluated (a published checkpoint of the run)."),
    CFG_STRING_OPT(O, run, .key = "oaif.eval.run", .flag = "--run",
                   .help = "Its run (the trainer's --run); unset: the evaluator's evaluator.run."),
    CFG_LONG_OPT(O, baseline, .key = "oaif.eval.baseline", .def = "0", .min = 0,
                 .max = 4294967295LL, .flag = "--baseline",
                 .help = "The baseline version (the evaluator's evaluator.baseline_version)."),
    CFG_DURATION_OPT(O, wait_ms, .key = "oaif.eval.wait", .def = "10m", .min = 1, .max = 86400000,
                     .flag = "--wait",
                     .help = "How long to wait for the evaluation (sampling and judging)."),
    CFG_BOOL_OPT(O, json, .key = "oaif.eval.json", .flag = "--json",
                 .help = "The EvalResult record as one JSON object."),
};
#undef O

static const struct cfg_spec ledger_spec = {
    .name = "oaif eval --version",
    .summary = "Version N of a run evaluated by the evaluator service through the ledger (an\n"
               "evaluate request; a version evaluated already is answered from its EvalResult),\n"
               "and its EvalResult printed. Without --version: oaif eval --policy DIR (--help).",
    .options = ledger_options,
    .n_options = sizeof ledger_options / sizeof ledger_options[0],
    .conf_size = sizeof(struct eval_ledger_opts),
};

/* The EvalResult's metric `name`, or `def`. */
static double metric_of(const Oaif__V1__EvalResult *r, const char *name, double def)
{
    for (size_t i = 0; i < r->n_metrics; i++)
        if (strcmp(r->metrics[i]->name, name) == 0)
            return r->metrics[i]->value;
    return def;
}

static void print_result(const Oaif__V1__EvalResult *r)
{
    printf("%s: %s v%u against v%u on %u prompts, judge %s\n", r->id, r->run, r->version,
           r->baseline_version, r->prompts, r->judge);
    printf("win rate     %.4f  95%% [%.4f, %.4f]  se %.4f  (wins-ties-losses %u-%u-%u)\n",
           r->win_rate, r->win_rate_lo, r->win_rate_hi, r->win_rate_se, r->wins, r->ties,
           r->losses);
    printf("LC win rate  %.4f\n", r->lc_win_rate);
    printf("accuracy     %.4f  se %.4f  (baseline %.4f, %.0f checked)\n", r->accuracy,
           r->accuracy_se, metric_of(r, "baseline_accuracy", 0), metric_of(r, "checked", 0));
    printf("length       %.1f  (baseline %.1f)\n", r->mean_length, r->baseline_mean_length);
    if (metric_of(r, "has_kl", r->kl != 0) != 0)
        printf("KL           %.4f  se %.4f\n", r->kl, r->kl_se);
    else
        printf("KL           not known\n");
    if (metric_of(r, "has_rm_accuracy", 0) != 0)
        printf("RM accuracy  %.4f  (%.0f held-out pairs)\n", r->rm_accuracy,
               metric_of(r, "rm_pairs", 0));
}

static int eval_ledger(int argc, char **argv)
{
    static const char verb[] = "oaif eval";
    struct eval_ledger_opts o = {0};
    int npos, rc = cli_load(verb, &ledger_spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    struct cli_ledger l = {0};
    int status = cli_ledger_open(&l, verb, &o.conn);
    Oaif__V1__Envelope *env = NULL;
    if (!status) {
        Oaif__V1__EvaluateRequest rq = OAIF__V1__EVALUATE_REQUEST__INIT;
        rq.version = (uint32_t)o.version;
        rq.baseline_version = (uint32_t)o.baseline;
        rq.run = o.run ? o.run : (char *)"";
        uint8_t buf[600];
        size_t n = oaif__v1__evaluate_request__get_packed_size(&rq);
        /* a new id each time: a version already evaluated is answered from its record anyway,
         * and a failure (no such version yet) must not be the stored answer to every later ask */
        char id[400];
        snprintf(id, sizeof id, "cli-eval-%.200s-v%" PRId64 "-b%" PRId64 "-%" PRIu64, rq.run,
                 o.version, o.baseline, bus_now_ms());
        if (n > sizeof buf) {
            cli_error(verb, "--run: '%.40s...' is too long", rq.run);
            status = 2;
        } else {
            oaif__v1__evaluate_request__pack(&rq, buf);
            rc = bus_client_call(l.client, "evaluate", id, buf, n, (int)o.wait_ms, &env);
            if (rc == ERR_TIMEOUT) {
                cli_error(verb,
                          "no answer from the evaluate service in %" PRId64 " ms (is an "
                          "evaluator running? oaif up --evaluators 1; oaif status)",
                          o.wait_ms);
                status = 1;
            } else if (rc) {
                status = cli_ledger_failed(&l, rc);
            }
        }
    }
    Oaif__V1__EvaluateReply *rep = NULL;
    if (!status && env->reply->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        cli_error(verb, "v%" PRId64 " of run '%s': %s", o.version, o.run ? o.run : "",
                  env->reply->error);
        status = 1;
    } else if (!status) {
        rep = oaif__v1__evaluate_reply__unpack(NULL, env->reply->payload.len,
                                               env->reply->payload.data);
        if (!rep || !rep->result) {
            cli_error(verb, "the evaluator's reply is not an EvaluateReply with a result");
            status = 1;
        }
    }
    if (!status && o.json) {
        buf_t b;
        buf_init(&b, 0);
        if (pbjson_append(&b, &rep->result->base) == ERR_OK)
            printf("%s\n", b.data);
        else
            status = 1;
        buf_free(&b);
    } else if (!status) {
        print_result(rep->result);
    }
    if (rep)
        oaif__v1__evaluate_reply__free_unpacked(rep, NULL);
    if (env)
        oaif__v1__envelope__free_unpacked(env, NULL);
    cli_ledger_close(&l);
    cfg_release(&ledger_spec, &o);
    return status;
}

/* Whether the words ask for the ledger mode (a --version flag). */
static bool wants_ledger(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--version") == 0 || strncmp(argv[i], "--version=", 10) == 0)
            return true;
    }
    return false;
}

int cmd_eval(int argc, char **argv)
{
    static const char verb[] = "oaif eval";
    if (wants_ledger(argc, argv))
        return eval_ledger(argc, argv);
    struct trainer_eval_opts o = {0};
    int npos, rc = cli_load(verb, &trainer_eval_opts_spec, &o, argc, argv, 0, &npos);
    if (rc == CFG_HELP)
        printf("\nThrough the ledger: oaif eval --version N [--run RUN] [--json] (oaif eval "
               "--version 1 --help).\n");
    if (rc)
        return cli_exit_status(rc);
    char err[1024];
    int status = 0;
    if (trainer_eval_validate(&o, err, sizeof err)) {
        cli_error(verb, "%s (see oaif eval --help)", err);
        status = 2;
    } else if (trainer_eval_run(&o, stdout, err, sizeof err)) {
        cli_error(verb, "%s", err);
        status = 1;
    }
    trainer_eval_release(&o);
    return status;
}
