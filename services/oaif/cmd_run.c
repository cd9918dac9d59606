/* cmd_run.c - `oaif run RUN.yaml [--data DIR] [trainer options...]`: the trainer for one run
 * against the deployment `oaif up --data DIR` started, in the foreground. The trainer's log (its
 * configuration, every step, each checkpoint) goes to the deployment's logs/trainer.log, so the
 * terminal keeps the progress bar; Ctrl-C reaches the trainer, which stops at a clean point.
 * With oaif.run.rounds (--rounds R) the run goes in R rounds, the reward-model ensemble retrained
 * before each (rounds.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "local.h"
#include "rounds.h"

#define RUN_ARGS_MAX 64

struct run_opts {
    char *data_dir;
    struct rounds_opts rounds;
};

static const struct cfg_option options[] = {
    CFG_STRING_OPT(struct run_opts, data_dir, .key = "oaif.run.data_dir", .def = "data/local",
                   .flag = "--data", .help = "The deployment's directory (as oaif up --data)."),
    CFG_INT_OPT(struct run_opts, rounds.rounds, .key = "oaif.run.rounds", .def = "0", .min = 0,
                .max = 1000, .flag = "--rounds",
                .help = "Iterative rounds: trainer.steps cut into R rounds, the reward-model "
                        "ensemble retrained on the run's pairs before each (0: one plain run)."),
    CFG_BOOL_OPT(struct run_opts, rounds.meta, .key = "oaif.run.rounds_meta",
                 .flag = "--rounds-meta",
                 .help = "Retrain with MetaRM (oaif rm train --meta), the meta set sampled from "
                         "the round's policy; else vanilla."),
    CFG_INT_OPT(struct run_opts, rounds.members, .key = "oaif.run.rounds_members", .def = "4",
                .min = 1, .max = 1024, .flag = "--rounds-members",
                .help = "Members of the ensemble retrained each round (0 .. N-1)."),
    CFG_INT_OPT(struct run_opts, rounds.jobs, .key = "oaif.run.rounds_jobs", .def = "2", .min = 1,
                .max = 256, .flag = "--rounds-jobs",
                .help = "Members trained at once, one oaif rm train process each."),
    CFG_STRING_OPT(struct run_opts, rounds.baseline, .key = "oaif.run.rounds_baseline",
                   .flag = "--rounds-baseline",
                   .help = "A second ensemble retrained each round the other way (vanilla beside "
                           "MetaRM), same pairs and seeds, scored beside."),
};

static const struct cfg_spec spec = {
    .name = "oaif run RUN.yaml",
    .summary = "Runs (or resumes) the run file's run on the deployment of `oaif up --data DIR`.\n"
               "Every other option goes to the trainer (trainer --help): --run NAME, --steps N,\n"
               "--progress, ...",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct run_opts),
};

/* Runs the trainer with av (NULL-terminated) until it exits; returns its exit status. */
static int run_trainer(char **av)
{
    pid_t pid = rounds_spawn(av, NULL);
    if (pid < 0)
        return 1;
    signal(SIGINT, SIG_IGN); /* the trainer gets Ctrl-C too, stops at a clean point */
    return rounds_wait(pid);
}

int cmd_run(int argc, char **argv)
{
    static const char verb[] = "oaif run";
    if (argc > RUN_ARGS_MAX) {
        cli_error(verb, "at most %d arguments", RUN_ARGS_MAX);
        return 2;
    }
    /* --data (and --help) are ours; the rest is the run file, then the trainer's options. */
    bool mine[RUN_ARGS_MAX + 1];
    char *ours[RUN_ARGS_MAX + 3], *pass[RUN_ARGS_MAX + 3], *av[RUN_ARGS_MAX + 10];
    int nours = 0, npass = 0;
    const char *config = NULL;
    cli_mark_flags(&spec, argc, argv, mine);
    for (int i = 0; i < argc; i++) {
        if (mine[i])
            ours[nours++] = argv[i];
        else if (!config && argv[i][0] != '-')
            config = argv[i];
        else
            pass[npass++] = argv[i];
    }
    if (config) { /* the run file holds oaif.run's keys too */
        ours[nours++] = "--config";
        ours[nours++] = (char *)config;
    }
    struct run_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, nours, ours, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    char epfile[4200], cep[256], bin[4400], logfile[4300], thfile[4200], threads[16];
    snprintf(epfile, sizeof epfile, "%s/endpoints", o.data_dir);
    /* The trainer's thread budget from `oaif up` (before the words given here, which win). */
    snprintf(thfile, sizeof thfile, "%s/threads", o.data_dir);
    if (local_read_kv(thfile, "trainer", threads, sizeof threads)) {
        memmove(pass + 2, pass, (size_t)npass * sizeof *pass);
        pass[0] = "--threads";
        pass[1] = threads;
        npass += 2;
    }
    int status = 0;
    if (!config) {
        fprintf(stderr, "usage: oaif run RUN.yaml [--data DIR] [trainer options...]   "
                        "(see oaif run --help)\n");
        status = 2;
    } else if (!local_read_kv(epfile, "clients", cep, sizeof cep)) {
        cli_error(verb, "no deployment at %s (start one with oaif up --data %s)", o.data_dir,
                  o.data_dir);
        status = 1;
    }
    /* The trainer's log goes to the deployment's logs too, and its configuration there only. */
    snprintf(logfile, sizeof logfile, "%s/logs", o.data_dir);
    if (!status && !getenv("LOG_FILE") && (mkdir(logfile, 0755) == 0 || errno == EEXIST)) {
        snprintf(logfile, sizeof logfile, "%s/logs/trainer.log", o.data_dir);
        setenv("LOG_FILE", logfile, 1);
        fprintf(stderr, "oaif run: the trainer's log (with its configuration): %s\n", logfile);
    }
    if (!status && o.rounds.rounds > 0) {
        const struct rounds_run run = {.config = config,
                                       .data_dir = o.data_dir,
                                       .clients = cep,
                                       .targs = pass,
                                       .ntargs = npass};
        status = rounds_run(&o.rounds, &run);
    } else if (!status) {
        local_bin_path(bin, sizeof bin, "trainer");
        char *head[] = {bin, "--config", (char *)config, "--clients", cep};
        int n = (int)(sizeof head / sizeof head[0]);
        memcpy(av, head, sizeof head);
        memcpy(av + n, pass, (size_t)npass * sizeof *pass);
        av[n + npass] = NULL;
        status = run_trainer(av);
    }
    cfg_release(&spec, &o);
    return status;
}
