/* cmd_task.c - `oaif task prompts|pairs|demos`: the built-in task as JSONL on stdout: its prompts
 * (for oaif import prompts), each prompt with two demonstrations (for oaif annotate), or the
 * demonstrations oaif sft trains on (for oaif sft --data). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "pbjson.h"
#include "task.h"

struct task_opts {
    int split; /* enum task_split */
    int n;
    uint64_t seed;
};

static const struct cfg_choice splits[] = {
    {"train", TASK_SPLIT_TRAIN}, {"eval", TASK_SPLIT_EVAL}, {NULL, 0}};

static const struct cfg_option options[] = {
    CFG_ENUM_OPT(struct task_opts, split, .key = "oaif.task.split", .def = "train",
                 .choices = splits, .flag = "--split", .help = "Which split's prompts."),
    CFG_INT_OPT(struct task_opts, n, .key = "oaif.task.n", .def = "100", .min = 1, .max = 1000000,
                .flag = "--n", .help = "How many."),
    CFG_UINT64_OPT(struct task_opts, seed, .key = "oaif.task.seed", .def = "1", .flag = "--seed",
                   .help = "The task's seed (which problems, which split)."),
};

static const struct cfg_spec spec = {
    .name = "oaif task prompts|pairs|demos",
    .summary = "The built-in task as JSONL on stdout.\n"
               "  prompts: its prompts (for oaif import prompts)\n"
               "  pairs:   each prompt with two SFT-style demonstrations (for oaif annotate)\n"
               "  demos:   the first N demonstrations oaif sft trains on (train split; for\n"
               "           oaif sft --data): {\"id\", \"prompt\", \"response\"}",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct task_opts),
};

static int write_demos(const struct task_opts *o)
{
    if (o->split != TASK_SPLIT_TRAIN) {
        cli_error("oaif task demos", "demonstrations come from the train split only");
        return 1;
    }
    struct task_demo_config dc = TASK_DEMO_CONFIG_DEFAULT;
    struct task_pair *dp = NULL;
    char err[256] = "cannot generate the demonstrations";
    size_t n = (size_t)o->n;
    int rc = task_demo_pairs(o->seed, n, &dc, &dp);
    if (!rc)
        rc = task_jsonl_write("/dev/stdout", dp, n, err, sizeof err);
    if (rc)
        cli_error("oaif task demos", "%s", err);
    task_pairs_free(&dp, n);
    return rc ? 1 : 0;
}

/* The prompts, each with two demonstrations when `pairs`: the task's controlled imperfection
 * (some wrong, some verbose), so that a judge has something to decide. */
static int write_prompts(const struct task_opts *o, bool pairs)
{
    struct task_prompt *ps = NULL;
    if (task_prompt_set(o->seed, (enum task_split)o->split, (size_t)o->n, &ps)) {
        cli_error("oaif task", "cannot generate %d prompts", o->n);
        return 1;
    }
    buf_t b;
    buf_init(&b, 0);
    struct task_demo_config dc = TASK_DEMO_CONFIG_DEFAULT;
    for (int i = 0; i < o->n; i++) {
        buf_reset(&b);
        buf_append_str(&b, "{\"id\":");
        pbjson_append_string(&b, ps[i].id, strlen(ps[i].id));
        buf_append_str(&b, ",\"prompt\":");
        pbjson_append_string(&b, ps[i].text, strlen(ps[i].text));
        buf_append_str(&b, ",\"reference\":");
        pbjson_append_string(&b, ps[i].answer, strlen(ps[i].answer));
        buf_printf(&b, ",\"family\":\"%s\",\"split\":\"%s\"", task_family_name(ps[i].family),
                   task_split_name(ps[i].split));
        for (int k = 0; pairs && k < 2; k++) {
            char resp[TASK_RESPONSE_MAX * 2];
            if (task_demo(&ps[i], &dc, o->seed, (uint64_t)k, resp, sizeof resp, NULL))
                resp[0] = '\0';
            buf_append_str(&b, k ? ",\"response_b\":" : ",\"response_a\":");
            pbjson_append_string(&b, resp, strlen(resp));
        }
        buf_append_str(&b, "}");
        puts(b.data);
    }
    buf_free(&b);
    free(ps);
    return 0;
}

int cmd_task(int argc, char **argv)
{
    struct task_opts o = {0};
    int npos, rc = cli_load("oaif task", &spec, &o, argc, argv, 1, &npos);
    if (rc)
        return cli_exit_status(rc);
    const char *what = npos ? argv[0] : "";
    if (!strcmp(what, "demos"))
        return write_demos(&o);
    if (!strcmp(what, "prompts") || !strcmp(what, "pairs"))
        return write_prompts(&o, !strcmp(what, "pairs"));
    fprintf(stderr, "usage: oaif task prompts|pairs|demos [--split train|eval] [--n N] "
                    "[--seed S]   (see oaif task --help)\n");
    return 2;
}
