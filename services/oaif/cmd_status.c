/* cmd_status.c - `oaif status`: the ledger's view of the deployment: workers per service, queues,
 * in-flight requests, dead letters, rates, and the records of each kind.
 *
 * `oaif status --run NAME`: a run's live view: its current step, policy version and pairs per
 * second (its TrainStep records: the trainer's own figure since it started, and the rate over the
 * last ten steps), the queue depths and workers per service (the ledger's Status), its last
 * evaluation with the win rate's 95% interval (its EvalResult of the highest version), and the
 * judge's spend so far (cost and tokens of the Label records of the run's pairs, the Pair records
 * naming the run). On a terminal it redraws every --interval until Ctrl-C (--once: one view);
 * elsewhere, or with --json (one JSON object), it prints once. Each refresh reads only the records
 * committed since the one before. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "hmap.h"
#include "kinds.h"
#include "pbjson.h"

struct status_opts {
    struct cli_conn conn;
    bool json;
    char *run;
    int64_t interval_ms;
    bool once;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct status_opts, conn),
    CFG_BOOL_OPT(struct status_opts, json, .key = "oaif.status.json", .flag = "--json",
                 .help = "One line of JSON: the ledger's Status message, or with --run the "
                         "run's view."),
    CFG_STRING_OPT(struct status_opts, run, .key = "oaif.status.run", .flag = "--run",
                   .help = "A run's live view: step, version, pairs/s, queues, workers, last "
                           "evaluation, spend."),
    CFG_DURATION_OPT(struct status_opts, interval_ms, .key = "oaif.status.interval", .def = "2s",
                     .min = 100, .max = 3600000, .flag = "--interval",
                     .help = "How often the live view is redrawn on a terminal."),
    CFG_BOOL_OPT(struct status_opts, once, .key = "oaif.status.once", .flag = "--once",
                 .help = "Print the run's view once, even on a terminal."),
};

static const struct cfg_spec spec = {
    .name = "oaif status",
    .summary = "Workers per service, queues, in-flight requests, dead letters, rates, records;\n"
               "with --run NAME, that run's live view.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct status_opts),
};

static void print_table(const char *endpoint, const Oaif__V1__Status *s)
{
    printf("ledger %s   up %.0f s   requests %" PRIu64 "   dead letters %" PRIu64
           "   bad messages %" PRIu64 "   commit p50 %.2f ms p99 %.2f ms\n",
           endpoint, (double)s->uptime_ms / 1000.0, s->requests_total, s->dead_letters,
           s->dropped_messages, s->commit_p50_ms, s->commit_p99_ms);
    printf("\n%-18s %7s %7s %8s %9s %10s %7s %11s %9s\n", "service", "workers", "credit", "queued",
           "in-flight", "completed", "failed", "redelivered", "rate/s");
    for (size_t i = 0; i < s->n_services; i++) {
        const Oaif__V1__ServiceStatus *v = s->services[i];
        printf("%-18s %7u %7u %8" PRIu64 " %9" PRIu64 " %10" PRIu64 " %7" PRIu64 " %11" PRIu64
               " %9.1f\n",
               v->name, v->workers, v->credit, v->queued, v->in_flight, v->completed, v->failed,
               v->redelivered, v->rate);
    }
    if (!s->n_services)
        printf("(no service has been asked for or offered yet)\n");
    printf("\n%-12s %10s %10s\n", "records", "count", "last seq");
    for (size_t i = 0; i < s->n_records; i++) {
        const Oaif__V1__RecordCount *r = s->records[i];
        const char *name = kinds_name(r->kind);
        printf("%-12s %10" PRIu64 " %10" PRIu64 "\n", name ? name : "?", r->count, r->last_seq);
    }
}

/* ---- a run's view ------------------------------------------------------------------------ */

#define RECENT 10 /* steps the recent pairs/s is measured over */

struct run_view {
    const char *run;
    uint64_t after[4]; /* the last sequence number read, per scanned kind */
    /* steps */
    uint64_t steps, step, last_step_ms;
    uint32_t version;
    double loss, pairs_per_s;
    struct {
        uint64_t ms, pairs;
    } recent[RECENT];
    size_t nrecent;
    /* the evaluation of the highest version */
    Oaif__V1__EvalResult *eval;
    size_t evals;
    /* spend: labels of the run's pairs */
    hmap_t *pairs;
    uint64_t npairs, labels, prompt_tokens, completion_tokens;
    double cost;
};

static void view_step(void *ctx, const Oaif__V1__Record *rec)
{
    struct run_view *v = ctx;
    Oaif__V1__TrainStep *t = oaif__v1__train_step__unpack(NULL, rec->data.len, rec->data.data);
    if (!t)
        return;
    if (t->run && !strcmp(t->run, v->run)) {
        v->steps++;
        if (t->step >= v->step) {
            v->step = t->step;
            v->version = t->policy_version;
            v->last_step_ms = t->created_ms;
            for (size_t i = 0; i < t->n_metrics; i++) {
                if (!strcmp(t->metrics[i]->name, "loss"))
                    v->loss = t->metrics[i]->value;
                else if (!strcmp(t->metrics[i]->name, "pairs_per_s"))
                    v->pairs_per_s = t->metrics[i]->value;
            }
        }
        if (v->nrecent == RECENT) {
            memmove(v->recent, v->recent + 1, (RECENT - 1) * sizeof v->recent[0]);
            v->nrecent--;
        }
        v->recent[v->nrecent].ms = t->created_ms;
        v->recent[v->nrecent++].pairs = t->n_pair_ids;
    }
    oaif__v1__train_step__free_unpacked(t, NULL);
}

static void view_eval(void *ctx, const Oaif__V1__Record *rec)
{
    struct run_view *v = ctx;
    Oaif__V1__EvalResult *e = oaif__v1__eval_result__unpack(NULL, rec->data.len, rec->data.data);
    if (!e)
        return;
    if (e->run && !strcmp(e->run, v->run) && (!v->eval || e->version >= v->eval->version)) {
        v->evals++;
        if (v->eval)
            oaif__v1__eval_result__free_unpacked(v->eval, NULL);
        v->eval = e; /* the highest version, the latest record of it */
        return;
    }
    if (e->run && !strcmp(e->run, v->run))
        v->evals++;
    oaif__v1__eval_result__free_unpacked(e, NULL);
}

static void view_pair(void *ctx, const Oaif__V1__Record *rec)
{
    struct run_view *v = ctx;
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, rec->data.len, rec->data.data);
    if (!p)
        return;
    if (p->run && !strcmp(p->run, v->run) && p->id && !hmap_get(v->pairs, p->id, strlen(p->id)) &&
        hmap_put(v->pairs, p->id, strlen(p->id), (void *)1) == 0)
        v->npairs++;
    oaif__v1__pair__free_unpacked(p, NULL);
}

static void view_label(void *ctx, const Oaif__V1__Record *rec)
{
    struct run_view *v = ctx;
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, rec->data.len, rec->data.data);
    if (!l)
        return;
    if (l->pair_id && hmap_get(v->pairs, l->pair_id, strlen(l->pair_id))) {
        v->labels++;
        v->cost += l->cost;
        v->prompt_tokens += l->prompt_tokens;
        v->completion_tokens += l->completion_tokens;
    }
    oaif__v1__label__free_unpacked(l, NULL);
}

/* Reads what was committed since the last refresh: steps, evaluations, pairs, then labels (a label
 * counts when its pair was read before it, as the sampler commits a pair before it is judged). */
static int view_refresh(struct cli_ledger *l, struct run_view *v)
{
    static const struct {
        Oaif__V1__RecordKind kind;
        void (*fn)(void *, const Oaif__V1__Record *);
    } scans[] = {
        {OAIF__V1__RECORD_KIND__RECORD_KIND_STEP, view_step},
        {OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, view_eval},
        {OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, view_pair},
        {OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, view_label},
    };
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof scans / sizeof scans[0]; i++)
        rc = cli_ledger_scan_from(l, scans[i].kind, &v->after[i], scans[i].fn, v);
    return rc;
}

/* Pairs per second over the last RECENT steps (0 with fewer than two). */
static double recent_rate(const struct run_view *v)
{
    if (v->nrecent < 2 || v->recent[v->nrecent - 1].ms <= v->recent[0].ms)
        return 0;
    uint64_t pairs = 0;
    for (size_t i = 1; i < v->nrecent; i++)
        pairs += v->recent[i].pairs;
    return (double)pairs * 1000.0 / (double)(v->recent[v->nrecent - 1].ms - v->recent[0].ms);
}

static json_t *view_json(const struct run_view *v, const Oaif__V1__Status *s)
{
    json_t *svcs = json_array();
    for (size_t i = 0; i < s->n_services; i++) {
        const Oaif__V1__ServiceStatus *x = s->services[i];
        json_array_append_new(
            svcs, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "name", x->name, "workers",
                            (json_int_t)x->workers, "queued", (json_int_t)x->queued, "in_flight",
                            (json_int_t)x->in_flight, "completed", (json_int_t)x->completed,
                            "failed", (json_int_t)x->failed, "rate", x->rate));
    }
    json_t *train =
        v->steps ? json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:I}", "steps", (json_int_t)v->steps,
                             "step", (json_int_t)v->step, "policy_version", (json_int_t)v->version,
                             "loss", v->loss, "pairs_per_s", v->pairs_per_s, "pairs_per_s_recent",
                             recent_rate(v), "last_step_ms", (json_int_t)v->last_step_ms)
                 : json_null();
    const Oaif__V1__EvalResult *e = v->eval;
    json_t *ev =
        e ? json_pack("{s:I, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}", "version",
                      (json_int_t)e->version, "judge", e->judge, "win_rate", e->win_rate,
                      "win_rate_lo", e->win_rate_lo, "win_rate_hi", e->win_rate_hi, "lc_win_rate",
                      e->lc_win_rate, "accuracy", e->accuracy, "kl", e->kl, "prompts",
                      (json_int_t)e->prompts, "evaluations", (json_int_t)v->evals)
          : json_null();
    return json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:{s:f, s:I, s:I, s:I}}", "run", v->run,
                     "ledger_uptime_ms", (json_int_t)s->uptime_ms, "dead_letters",
                     (json_int_t)s->dead_letters, "pairs", (json_int_t)v->npairs, "services", svcs,
                     "train", train, "last_eval", ev, "spend", "cost", v->cost, "labels",
                     (json_int_t)v->labels, "prompt_tokens", (json_int_t)v->prompt_tokens,
                     "completion_tokens", (json_int_t)v->completion_tokens);
}

static void view_print(const char *endpoint, const struct run_view *v, const Oaif__V1__Status *s)
{
    time_t now = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
    printf("run %s   ledger %s   %s\n\n", v->run, endpoint, when);
    if (v->steps)
        printf("step %" PRIu64 "   policy v%u   loss %.4f   pairs/s %.1f (last %zu steps: "
               "%.1f)   %" PRIu64 " steps recorded\n",
               v->step, v->version, v->loss, v->pairs_per_s, v->nrecent, recent_rate(v), v->steps);
    else
        printf("no training step recorded yet\n");
    const Oaif__V1__EvalResult *e = v->eval;
    if (e)
        printf("last evaluation v%u (%s, %u prompts): win rate %.3f [%.3f, %.3f], LC %.3f, "
               "accuracy %.1f%%, KL %.3f\n",
               e->version, e->judge, e->prompts, e->win_rate, e->win_rate_lo, e->win_rate_hi,
               e->lc_win_rate, 100 * e->accuracy, e->kl);
    else
        printf("no evaluation recorded yet\n");
    printf("spend %.4f over %" PRIu64 " judgements of %" PRIu64 " pairs (tokens %" PRIu64
           " prompt + %" PRIu64 " completion)\n",
           v->cost, v->labels, v->npairs, v->prompt_tokens, v->completion_tokens);
    printf("\n%-18s %7s %8s %9s %10s %7s %9s\n", "service", "workers", "queued", "in-flight",
           "completed", "failed", "rate/s");
    for (size_t i = 0; i < s->n_services; i++) {
        const Oaif__V1__ServiceStatus *x = s->services[i];
        printf("%-18s %7u %8" PRIu64 " %9" PRIu64 " %10" PRIu64 " %7" PRIu64 " %9.1f\n", x->name,
               x->workers, x->queued, x->in_flight, x->completed, x->failed, x->rate);
    }
    if (!s->n_services)
        printf("(no service has been asked for or offered yet)\n");
    fflush(stdout);
}

static volatile sig_atomic_t view_stop;

static void on_sigint(int sig)
{
    (void)sig;
    view_stop = 1;
}

/* The run's view: once (JSON or text), or redrawn on a terminal until Ctrl-C. */
static int run_view(struct cli_ledger *l, const struct status_opts *o)
{
    struct run_view v = {.run = o->run, .pairs = hmap_new()};
    if (!v.pairs)
        return 1;
    bool live = !o->json && !o->once && isatty(STDOUT_FILENO);
    if (live) {
        struct sigaction sa = {.sa_handler = on_sigint};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    int status = 0;
    do {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_status(l->client, l->timeout_ms, &env);
        status = rc ? cli_ledger_failed(l, rc) : view_refresh(l, &v);
        if (!status && o->json) {
            json_t *j = view_json(&v, env->status);
            char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            if (line)
                printf("%s\n", line);
            else
                status = 1;
            free(line);
            json_decref(j);
        } else if (!status) {
            if (live)
                fputs("\033[H\033[2J", stdout); /* home, clear: redraw in place */
            view_print(o->conn.clients_endpoint, &v, env->status);
        }
        if (env)
            oaif__v1__envelope__free_unpacked(env, NULL);
        for (int64_t slept = 0; live && !status && !view_stop && slept < o->interval_ms;
             slept += 50)
            nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000L}, NULL);
    } while (live && !status && !view_stop);
    if (v.eval)
        oaif__v1__eval_result__free_unpacked(v.eval, NULL);
    hmap_destroy(&v.pairs);
    return status;
}

int cmd_status(int argc, char **argv)
{
    struct status_opts o = {0};
    int npos, rc = cli_load("oaif status", &spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    struct cli_ledger l = {0};
    Oaif__V1__Envelope *env = NULL;
    int status = cli_ledger_open(&l, "oaif status", &o.conn);
    if (!status && o.run && o.run[0]) {
        status = run_view(&l, &o);
    } else {
        if (!status && (rc = bus_client_status(l.client, l.timeout_ms, &env)))
            status = cli_ledger_failed(&l, rc);
        if (!status && o.json) {
            buf_t b;
            buf_init(&b, 0);
            pbjson_append(&b, &env->status->base);
            printf("%s\n", b.data);
            buf_free(&b);
        } else if (!status) {
            print_table(o.conn.clients_endpoint, env->status);
        }
    }
    if (env)
        oaif__v1__envelope__free_unpacked(env, NULL);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
