/* fuzz_import_prompts.c - a prompts file as `oaif import prompts FILE.jsonl` reads it: the input
 * is written to a scratch file and read with cli_jsonl_read (lines, blank ones, CRLF, JSON)
 * calling prompts_line on each line (fields, types, the id's length, the packed Prompt).
 * Every record packed must unpack as the Prompt it says, with a non-empty id and text. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "fuzz.h"
#include "oaif.pb-c.h"
#include "prompts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("prompts.jsonl", data, size);
    struct cli_packed_list recs = {0};
    char err[1024];
    int rc = cli_jsonl_read(path, prompts_line, &recs, err, sizeof err);
    if (rc != ERR_OK && !memchr(err, '\0', sizeof err))
        fuzz_fail("cli_jsonl_read: error %d without a reason", rc);
    for (size_t i = 0; i < recs.n; i++) {
        Oaif__V1__Prompt *p = oaif__v1__prompt__unpack(NULL, recs.items[i].len, recs.items[i].data);
        if (!p)
            fuzz_fail("record %zu does not unpack as a Prompt", i);
        if (!p->id[0] || strcmp(p->id, recs.items[i].id) != 0 || !p->text[0])
            fuzz_fail("record %zu: id \"%s\" (listed as \"%s\"), %zu bytes of text", i, p->id,
                      recs.items[i].id, strlen(p->text));
        oaif__v1__prompt__free_unpacked(p, NULL);
    }
    cli_packed_free(&recs);
    return 0;
}
