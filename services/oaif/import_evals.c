/* import_evals.c - `oaif import evals FILE.jsonl`: EvalResult records as `oaif export evals`
 * writes them, put into this ledger. A deployment serves one run (its ledger's policy versions
 * are that run's), so runs of several settings and seeds live in several ledgers; gathered in
 * one, `oaif compare` pairs them seed by seed and `oaif report --runs` draws them on one chart
 * (deploy/study.sh does both).
 *
 * Each line is one exported record (or its "data" alone): an EvalResult object in pbjson.h's
 * mapping (field names as in the .proto, proto3 defaults left out); an unknown field or a value of
 * the wrong type imports nothing, with the line and field named. The record id is "<run>/<id>": the
 * trainer's own evaluations are "eval-policy-v<N>" in every run's ledger, and the run makes them
 * distinct. The put id comes from the file's records, and ids already present are kept, so the same
 * import twice adds nothing. Exit status 0 done, 1 the file or the ledger failed, 2 bad usage. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buscheck.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "evals.h"
#include "sha256.h"

struct import_evals_opts {
    struct cli_conn conn;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct import_evals_opts, conn),
};

static const struct cfg_spec spec = {
    .name = "oaif import evals FILE.jsonl",
    .summary = "Adds EvalResult records, one JSON object a line as `oaif export evals` writes\n"
               "them, to the ledger under the id \"<run>/<id>\", so that runs made on other\n"
               "deployments are compared (oaif compare) and charted (oaif report --runs) here.\n"
               "FILE - reads stdin. Ids already present are kept.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct import_evals_opts),
};

int cmd_import_evals(int argc, char **argv)
{
    static const char verb[] = "oaif import";
    struct import_evals_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 2, &npos);
    if (rc)
        return cli_exit_status(rc);
    if (npos != 2 || strcmp(argv[0], "evals") != 0) {
        cli_error(verb, "usage: oaif import evals FILE [--clients EP] (see --help)");
        cfg_release(&spec, &o);
        return 2;
    }
    char err[1024];
    struct cli_packed_list recs = {0};
    Oaif__V1__Record *rv = NULL, **rp = NULL;
    struct cli_ledger l = {0};
    int status = 0;
    if (cli_jsonl_read(argv[1], evals_line, &recs, err, sizeof err)) {
        cli_error(verb, "%s (nothing was imported)", err);
        status = 1;
    }
    if (!status && recs.n == 0) {
        cli_error(verb, "%s: no EvalResult to import", argv[1]);
        status = 1;
    }
    if (!status && recs.n > BUS_PUT_RECORDS_MAX) {
        cli_error(verb,
                  "%s: %zu EvalResults, over the %d one atomic put takes (nothing was "
                  "imported): split the file",
                  argv[1], recs.n, BUS_PUT_RECORDS_MAX);
        status = 1;
    }
    if (!status && (!(rv = calloc(recs.n, sizeof *rv)) || !(rp = calloc(recs.n, sizeof *rp)))) {
        cli_error(verb, "out of memory");
        status = 1;
    }
    struct sha256 sc;
    sha256_init(&sc);
    for (size_t i = 0; !status && i < recs.n; i++) {
        oaif__v1__record__init(&rv[i]);
        rv[i].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL;
        rv[i].id = recs.items[i].id;
        rv[i].data.data = recs.items[i].data;
        rv[i].data.len = recs.items[i].len;
        rp[i] = &rv[i];
        sha256_update(&sc, recs.items[i].id, strlen(recs.items[i].id) + 1);
        sha256_update(&sc, recs.items[i].data, recs.items[i].len);
    }
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status) {
        /* One put, atomic: EvalResults are small (a few hundred bytes each). */
        uint8_t h[32];
        char put_id[40] = "import-evals-";
        sha256_final(&sc, h);
        cli_hex(put_id + strlen(put_id), h, 12);
        rc = bus_client_put(l.client, put_id, rp, recs.n, true, l.timeout_ms);
        if (rc)
            status = cli_ledger_failed(&l, rc);
    }
    if (!status)
        printf("imported %zu evaluations from %s (ids already present were kept)\n", recs.n,
               argv[1]);
    free(rv);
    free(rp);
    cli_packed_free(&recs);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
