/* kinds.c - see kinds.h. */
#include "kinds.h"

#include <string.h>

#include "err.h"

/* In RecordKind order; the ledger's column families are created in this order too. */
static const char *const kind_names[KINDS_COUNT] = {
    NULL,          "prompts", "pairs", "labels", "scores", "strengths",
    "checkpoints", "evals",   "steps", "cache",  "meta",
};

const char *kinds_name(Oaif__V1__RecordKind kind)
{
    return (kind > 0 && (int)kind < KINDS_COUNT) ? kind_names[kind] : NULL;
}

int kinds_parse(const char *name, Oaif__V1__RecordKind *kind)
{
    for (int k = 1; k < KINDS_COUNT; k++) {
        size_t n = strlen(kind_names[k]);
        /* "pairs" and "pair" both work */
        if (strcmp(name, kind_names[k]) == 0 ||
            (strlen(name) == n - 1 && strncmp(name, kind_names[k], n - 1) == 0)) {
            *kind = (Oaif__V1__RecordKind)k;
            return ERR_OK;
        }
    }
    return ERR_NOTFOUND;
}
