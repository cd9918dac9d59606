/* cmd_import.c - `oaif import prompts FILE.jsonl` and `oaif import pairs FILE`: prompts, or
 * preference pairs with their labels (pairs.h reads the formats), into the ledger. Every line is
 * checked before anything is sent, so a bad file imports nothing (pairs: unless --skip-bad, which
 * imports the good lines and counts the others by reason); the ids come from the content and the
 * put ids from the records' digest, so running the same import again finishes an interrupted one
 * and adds nothing twice. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buscheck.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "hmap.h"
#include "pairs.h"
#include "prompts.h"
#include "sha256.h"

struct import_opts {
    struct cli_conn conn;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct import_opts, conn),
};

static const struct cfg_spec spec = {
    .name = "oaif import prompts FILE.jsonl",
    .summary = "Adds prompts to the ledger; every line is checked first, and a bad one imports\n"
               "nothing. Lines: {\"prompt\", \"id\"?, \"reference\"?, \"family\"?, \"split\"?,\n"
               "\"instruction\"?, \"meta\"?}; FILE - reads stdin. Ids already present are kept.\n"
               "Preference pairs: oaif import pairs --help.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct import_opts),
};

/* ---- putting records ---------------------------------------------------------------------- */

/* One record to put, borrowed from the list that holds it. A group (a pair's Pair, Label, Strength
 * and Scores) starts at a record with group_start and never spans two puts. */
struct import_rec {
    Oaif__V1__RecordKind kind;
    const char *id;
    const uint8_t *data;
    size_t len;
    bool group_start;
};

/* The first 12 bytes of the records' sha256, as hex: the put ids' stem. */
static void records_digest(const struct import_rec *recs, size_t n, char out[25])
{
    uint8_t h[32];
    struct sha256 sc;
    sha256_init(&sc);
    for (size_t i = 0; i < n; i++)
        sha256_update(&sc, recs[i].data, recs[i].len);
    sha256_final(&sc, h);
    cli_hex(out, h, 12);
}

#define IMPORT_CHUNK_BYTES   (4u << 20)
#define IMPORT_CHUNK_RECORDS (BUS_PUT_RECORDS_MAX / 2) /* room for a group past it */

/* Puts the records in chunks of about IMPORT_CHUNK_BYTES and at most IMPORT_CHUNK_RECORDS (the
 * ledger takes BUS_PUT_RECORDS_MAX a put), each one atomic and if_absent, with ids
 * "import-<what>-<digest>-<chunk>"; a group (a pair's records) is never split. Returns the exit
 * status; *sent: whether any chunk went in. */
static int put_chunks(struct cli_ledger *l, const char *what, const struct import_rec *recs,
                      size_t n, bool *sent)
{
    char digest[25];
    records_digest(recs, n, digest);
    size_t i = 0, chunk = 0;
    int status = 0;
    *sent = false;
    while (i < n && !status) {
        size_t start = i, bytes = 0;
        while (i < n &&
               (i == start || !recs[i].group_start ||
                (bytes + recs[i].len < IMPORT_CHUNK_BYTES && i - start < IMPORT_CHUNK_RECORDS)))
            bytes += recs[i++].len + 64;
        size_t cnt = i - start;
        Oaif__V1__Record *rv = calloc(cnt, sizeof *rv);
        Oaif__V1__Record **rp = calloc(cnt, sizeof(Oaif__V1__Record *));
        if (!rv || !rp) {
            cli_error(l->verb, "out of memory");
            status = 1;
        }
        for (size_t k = 0; !status && k < cnt; k++) {
            oaif__v1__record__init(&rv[k]);
            rv[k].kind = recs[start + k].kind;
            rv[k].id = (char *)recs[start + k].id;
            rv[k].data.data = (uint8_t *)recs[start + k].data;
            rv[k].data.len = recs[start + k].len;
            rp[k] = &rv[k];
        }
        char put_id[80];
        snprintf(put_id, sizeof put_id, "import-%s-%s-%zu", what, digest, chunk++);
        int rc = status ? ERR_OK : bus_client_put(l->client, put_id, rp, cnt, true, l->timeout_ms);
        if (rc)
            status = cli_ledger_failed(l, rc);
        *sent |= !status;
        free(rv);
        free(rp);
    }
    return status;
}

/* ---- oaif import prompts ------------------------------------------------------------------ */

/* Drops the prompts whose id came earlier in the file with the same contents, and refuses one
 * whose id came earlier with other contents (the ledger would keep the first and drop the second
 * without a word). ERR_OK with *dropped set, or ERR_INVAL (or ERR_NOMEM) with err naming both;
 * recs stays a list cli_packed_free frees either way. */
static int dedupe_ids(struct cli_packed_list *recs, const char *file, size_t *dropped, char *err,
                      size_t errlen)
{
    *dropped = 0;
    hmap_t *seen = hmap_new();
    size_t *where = calloc(recs->n ? recs->n : 1, sizeof *where); /* kept -> place in the file */
    if (!seen || !where) {
        hmap_destroy(&seen);
        free(where);
        return ERR_NOMEM;
    }
    size_t out = 0, i = 0;
    int rc = ERR_OK;
    for (; i < recs->n && !rc; i++) {
        struct cli_packed *p = &recs->items[i];
        size_t klen = strlen(p->id);
        uintptr_t at = (uintptr_t)hmap_get(seen, p->id, klen);
        if (at) {
            const struct cli_packed *q = &recs->items[at - 1];
            if (q->len == p->len && !memcmp(q->data, p->data, p->len)) {
                free(p->id);
                free(p->data);
                (*dropped)++;
                continue;
            }
            snprintf(err, errlen,
                     "%s: prompt %zu has the id '%s' of prompt %zu, with other contents (an id "
                     "names one prompt; nothing was imported)",
                     file, i + 1, p->id, where[at - 1] + 1);
            rc = ERR_INVAL;
            break;
        }
        recs->items[out] = *p;
        where[out] = i;
        out++;
        if (hmap_put(seen, recs->items[out - 1].id, klen, (void *)(uintptr_t)out))
            rc = ERR_NOMEM;
    }
    for (size_t k = i; k < recs->n; k++) /* what was not looked at (after an error) */
        recs->items[out++] = recs->items[k];
    recs->n = out;
    hmap_destroy(&seen);
    free(where);
    return rc;
}

static int import_prompts(int argc, char **argv)
{
    static const char verb[] = "oaif import";
    struct import_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 2, &npos);
    if (rc)
        return cli_exit_status(rc);
    if (npos != 2 || strcmp(argv[0], "prompts") != 0) {
        cli_error(verb, "usage: oaif import prompts|pairs FILE [--clients EP] (see --help)");
        cfg_release(&spec, &o);
        return 2;
    }
    char err[1024];
    struct cli_packed_list recs = {0};
    struct import_rec *view = NULL;
    struct cli_ledger l = {0};
    int status = 0;
    size_t dropped = 0;
    if (cli_jsonl_read(argv[1], prompts_line, &recs, err, sizeof err)) {
        cli_error(verb, "%s (nothing was imported)", err);
        status = 1;
    } else if ((rc = dedupe_ids(&recs, argv[1], &dropped, err, sizeof err))) {
        cli_error(verb, "%s", rc == ERR_NOMEM ? "out of memory" : err);
        status = 1;
    } else if (recs.n == 0) {
        cli_error(verb, "%s: no prompts in it (nothing was imported)", argv[1]);
        status = 1;
    }
    if (!status && !(view = calloc(recs.n ? recs.n : 1, sizeof *view))) {
        cli_error(verb, "out of memory");
        status = 1;
    }
    for (size_t i = 0; !status && i < recs.n; i++)
        view[i] = (struct import_rec){OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, recs.items[i].id,
                                      recs.items[i].data, recs.items[i].len, true};
    bool sent = false;
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = put_chunks(&l, "prompts", view, recs.n, &sent);
    if (!status && dropped)
        printf("imported %zu prompts from %s (ids already present were kept; %zu repeated "
               "line%s of the file skipped)\n",
               recs.n, argv[1], dropped, dropped == 1 ? "" : "s");
    else if (!status)
        printf("imported %zu prompts from %s (ids already present were kept)\n", recs.n, argv[1]);
    else if (sent)
        cli_error(verb, "import stopped; run the same command again to finish it");
    free(view);
    cli_packed_free(&recs);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}

/* ---- oaif import pairs -------------------------------------------------------------------- */

struct pairs_opts {
    struct cli_conn conn;
    int format; /* enum pairs_format */
    char *dataset;
    bool skip_bad;
    size_t max_response_bytes;
    size_t max_prompt_bytes;
};

static const struct cfg_choice formats[] = {
    {"auto", PAIRS_FORMAT_AUTO},   {"hh", PAIRS_FORMAT_HH},     {"trl", PAIRS_FORMAT_TRL},
    {"part2", PAIRS_FORMAT_PART2}, {"tldr", PAIRS_FORMAT_TLDR}, {NULL, 0}};

static const struct cfg_option pairs_options[] = {
    CFG_ENUM_OPT(struct pairs_opts, format, .key = "oaif.import.format", .def = "auto",
                 .choices = formats, .flag = "--format",
                 .help = "The file's format; auto: told from the first row."),
    CFG_STRING_OPT(struct pairs_opts, dataset, .key = "oaif.import.dataset", .flag = "--dataset",
                   .help = "The pairs' dataset (Pair.run; letters, digits, . _ -); default: the "
                           "file's name without .jsonl/.json."),
    CFG_BOOL_OPT(struct pairs_opts, skip_bad, .key = "oaif.import.skip_bad", .flag = "--skip-bad",
                 .help = "Import the good rows and count the bad ones by reason (else a bad row "
                         "imports nothing)."),
    CFG_SIZE_OPT(struct pairs_opts, max_response_bytes, .key = "oaif.import.max_response_bytes",
                 .def = "64KiB", .min = 1, .max = 16 << 20, .flag = "--max-response-bytes",
                 .help = "A row with a longer chosen or rejected response is bad."),
    CFG_SIZE_OPT(struct pairs_opts, max_prompt_bytes, .key = "oaif.import.max_prompt_bytes",
                 .def = "1MiB", .min = 1, .max = 16 << 20, .flag = "--max-prompt-bytes",
                 .help = "A row with a longer prompt (the conversation before the responses) is "
                         "bad."),
    CLI_CONN_OPTIONS(struct pairs_opts, conn),
};

static const struct cfg_spec pairs_spec = {
    .name = "oaif import pairs FILE",
    .summary =
        "Adds preference pairs to the ledger: a Pair (chosen first), a Label (winner first,\n"
        "judge import:FORMAT), and for Part II rows with strength a Strength and a Scores record.\n"
        "Formats: hh (Anthropic HH-RLHF JSONL: chosen and rejected transcripts), trl (prompt,\n"
        "chosen, rejected as strings or message lists), part2 (the strength-annotated JSON list\n"
        "of Secrets of RLHF Part II), tldr (OpenAI TL;DR comparisons: info, summaries, choice).\n"
        "Every row is checked first and a bad one imports nothing (FILE:LINE: reason), unless\n"
        "--skip-bad. Ids come from the dataset and the content: importing again adds nothing.\n"
        "FILE - reads stdin.",
    .options = pairs_options,
    .n_options = sizeof pairs_options / sizeof pairs_options[0],
    .conf_size = sizeof(struct pairs_opts),
};

#define SHOWN_BAD_ROWS 20 /* without --skip-bad: the bad rows named one by one */

struct pairs_run {
    const char *verb;
    const char *dataset;
    const enum pairs_format *fmt; /* set by pairs_read before the first row */
    bool skip_bad;
    struct pairs_record *recs;
    size_t n, cap;
    hmap_t *seen; /* pair id -> (void *)1 */
    size_t rows, pairs, duplicates, strengths, scores;
    size_t bad[PAIRS_N_REASONS], nbad;
    char *example[PAIRS_N_REASONS]; /* the first "FILE:LINE: reason" of each */
};

static int on_row(void *ctx, const char *where, enum pairs_reason r, const char *msg,
                  struct pairs_item *item)
{
    struct pairs_run *run = ctx;
    run->rows++;
    if (r != PAIRS_OK) {
        run->bad[r]++;
        run->nbad++;
        if (!run->skip_bad && run->nbad <= SHOWN_BAD_ROWS)
            cli_error(run->verb, "%s: %s", where, msg);
        if (!run->example[r]) {
            size_t len = strlen(where) + strlen(msg) + 3;
            run->example[r] = malloc(len);
            if (!run->example[r])
                return ERR_NOMEM;
            snprintf(run->example[r], len, "%s: %s", where, msg);
        }
        return ERR_OK;
    }
    char id[PAIRS_ID_LEN + 1];
    pairs_id(id, run->dataset, item);
    if (hmap_get(run->seen, id, PAIRS_ID_LEN)) {
        run->duplicates++; /* the same pair twice in the file: read once */
        return ERR_OK;
    }
    if (run->n + PAIRS_MAX_RECORDS > run->cap) {
        size_t cap = run->cap ? run->cap * 2 : 1024;
        struct pairs_record *recs = realloc(run->recs, cap * sizeof *recs);
        if (!recs)
            return ERR_NOMEM;
        run->recs = recs;
        run->cap = cap;
    }
    size_t n;
    int rc = pairs_pack(item, run->dataset, *run->fmt, run->recs + run->n, &n);
    if (!rc)
        rc = hmap_put(run->seen, id, PAIRS_ID_LEN, (void *)1);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            pairs_record_clear(&run->recs[run->n + i]);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        run->strengths += run->recs[run->n + i].kind == OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH;
        run->scores += run->recs[run->n + i].kind == OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES;
    }
    run->n += n;
    run->pairs++;
    return ERR_OK;
}

/* "2 missing field, 1 identical responses" into b. */
static void reason_counts(const struct pairs_run *run, char *b, size_t len)
{
    size_t o = 0;
    b[0] = '\0';
    for (int r = 1; r < PAIRS_N_REASONS && o < len; r++)
        if (run->bad[r])
            o += (size_t)snprintf(b + o, len - o, "%s%zu %s", o ? ", " : "", run->bad[r],
                                  pairs_reason_name(r));
}

static void pairs_run_free(struct pairs_run *run)
{
    for (size_t i = 0; i < run->n; i++)
        pairs_record_clear(&run->recs[i]);
    free(run->recs);
    hmap_destroy(&run->seen);
    for (int r = 0; r < PAIRS_N_REASONS; r++)
        free(run->example[r]);
}

/* Reads and checks the whole file into run; the exit status (0: go on and put). */
static int read_pairs(struct pairs_run *run, const char *path, enum pairs_format *fmt,
                      const struct pairs_opts *o)
{
    struct pairs_limits lim = {.max_response_bytes = o->max_response_bytes,
                               .max_prompt_bytes = o->max_prompt_bytes};
    char err[1400], counts[512];
    int rc = pairs_read(path, fmt, &lim, on_row, run, err, sizeof err);
    if (rc == ERR_NOMEM) {
        cli_error(run->verb, "out of memory (nothing was imported)");
        return 1;
    }
    if (rc) {
        cli_error(run->verb, "%s (nothing was imported)", err);
        return 1;
    }
    reason_counts(run, counts, sizeof counts);
    if (run->nbad && !run->skip_bad) {
        if (run->nbad > SHOWN_BAD_ROWS)
            cli_error(run->verb, "... and %zu more", run->nbad - SHOWN_BAD_ROWS);
        cli_error(run->verb,
                  "%zu of %zu rows of %s are bad (%s); nothing was imported (--skip-bad imports "
                  "the good ones)",
                  run->nbad, run->rows, path, counts);
        return 1;
    }
    if (run->nbad) {
        cli_error(run->verb, "skipped %zu bad rows of %zu: %s", run->nbad, run->rows, counts);
        for (int r = 1; r < PAIRS_N_REASONS; r++)
            if (run->bad[r])
                cli_error(run->verb, "  %zu %s, the first: %s", run->bad[r], pairs_reason_name(r),
                          run->example[r]);
    }
    if (!run->pairs) {
        cli_error(run->verb, "no pair to import from %s", path);
        return 1;
    }
    return 0;
}

static int import_pairs(int argc, char **argv)
{
    static const char verb[] = "oaif import";
    struct pairs_opts o = {0};
    int npos, rc = cli_load(verb, &pairs_spec, &o, argc, argv, 2, &npos);
    if (rc)
        return cli_exit_status(rc);
    if (npos != 2) {
        cli_error(verb, "usage: oaif import pairs FILE [--format F] [--dataset NAME] [--skip-bad] "
                        "(see oaif import pairs --help)");
        cfg_release(&pairs_spec, &o);
        return 2;
    }
    const char *path = argv[1];
    char dataset[160];
    if (o.dataset && !pairs_dataset_valid(o.dataset)) {
        cli_error(verb,
                  "flag --dataset: '%s' is not a dataset name (1 to 128 letters, digits, "
                  ". _ -)",
                  o.dataset);
        cfg_release(&pairs_spec, &o);
        return 2;
    }
    if (o.dataset)
        snprintf(dataset, sizeof dataset, "%s", o.dataset);
    else
        pairs_dataset_from_path(path, dataset, sizeof dataset);
    enum pairs_format fmt = (enum pairs_format)o.format;
    struct pairs_run run = {
        .verb = verb, .dataset = dataset, .fmt = &fmt, .skip_bad = o.skip_bad, .seen = hmap_new()};
    struct import_rec *view = NULL;
    struct cli_ledger l = {0};
    int status = run.seen ? read_pairs(&run, path, &fmt, &o) : 1;
    if (!status)
        view = calloc(run.n, sizeof *view);
    if (!run.seen || (!status && !view)) {
        cli_error(verb, "out of memory (nothing was imported)");
        status = 1;
    }
    for (size_t i = 0; view && i < run.n; i++)
        view[i] =
            (struct import_rec){run.recs[i].kind, run.recs[i].id, run.recs[i].data, run.recs[i].len,
                                run.recs[i].kind == OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR};
    bool sent = false;
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = put_chunks(&l, "pairs", view, run.n, &sent);
    if (!status) {
        printf("imported %zu pairs from %s (format %s, dataset %s): %zu labels, %zu strengths, "
               "%zu scores",
               run.pairs, path, pairs_format_name(fmt), dataset, run.pairs, run.strengths,
               run.scores);
        if (run.duplicates)
            printf("; %zu repeated rows read once", run.duplicates);
        printf("; ids already present were kept\n");
    } else if (sent) {
        cli_error(verb, "import stopped; run the same command again to finish it");
    }
    free(view);
    pairs_run_free(&run);
    cli_ledger_close(&l);
    cfg_release(&pairs_spec, &o);
    return status;
}

/* The first word of argv that is not a flag or a flag's value: which import this is. */
static const char *what_to_import(int argc, char **argv)
{
    bool *mine = calloc((size_t)argc + 1, sizeof *mine);
    if (!mine)
        return NULL;
    cli_mark_flags(&pairs_spec, argc, argv, mine);
    const char *what = NULL;
    for (int i = 0; i < argc && !what; i++)
        if (!mine[i] && (argv[i][0] != '-' || !strcmp(argv[i], "-")))
            what = argv[i];
    free(mine);
    return what;
}

int cmd_import(int argc, char **argv)
{
    const char *what = what_to_import(argc, argv);
    if (what && !strcmp(what, "pairs"))
        return import_pairs(argc, argv);
    if (what && !strcmp(what, "evals"))
        return cmd_import_evals(argc, argv);
    return import_prompts(argc, argv);
}
