/* cmd_sft.c - `oaif sft [--quick] [options]`: SFT of the built-in policy (or of --init on --data),
 * written as checkpoint version 0 (trainer_sft_run), and recorded in the ledger when one is named
 * (trainer_sft_publish); `oaif sft --help` lists the options.
 *
 * The options are the trainer's SFT table (trainer_sft_opts_spec, trainer_opts.h), where each
 * default is written, and the CLI's common connection options (cli.h), loaded together. Two
 * things are this verb's own:
 *   --quick   not an option but a preset: trainer_sft_quick's defaults in place of the table's,
 *             so the run file, the environment and the flags still override them;
 *   publishing  only when the ledger's endpoint is given (--clients, its old name --ledger,
 *             bus.clients_endpoint in the run file, $BUS_CLIENTS_ENDPOINT or $OAIF_LEDGER): the
 *             connection rows are cli.h's with bus.clients_endpoint's default left out, as SFT
 *             runs before there is a ledger (deploy/demo.sh). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "nn_threads.h"
#include "sft.h"
#include "trainer_opts.h"

static const char verb[] = "oaif sft";

/* What `oaif sft` loads: the SFT options and where to publish. */
struct sft_cli {
    struct trainer_sft_opts sft;
    struct cli_conn conn; /* clients_endpoint NULL: not published */
};

static const struct cfg_option conn_rows[] = {CLI_CONN_OPTIONS(struct sft_cli, conn)};
#define N_CONN (sizeof conn_rows / sizeof conn_rows[0])

static const char quick_help[] =
    "--quick: the defaults of a run of seconds (tests, smoke checks): see them with --quick "
    "--help.\nWith the ledger's endpoint given (--clients, bus.clients_endpoint, "
    "$BUS_CLIENTS_ENDPOINT), the\ncheckpoint is also recorded there.";

/* The table: the SFT rows (with --quick's defaults when quick) and the connection rows, into
 * *rows (malloc'd; free after the last cfg call on spec) and *spec. ERR_OK or ERR_NOMEM. */
static int make_spec(struct cfg_spec *spec, struct cfg_option **rows, char *summary, size_t cap,
                     bool quick)
{
    size_t ns = trainer_sft_opts_spec.n_options;
    struct cfg_option *r = calloc(ns + N_CONN, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    trainer_opts_rows(r, &trainer_sft_opts_spec, offsetof(struct sft_cli, sft),
                      quick ? trainer_sft_quick : NULL);
    memcpy(r + ns, conn_rows, sizeof conn_rows);
    for (size_t i = ns; i < ns + N_CONN; i++)
        if (!strcmp(r[i].key, "bus.clients_endpoint"))
            r[i].def = NULL; /* no ledger unless one is named */
    snprintf(summary, cap, "%s\n%s", trainer_sft_opts_spec.summary, quick_help);
    *spec = (struct cfg_spec){
        .name = verb,
        .summary = summary,
        .options = r,
        .n_options = ns + N_CONN,
        .conf_size = sizeof(struct sft_cli),
    };
    *rows = r;
    return ERR_OK;
}

/* Records the checkpoint in the ledger at o->conn. Returns the exit status. */
static int publish(const struct sft_cli *o, const struct trainer_sft_outcome *oc)
{
    struct cli_ledger l;
    int status = cli_ledger_open(&l, "oaif sft: publishing the checkpoint", &o->conn);
    if (!status) {
        int rc = trainer_sft_publish(l.client, oc, l.timeout_ms);
        if (rc)
            status = cli_ledger_failed(&l, rc);
        else
            printf("sft: published checkpoint sft-v0 (sha256 %.16s...) to %s\n", oc->sha256,
                   o->conn.clients_endpoint);
    }
    cli_ledger_close(&l);
    return status;
}

/* Trains (or finds the cached checkpoint), prints what it did, publishes. The exit status. */
static int run(const struct sft_cli *o)
{
    const struct trainer_sft_opts *s = &o->sft;
    const char *what = s->data_path || s->init_dir ? "SFT" : "SFT of the built-in policy";
    char err[1024];
    struct trainer_sft_outcome *oc = malloc(sizeof *oc);
    if (!oc) {
        cli_error(verb, "out of memory");
        return 1;
    }
    if (!s->data_path && !s->init_dir) {
        struct nn_config c;
        trainer_builtin_config(&c);
        fprintf(stderr, "sft: %s: %zu parameters (%d layers, width %d), %ld steps of %d\n", what,
                nn_config_num_params(&c), c.num_hidden_layers, c.hidden_size, s->steps, s->batch);
    }
    if (trainer_sft_run(s, oc, err, sizeof err)) {
        cli_error(verb, "%s", err);
        free(oc);
        return 1;
    }
    const struct trainer_sft_result *r = &oc->res;
    if (oc->cached)
        printf("sft: %s (cached): %s has the same settings and seed; not retrained\n", what,
               oc->dir);
    else
        printf("sft: %s: %ld steps on %zu pairs in %.1f s (%.0f tok/s); loss %.3f -> %.3f\n", what,
               r->steps, r->pairs, r->seconds, r->tokens_per_s, r->first_loss, r->final_loss);
    if (r->truncated)
        printf("sft: %zu responses were cut at %d tokens\n", r->truncated, s->max_len);
    if (r->evaluated)
        trainer_eval_print(stdout, "sft: eval", &r->eval);
    printf("sft: checkpoint %s (sha256 %s)\n", oc->dir, oc->sha256);
    fflush(stdout);
    int status = o->conn.clients_endpoint ? publish(o, oc) : 0;
    free(oc);
    return status;
}

int cmd_sft(int argc, char **argv)
{
    /* --quick picks the defaults, so it is read before the rest (and not passed on) */
    char **av = calloc((size_t)argc + 1, sizeof *av);
    if (!av) {
        cli_error(verb, "out of memory");
        return 1;
    }
    bool quick = false, positional = false;
    int ac = 0;
    for (int i = 0; i < argc; i++) {
        positional = positional || !strcmp(argv[i], "--");
        if (!positional && !strcmp(argv[i], "--quick"))
            quick = true;
        else
            av[ac++] = argv[i];
    }
    struct cfg_spec spec;
    struct cfg_option *rows = NULL;
    char summary[1024];
    struct sft_cli o = {0};
    int npos, status;
    int rc = make_spec(&spec, &rows, summary, sizeof summary, quick);
    if (rc) {
        cli_error(verb, "out of memory");
        free(av);
        return 1;
    }
    rc = cli_load(verb, &spec, &o, ac, av, 0, &npos);
    if (rc) {
        status = cli_exit_status(rc);
    } else {
        char err[1024];
        if (trainer_sft_validate(&o.sft, err, sizeof err)) {
            cli_error(verb, "%s", err);
            status = 2;
        } else {
            nn_threads_setup(verb, o.sft.threads); /* may execute the program again */
            status = run(&o);
        }
        cfg_release(&spec, &o);
    }
    free(rows);
    free(av);
    return status;
}
