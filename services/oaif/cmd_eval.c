/* cmd_eval.c - `oaif eval --policy DIR`: a policy against the SFT model on the built-in task's eval
 * split (accuracy, length, win rate by the noise-free rules judge in both orders).
 *
 * The options are the trainer's eval table (trainer_eval_opts_spec, trainer_opts.h, where each
 * default is written), loaded here (strict numbers, --help); the work is trainer_eval_run
 * (evaluate.h). */
#include <stdio.h>

#include "cli.h"
#include "cmd.h"
#include "evaluate.h"
#include "trainer_opts.h"

int cmd_eval(int argc, char **argv)
{
    static const char verb[] = "oaif eval";
    struct trainer_eval_opts o = {0};
    int npos, rc = cli_load(verb, &trainer_eval_opts_spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    char err[1024];
    int status = 0;
    if (trainer_eval_validate(&o, err, sizeof err)) {
        cli_error(verb, "%s (see oaif eval --help)", err);
        status = 2;
    } else if (trainer_eval_run(&o, stdout, err, sizeof err)) {
        cli_error(verb, "%s", err);
        status = 1;
    }
    trainer_eval_release(&o);
    return status;
}
