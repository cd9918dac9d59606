/* cmd_annotate.c - `oaif annotate FILE.jsonl`: label pairs through the annotate service (the
 * annotator-proxies behind the ledger), a window of requests in flight; labels as JSONL on stdout,
 * a progress bar and a summary on stderr. Request ids come from each pair's content and
 * instruction, so annotating the same file again returns the stored labels (no second judge
 * call, no second charge). */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "pbjson.h"
#include "sha256.h"

struct annotate_opts {
    struct cli_conn conn;
    char *instruction;
    int in_flight;
    bool quiet;
};

static const struct cfg_option options[] = {
    CLI_CONN_OPTIONS(struct annotate_opts, conn),
    CFG_STRING_OPT(struct annotate_opts, instruction, .key = "oaif.annotate.instruction",
                   .flag = "--instruction",
                   .help = "The judge's instruction for lines that carry none."),
    CFG_INT_OPT(struct annotate_opts, in_flight, .key = "oaif.annotate.in_flight", .def = "64",
                .min = 1, .max = 100000, .flag = "--in-flight",
                .help = "Requests in flight at once."),
    CFG_BOOL_OPT(struct annotate_opts, quiet, .key = "oaif.annotate.quiet", .flag = "--quiet",
                 .help = "No progress bar."),
};

static const struct cfg_spec spec = {
    .name = "oaif annotate FILE.jsonl",
    .summary = "Labels pairs through the annotate service; labels as JSONL on stdout. Lines:\n"
               "{\"prompt\", \"response_a\", \"response_b\", \"reference\"?, \"instruction\"?, "
               "\"id\"?}; FILE - reads stdin.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct annotate_opts),
};

struct ann_run {
    size_t done, first, second, tie, failed, flipped, cached;
    double disagreement, cost;
    uint64_t prompt_tokens, completion_tokens;
    buf_t line;
};

static void on_annotated(void *ctx, const Oaif__V1__Reply *r)
{
    struct ann_run *run = ctx;
    run->done++;
    buf_reset(&run->line);
    buf_append_str(&run->line, "{\"id\":");
    pbjson_append_string(&run->line, r->id, strlen(r->id));
    Oaif__V1__AnnotateReply *ar =
        r->outcome == OAIF__V1__OUTCOME__OUTCOME_OK
            ? oaif__v1__annotate_reply__unpack(NULL, r->payload.len, r->payload.data)
            : NULL;
    if (!ar || !ar->label) {
        run->failed++;
        buf_append_str(&run->line, ",\"error\":");
        const char *e = r->error && *r->error ? r->error : "reply without a label";
        pbjson_append_string(&run->line, e, strlen(e));
    } else {
        Oaif__V1__Label *l = ar->label;
        run->first += l->winner == OAIF__V1__WINNER__WINNER_FIRST;
        run->second += l->winner == OAIF__V1__WINNER__WINNER_SECOND;
        run->tie += l->winner == OAIF__V1__WINNER__WINNER_TIE;
        run->flipped += l->noise_flipped;
        run->cached += l->cached;
        run->disagreement += l->disagreement;
        run->cost += l->cost;
        run->prompt_tokens += l->prompt_tokens;
        run->completion_tokens += l->completion_tokens;
        buf_append_str(&run->line, ",\"label\":");
        pbjson_append(&run->line, &l->base);
    }
    if (ar)
        oaif__v1__annotate_reply__free_unpacked(ar, NULL);
    buf_append_str(&run->line, "}");
    puts(run->line.data);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* What add_pair needs: the list it fills and the instruction for lines without one. */
struct pair_reader {
    struct cli_packed_list list;
    const char *instruction;
};

/* The pair id for a line without one: the content's digest, so that annotating the same file
 * again returns the stored labels. */
static void pair_digest(const char *prompt, const char *a, const char *b, const char *instr,
                        char out[32])
{
    struct sha256 sc;
    uint8_t h[32];
    sha256_init(&sc);
    sha256_update(&sc, prompt, strlen(prompt) + 1);
    sha256_update(&sc, a, strlen(a) + 1);
    sha256_update(&sc, b, strlen(b) + 1);
    sha256_update(&sc, instr ? instr : "", instr ? strlen(instr) + 1 : 1);
    sha256_final(&sc, h);
    snprintf(out, 32, "pair-");
    cli_hex(out + 5, h, 12);
}

/* One {prompt, response_a, response_b, reference?, instruction?, id?} line, packed as an
 * AnnotateRequest onto the reader's list. */
static int add_pair(void *ctx, json_t *o, const char *where, char *err, size_t errlen)
{
    struct pair_reader *r = ctx;
    const char *prompt = jstr(o, "prompt"), *a = jstr(o, "response_a"), *b = jstr(o, "response_b");
    if (!prompt || !*prompt || !a || !b) {
        snprintf(err, errlen, "%s: field \"%s\": missing or not a string", where,
                 !prompt || !*prompt ? "prompt"
                 : !a                ? "response_a"
                                     : "response_b");
        return ERR_INVAL;
    }
    const char *id = jstr(o, "id");
    const char *instr = jstr(o, "instruction") ? jstr(o, "instruction") : r->instruction;
    char idbuf[32];
    if (!id) {
        pair_digest(prompt, a, b, instr, idbuf);
        id = idbuf;
    }
    Oaif__V1__Response ra = OAIF__V1__RESPONSE__INIT, rb = OAIF__V1__RESPONSE__INIT;
    ra.text = (char *)a;
    rb.text = (char *)b;
    Oaif__V1__Response *rs[2] = {&ra, &rb};
    Oaif__V1__Pair pair = OAIF__V1__PAIR__INIT;
    pair.id = (char *)id;
    pair.prompt = (char *)prompt;
    pair.responses = rs;
    pair.n_responses = 2;
    Oaif__V1__AnnotateRequest req = OAIF__V1__ANNOTATE_REQUEST__INIT;
    req.pair = &pair;
    req.instruction = (char *)(instr ? instr : "");
    req.reference = (char *)(jstr(o, "reference") ? jstr(o, "reference") : "");
    /* The request id names the pair and the instruction: the same pair judged under another
     * instruction is another request. */
    char tag[12] = "", *req_id = malloc(strlen(id) + 16);
    if (instr && *instr) {
        uint8_t h[32];
        sha256(instr, strlen(instr), h);
        tag[0] = '-';
        cli_hex(tag + 1, h, 4);
    }
    if (req_id)
        snprintf(req_id, strlen(id) + 16, "ann-%s%s", id, tag);
    int rc = req_id ? cli_packed_add(&r->list, req_id, &req.base) : ERR_NOMEM;
    free(req_id);
    if (rc)
        snprintf(err, errlen, "%s: out of memory", where);
    return rc;
}

/* Keeps up to `in_flight` requests submitted until every item has its reply; a progress bar on
 * stderr unless quiet. Stops early when the client fails. */
static void annotate_all(struct cli_ledger *l, const struct cli_packed_list *list, int in_flight,
                         bool quiet, struct ann_run *run)
{
    const struct cli_packed *items = list->items;
    size_t n = list->n;
    size_t next = 0;
    uint64_t t0 = bus_mono_ms(), last_progress = 0;
    while (run->done < n) {
        while (next < n && next - run->done < (size_t)in_flight) {
            int rc = bus_client_submit(l->client, "annotate", items[next].id, items[next].data,
                                       items[next].len, 0, 0);
            if (rc && rc != ERR_EXISTS) {
                cli_error(l->verb, "%s", err_str(rc));
                break;
            }
            next++;
        }
        if (bus_client_poll(l->client, 200, on_annotated, run) < 0)
            break;
        uint64_t now = bus_mono_ms();
        if (!quiet && (now - last_progress >= 500 || run->done == n)) {
            last_progress = now;
            int w = 30, fill = (int)(w * run->done / (n ? n : 1));
            fprintf(stderr, "\r[%.*s%*s] %zu/%zu labels  %.1f/s  failed %zu   ", fill,
                    "##############################", w - fill, "", run->done, n,
                    (double)run->done * 1000.0 / (double)(now - t0 + 1), run->failed);
        }
    }
    if (!quiet)
        fputc('\n', stderr);
}

int cmd_annotate(int argc, char **argv)
{
    static const char verb[] = "oaif annotate";
    struct annotate_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 1, &npos);
    if (rc)
        return cli_exit_status(rc);
    if (npos != 1) {
        fprintf(stderr, "usage: oaif annotate FILE.jsonl [--instruction TEXT] [--in-flight N] "
                        "[--quiet]   (see oaif annotate --help)\n");
        cfg_release(&spec, &o);
        return 2;
    }
    char err[1024];
    struct pair_reader pairs = {.instruction = o.instruction};
    struct cli_ledger l = {0};
    struct ann_run run = {0};
    buf_init(&run.line, 0);
    int status = 0;
    if (cli_jsonl_read(argv[0], add_pair, &pairs, err, sizeof err)) {
        cli_error(verb, "%s (nothing was sent)", err);
        status = 1;
    } else if (pairs.list.n == 0) {
        cli_error(verb, "%s: no pairs in it (nothing was sent)", argv[0]);
        status = 1;
    }
    uint64_t t0 = bus_mono_ms();
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status) {
        /* Submits are answered only by a ledger: without one the progress would sit at 0
         * forever. Ask for its status first, within --timeout, as `oaif status` does. */
        Oaif__V1__Envelope *env = NULL;
        int prc = bus_client_status(l.client, l.timeout_ms, &env);
        if (prc)
            status = cli_ledger_failed(&l, prc);
        if (env)
            oaif__v1__envelope__free_unpacked(env, NULL);
    }
    if (!status) {
        annotate_all(&l, &pairs.list, o.in_flight, o.quiet, &run);
        fprintf(stderr,
                "oaif: annotated %zu pairs in %.1f s: first %zu, second %zu, tie %zu, failed %zu; "
                "cached %zu; mean order disagreement %.3f; noise-flipped %zu; tokens %" PRIu64
                " in / %" PRIu64 " out; cost %.4f\n",
                run.done, (double)(bus_mono_ms() - t0) / 1000.0, run.first, run.second, run.tie,
                run.failed, run.cached,
                run.done > run.failed ? run.disagreement / (double)(run.done - run.failed) : 0.0,
                run.flipped, run.prompt_tokens, run.completion_tokens, run.cost);
        status = run.done == pairs.list.n && run.failed == 0 ? 0 : 1;
    }
    buf_free(&run.line);
    cli_packed_free(&pairs.list);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
