/* prompts.c - see prompts.h. */
#include "prompts.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "sha256.h"

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

int prompts_line(void *ctx, json_t *o, const char *where, char *err, size_t errlen)
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