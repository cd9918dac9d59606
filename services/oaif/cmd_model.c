/* cmd_model.c - `oaif model init|info|generate|export`: the engine's model tool
 * (common/nn/nn_cli.h): a model with random weights in a given shape, a description of a
 * checkpoint (its config and, with --tensors, every tensor's shape), text generated from one,
 * and one written as GGUF for llama.cpp. Checkpoints are a Hugging
 * Face config.json and model.safetensors in a directory. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "nn_cli.h"

static const char summary[] =
    "oaif model: the engine's model tool. A checkpoint is a directory with config.json and\n"
    "model.safetensors (Hugging Face names; a Llama-family model from the Hub loads).\n"
    "  init      a model with random weights, in the built-in policy's shape unless told\n"
    "  info      its configuration and parameter count (--tensors: every tensor's shape)\n"
    "  generate  text from it (greedy unless --temperature; the tokenizer's template unless\n"
    "            --raw)\n"
    "  export    a GGUF file for llama.cpp and Ollama (--format gguf, --dtype f16|f32)\n";

int cmd_model(int argc, char **argv)
{
    bool help = argc == 0;
    for (int i = 0; i < argc; i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
                (!i && !strcmp(argv[i], "help"));
    if (help) {
        FILE *f = argc ? stdout : stderr;
        fputs(summary, f);
        char *usage[] = {"model", "--help"};
        nn_cli_run(2, usage, f, f);
        return argc ? 0 : 2;
    }
    /* nn_cli_run wants the command's own name first. */
    char **av = calloc((size_t)argc + 2, sizeof *av);
    if (!av) {
        fputs("oaif model: out of memory\n", stderr);
        return 1;
    }
    av[0] = "model";
    memcpy(av + 1, argv, (size_t)argc * sizeof *argv);
    int status = nn_cli_run(argc + 1, av, stdout, stderr);
    free(av);
    return status;
}
