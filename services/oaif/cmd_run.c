/* cmd_run.c - `oaif run RUN.yaml [--data DIR] [trainer options...]`: the trainer for one run
 * against the deployment `oaif up --data DIR` started, in the foreground. The trainer's log (its
 * configuration, every step, each checkpoint) goes to the deployment's logs/trainer.log, so the
 * terminal keeps the progress bar; Ctrl-C reaches the trainer, which stops at a clean point. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "local.h"

#define RUN_ARGS_MAX 64

struct run_opts {
    char *data_dir;
};

static const struct cfg_option options[] = {
    CFG_STRING_OPT(struct run_opts, data_dir, .key = "oaif.run.data_dir", .def = "data/local",
                   .flag = "--data", .help = "The deployment's directory (as oaif up --data)."),
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
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("oaif run", "fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        local_stop_with_parent(parent); /* `oaif run` killed: the trainer stops cleanly */
        execv(av[0], av);
        fprintf(stderr, "oaif run: cannot start %s: %s\n", av[0], strerror(errno));
        _exit(127);
    }
    int st = 0;
    signal(SIGINT, SIG_IGN); /* the trainer gets Ctrl-C too, stops at a clean point */
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
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
    char *ours[RUN_ARGS_MAX + 1], *pass[RUN_ARGS_MAX + 1], *av[RUN_ARGS_MAX + 8];
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
    struct run_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, nours, ours, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    char epfile[4200], cep[256], bin[4400], logfile[4300];
    snprintf(epfile, sizeof epfile, "%s/endpoints", o.data_dir);
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
    if (!status) {
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
