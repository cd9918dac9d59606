/* evals.c - see evals.h. */
#include "evals.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "oaif.pb-c.h"

/* Sets scalar field f of m from v (strings borrowed from v). ERR_INVAL with err written. */
static int set_scalar(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v,
                      const char *where, char *err, size_t errlen)
{
    void *p = (char *)m + f->offset;
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;
    switch (f->type) {
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!json_is_number(v))
            break;
        *(double *)p = json_number_value(v);
        return ERR_OK;
    case PROTOBUF_C_TYPE_UINT32:
        if (i < 0 || i > (json_int_t)UINT32_MAX)
            break;
        *(uint32_t *)p = (uint32_t)i;
        return ERR_OK;
    case PROTOBUF_C_TYPE_UINT64:
        if (i < 0)
            break;
        *(uint64_t *)p = (uint64_t)i;
        return ERR_OK;
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            break;
        *(const char **)p = json_string_value(v);
        return ERR_OK;
    default:
        snprintf(err, errlen, "%s: field \"%s\": a type oaif import evals does not read", where,
                 f->name);
        return ERR_INVAL;
    }
    snprintf(err, errlen, "%s: field \"%s\": expected %s", where, f->name,
             f->type == PROTOBUF_C_TYPE_STRING   ? "a string"
             : f->type == PROTOBUF_C_TYPE_DOUBLE ? "a number"
                                                 : "a non-negative integer in range");
    return ERR_INVAL;
}

/* The "metrics" array of {name, value} into r (arrays malloc'd into *store, names borrowed). */
static int set_metrics(Oaif__V1__EvalResult *r, json_t *v, Oaif__V1__Metric **store,
                       const char *where, char *err, size_t errlen)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s: field \"metrics\": expected an array", where);
        return ERR_INVAL;
    }
    *store = calloc(n ? n : 1, sizeof **store);
    r->metrics = calloc(n ? n : 1, sizeof *r->metrics);
    if (!*store || !r->metrics) {
        snprintf(err, errlen, "%s: out of memory", where);
        return ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *o = json_array_get(v, k), *name = json_object_get(o, "name"),
               *val = json_object_get(o, "value");
        /* proto3 leaves an empty name and a 0 value out, so either may be missing */
        if (!json_is_object(o) || (name && !json_is_string(name)) ||
            (val && !json_is_number(val))) {
            snprintf(err, errlen,
                     "%s: metrics[%zu]: expected {\"name\": string, \"value\": number}", where, k);
            return ERR_INVAL;
        }
        oaif__v1__metric__init(&(*store)[k]);
        (*store)[k].name = name ? (char *)json_string_value(name) : (char *)"";
        (*store)[k].value = val ? json_number_value(val) : 0;
        r->metrics[k] = &(*store)[k];
    }
    r->n_metrics = n;
    return ERR_OK;
}

/* `oaif export` wraps each record ({"kind": "evals", "id", "seq", "time_ms", "data": {...}}): the
 * EvalResult is its data. */
int evals_line(void *ctx, json_t *o, const char *where, char *err, size_t errlen)
{
    json_t *kind = json_object_get(o, "kind"), *data = json_object_get(o, "data");
    if (json_is_object(data)) {
        if (!json_is_string(kind) || strcmp(json_string_value(kind), "evals") != 0) {
            snprintf(err, errlen, "%s: a record of kind %s, not evals", where,
                     json_is_string(kind) ? json_string_value(kind) : "(none)");
            return ERR_INVAL;
        }
        o = data;
    }
    Oaif__V1__EvalResult r = OAIF__V1__EVAL_RESULT__INIT;
    Oaif__V1__Metric *ms = NULL;
    const char *key;
    json_t *v;
    int rc = ERR_OK;
    json_object_foreach(o, key, v)
    {
        if (rc)
            break;
        if (!strcmp(key, "metrics")) {
            rc = set_metrics(&r, v, &ms, where, err, errlen);
            continue;
        }
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
            &oaif__v1__eval_result__descriptor, key);
        if (!f) {
            snprintf(err, errlen, "%s: unknown field \"%s\" (not an EvalResult's)", where, key);
            rc = ERR_INVAL;
        } else {
            rc = set_scalar(&r.base, f, v, where, err, errlen);
        }
    }
    if (!rc && (!*r.id || !*r.run)) {
        snprintf(err, errlen, "%s: field \"%s\": missing or empty", where, *r.id ? "run" : "id");
        rc = ERR_INVAL;
    }
    char id[600];
    if (!rc && (size_t)snprintf(id, sizeof id, "%s/%s", r.run, r.id) >= sizeof id) {
        snprintf(err, errlen, "%s: the run and id are too long for a record id", where);
        rc = ERR_INVAL;
    }
    if (!rc && cli_packed_add(ctx, id, &r.base)) {
        snprintf(err, errlen, "%s: out of memory", where);
        rc = ERR_NOMEM;
    }
    free(ms);
    free(r.metrics);
    return rc;
}
