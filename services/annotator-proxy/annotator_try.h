/* annotator_try.h - `oaif judge try`: one prompt and two responses through the configured judge,
 * directly (no ledger, except for the reward-model backend, which asks the score service through
 * it), printing the verdict, the probability from each order, their disagreement, the tokens, the
 * cost and the latency. How a user checks a new judge in one command before running it.
 *
 *   oaif judge try [--json] [--reference R] [--pair-id ID] [--seed N] [annotator options]
 *                  PROMPT FIRST SECOND
 *
 * The judge comes from the same configuration as the annotator-proxy (annotator_opts.h): the run
 * file (--config FILE or OAIF_CONFIG), the ANNOTATOR_* environment and its flags
 * (`annotator-proxy --help`); --instruction is this request's instruction. */
#ifndef ANNOTATOR_TRY_H
#define ANNOTATOR_TRY_H

/* `oaif judge try ARGS`: argv[0] is the first argument after "try". Prints to stdout; problems to
 * stderr. Returns the exit status: 0 a verdict, 1 the judgement failed (the reason is printed), 2
 * bad usage or configuration. Calls curl_global_init() itself: call it before starting threads. */
int annotator_cli_try(int argc, char **argv);

/* `oaif judge VERB ...`: argv[0] is the verb ("try"). Returns the exit status. */
int annotator_cli_judge(int argc, char **argv);

#endif /* ANNOTATOR_TRY_H */
