/* cmd_judge.c - `oaif judge try [opts] PROMPT FIRST SECOND`: one pair through the configured judge,
 * configured exactly as the annotator-proxy is (`oaif judge try --help`). The arguments are still
 * parsed by the annotator-proxy's annotator_cli_judge (services/annotator-proxy/annotator_try.c);
 * they move here next. */
#include "annotator_try.h"
#include "cmd.h"

int cmd_judge(int argc, char **argv)
{
    return annotator_cli_judge(argc, argv);
}
