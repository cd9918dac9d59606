/* cmd_eval.c - `oaif eval --policy DIR`: a policy against the SFT model on the built-in task's eval
 * split (accuracy, length, win rate by the noise-free rules judge in both orders).
 *
 * The options are read here, from the table below (strict numbers, --help), and handed to the
 * trainer's trainer_cli_eval (services/trainer/evaluate.c) written out in full, so that its own
 * parsing and defaults are not what decides. Next: call trainer_compare from here and retire
 * trainer_cli_eval. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "cmd.h"
#include "evaluate.h"

struct eval_opts {
    char *policy, *sft, *instruction, *samples;
    int n, max_new, draws;
    double temperature, top_p;
    uint64_t seed;
    bool json;
};

#define O struct eval_opts
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, policy, .key = "oaif.eval.policy", .flag = "--policy",
                   .help = "The policy's checkpoint directory (required)."),
    CFG_STRING_OPT(O, sft, .key = "oaif.eval.sft", .def = "data/checkpoints/sft-v000000",
                   .flag = "--sft", .help = "The SFT model's checkpoint directory."),
    CFG_INT_OPT(O, n, .key = "oaif.eval.n", .def = "350", .min = 1, .max = 1000000, .flag = "--n",
                .help = "Eval-split prompts."),
    CFG_INT_OPT(O, max_new, .key = "oaif.eval.max_new", .def = "128", .min = 1, .max = 1 << 20,
                .flag = "--max-new", .help = "Most tokens per answer."),
    CFG_DOUBLE_OPT(O, temperature, .key = "oaif.eval.temperature", .def = "0", .dmin = 0,
                   .dmax = 100, .flag = "--temperature",
                   .help = "0: greedy answers; above 0 sampled as in training."),
    CFG_DOUBLE_OPT(O, top_p, .key = "oaif.eval.top_p", .def = "1", .dmin = 1e-6, .dmax = 1,
                   .flag = "--top-p", .help = "Nucleus sampling's mass."),
    CFG_INT_OPT(O, draws, .key = "oaif.eval.draws", .def = "1", .min = 1, .max = 1000000,
                .flag = "--draws", .help = "Sampled answers per prompt (needs --temperature)."),
    CFG_UINT64_OPT(O, seed, .key = "oaif.eval.seed", .def = "1", .flag = "--seed",
                   .help = "The sampling seed."),
    CFG_STRING_OPT(O, instruction, .key = "oaif.eval.instruction", .flag = "--instruction",
                   .help = "An instruction added to every prompt."),
    CFG_STRING_OPT(O, samples, .key = "oaif.eval.samples", .flag = "--samples",
                   .help = "Write every answer of both models there as JSONL."),
    CFG_BOOL_OPT(O, json, .key = "oaif.eval.json", .flag = "--json",
                 .help = "The results as one JSON object on stdout."),
};
#undef O

static const struct cfg_spec spec = {
    .name = "oaif eval",
    .summary = "A policy against the SFT model on the built-in task's eval split: accuracy and\n"
               "length of each, and the policy's win rate by the rules judge in both orders.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct eval_opts),
};

int cmd_eval(int argc, char **argv)
{
    static const char verb[] = "oaif eval";
    struct eval_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    if (!o.policy) {
        cli_error(verb, "--policy DIR is required (see oaif eval --help)");
        cfg_release(&spec, &o);
        return 2;
    }
    char n[16], max_new[16], temp[32], top_p[32], draws[16], seed[32];
    snprintf(n, sizeof n, "%d", o.n);
    snprintf(max_new, sizeof max_new, "%d", o.max_new);
    snprintf(temp, sizeof temp, "%.17g", o.temperature);
    snprintf(top_p, sizeof top_p, "%.17g", o.top_p);
    snprintf(draws, sizeof draws, "%d", o.draws);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o.seed);
    char *av[24] = {"--policy",  o.policy, "--sft",         o.sft, "--n",     n,
                    "--max-new", max_new,  "--temperature", temp,  "--top-p", top_p,
                    "--draws",   draws,    "--seed",        seed};
    int k = 16;
    if (o.instruction) {
        av[k++] = "--instruction";
        av[k++] = o.instruction;
    }
    if (o.samples) {
        av[k++] = "--samples";
        av[k++] = o.samples;
    }
    if (o.json)
        av[k++] = "--json";
    int status = trainer_cli_eval(k, av);
    cfg_release(&spec, &o);
    return status;
}
