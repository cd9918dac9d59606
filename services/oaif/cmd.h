/* cmd.h - the verbs of the oaif command, one cmd_<verb>.c each. Each takes the arguments after its
 * verb (argv may be reordered) and returns the process's exit status: 0 done, 1 failed (the reason
 * on stderr), 2 bad usage or a bad value (the flag named); `oaif VERB --help` prints its usage and
 * options. main.c dispatches to them; cli.h is what they share.
 *
 * Not here: the logic behind a verb where a service owns it (trainer_sft_run, trainer_eval_run,
 * annotator_try, nn_cli_run: cmd_sft.c, cmd_eval.c, cmd_judge.c and cmd_model.c call them, after
 * loading the options: the service's own table where it has one, e.g. trainer_sft_opts_spec).
 */
#ifndef CMD_H
#define CMD_H

int cmd_status(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_import_evals(int argc, char **argv); /* oaif import evals, from cmd_import */
int cmd_export(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_annotate(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_judge(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_strength(int argc, char **argv);
int cmd_rm_features(int argc, char **argv); /* oaif rm features, from cmd_rm */
int cmd_compare(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_health(int argc, char **argv);

#endif /* CMD_H */
