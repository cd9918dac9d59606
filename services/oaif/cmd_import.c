/* cmd_import.c - `oaif import prompts FILE.jsonl`: prompts into the ledger. Every line is checked
 * before anything is sent, so a bad file imports nothing; the put ids come from the file's digest,
 * so running the same import again finishes an interrupted one and adds nothing twice. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "err.h"
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
               "\"instruction\"?, \"meta\"?}; FILE - reads stdin. Ids already present are kept.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct import_opts),
};

/* Field `key` of line object o: NULL when absent or null; a non-string sets *bad and err. */
static const char *opt_string(json_t *o, const char *key, const char *where, char *err,
                              size_t errlen, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (*bad || !v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: field \"%s\": expected a string", where, key);
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* A field the prompts file does not know, or NULL. */
static const char *unknown_field(json_t *o)
{
    static const char *const known[] = {"prompt", "text",  "id",          "reference", "answer",
                                        "family", "split", "instruction", "meta"};
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok |= !strcmp(key, known[k]);
        if (!ok)
            return key;
    }
    return NULL;
}

/* One line of a prompts file, checked and packed as a Prompt record onto the list (ctx). */
static int add_prompt(void *ctx, json_t *o, const char *where, char *err, size_t errlen)
{
    const char *unknown = unknown_field(o);
    if (unknown) {
        snprintf(err, errlen,
                 "%s: unknown field \"%s\" (known: prompt, id, reference, family, split, "
                 "instruction, meta)",
                 where, unknown);
        return ERR_INVAL;
    }
    bool bad = false;
    const char *text = opt_string(o, "prompt", where, err, errlen, &bad);
    if (!text)
        text = opt_string(o, "text", where, err, errlen, &bad);
    const char *id = opt_string(o, "id", where, err, errlen, &bad);
    const char *ref = opt_string(o, "reference", where, err, errlen, &bad);
    if (!ref)
        ref = opt_string(o, "answer", where, err, errlen, &bad);
    const char *family = opt_string(o, "family", where, err, errlen, &bad);
    const char *split = opt_string(o, "split", where, err, errlen, &bad);
    const char *instr = opt_string(o, "instruction", where, err, errlen, &bad);
    json_t *meta = json_object_get(o, "meta");
    if (!bad && meta && !json_is_object(meta)) {
        snprintf(err, errlen, "%s: field \"meta\": expected an object", where);
        bad = true;
    }
    if (!bad && (!text || !*text)) {
        snprintf(err, errlen, "%s: field \"prompt\": missing or empty", where);
        bad = true;
    }
    if (!bad && id && (strlen(id) == 0 || strlen(id) > 256)) {
        snprintf(err, errlen, "%s: field \"id\": must be 1 to 256 characters", where);
        bad = true;
    }
    if (bad)
        return ERR_INVAL;
    char idbuf[40];
    if (!id) {
        /* No id: the text's digest, so importing the same file twice adds nothing. */
        uint8_t h[32];
        sha256(text, strlen(text), h);
        snprintf(idbuf, sizeof idbuf, "p-");
        cli_hex(idbuf + 2, h, 12);
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
    int rc = meta && !meta_json ? ERR_NOMEM : cli_packed_add(ctx, id, &p.base);
    free(meta_json);
    if (rc)
        snprintf(err, errlen, "%s: out of memory", where);
    return rc;
}

/* The first 12 bytes of the records' sha256, as hex: the put ids' stem. */
static void records_digest(const struct cli_packed_list *recs, char out[25])
{
    uint8_t h[32];
    struct sha256 sc;
    sha256_init(&sc);
    for (size_t i = 0; i < recs->n; i++)
        sha256_update(&sc, recs->items[i].data, recs->items[i].len);
    sha256_final(&sc, h);
    cli_hex(out, h, 12);
}

#define IMPORT_CHUNK_BYTES (4u << 20)

/* Puts the records in chunks of about IMPORT_CHUNK_BYTES, each one atomic and if_absent. Returns
 * the exit status; *sent: whether any chunk went in. */
static int put_chunks(struct cli_ledger *l, const struct cli_packed_list *list, bool *sent)
{
    char digest[25];
    records_digest(list, digest);
    const struct cli_packed *recs = list->items;
    size_t n = list->n;
    size_t i = 0, chunk = 0;
    int status = 0;
    *sent = false;
    while (i < n && !status) {
        size_t start = i, bytes = 0;
        while (i < n && (i == start || bytes + recs[i].len < IMPORT_CHUNK_BYTES))
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
            rv[k].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
            rv[k].id = recs[start + k].id;
            rv[k].data.data = recs[start + k].data;
            rv[k].data.len = recs[start + k].len;
            rp[k] = &rv[k];
        }
        char put_id[80];
        snprintf(put_id, sizeof put_id, "import-prompts-%s-%zu", digest, chunk++);
        int rc = status ? ERR_OK : bus_client_put(l->client, put_id, rp, cnt, true, l->timeout_ms);
        if (rc)
            status = cli_ledger_failed(l, rc);
        *sent |= !status;
        free(rv);
        free(rp);
    }
    return status;
}

int cmd_import(int argc, char **argv)
{
    static const char verb[] = "oaif import";
    struct import_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 2, &npos);
    if (rc)
        return cli_exit_status(rc);
    if (npos != 2 || strcmp(argv[0], "prompts") != 0) {
        cli_error(verb, "usage: oaif import prompts FILE.jsonl [--clients EP] (see --help)");
        cfg_release(&spec, &o);
        return 2;
    }
    char err[1024];
    struct cli_packed_list recs = {0};
    struct cli_ledger l = {0};
    int status = 0;
    if (cli_jsonl_read(argv[1], add_prompt, &recs, err, sizeof err)) {
        cli_error(verb, "%s (nothing was imported)", err);
        status = 1;
    }
    bool sent = false;
    if (!status)
        status = cli_ledger_open(&l, verb, &o.conn);
    if (!status)
        status = put_chunks(&l, &recs, &sent);
    if (!status)
        printf("imported %zu prompts from %s (ids already present were kept)\n", recs.n, argv[1]);
    else if (sent)
        cli_error(verb, "import stopped; run the same command again to finish it");
    cli_packed_free(&recs);
    cli_ledger_close(&l);
    cfg_release(&spec, &o);
    return status;
}
