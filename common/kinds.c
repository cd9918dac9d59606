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

/* What each service's workers attach to their results, in one place: a worker that holds a lease
 * can still not write checkpoints or labels for another service. */
static const struct {
    const char *service;
    Oaif__V1__RecordKind kinds[4]; /* 0-ended */
} writes[] = {
    {"sample", {OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR}},
    {"annotate",
     {OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, OAIF__V1__RECORD_KIND__RECORD_KIND_CACHE}},
    {"score", {OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES}},
    {"estimate",
     {OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH}},
    {"evaluate", {0}},
};

bool kinds_service_writes(const char *service, Oaif__V1__RecordKind kind)
{
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        if (strcmp(writes[i].service, service) != 0)
            continue;
        for (int k = 0; k < 4 && writes[i].kinds[k]; k++)
            if (writes[i].kinds[k] == kind)
                return true;
        return false;
    }
    return true;
}
