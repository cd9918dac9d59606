/* fuzz_import_evals.c - an evaluations file as `oaif import evals FILE.jsonl` reads it: the input
 * is written to a scratch file and read with cli_jsonl_read calling evals_line on each line (an
 * EvalResult object or an exported record wrapping one; fields, types, run and id). Every record
 * packed must unpack as an EvalResult with a non-empty run and id, under the id "<run>/<id>", and
 * survive the round trip `oaif export evals` makes of it: its JSON line (pbjson), read again,
 * gives the same JSON. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "evals.h"
#include "fuzz.h"
#include "oaif.pb-c.h"
#include "pbjson.h"

/* The JSON `oaif export evals` writes for packed EvalResult bytes, into out (reset first). */
static void export_json(buf_t *out, const struct cli_packed *p, size_t i)
{
    Oaif__V1__EvalResult *r = oaif__v1__eval_result__unpack(NULL, p->len, p->data);
    if (!r)
        fuzz_fail("record %zu does not unpack as an EvalResult", i);
    char id[600];
    snprintf(id, sizeof id, "%s/%s", r->run, r->id);
    if (!r->run[0] || !r->id[0] || strcmp(id, p->id) != 0)
        fuzz_fail("record %zu: run \"%s\", id \"%s\", listed as \"%s\"", i, r->run, r->id, p->id);
    buf_reset(out);
    if (pbjson_append(out, &r->base) != ERR_OK)
        fuzz_fail("record %zu: pbjson_append failed", i);
    oaif__v1__eval_result__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("evals.jsonl", data, size);
    struct cli_packed_list recs = {0};
    char err[1024];
    int rc = cli_jsonl_read(path, evals_line, &recs, err, sizeof err);
    if (rc != ERR_OK && !memchr(err, '\0', sizeof err))
        fuzz_fail("cli_jsonl_read: error %d without a reason", rc);
    buf_t first, second;
    buf_init(&first, 0);
    buf_init(&second, 0);
    for (size_t i = 0; i < recs.n; i++) {
        export_json(&first, &recs.items[i], i);
        json_error_t je;
        json_t *o = json_loadb(first.data, first.len, 0, &je);
        if (!o)
            fuzz_fail("record %zu: its export is not JSON (%s): %s", i, je.text, first.data);
        struct cli_packed_list again = {0};
        char err2[1024];
        if (evals_line(&again, o, "export", err2, sizeof err2) != ERR_OK || again.n != 1)
            fuzz_fail("record %zu: its export does not import again: %s (%s)", i, err2, first.data);
        export_json(&second, &again.items[0], i);
        if (first.len != second.len || memcmp(first.data, second.data, first.len) != 0)
            fuzz_fail("record %zu: exported %s, then %s", i, first.data, second.data);
        json_decref(o);
        cli_packed_free(&again);
    }
    buf_free(&first);
    buf_free(&second);
    cli_packed_free(&recs);
    return 0;
}
