/* fuzz_cfg.c - the run file (YAML) as common/cfg.c reads it: cfg_doc_parse on the bytes, a walk
 * of the tree it gives (every node placed at a line and column, every scalar's length its
 * strlen), then cfg_load through --config with three option tables: one of every option type
 * (below) and two services' own (the ledger's, the annotator-proxy's). A configuration that
 * loads is rendered as YAML (`oaif config show`), and the rendering must load again and render
 * the same: what the CLI prints is a run file. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotator_opts.h"
#include "cfg.h"
#include "err.h"
#include "fuzz.h"
#include "ledger_opts.h"

struct every {
    int i;
    double d;
    bool b;
    char *s, *secret;
    int e;
    int64_t dur;
    size_t sz;
    struct cfg_strlist list;
    float f;
    long l;
    uint64_t u;
};

static const struct cfg_choice colours[] = {{"red", 1}, {"green", 2}, {NULL, 0}};

#define E struct every
static const struct cfg_option every_options[] = {
    CFG_INT_OPT(E, i, .key = "fuzz.int", .def = "3", .min = -5, .max = 1000),
    CFG_DOUBLE_OPT(E, d, .key = "fuzz.nested.double", .def = "0.5", .dmin = 0, .dmax = 1),
    CFG_BOOL_OPT(E, b, .key = "fuzz.bool", .def = "false"),
    CFG_STRING_OPT(E, s, .key = "fuzz.string", .def = "x"),
    CFG_STRING_OPT(E, secret, .key = "fuzz.secret", .flags = CFG_SECRET),
    CFG_ENUM_OPT(E, e, .key = "fuzz.enum", .choices = colours),
    CFG_DURATION_OPT(E, dur, .key = "fuzz.duration", .def = "2s", .min = 0, .max = 86400000),
    CFG_SIZE_OPT(E, sz, .key = "fuzz.size", .def = "1MiB"),
    CFG_STRLIST_OPT(E, list, .key = "fuzz.list", .def = "a,b"),
    CFG_FLOAT_OPT(E, f, .key = "fuzz.float", .def = "1.5"),
    CFG_LONG_OPT(E, l, .key = "other.long", .def = "7", .old_key = "fuzz.old_long"),
    CFG_UINT64_OPT(E, u, .key = "other.deep.u64", .def = "9"),
};
#undef E

static const char *const every_sections[] = {"fuzz", NULL};

static const struct cfg_spec every_spec = {
    .name = "fuzz_cfg",
    .summary = "every option type",
    .sections = every_sections,
    .options = every_options,
    .n_options = sizeof every_options / sizeof every_options[0],
    .conf_size = sizeof(struct every),
};

static void walk(const struct cfg_node *n, int depth)
{
    if (!n)
        return;
    if (depth > 10000)
        fuzz_fail("a tree %d levels deep", depth);
    if (n->line < 1 || n->col < 1)
        fuzz_fail("a node at line %d, column %d", n->line, n->col);
    if (n->kind == CFG_NODE_SCALAR) {
        if (!n->text || strlen(n->text) != n->len)
            fuzz_fail("a scalar whose length is not its strlen");
    } else if (n->kind != CFG_NODE_MAP && n->kind != CFG_NODE_SEQ) {
        fuzz_fail("a node of kind %d", (int)n->kind);
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        const char *key = n->kids[i]->key;
        if (n->kind == CFG_NODE_MAP && !key)
            fuzz_fail("a map value without its key");
        /* a key with a dot in it cannot be named by a dotted path */
        if (n->kind == CFG_NODE_MAP && !strchr(key, '.') && !cfg_node_get(n, key))
            fuzz_fail("map key \"%s\" not found by cfg_node_get", key);
        walk(n->kids[i], depth + 1);
    }
}

/* Loads `path` with spec; on success renders it, loads the rendering and renders that. */
static void load_render(const struct cfg_spec *spec, const char *path)
{
    char *argv[] = {"fuzz_cfg", "--config", (char *)path, NULL};
    void *conf = calloc(1, spec->conf_size);
    void *again = calloc(1, spec->conf_size);
    if (!conf || !again)
        abort();
    buf_t errs, out, out2;
    buf_init(&errs, 0);
    buf_init(&out, 0);
    buf_init(&out2, 0);
    if (cfg_load(spec, conf, 3, argv, &errs) == ERR_OK) {
        if (cfg_render_yaml(spec, conf, &out) != ERR_OK)
            fuzz_fail("%s: cfg_render_yaml failed", spec->name);
        /* secrets render as "***": a file holding them would load back another value */
        const char *rendered = fuzz_file("rendered.yaml", out.data ? out.data : "", out.len);
        char *argv2[] = {"fuzz_cfg", "--config", (char *)rendered, NULL};
        buf_reset(&errs);
        if (cfg_load(spec, again, 3, argv2, &errs) != ERR_OK)
            fuzz_fail("%s: what cfg_render_yaml wrote does not load: %s\n---\n%s", spec->name,
                      errs.data ? errs.data : "", out.data ? out.data : "");
        if (cfg_render_yaml(spec, again, &out2) != ERR_OK)
            fuzz_fail("%s: cfg_render_yaml failed the second time", spec->name);
        if (out.len != out2.len || (out.len && memcmp(out.data, out2.data, out.len) != 0))
            fuzz_fail("%s: a rendering renders differently once loaded:\n%s\n---\n%s", spec->name,
                      out.data, out2.data);
        cfg_release(spec, again);
        cfg_release(spec, conf);
    }
    buf_free(&errs);
    buf_free(&out);
    buf_free(&out2);
    free(conf);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg_doc_t *doc = NULL;
    buf_t errs;
    buf_init(&errs, 0);
    int rc = cfg_doc_parse(&doc, "fuzz.yaml", (const char *)data, size, &errs);
    if (rc == ERR_OK) {
        walk(cfg_doc_root(doc), 0);
        cfg_doc_free(&doc);
    } else if (rc == ERR_INVAL && !errs.len) {
        fuzz_fail("cfg_doc_parse: ERR_INVAL without a reason");
    }
    buf_free(&errs);
    if (rc != ERR_OK)
        return 0;
    const char *path = fuzz_file("run.yaml", data, size);
    load_render(&every_spec, path);
    load_render(&ledger_opts_spec, path);
    load_render(&annotator_opts_spec, path);
    return 0;
}
