/* evals.h - one line of an evaluations file, as `oaif import evals FILE.jsonl` reads it: an
 * EvalResult object in pbjson.h's mapping (field names as in the .proto, proto3 defaults left
 * out), or a record as `oaif export evals` writes it ({"kind": "evals", ..., "data": {...}}).
 * An unknown field, a value of the wrong type, a missing run or id makes the line fail, with the
 * field named. Apart from import_evals.c so that tests/fuzz reaches it without the rest of the
 * CLI. */
#ifndef EVALS_H
#define EVALS_H

#include <jansson.h>
#include <stddef.h>

/* A cli_jsonl_fn: checks line object o and packs it as an EvalResult record with the id
 * "<run>/<id>" onto ctx, a struct cli_packed_list. ERR_OK; ERR_INVAL with "where: field \"...\":
 * reason" in err; ERR_NOMEM. */
int evals_line(void *ctx, json_t *o, const char *where, char *err, size_t errlen);

#endif /* EVALS_H */
