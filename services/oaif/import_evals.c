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

/* Sets scalar field f of m from v (strings borrowed from v). ERR_INVAL with err written. */
static int set_scalar(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v,
                      const char *where, char *err, size_t errlen)
{
    void *p = (char *)m + f->offset;
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;
    switch (f->type) {
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!json_is_number(v))
            break;
        *(double *)p = json_number_value(v);
        return ERR_OK;
    case PROTOBUF_C_TYPE_UINT32:
        if (i < 0 || i > (json_int_t)UINT32_MAX)
            break;
        *(uint32_t *)p = (uint32_t)i;
        return ERR_OK;
    case PROTOBUF_C_TYPE_UINT64:
        if (i < 0)
            break;
        *(uint64_t *)p = (uint64_t)i;
        return ERR_OK;
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            break;
        *(const char **)p = json_string_value(v);
        return ERR_OK;
    default:
        snprintf(err, errlen, "%s: field \"%s\": a type oaif import evals does not read", where,
                 f->name);
        return ERR_INVAL;
    }
    snprintf(err, errlen, "%s: field \"%s\": expected %s", where, f->name,
             f->type == PROTOBUF_C_TYPE_STRING   ? "a string"
             : f->type == PROTOBUF_C_TYPE_DOUBLE ? "a number"
                                                 : "a non-negative integer in range");
    return ERR_INVAL;
}

/* The "metrics" array of {name, value} into r (arrays malloc'd into *store, names borrowed). */
static int set_metrics(Oaif__V1__EvalResult *r, json_t *v, Oaif__V1__Metric **store,
                       const char *where, char *err, size_t errlen)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s: field \"metrics\": expected an array", where);
        return ERR_INVAL;
    }
    *store = calloc(n ? n : 1, sizeof **store);
    r->metrics = calloc(n ? n : 1, sizeof *r->metrics);
    if (!*store || !r->metrics) {
        snprintf(err, errlen, "%s: out of memory", where);
        return ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *o = json_array_get(v, k), *name = json_object_get(o, "name"),
               *val = json_object_get(o, "value");
        if (!json_is_string(name) || (val && !json_is_number(val))) {
            snprintf(err, errlen,
                     "%s: metrics[%zu]: expected {\"name\": string, \"value\": number}", where, k);
            return ERR_INVAL;
        }
        oaif__v1__metric__init(&(*store)[k]);
        (*store)[k].name = (char *)json_string_value(name);
        (*store)[k].value = val ? json_number_value(val) : 0; /* proto3 leaves 0 out */
        r->metrics[k] = &(*store)[k];
    }
    r->n_metrics = n;
    return ERR_OK;
}

/* One line: checked, packed under "<run>/<id>" onto the list (ctx). `oaif export` wraps each
 * record ({"kind": "evals", "id", "seq", "time_ms", "data": {...}}): the EvalResult is its data. */
static int add_eval(void *ctx, json_t *o, const char *where, char *err, size_t errlen)
{
    json_t *kind = json_object_get(o, "kind"), *data = json_object_get(o, "data");
    if (json_is_object(data)) {
        if (!json_is_string(kind) || strcmp(json_string_value(kind), "evals") != 0) {
            snprintf(err, errlen, "%s: a record of kind %s, not evals", where,
                     json_is_string(kind) ? json_string_value(kind) : "(none)");
            return ERR_INVAL;
        }
        o = data;
    }
    Oaif__V1__EvalResult r = OAIF__V1__EVAL_RESULT__INIT;
    Oaif__V1__Metric *ms = NULL;
    const char *key;
    json_t *v;
    int rc = ERR_OK;
    json_object_foreach(o, key, v)
    {
        if (rc)
            break;
        if (!strcmp(key, "metrics")) {
            rc = set_metrics(&r, v, &ms, where, err, errlen);
            continue;
        }
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
            &oaif__v1__eval_result__descriptor, key);
        if (!f) {
            snprintf(err, errlen, "%s: unknown field \"%s\" (not an EvalResult's)", where, key);
            rc = ERR_INVAL;
        } else {
            rc = set_scalar(&r.base, f, v, where, err, errlen);
        }
    }
    if (!rc && (!*r.id || !*r.run)) {
        snprintf(err, errlen, "%s: field \"%s\": missing or empty", where, *r.id ? "run" : "id");
        rc = ERR_INVAL;
    }
    char id[600];
    if (!rc && (size_t)snprintf(id, sizeof id, "%s/%s", r.run, r.id) >= sizeof id) {
        snprintf(err, errlen, "%s: the run and id are too long for a record id", where);
        rc = ERR_INVAL;
    }
    if (!rc && cli_packed_add(ctx, id, &r.base)) {
        snprintf(err, errlen, "%s: out of memory", where);
        rc = ERR_NOMEM;
    }
    free(ms);
    free(r.metrics);
    return rc;
}

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
    if (cli_jsonl_read(argv[1], add_eval, &recs, err, sizeof err)) {
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
