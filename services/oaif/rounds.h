/* rounds.h - iterative rounds of `oaif run` (oaif.run.rounds: R in the run file): the run's
 * trainer.steps cut into R rounds; each round
 *   1. pins the current policy (the newest policy version the ledger records);
 *   2. retrains every member of the reward-model ensemble (reward_scorer.ensemble) on the run's
 *      labeled pairs so far, one `oaif rm train` process per member: with MetaRM (--meta, its
 *      meta set sampled from the pinned version) when oaif.run.rounds_meta, else vanilla; each
 *      publishes a new version, which the reward-scorer loads by itself. While the policy is
 *      still the SFT model (version 0: no online step, no pair of the run) the ensemble serves
 *      as published;
 *   3. continues online training (the trainer, as plain `oaif run`) to the round's last step;
 *   4. records the ensemble's accuracy on the round's pairs, the run's labeled pairs sampled from
 *      the pinned version or a newer one (none of them in its training data; against the
 *      noise-free labels where the rules judge recorded its noise, else the stored ones), and the
 *      policy's evaluation against the SFT model (oaif eval's, on the newest checkpoint).
 * oaif.run.rounds_baseline names a second ensemble retrained the other way (vanilla beside
 * MetaRM, or MetaRM beside vanilla) on the same pairs with the same seeds, scored beside it.
 *
 * Files, in <data>/rounds/: round-<r>.json (the pinned version and what was retrained, written
 * when step 2 is done), rounds.jsonl (one JSON object per finished round), summary.txt (the table
 * printed at the end); the members' logs in <data>/logs/rounds-r<r>-<ensemble>-m<m>.log. A
 * re-run goes on from the first round not in rounds.jsonl, step 2 skipped when round-<r>.json
 * exists; the pieces resume themselves (oaif rm train from its checkpoint, the trainer from its).
 *
 * Not here: the options' table (cmd_run.c), the trainer's own work (services/trainer). */
#ifndef OAIF_ROUNDS_H
#define OAIF_ROUNDS_H

#include <stdbool.h>
#include <sys/types.h>

/* The rounds' options (oaif.run.rounds*, cmd_run.c's table). */
struct rounds_opts {
    int rounds;     /* R; 0: no rounds (one plain run) */
    bool meta;      /* retrain with MetaRM */
    int members;    /* members retrained: 0 .. members-1 */
    int jobs;       /* members trained at once */
    char *baseline; /* NULL, or the ensemble retrained the other way */
};

/* What the rounds run against. */
struct rounds_run {
    const char *config;   /* the run file */
    const char *data_dir; /* the deployment's directory */
    const char *clients;  /* the ledger's client endpoint */
    char *const *targs;   /* the trainer's options from the command line */
    int ntargs;
};

/* Starts av[0] with av (NULL-terminated) as a child that stops when this process dies, with
 * stdout and stderr appended to `log` (NULL: inherited). The pid, or -1 after saying why. */
pid_t rounds_spawn(char *const *av, const char *log);

/* Waits for child pid (through EINTR); its exit status, 1 when a signal ended it. */
int rounds_wait(pid_t pid);

/* Runs (or resumes) the rounds; prints each round's line and the table at the end. The exit
 * status: 0, 1 failed or stopped (the reason on stderr), 2 bad options. SIGINT stops at the
 * next clean point (the children get it too and stop at theirs). */
int rounds_run(const struct rounds_opts *o, const struct rounds_run *run);

#endif /* OAIF_ROUNDS_H */
