/* oaif: the command-line client; main dispatches to the verbs (cmd.h). `oaif help` lists them. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "log.h"

struct verb {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *args, *what; /* one line of `oaif help` */
};

static const struct verb verbs[] = {
    {"status", cmd_status, "[--run NAME] [--json]", "queues, workers, records; a run's live view"},
    {"import", cmd_import, "prompts FILE.jsonl", "add prompts to the ledger (all checked first)"},
    {"export", cmd_export, "KIND", "records of a kind as JSONL on stdout"},
    {"keys", cmd_keys, "NAME [--dir DIR]", "make a CURVE key pair"},
    {"task", cmd_task, "prompts|pairs|demos [--n N]", "the built-in task as JSONL"},
    {"annotate", cmd_annotate, "FILE.jsonl", "label pairs through the annotate service"},
    {"audit", cmd_audit, "", "prove from the ledger that no pair was trained twice"},
    {"eval", cmd_eval, "--policy DIR [--sft DIR]", "a policy against SFT on the eval split"},
    {"compare", cmd_compare, "RUN_A RUN_B [...]", "settings seed by seed, with 95% intervals"},
    {"report", cmd_report, "--run NAME --out FILE.html", "a run's charts as one HTML page"},
    {"up", cmd_up, "[--data DIR] [--train]", "a local deployment; Ctrl-C stops it"},
    {"run", cmd_run, "RUN.yaml [--data DIR]", "run (or resume) a run on that deployment"},
    {"judge", cmd_judge, "try PROMPT FIRST SECOND", "ask the configured judge once"},
    {"sft", cmd_sft, "[--out ROOT] [--quick]", "train policy version 0 by SFT"},
    {"rm", cmd_rm, "train --dataset NAME", "train a reward-model ensemble member"},
    {"strength", cmd_strength, "annotate --run NAME", "preference strength by the ensemble"},
    {"model", cmd_model, "init|info|generate DIR", "the engine's model tool"},
    {"config", cmd_config, "show [--service NAME]", "each service's effective configuration"},
    {"health", cmd_health, "[URL]", "a service's /healthz: exit 0 when it answers 200"},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static void usage(FILE *f)
{
    fputs("usage: oaif VERB [args]   (oaif VERB --help: its arguments and options)\n", f);
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(f, "  %-8s %-27s %s\n", verbs[i].name, verbs[i].args, verbs[i].what);
    fputs("The verbs that talk to the ledger take --clients EP ($BUS_CLIENTS_ENDPOINT),\n"
          "--ledger-key KEY and --curve-secret FILE (CURVE), --timeout DURATION, and the run\n"
          "file's bus.* keys (--config RUN.yaml).\n",
          f);
}

int main(int argc, char **argv)
{
    log_init_from_env("oaif");
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < N_VERBS; i++)
        if (!strcmp(argv[1], verbs[i].name))
            return verbs[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "oaif: unknown verb '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
