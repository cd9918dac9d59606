/* cmd_export.c - `oaif export KIND`: every record of a kind, in commit order, as JSONL on stdout:
 * {"kind", "id", "seq", "time_ms", "data"}, data as the record's message in JSON (base64 for the
 * kinds that are opaque bytes: cache, meta). `oaif export pairs --format trl|hh [--dataset NAME]`:
 * the labeled pairs as preference data instead (pairs.h writes the lines), the label's winner as
 * chosen, in the form `oaif import pairs` reads back as the same pairs. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "hmap.h"
#include "kinds.h"
#include "pairs.h"
#include "pbjson.h"

struct export_opts {
    struct cli_conn conn;
    int format; /* PAIRS_FORMAT_AUTO: the records themselves; else PAIRS_FORMAT_TRL or _HH */
    char *dataset;
};

static const struct cfg_choice formats[] = {
    {"records", PAIRS_FORMAT_AUTO}, {"trl", PAIRS_FORMAT_TRL}, {"hh", PAIRS_FORMAT_HH}, {NULL, 0}};

static const struct cfg_option options[] = {
    CFG_ENUM_OPT(struct export_opts, format, .key = "oaif.export.format", .def = "records",
                 .choices = formats, .flag = "--format",
                 .help = "records: each record as JSON; trl, hh (pairs only): labeled pairs as "
                         "preference data, ties left out."),
    CFG_STRING_OPT(struct export_opts, dataset, .key = "oaif.export.dataset", .flag = "--dataset",
                   .help = "With --format trl|hh: only the pairs of this dataset (Pair.run)."),
    CLI_CONN_OPTIONS(struct export_opts, conn),
};

static const struct cfg_spec spec = {
    .name = "oaif export KIND",
    .summary =
        "Records of a kind as JSONL on stdout. KIND: prompts pairs labels scores strengths\n"
        "checkpoints evals steps cache meta.\n"
        "oaif export pairs --format trl|hh [--dataset NAME]: the labeled pairs as TRL\n"
        "({prompt, chosen, rejected}) or HH ({chosen, rejected} transcripts) JSONL, the\n"
        "label's winner as chosen (the newest label of each pair); ties and unlabeled pairs\n"
        "are left out and counted on stderr.",
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

/* ---- --format trl|hh --------------------------------------------------------------------- */

struct pref_export {
    enum pairs_format fmt;
    const char *dataset; /* NULL: every pair */
    hmap_t *winners;     /* pair id -> (void *)(uintptr_t)(winner + 1) */
    buf_t line;
    size_t written, other_datasets, skipped[PAIRS_SKIP_N];
    bool failed; /* out of memory */
};

/* Each pair's newest label in commit order wins. */
static void note_label(void *ctx, const Oaif__V1__Record *rec)
{
    struct pref_export *x = ctx;
    Oaif__V1__Label *lb = oaif__v1__label__unpack(NULL, rec->data.len, rec->data.data);
    if (!lb)
        return;
    if (lb->pair_id && *lb->pair_id &&
        hmap_put(x->winners, lb->pair_id, strlen(lb->pair_id), (void *)(uintptr_t)(lb->winner + 1)))
        x->failed = true;
    oaif__v1__label__free_unpacked(lb, NULL);
}

static void write_pair(void *ctx, const Oaif__V1__Record *rec)
{
    struct pref_export *x = ctx;
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, rec->data.len, rec->data.data);
    if (!p || x->failed) {
        x->skipped[PAIRS_SKIP_SHAPE] += !x->failed;
        if (p)
            oaif__v1__pair__free_unpacked(p, NULL);
        return;
    }
    if (x->dataset && strcmp(p->run ? p->run : "", x->dataset) != 0) {
        x->other_datasets++;
        oaif__v1__pair__free_unpacked(p, NULL);
        return;
    }
    uintptr_t w = (uintptr_t)hmap_get(x->winners, p->id, strlen(p->id));
    buf_reset(&x->line);
    int r = pairs_write(&x->line, x->fmt, p,
                        w ? (Oaif__V1__Winner)(w - 1) : OAIF__V1__WINNER__WINNER_UNSPECIFIED);
    if (r < 0) {
        x->failed = true;
    } else if (r == PAIRS_WRITTEN) {
        fwrite(x->line.data, 1, x->line.len, stdout);
        x->written++;
    } else {
        x->skipped[r]++;
    }
    oaif__v1__pair__free_unpacked(p, NULL);
}

static int export_preferences(struct cli_ledger *l, const struct export_opts *o)
{
    struct pref_export x = {
        .fmt = (enum pairs_format)o->format, .dataset = o->dataset, .winners = hmap_new()};
    buf_init(&x.line, 0);
    int status = x.winners ? 0 : 1;
    if (!status)
        status = cli_ledger_scan(l, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, note_label, &x);
    if (!status && !x.failed)
        status = cli_ledger_scan(l, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, write_pair, &x);
    fflush(stdout);
    if (!status && x.failed)
        status = 1;
    if (status == 1 && (x.failed || !x.winners))
        cli_error(l->verb, "out of memory");
    if (!status) {
        fprintf(stderr, "oaif: exported %zu pairs as %s", x.written, pairs_format_name(x.fmt));
        if (x.dataset)
            fprintf(stderr, " from dataset %s", x.dataset);
        for (int s = 1; s < PAIRS_SKIP_N; s++)
            if (x.skipped[s])
                fprintf(stderr, "; skipped %zu %s", x.skipped[s], pairs_skip_name(s));
        fputc('\n', stderr);
    }
    hmap_destroy(&x.winners);
    buf_free(&x.line);
    return status;
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
    bool preferences = o.format != PAIRS_FORMAT_AUTO;
    if ((preferences && run.kind != OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR) ||
        (o.dataset && !preferences)) {
        cli_error(verb, "--format trl|hh and --dataset are for pairs: oaif export pairs --format "
                        "trl|hh [--dataset NAME]");
        cfg_release(&spec, &o);
        return 2;
    }
    run.desc = kind_descriptor(run.kind);
    buf_init(&run.line, 0);
    struct cli_ledger l = {0};
    int status = cli_ledger_open(&l, verb, &o.conn);
    if (!status && preferences)
        status = export_preferences(&l, &o);
    else if (!status)
        status = cli_ledger_scan(&l, run.kind, print_record, &run);
    fflush(stdout);
    if (!status && !preferences)
        fprintf(stderr, "oaif: exported %zu %s\n", run.total, kinds_name(run.kind));
    buf_free(&run.line);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
