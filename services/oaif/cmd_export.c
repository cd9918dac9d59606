/* cmd_export.c - `oaif export KIND`: every record of a kind, in commit order, as JSONL on stdout:
 * {"kind", "id", "seq", "time_ms", "data"}, data as the record's message in JSON (base64 for the
 * kinds that are opaque bytes: cache, meta). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "kinds.h"
#include "pbjson.h"

struct export_opts {
    struct cli_conn conn;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct export_opts, conn),
};

static const struct cfg_spec spec = {
    .name = "oaif export KIND",
    .summary = "Records of a kind as JSONL on stdout. KIND: prompts pairs labels scores strengths\n"
               "checkpoints evals steps cache meta.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct export_opts),
};

static const ProtobufCMessageDescriptor *kind_descriptor(Oaif__V1__RecordKind k)
{
    switch (k) {
    case OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT:
        return &oaif__v1__prompt__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR:
        return &oaif__v1__pair__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL:
        return &oaif__v1__label__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES:
        return &oaif__v1__scores__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH:
        return &oaif__v1__strength__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT:
        return &oaif__v1__checkpoint__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL:
        return &oaif__v1__eval_result__descriptor;
    case OAIF__V1__RECORD_KIND__RECORD_KIND_STEP:
        return &oaif__v1__train_step__descriptor;
    default:
        return NULL; /* cache, meta: opaque bytes */
    }
}

struct export_run {
    Oaif__V1__RecordKind kind;
    const ProtobufCMessageDescriptor *desc; /* NULL: opaque bytes */
    buf_t line;
    size_t total;
};

/* One record as a JSONL line on stdout. */
static void print_record(void *ctx, const Oaif__V1__Record *rec)
{
    struct export_run *run = ctx;
    buf_t *b = &run->line;
    buf_reset(b);
    buf_printf(b, "{\"kind\":\"%s\",\"id\":", kinds_name(run->kind));
    pbjson_append_string(b, rec->id, strlen(rec->id));
    buf_printf(b, ",\"seq\":%" PRIu64 ",\"time_ms\":%" PRIu64 ",\"data\":", rec->seq, rec->time_ms);
    ProtobufCMessage *m =
        run->desc ? protobuf_c_message_unpack(run->desc, NULL, rec->data.len, rec->data.data)
                  : NULL;
    if (m) {
        pbjson_append(b, m);
        protobuf_c_message_free_unpacked(m, NULL);
    } else {
        pbjson_append_base64(b, rec->data.data, rec->data.len);
    }
    buf_append_str(b, "}");
    puts(b->data);
    run->total++;
}

int cmd_export(int argc, char **argv)
{
    static const char verb[] = "oaif export";
    struct export_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 1, &npos);
    if (rc)
        return cli_exit_status(rc);
    struct export_run run = {0};
    if (npos != 1 || kinds_parse(argv[0], &run.kind)) {
        fprintf(stderr, "usage: oaif export KIND   (KIND: prompts pairs labels scores strengths "
                        "checkpoints evals steps cache meta)\n");
        cfg_release(&spec, &o);
        return 2;
    }
    run.desc = kind_descriptor(run.kind);
    buf_init(&run.line, 0);
    struct cli_ledger l = {0};
    int status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = cli_ledger_scan(&l, run.kind, print_record, &run);
    fflush(stdout);
    if (!status)
        fprintf(stderr, "oaif: exported %zu %s\n", run.total, kinds_name(run.kind));
    buf_free(&run.line);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
