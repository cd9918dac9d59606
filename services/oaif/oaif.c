/* oaif.c - see oaif.h. */
#include "oaif.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "buf.h"
#include "busclient.h"
#include "err.h"
#include "hmap.h"
#include "kinds.h"
#include "pbjson.h"
#include "sha256.h"
#include "task.h"

/* ---- connection options ---------------------------------------------------------------- */

struct conn {
    const char *endpoint;
    struct bus_curve curve;
    int timeout_ms;
};

/* Consume connection options from argv (compacting the rest in place); returns the new argc,
 * or -1 after printing the problem. */
static int conn_parse(struct conn *c, int argc, char **argv)
{
    c->endpoint = getenv("OAIF_LEDGER") ? getenv("OAIF_LEDGER") : "tcp://127.0.0.1:5555";
    c->timeout_ms = 5000;
    memset(&c->curve, 0, sizeof c->curve);
    const char *secret = getenv("OAIF_CURVE_SECRET"), *server = getenv("OAIF_SERVER_KEY");
    int out = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool takes = !strcmp(a, "--ledger") || !strcmp(a, "--curve-secret") ||
                     !strcmp(a, "--server-key") || !strcmp(a, "--timeout-ms");
        if (!takes) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "oaif: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--ledger"))
            c->endpoint = v;
        else if (!strcmp(a, "--curve-secret"))
            secret = v;
        else if (!strcmp(a, "--server-key"))
            server = v;
        else {
            char *end;
            long t = strtol(v, &end, 10);
            if (*end || t <= 0 || t > 3600000) {
                fprintf(stderr, "oaif: --timeout-ms: expected milliseconds in [1, 3600000], "
                                "got '%s'\n",
                        v);
                return -1;
            }
            c->timeout_ms = (int)t;
        }
    }
    if ((secret && *secret) != (server && *server)) {
        fprintf(stderr, "oaif: CURVE needs both --curve-secret and --server-key\n");
        return -1;
    }
    if (secret && *secret) {
        char err[512];
        struct bus_curve s = {0};
        if (bus_curve_load(&s, server, false, err, sizeof err) ||
            bus_curve_load(&c->curve, secret, true, err, sizeof err)) {
            fprintf(stderr, "oaif: %s\n", err);
            return -1;
        }
        memcpy(c->curve.server_key, s.public_key, sizeof c->curve.server_key);
    }
    return out;
}

static int conn_open(struct conn *c, void **zctx, bus_client_t **cl)
{
    *zctx = zmq_ctx_new();
    struct bus_client_opts o = {.endpoint = c->endpoint, .curve = &c->curve};
    if (!*zctx || bus_client_new(cl, *zctx, &o)) {
        fprintf(stderr, "oaif: cannot connect to %s\n", c->endpoint);
        return ERR_IO;
    }
    return ERR_OK;
}

static void conn_close(void **zctx, bus_client_t **cl)
{
    bus_client_destroy(cl);
    if (*zctx)
        zmq_ctx_term(*zctx);
    *zctx = NULL;
}

static int query_failed(int rc, const struct conn *c, bus_client_t *cl, const char *what)
{
    if (rc == ERR_TIMEOUT)
        fprintf(stderr, "oaif: %s: no answer from the ledger at %s within %d ms (is it running?)\n",
                what, c->endpoint, c->timeout_ms);
    else if (rc == ERR_REMOTE)
        fprintf(stderr, "oaif: %s: the ledger says: %s\n", what, bus_client_last_error(cl));
    else
        fprintf(stderr, "oaif: %s: %s\n", what, err_str(rc));
    return 1;
}

/* ---- status ---------------------------------------------------------------------------- */

int oaif_cmd_status(int argc, char **argv)
{
    struct conn c;
    argc = conn_parse(&c, argc, argv);
    if (argc < 0)
        return 2;
    bool json = argc > 0 && !strcmp(argv[0], "--json");
    void *zctx = NULL;
    bus_client_t *cl = NULL;
    if (conn_open(&c, &zctx, &cl)) {
        conn_close(&zctx, &cl);
        return 1;
    }
    Oaif__V1__Envelope *env = NULL;
    int rc = bus_client_status(cl, c.timeout_ms, &env);
    if (rc) {
        query_failed(rc, &c, cl, "status");
        conn_close(&zctx, &cl);
        return 1;
    }
    Oaif__V1__Status *s = env->status;
    if (json) {
        buf_t b;
        buf_init(&b, 0);
        pbjson_append(&b, &s->base);
        printf("%s\n", b.data);
        buf_free(&b);
    } else {
        printf("ledger %s   up %.0f s   requests %" PRIu64 "   dead letters %" PRIu64
               "   bad messages %" PRIu64 "   commit p50 %.2f ms p99 %.2f ms\n",
               c.endpoint, (double)s->uptime_ms / 1000.0, s->requests_total, s->dead_letters,
               s->dropped_messages, s->commit_p50_ms, s->commit_p99_ms);
        printf("\n%-18s %7s %7s %8s %9s %10s %7s %11s %9s\n", "service", "workers", "credit",
               "queued", "in-flight", "completed", "failed", "redelivered", "rate/s");
        for (size_t i = 0; i < s->n_services; i++) {
            Oaif__V1__ServiceStatus *v = s->services[i];
            printf("%-18s %7u %7u %8" PRIu64 " %9" PRIu64 " %10" PRIu64 " %7" PRIu64
                   " %11" PRIu64 " %9.1f\n",
                   v->name, v->workers, v->credit, v->queued, v->in_flight, v->completed,
                   v->failed, v->redelivered, v->rate);
        }
        if (!s->n_services)
            printf("(no service has been asked for or offered yet)\n");
        printf("\n%-12s %10s %10s\n", "records", "count", "last seq");
        for (size_t i = 0; i < s->n_records; i++) {
            Oaif__V1__RecordCount *r = s->records[i];
            const char *name = kinds_name(r->kind);
            printf("%-12s %10" PRIu64 " %10" PRIu64 "\n", name ? name : "?", r->count,
                   r->last_seq);
        }
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    conn_close(&zctx, &cl);
    return 0;
}

/* ---- import ---------------------------------------------------------------------------- */

void oaif_records_free(struct oaif_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(recs[i].id);
        free(recs[i].data);
    }
    free(recs);
}

static const char *opt_string(json_t *o, const char *key, const char *path, int line, char *err,
                              size_t errlen, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s:%d: field \"%s\": expected a string", path, line, key);
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

int oaif_read_prompts(const char *path, struct oaif_rec **recs, size_t *n, char *err,
                      size_t errlen)
{
    *recs = NULL;
    *n = 0;
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_NOTFOUND;
    }
    struct oaif_rec *out = NULL;
    size_t cnt = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int lineno = 0, rc = ERR_OK;
    static const char *const known[] = {"prompt", "text", "id", "reference", "answer", "family",
                                        "split", "instruction", "meta"};
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        size_t sp = strspn(line, " \t");
        if (line[sp] == '\0')
            continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o) {
            snprintf(err, errlen, "%s:%d:%d: not valid JSON: %s", path, lineno, je.column, je.text);
            rc = ERR_INVAL;
            break;
        }
        if (!json_is_object(o)) {
            snprintf(err, errlen, "%s:%d: expected a JSON object per line", path, lineno);
            json_decref(o);
            rc = ERR_INVAL;
            break;
        }
        const char *key;
        json_t *val;
        bool bad = false;
        json_object_foreach(o, key, val)
        {
            bool ok = false;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                ok |= !strcmp(key, known[k]);
            if (!ok && !bad) {
                snprintf(err, errlen,
                         "%s:%d: unknown field \"%s\" (known: prompt, id, reference, family, "
                         "split, instruction, meta)",
                         path, lineno, key);
                bad = true;
            }
        }
        const char *text = bad ? NULL : opt_string(o, "prompt", path, lineno, err, errlen, &bad);
        if (!bad && !text)
            text = opt_string(o, "text", path, lineno, err, errlen, &bad);
        const char *id = bad ? NULL : opt_string(o, "id", path, lineno, err, errlen, &bad);
        const char *ref = bad ? NULL : opt_string(o, "reference", path, lineno, err, errlen, &bad);
        if (!bad && !ref)
            ref = opt_string(o, "answer", path, lineno, err, errlen, &bad);
        const char *family = bad ? NULL : opt_string(o, "family", path, lineno, err, errlen, &bad);
        const char *split = bad ? NULL : opt_string(o, "split", path, lineno, err, errlen, &bad);
        const char *instr =
            bad ? NULL : opt_string(o, "instruction", path, lineno, err, errlen, &bad);
        json_t *meta = json_object_get(o, "meta");
        if (!bad && meta && !json_is_object(meta)) {
            snprintf(err, errlen, "%s:%d: field \"meta\": expected an object", path, lineno);
            bad = true;
        }
        if (!bad && (!text || !*text)) {
            snprintf(err, errlen, "%s:%d: field \"prompt\": missing or empty", path, lineno);
            bad = true;
        }
        if (!bad && id && (strlen(id) == 0 || strlen(id) > 256)) {
            snprintf(err, errlen, "%s:%d: field \"id\": must be 1 to 256 characters", path,
                     lineno);
            bad = true;
        }
        if (bad) {
            json_decref(o);
            rc = ERR_INVAL;
            break;
        }
        char idbuf[40];
        if (!id) {
            /* No id: the text's digest, so importing the same file twice adds nothing. */
            uint8_t h[32];
            sha256(text, strlen(text), h);
            snprintf(idbuf, sizeof idbuf, "p-");
            for (int k = 0; k < 12; k++)
                snprintf(idbuf + 2 + 2 * k, 3, "%02x", h[k]);
            id = idbuf;
        }
        char *meta_json = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        Oaif__V1__Prompt p = OAIF__V1__PROMPT__INIT;
        p.id = (char *)id;
        p.text = (char *)text;
        p.reference = (char *)(ref ? ref : "");
        p.family = (char *)(family ? family : "");
        p.split = (char *)(split ? split : "train");
        p.instruction = (char *)(instr ? instr : "");
        p.meta_json = meta_json ? meta_json : "";
        if (cnt == cap) {
            cap = cap ? cap * 2 : 256;
            struct oaif_rec *nr = realloc(out, cap * sizeof *nr);
            if (!nr) {
                free(meta_json);
                json_decref(o);
                rc = ERR_NOMEM;
                break;
            }
            out = nr;
        }
        size_t plen = oaif__v1__prompt__get_packed_size(&p);
        out[cnt].data = malloc(plen ? plen : 1);
        out[cnt].id = strdup(id);
        out[cnt].len = plen;
        if (out[cnt].data)
            oaif__v1__prompt__pack(&p, out[cnt].data);
        cnt++;
        free(meta_json);
        json_decref(o);
        if (!out[cnt - 1].data || !out[cnt - 1].id) {
            rc = ERR_NOMEM;
            break;
        }
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (rc) {
        oaif_records_free(out, cnt);
        return rc;
    }
    *recs = out;
    *n = cnt;
    return ERR_OK;
}

#define IMPORT_CHUNK_BYTES (4u << 20)

int oaif_cmd_import(int argc, char **argv)
{
    struct conn c;
    argc = conn_parse(&c, argc, argv);
    if (argc < 0)
        return 2;
    if (argc != 2 || strcmp(argv[0], "prompts") != 0) {
        fprintf(stderr, "usage: oaif import prompts FILE.jsonl [--ledger EP]\n");
        return 2;
    }
    char err[1024];
    struct oaif_rec *recs = NULL;
    size_t n = 0;
    if (oaif_read_prompts(argv[1], &recs, &n, err, sizeof err)) {
        fprintf(stderr, "oaif: import: %s (nothing was imported)\n", err);
        return 1;
    }
    /* Put ids come from the file's digest: re-running an interrupted import finishes it and
     * adds nothing twice (records are if_absent). One put is atomic; a file larger than one
     * message goes in chunks. */
    uint8_t h[32];
    struct sha256 sc;
    sha256_init(&sc);
    for (size_t i = 0; i < n; i++)
        sha256_update(&sc, recs[i].data, recs[i].len);
    sha256_final(&sc, h);
    char digest[25];
    for (int k = 0; k < 12; k++)
        snprintf(digest + 2 * k, 3, "%02x", h[k]);
    void *zctx = NULL;
    bus_client_t *cl = NULL;
    int status = 0;
    if (conn_open(&c, &zctx, &cl)) {
        oaif_records_free(recs, n);
        conn_close(&zctx, &cl);
        return 1;
    }
    size_t i = 0, chunk = 0;
    while (i < n && !status) {
        size_t start = i, bytes = 0;
        while (i < n && (i == start || bytes + recs[i].len < IMPORT_CHUNK_BYTES))
            bytes += recs[i++].len + 64;
        size_t cnt = i - start;
        Oaif__V1__Record *rv = calloc(cnt, sizeof *rv);
        Oaif__V1__Record **rp = calloc(cnt, sizeof *rp);
        if (!rv || !rp) {
            free(rv);
            free(rp);
            status = 1;
            break;
        }
        for (size_t k = 0; k < cnt; k++) {
            oaif__v1__record__init(&rv[k]);
            rv[k].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
            rv[k].id = recs[start + k].id;
            rv[k].data.data = recs[start + k].data;
            rv[k].data.len = recs[start + k].len;
            rp[k] = &rv[k];
        }
        char put_id[80];
        snprintf(put_id, sizeof put_id, "import-prompts-%s-%zu", digest, chunk++);
        int rc = bus_client_put(cl, put_id, rp, cnt, true, c.timeout_ms);
        if (rc)
            status = query_failed(rc, &c, cl, "import");
        free(rv);
        free(rp);
    }
    if (!status)
        printf("imported %zu prompts from %s (ids already present were kept)\n", n, argv[1]);
    else if (i > 0)
        fprintf(stderr, "oaif: import stopped; run the same command again to finish it\n");
    oaif_records_free(recs, n);
    conn_close(&zctx, &cl);
    return status;
}

/* ---- export ---------------------------------------------------------------------------- */

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

int oaif_cmd_export(int argc, char **argv)
{
    struct conn c;
    argc = conn_parse(&c, argc, argv);
    if (argc < 0)
        return 2;
    Oaif__V1__RecordKind kind;
    if (argc != 1 || kinds_parse(argv[0], &kind)) {
        fprintf(stderr, "usage: oaif export KIND   (KIND: prompts pairs labels scores strengths "
                        "checkpoints evals steps cache meta)\n");
        return 2;
    }
    void *zctx = NULL;
    bus_client_t *cl = NULL;
    if (conn_open(&c, &zctx, &cl)) {
        conn_close(&zctx, &cl);
        return 1;
    }
    const ProtobufCMessageDescriptor *d = kind_descriptor(kind);
    uint64_t after = 0;
    int status = 0;
    size_t total = 0;
    buf_t b;
    buf_init(&b, 0);
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(cl, kind, after, 1000, c.timeout_ms, &env);
        if (rc) {
            status = query_failed(rc, &c, cl, "export");
            break;
        }
        Oaif__V1__Records *r = env->records;
        for (size_t i = 0; i < r->n_records; i++) {
            Oaif__V1__Record *rec = r->records[i];
            buf_reset(&b);
            buf_printf(&b, "{\"kind\":\"%s\",\"id\":", kinds_name(kind));
            pbjson_append_string(&b, rec->id, strlen(rec->id));
            buf_printf(&b, ",\"seq\":%" PRIu64 ",\"time_ms\":%" PRIu64 ",\"data\":", rec->seq,
                       rec->time_ms);
            ProtobufCMessage *m =
                d ? protobuf_c_message_unpack(d, NULL, rec->data.len, rec->data.data) : NULL;
            if (m) {
                pbjson_append(&b, m);
                protobuf_c_message_free_unpacked(m, NULL);
            } else {
                pbjson_append_base64(&b, rec->data.data, rec->data.len);
            }
            buf_append_str(&b, "}");
            puts(b.data);
            total++;
        }
        bool more = r->more;
        after = r->next_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            break;
    }
    buf_free(&b);
    fflush(stdout);
    if (!status)
        fprintf(stderr, "oaif: exported %zu %s\n", total, kinds_name(kind));
    conn_close(&zctx, &cl);
    return status;
}

/* ---- keys ------------------------------------------------------------------------------ */

int oaif_cmd_keys(int argc, char **argv)
{
    const char *dir = ".", *name = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "usage: oaif keys NAME [--dir DIR]\n");
            return 2;
        }
    }
    if (!name) {
        fprintf(stderr, "usage: oaif keys NAME [--dir DIR]   (writes DIR/NAME.key and "
                        "DIR/NAME.key.pub)\n");
        return 2;
    }
    struct bus_curve k;
    if (bus_curve_generate(&k)) {
        fprintf(stderr, "oaif: keys: this libzmq was built without CURVE\n");
        return 1;
    }
    char path[2048], err[512];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    if (bus_curve_save(&k, path, err, sizeof err)) {
        fprintf(stderr, "oaif: keys: %s\n", err);
        return 1;
    }
    printf("wrote %s (secret, mode 0600) and %s.pub\npublic key: %s\n", path, path, k.public_key);
    return 0;
}

/* ---- task ------------------------------------------------------------------------------ */

int oaif_cmd_task(int argc, char **argv)
{
    const char *usage =
        "usage: oaif task prompts|pairs|demos [--split train|eval] [--n N] [--seed S]\n"
        "  prompts: the built-in task's prompts as JSONL (for oaif import prompts)\n"
        "  pairs:   each prompt with two SFT-style demonstrations (for oaif annotate)\n"
        "  demos:   the first N demonstrations oaif sft trains on (train split; for\n"
        "           oaif sft --data): {\"id\", \"prompt\", \"response\"}\n";
    bool pairs = argc >= 1 && !strcmp(argv[0], "pairs");
    bool demos = argc >= 1 && !strcmp(argv[0], "demos");
    if (argc < 1 || (strcmp(argv[0], "prompts") != 0 && !pairs && !demos)) {
        fputs(usage, stderr);
        return 2;
    }
    enum task_split split = TASK_SPLIT_TRAIN;
    unsigned long n = 100, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v) {
            fprintf(stderr, "oaif task: %s needs a value\n%s", a, usage);
            return 2;
        }
        i++;
        if (!strcmp(a, "--split") && (!strcmp(v, "train") || !strcmp(v, "eval")))
            split = strcmp(v, "train") ? TASK_SPLIT_EVAL : TASK_SPLIT_TRAIN;
        else if (!strcmp(a, "--n") && (n = strtoul(v, &end, 10), *v && !*end && n > 0 &&
                                       n <= 1000000))
            ;
        else if (!strcmp(a, "--seed") && (seed = strtoul(v, &end, 10), *v && !*end))
            ;
        else {
            fprintf(stderr, "oaif task: bad option %s %s\n%s", a, v, usage);
            return 2;
        }
    }
    if (demos) {
        if (split != TASK_SPLIT_TRAIN) {
            fprintf(stderr, "oaif task demos: demonstrations come from the train split only\n");
            return 1;
        }
        struct task_demo_config dc = TASK_DEMO_CONFIG_DEFAULT;
        struct task_pair *dp = NULL;
        char err[256] = "cannot generate the demonstrations";
        int rc = task_demo_pairs(seed, n, &dc, &dp);
        if (!rc)
            rc = task_jsonl_write("/dev/stdout", dp, n, err, sizeof err);
        if (rc)
            fprintf(stderr, "oaif task demos: %s\n", err);
        task_pairs_free(&dp, n);
        return rc ? 1 : 0;
    }
    struct task_prompt *ps = NULL;
    if (task_prompt_set(seed, split, n, &ps)) {
        fprintf(stderr, "oaif task: cannot generate %lu prompts\n", n);
        return 1;
    }
    buf_t b;
    buf_init(&b, 0);
    for (unsigned long i = 0; i < n; i++) {
        buf_reset(&b);
        buf_append_str(&b, "{\"id\":");
        pbjson_append_string(&b, ps[i].id, strlen(ps[i].id));
        buf_append_str(&b, ",\"prompt\":");
        pbjson_append_string(&b, ps[i].text, strlen(ps[i].text));
        buf_append_str(&b, ",\"reference\":");
        pbjson_append_string(&b, ps[i].answer, strlen(ps[i].answer));
        buf_printf(&b, ",\"family\":\"%s\",\"split\":\"%s\"", task_family_name(ps[i].family),
                   task_split_name(ps[i].split));
        if (pairs) {
            /* Two demonstrations with the task's controlled imperfection: some wrong, some
             * verbose, so that a judge has something to decide. */
            struct task_demo_config dc = TASK_DEMO_CONFIG_DEFAULT;
            for (int k = 0; k < 2; k++) {
                char resp[TASK_RESPONSE_MAX * 2];
                if (task_demo(&ps[i], &dc, seed, (uint64_t)k, resp, sizeof resp, NULL))
                    resp[0] = '\0';
                buf_append_str(&b, k ? ",\"response_b\":" : ",\"response_a\":");
                pbjson_append_string(&b, resp, strlen(resp));
            }
        }
        buf_append_str(&b, "}");
        puts(b.data);
    }
    buf_free(&b);
    free(ps);
    return 0;
}

/* ---- annotate -------------------------------------------------------------------------- */

struct ann_item {
    char *id;
    uint8_t *payload;
    size_t len;
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

/* Read {prompt, response_a, response_b, reference?, instruction?, id?} lines into packed
 * AnnotateRequests; all lines are checked before anything is sent. */
static int read_pairs(const char *path, const char *instruction, struct ann_item **items,
                      size_t *n, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_NOTFOUND;
    }
    char *line = NULL;
    size_t lcap = 0, cnt = 0, cap = 0;
    ssize_t len;
    int lineno = 0, rc = ERR_OK;
    struct ann_item *out = NULL;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        const char *prompt = o ? jstr(o, "prompt") : NULL;
        const char *a = o ? jstr(o, "response_a") : NULL, *b = o ? jstr(o, "response_b") : NULL;
        if (!o || !json_is_object(o)) {
            snprintf(err, errlen, "%s:%d: not a JSON object%s%s", path, lineno, o ? "" : ": ",
                     o ? "" : je.text);
            rc = ERR_INVAL;
        } else if (!prompt || !*prompt || !a || !b) {
            snprintf(err, errlen, "%s:%d: field \"%s\": missing or not a string", path, lineno,
                     !prompt || !*prompt ? "prompt" : !a ? "response_a" : "response_b");
            rc = ERR_INVAL;
        }
        if (rc) {
            json_decref(o);
            break;
        }
        const char *id = jstr(o, "id");
        const char *instr = jstr(o, "instruction") ? jstr(o, "instruction") : instruction;
        char idbuf[48];
        if (!id) {
            /* The content's digest: annotating the same file again returns the stored labels. */
            struct sha256 sc;
            uint8_t h[32];
            sha256_init(&sc);
            sha256_update(&sc, prompt, strlen(prompt) + 1);
            sha256_update(&sc, a, strlen(a) + 1);
            sha256_update(&sc, b, strlen(b) + 1);
            sha256_update(&sc, instr ? instr : "", instr ? strlen(instr) + 1 : 1);
            sha256_final(&sc, h);
            snprintf(idbuf, sizeof idbuf, "pair-");
            for (int k = 0; k < 12; k++)
                snprintf(idbuf + 5 + 2 * k, 3, "%02x", h[k]);
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
        if (cnt == cap) {
            cap = cap ? cap * 2 : 256;
            struct ann_item *p = realloc(out, cap * sizeof *p);
            if (!p) {
                json_decref(o);
                rc = ERR_NOMEM;
                break;
            }
            out = p;
        }
        size_t plen = oaif__v1__annotate_request__get_packed_size(&req);
        out[cnt].payload = malloc(plen);
        out[cnt].id = malloc(strlen(id) + 16);
        out[cnt].len = plen;
        if (out[cnt].payload)
            oaif__v1__annotate_request__pack(&req, out[cnt].payload);
        if (out[cnt].id) {
            /* The request id names the pair and the instruction: the same pair judged under
             * another instruction is another request. */
            char tag[12] = "";
            if (instr && *instr) {
                uint8_t h[32];
                sha256(instr, strlen(instr), h);
                snprintf(tag, sizeof tag, "-%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
            }
            snprintf(out[cnt].id, strlen(id) + 16, "ann-%s%s", id, tag);
        }
        cnt++;
        json_decref(o);
        if (!out[cnt - 1].payload || !out[cnt - 1].id) {
            rc = ERR_NOMEM;
            break;
        }
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (rc) {
        for (size_t i = 0; i < cnt; i++) {
            free(out[i].id);
            free(out[i].payload);
        }
        free(out);
        return rc;
    }
    *items = out;
    *n = cnt;
    return ERR_OK;
}

int oaif_cmd_annotate(int argc, char **argv)
{
    struct conn c;
    argc = conn_parse(&c, argc, argv);
    if (argc < 0)
        return 2;
    const char *path = NULL, *instruction = NULL;
    long inflight = 64;
    bool quiet = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--instruction") && i + 1 < argc)
            instruction = argv[++i];
        else if (!strcmp(argv[i], "--in-flight") && i + 1 < argc)
            inflight = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = true;
        else if (argv[i][0] != '-' || !strcmp(argv[i], "-"))
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (!path || inflight < 1 || inflight > 100000) {
        fprintf(stderr, "usage: oaif annotate FILE.jsonl [--instruction TEXT] [--in-flight N] "
                        "[--quiet]\n  lines: {\"prompt\", \"response_a\", \"response_b\", "
                        "\"reference\"?, \"instruction\"?, \"id\"?}; labels as JSONL on "
                        "stdout\n");
        return 2;
    }
    char err[1024];
    struct ann_item *items = NULL;
    size_t n = 0;
    if (read_pairs(path, instruction, &items, &n, err, sizeof err)) {
        fprintf(stderr, "oaif: annotate: %s (nothing was sent)\n", err);
        return 1;
    }
    void *zctx = NULL;
    bus_client_t *cl = NULL;
    if (conn_open(&c, &zctx, &cl)) {
        conn_close(&zctx, &cl);
        return 1;
    }
    struct ann_run run = {0};
    buf_init(&run.line, 0);
    size_t next = 0;
    uint64_t t0 = bus_mono_ms(), last_progress = 0;
    while (run.done < n) {
        while (next < n && next - run.done < (size_t)inflight) {
            int rc = bus_client_submit(cl, "annotate", items[next].id, items[next].payload,
                                       items[next].len, 0, 0);
            if (rc && rc != ERR_EXISTS) {
                fprintf(stderr, "oaif: annotate: %s\n", err_str(rc));
                break;
            }
            next++;
        }
        int got = bus_client_poll(cl, 200, on_annotated, &run);
        if (got < 0)
            break;
        uint64_t now = bus_mono_ms();
        if (!quiet && (now - last_progress >= 500 || run.done == n)) {
            last_progress = now;
            int w = 30, fill = (int)(w * run.done / (n ? n : 1));
            fprintf(stderr, "\r[%.*s%*s] %zu/%zu labels  %.1f/s  failed %zu   ", fill,
                    "##############################", w - fill, "", run.done, n,
                    (double)run.done * 1000.0 / (double)(now - t0 + 1), run.failed);
        }
    }
    if (!quiet)
        fputc('\n', stderr);
    double secs = (double)(bus_mono_ms() - t0) / 1000.0;
    fprintf(stderr,
            "oaif: annotated %zu pairs in %.1f s: first %zu, second %zu, tie %zu, failed %zu; "
            "cached %zu; mean order disagreement %.3f; noise-flipped %zu; tokens %" PRIu64
            " in / %" PRIu64 " out; cost %.4f\n",
            run.done, secs, run.first, run.second, run.tie, run.failed, run.cached,
            run.done > run.failed ? run.disagreement / (double)(run.done - run.failed) : 0.0,
            run.flipped, run.prompt_tokens, run.completion_tokens, run.cost);
    buf_free(&run.line);
    for (size_t i = 0; i < n; i++) {
        free(items[i].id);
        free(items[i].payload);
    }
    free(items);
    conn_close(&zctx, &cl);
    return run.done == n && run.failed == 0 ? 0 : 1;
}

/* ---- audit ----------------------------------------------------------------------------- */

/* Call fn on every record of `kind`, in commit order. */
static int scan_all(bus_client_t *cl, const struct conn *c, Oaif__V1__RecordKind kind,
                    void (*fn)(void *ctx, const Oaif__V1__Record *rec), void *ctx)
{
    uint64_t after = 0;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(cl, kind, after, 2000, c->timeout_ms, &env);
        if (rc)
            return query_failed(rc, c, cl, "audit");
        Oaif__V1__Records *r = env->records;
        for (size_t i = 0; i < r->n_records; i++)
            fn(ctx, r->records[i]);
        bool more = r->more;
        after = r->next_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            return 0;
    }
}

struct audit {
    hmap_t *pairs;   /* pair id -> 1 */
    hmap_t *labeled; /* pair id -> 1 */
    hmap_t *trained; /* pair id -> step (as pointer-sized integer) */
    size_t npairs, nlabels, ntrained, twice, steps;
    size_t reasons_n[16];
    char reasons[16][32];
    size_t nreasons;
    buf_t problems;
};

static void audit_pair(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    a->npairs++;
    hmap_put(a->pairs, rec->id, strlen(rec->id), (void *)1);
}

static void audit_label(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, rec->data.len, rec->data.data);
    if (!l)
        return;
    a->nlabels++;
    if (l->pair_id && *l->pair_id)
        hmap_put(a->labeled, l->pair_id, strlen(l->pair_id), (void *)1);
    oaif__v1__label__free_unpacked(l, NULL);
}

static void audit_step(void *ctx, const Oaif__V1__Record *rec)
{
    struct audit *a = ctx;
    Oaif__V1__TrainStep *t = oaif__v1__train_step__unpack(NULL, rec->data.len, rec->data.data);
    if (!t)
        return;
    a->steps++;
    for (size_t i = 0; i < t->n_pair_ids; i++) {
        const char *id = t->pair_ids[i];
        uintptr_t before = (uintptr_t)hmap_get(a->trained, id, strlen(id));
        if (before) {
            a->twice++;
            buf_printf(&a->problems, "  pair %s trained in step %" PRIuPTR " and step %" PRIu64 "\n",
                       id, before, t->step);
        } else {
            a->ntrained++;
            hmap_put(a->trained, id, strlen(id), (void *)(uintptr_t)(t->step ? t->step : 1));
        }
    }
    for (size_t i = 0; i < t->n_skip_reasons; i++) {
        size_t k = 0;
        while (k < a->nreasons && strcmp(a->reasons[k], t->skip_reasons[i]))
            k++;
        if (k == a->nreasons && a->nreasons < 16)
            snprintf(a->reasons[a->nreasons++], 32, "%s", t->skip_reasons[i]);
        if (k < 16)
            a->reasons_n[k]++;
    }
    oaif__v1__train_step__free_unpacked(t, NULL);
}

int oaif_cmd_audit(int argc, char **argv)
{
    struct conn c;
    argc = conn_parse(&c, argc, argv);
    if (argc < 0)
        return 2;
    if (argc != 0) {
        fprintf(stderr, "usage: oaif audit [--ledger EP]\n  proves from the ledger that no pair "
                        "was used in two training steps\n");
        return 2;
    }
    void *zctx = NULL;
    bus_client_t *cl = NULL;
    struct audit a = {0};
    a.pairs = hmap_new();
    a.labeled = hmap_new();
    a.trained = hmap_new();
    buf_init(&a.problems, 1 << 20);
    int status = !a.pairs || !a.labeled || !a.trained ? 1 : 0;
    if (!status && conn_open(&c, &zctx, &cl))
        status = 1;
    if (!status)
        status = scan_all(cl, &c, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, audit_pair, &a);
    if (!status)
        status = scan_all(cl, &c, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, audit_label, &a);
    if (!status)
        status = scan_all(cl, &c, OAIF__V1__RECORD_KIND__RECORD_KIND_STEP, audit_step, &a);
    size_t unlabeled = 0, unknown = 0;
    if (!status) {
        size_t pos = 0;
        const void *k;
        size_t kl;
        while (hmap_next(a.trained, &pos, &k, &kl, NULL)) {
            if (!hmap_get(a.pairs, k, kl)) {
                unknown++;
                buf_printf(&a.problems, "  pair %.*s trained but not in the ledger's pairs\n",
                           (int)kl, (const char *)k);
            } else if (!hmap_get(a.labeled, k, kl)) {
                unlabeled++;
                buf_printf(&a.problems, "  pair %.*s trained without a label\n", (int)kl,
                           (const char *)k);
            }
        }
        printf("pairs sampled   %zu\nlabels          %zu\nsteps           %zu\n"
               "pairs trained   %zu\n",
               a.npairs, a.nlabels, a.steps, a.ntrained);
        for (size_t i = 0; i < a.nreasons; i++)
            printf("set aside       %zu %s\n", a.reasons_n[i], a.reasons[i]);
        printf("trained twice   %zu\ntrained, no label %zu\ntrained, no pair  %zu\n", a.twice,
               unlabeled, unknown);
        if (a.twice || unlabeled || unknown) {
            printf("AUDIT FAILED:\n%s", a.problems.data ? a.problems.data : "");
            status = 1;
        } else {
            printf("audit: clean (every trained pair was sampled, labeled, and used in one step)\n");
        }
    }
    buf_free(&a.problems);
    hmap_destroy(&a.pairs);
    hmap_destroy(&a.labeled);
    hmap_destroy(&a.trained);
    conn_close(&zctx, &cl);
    return status;
}
