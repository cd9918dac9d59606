/* oaif: the command-line client. `oaif help` lists the verbs. */
#include <stdio.h>
#include <string.h>

#include "annotator_try.h"
#include "log.h"
#include "evaluate.h"
#include "oaif.h"
#include "sft.h"

static const char usage[] =
    "usage: oaif VERB [args]\n"
    "  status [--json]              workers per service, queues, in-flight, dead letters, rates\n"
    "  import prompts FILE.jsonl    add prompts to the ledger (all lines checked first)\n"
    "  export KIND                  records of a kind as JSONL on stdout\n"
    "                               (prompts pairs labels scores strengths checkpoints evals\n"
    "                                steps cache meta)\n"
    "  keys NAME [--dir DIR]        make a CURVE key pair\n"
    "  audit                        prove from the ledger that no pair was trained twice\n"
    "  eval --policy DIR [--sft DIR] [--n N]   a policy against SFT on the eval split\n"
    "  up [--data DIR] [--config RUN.yaml] [--samplers N] [--annotators N] [--train]\n"
    "                               a local deployment (ledger, samplers, judges; with\n"
    "                               --train the trainer too); Ctrl-C stops it\n"
    "  run RUN.yaml [--data DIR] [trainer options]   run (or resume) a run on it\n"
    "  task prompts|pairs|demos [--split S] [--n N] [--seed S]   the built-in task as JSONL\n"
    "  annotate FILE.jsonl [--instruction T] [--in-flight N]   label pairs through the\n"
    "                               annotate service; labels as JSONL on stdout\n"
    "  judge try [opts] PROMPT FIRST SECOND   ask the configured judge once: verdict,\n"
    "                               P per order, tokens, cost (oaif judge try --help)\n"
    "  sft [--out ROOT] [--data FILE.jsonl] [--init DIR] [--quick] [--ledger EP] ...\n"
    "                               train policy version 0 by SFT (oaif sft --help)\n"
    "common options: --ledger EP (env OAIF_LEDGER), --curve-secret FILE --server-key FILE,\n"
    "                --timeout-ms N\n";

struct verb {
    const char *name;
    int (*fn)(int argc, char **argv);
};

static const struct verb verbs[] = {
    {"status", oaif_cmd_status},
    {"import", oaif_cmd_import},
    {"export", oaif_cmd_export},
    {"keys", oaif_cmd_keys},
    {"task", oaif_cmd_task},
    {"annotate", oaif_cmd_annotate},
    {"audit", oaif_cmd_audit},
    {"eval", trainer_cli_eval},
    {"up", oaif_cmd_up},
    {"run", oaif_cmd_run},
    {"judge", annotator_cli_judge},
    {"sft", trainer_cli_sft},
};

int main(int argc, char **argv)
{
    log_init_from_env("oaif");
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(argv[1], verbs[i].name))
            return verbs[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "oaif: unknown verb '%s'\n%s", argv[1], usage);
    return 2;
}
