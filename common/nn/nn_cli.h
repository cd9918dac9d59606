/* nn_cli.h - the `model` command of the oaif CLI: create a random model, describe one, generate
 * text from one, export one for llama.cpp (GGUF, gguf.h; f16 unless --dtype f32).
 *   model init DIR [--layers N] [--hidden C] [--heads H] [--kv-heads K] [--intermediate F]
 *                  [--vocab V] [--max-pos T] [--tokenizer byte|bpe] [--tie|--untie]
 *                  [--reward-head] [--seed S] [--std X]
 *   model info DIR [--tensors]
 *   model generate DIR --prompt TEXT [--max-new N] [--temperature T] [--top-p P] [--top-k K]
 *                  [--seed S] [--stop STR]... [--raw] [--threads N]
 *   model export DIR OUT.gguf --format gguf [--dtype f32|f16] [--name NAME]
 * init starts from the built-in default shape (nn_config_default) and writes config.json and
 * model.safetensors into DIR. generate uses the byte tokenizer, or DIR/tokenizer.json for "bpe";
 * the prompt goes through the tokenizer's template unless --raw.
 * Not for: training (the trainer service). */
#ifndef NN_CLI_H
#define NN_CLI_H

#include <stdio.h>

/* argv[0] is the command's own name ("model"), argv[1] the subcommand. Output (info, generated
 * text) goes to `out`, errors and usage to `errf`. Returns 0 on success, 1 on failure, 2 on a
 * usage error. */
int nn_cli_run(int argc, char **argv, FILE *out, FILE *errf);
/* nn_cli_run(argc, argv, stdout, stderr). */
int nn_cli_main(int argc, char **argv);

#endif /* NN_CLI_H */
