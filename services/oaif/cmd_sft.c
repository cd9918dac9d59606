/* cmd_sft.c - `oaif sft`: SFT of the built-in policy (or of --init on --data), written as
 * checkpoint version 0; `oaif sft --help` lists its options. The options are still parsed by the
 * trainer's trainer_cli_sft (services/trainer/sft.c), with the connection options under their old
 * names
 * (--ledger, --server-key, --timeout-ms); they move to a table here next. */
#include "cmd.h"
#include "sft.h"

int cmd_sft(int argc, char **argv)
{
    return trainer_cli_sft(argc, argv);
}
