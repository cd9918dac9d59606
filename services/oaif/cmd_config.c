/* cmd_config.c - `oaif config show [--service NAME] [--config RUN.yaml] [service flags...]`: the
 * configuration each service would run with here (the ledger, the sampler, the annotator-proxy,
 * the reward-scorer, the strength-estimator, the evaluator, the trainer, the options of `oaif sft`,
 * `oaif eval` and `oaif rm train`, and the CLI's own connection options), after its defaults, the
 * run file, the environment and the flags given, as YAML in the run file's shape with where each
 * value came from as a comment; secrets as "***". Each service's option table is the one it loads
 * itself (its *_opts_spec), so what is shown is what the service would read, old names' warnings
 * included (on stderr). A flag goes to every service whose table has it; one no service has is an
 * error. (`oaif sft --quick` changes some defaults; shown here are the table's.) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotator_opts.h"
#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "err.h"
#include "evaluator_opts.h"
#include "ledger_opts.h"
#include "reward_scorer_opts.h"
#include "sampler_opts.h"
#include "strength_estimator_opts.h"
#include "trainer_opts.h"

static const char verb[] = "oaif config show";

struct service {
    const char *name;
    const struct cfg_spec *spec;
};

static const struct service services[] = {
    {"ledger", &ledger_opts_spec},
    {"sampler", &sampler_opts_spec},
    {"annotator-proxy", &annotator_opts_spec},
    {"reward-scorer", &reward_scorer_opts_spec},
    {"strength-estimator", &strength_estimator_opts_spec},
    {"evaluator", &evaluator_opts_spec},
    {"trainer", &trainer_opts_spec},
    {"sft", &trainer_sft_opts_spec},   /* oaif sft's own options (its connection: oaif) */
    {"eval", &trainer_eval_opts_spec}, /* oaif eval's */
    {"rm", &trainer_rm_opts_spec},     /* oaif rm train's */
    {"oaif", &cli_conn_spec},
};
#define N_SERVICES (sizeof services / sizeof services[0])

static const char usage[] =
    "usage: oaif config show [--service NAME] [--config RUN.yaml] [service flags...]\n"
    "  The configuration each service would run with here: defaults < run file (--config or\n"
    "  $OAIF_CONFIG) < environment < flags, as YAML with each value's origin as a comment;\n"
    "  secrets as ***. A flag goes to every service that has it (NAME --help lists them).\n"
    "  --service NAME   one of: ledger, sampler, annotator-proxy, trainer, sft (oaif sft), eval\n"
    "                   (oaif eval), oaif (this CLI's connection)\n";

/* The service named `name`, or NULL after saying which names there are. */
static const struct service *find_service(const char *name)
{
    for (size_t i = 0; i < N_SERVICES; i++)
        if (!strcmp(services[i].name, name))
            return &services[i];
    buf_t b;
    buf_init(&b, 0);
    for (size_t i = 0; i < N_SERVICES; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", services[i].name);
    cli_error(verb, "--service: unknown service '%s' (one of: %s)", name, b.data);
    buf_free(&b);
    return NULL;
}

/* Loads service s's configuration from av (av[0] a program name, then its flags) and appends it
 * to out with origins. Returns 0, or the exit status after printing the problems. */
static int show_one(const struct service *s, int ac, char **av, buf_t *out)
{
    const struct cfg_spec *spec = s->spec;
    if (!spec->conf_size) {
        cli_error(verb, "%s: its option table does not give the size of what it fills (conf_size)",
                  s->name);
        return 1;
    }
    void *conf = calloc(1, spec->conf_size);
    struct cfg_origin *origins = calloc(spec->n_options ? spec->n_options : 1, sizeof *origins);
    buf_t errs, warnings;
    buf_init(&errs, 0);
    buf_init(&warnings, 0);
    struct cfg_trace trace = {.origins = origins, .warnings = &warnings};
    int rc = conf && origins ? cfg_load_ex(spec, conf, ac, av, &errs, &trace) : ERR_NOMEM;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: %s: warning: ", verb, s->name);
    cli_print_lines(prefix, &warnings);
    snprintf(prefix, sizeof prefix, "%s: %s: ", verb, s->name);
    cli_print_lines(prefix, &errs);
    if (!rc) {
        buf_printf(out, "--- # %s\n", s->name);
        rc = cfg_render_yaml_origins(spec, conf, origins, out);
        cfg_release(spec, conf);
    }
    if (rc == ERR_NOMEM)
        cli_error(verb, "%s: out of memory", s->name);
    buf_free(&errs);
    buf_free(&warnings);
    free(origins);
    free(conf);
    return rc == ERR_OK ? 0 : rc == ERR_INVAL ? 2 : 1;
}

/* Shows the services in `only` (or all when NULL) with the flags in argv[0..argc-1] routed to the
 * services that have them. Returns the exit status. */
static int show(const struct service *only, int argc, char **argv)
{
    bool *mine = calloc((size_t)argc + 1, sizeof *mine);
    bool *anyone = calloc((size_t)argc + 1, sizeof *anyone);
    char **av = calloc((size_t)argc + 2, sizeof *av);
    buf_t out;
    buf_init(&out, 0);
    int status = mine && anyone && av ? 0 : 1;
    /* With one service, its loader names a flag it does not know (and suggests one); with all,
     * a word that none of them takes is named here. */
    for (size_t k = 0; !status && !only && k < N_SERVICES; k++) {
        cli_mark_flags(services[k].spec, argc, argv, mine);
        for (int i = 0; i < argc; i++)
            anyone[i] |= mine[i];
    }
    for (int i = 0; !status && !only && i < argc; i++) {
        if (!anyone[i]) {
            cli_error(verb, "%s '%s': no service takes it", argv[i][0] == '-' ? "flag" : "argument",
                      argv[i]);
            status = 2;
        }
    }
    for (size_t k = 0; !status && k < N_SERVICES; k++) {
        if (only && only != &services[k])
            continue;
        int ac = 0;
        av[ac++] = (char *)verb;
        cli_mark_flags(services[k].spec, argc, argv, mine);
        for (int i = 0; i < argc; i++)
            if (mine[i] || only)
                av[ac++] = argv[i];
        status = show_one(&services[k], ac, av, &out);
    }
    if (!status)
        fputs(out.data ? out.data : "", stdout);
    buf_free(&out);
    free(av);
    free(anyone);
    free(mine);
    return status;
}

int cmd_config(int argc, char **argv)
{
    if (argc >= 1 &&
        (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 1 || strcmp(argv[0], "show") != 0) {
        fputs(usage, stderr);
        return 2;
    }
    /* --service NAME is ours; the rest goes to the services. */
    const char *name = NULL;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strncmp(argv[i], "--service=", 10)) {
            name = argv[i] + 10;
        } else if (!strcmp(argv[i], "--service")) {
            if (i + 1 >= argc) {
                cli_error(verb, "flag --service: needs a value");
                return 2;
            }
            name = argv[++i];
        } else {
            argv[n++] = argv[i];
        }
    }
    const struct service *only = name ? find_service(name) : NULL;
    if (name && !only)
        return 2;
    return show(only, n, argv);
}
