/* kinds.h - the names of the record kinds (oaif.v1.RecordKind): "prompts", "pairs", ...
 *
 * One name per kind, used as the ledger's column family, its events topic and its metrics label,
 * and as the CLI's `oaif export KIND`. Only the names live here; the records themselves are the
 * ledger's. Kinds run from 1 to KINDS_COUNT - 1 (0 is RECORD_KIND_UNSPECIFIED, unnamed). */
#ifndef KINDS_H
#define KINDS_H

#include <stdbool.h>

#include "oaif.pb-c.h"

/* One past the last named kind: arrays indexed by kind have KINDS_COUNT entries. */
#define KINDS_COUNT 11

/* The name of `kind` ("prompts", "pairs", ...): a static string, or NULL if `kind` is
 * unspecified or unknown. */
const char *kinds_name(Oaif__V1__RecordKind kind);

/* The kind named `name`, plural or singular ("pairs" or "pair"), into *kind.
 * Returns ERR_OK, or ERR_NOTFOUND (and *kind untouched) if no kind has that name. */
int kinds_parse(const char *name, Oaif__V1__RecordKind *kind);

/* May a worker of `service` attach records of `kind` to its results? The services oaif runs
 * ("sample", "annotate", "score", "estimate", "evaluate") write only their own kinds (the
 * table in kinds.c); a service not in the table (a test's, an extension's) may write any kind. */
bool kinds_service_writes(const char *service, Oaif__V1__RecordKind kind);

#endif /* KINDS_H */
