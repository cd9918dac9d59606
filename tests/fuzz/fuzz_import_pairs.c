/* fuzz_import_pairs.c - a preference-pairs file as `oaif import pairs FILE` reads it
 * (services/oaif/pairs.c): the input is written to a scratch file and read by pairs_read in
 * auto-detect mode (JSON Lines or one JSON list; HH, TRL, Part II, TL;DR rows). Every pair a row
 * gives is checked (non-empty, distinct, valid UTF-8 responses), given its id, packed into its
 * records, and its Pair record written back as a TRL and an HH line (`oaif export pairs`). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "fuzz.h"
#include "oaif.pb-c.h"
#include "pairs.h"

static int on_row(void *ctx, const char *where, enum pairs_reason r, const char *msg,
                  struct pairs_item *it)
{
    enum pairs_format fmt = *(enum pairs_format *)ctx;
    if (!where || !msg)
        fuzz_fail("a row without its place or message");
    if (r != PAIRS_OK)
        return 0;
    if (!it->prompt || !it->chosen || !it->rejected || !it->chosen[0] || !it->rejected[0])
        fuzz_fail("%s: a pair with a missing or empty response", where);
    if (!strcmp(it->chosen, it->rejected))
        fuzz_fail("%s: a pair of identical responses", where);
    if (!fuzz_utf8(it->prompt) || !fuzz_utf8(it->chosen) || !fuzz_utf8(it->rejected))
        fuzz_fail("%s: a pair that is not valid UTF-8", where);
    char id[PAIRS_ID_LEN + 1];
    pairs_id(id, "fuzz", it);
    if (strlen(id) != PAIRS_ID_LEN)
        fuzz_fail("%s: id \"%s\"", where, id);
    struct pairs_record recs[PAIRS_MAX_RECORDS];
    size_t n = 0;
    if (pairs_pack(it, "fuzz", fmt, recs, &n) != ERR_OK || n < 1)
        fuzz_fail("%s: pairs_pack failed", where);
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, recs[0].len, recs[0].data);
    if (!p)
        fuzz_fail("%s: the first record does not unpack as a Pair", where);
    buf_t out;
    buf_init(&out, 0);
    pairs_write(&out, PAIRS_FORMAT_TRL, p, OAIF__V1__WINNER__WINNER_FIRST);
    pairs_write(&out, PAIRS_FORMAT_HH, p, OAIF__V1__WINNER__WINNER_SECOND);
    buf_free(&out);
    oaif__v1__pair__free_unpacked(p, NULL);
    for (size_t i = 0; i < n; i++)
        pairs_record_clear(&recs[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("pairs.jsonl", data, size);
    enum pairs_format fmt = PAIRS_FORMAT_AUTO;
    struct pairs_limits lim = {.max_response_bytes = 1 << 16, .max_prompt_bytes = 1 << 16};
    char err[1024];
    /* the callback reads the detected format through ctx: pairs_read stores it before the
     * first row */
    pairs_read(path, &fmt, &lim, on_row, &fmt, err, sizeof err);
    return 0;
}
