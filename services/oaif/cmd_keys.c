/* cmd_keys.c - `oaif keys NAME [--dir DIR]`: a new CURVE key pair, DIR/NAME.key (secret, mode 0600)
 * and DIR/NAME.key.pub, for the ledger (--curve-secret), a service or the CLI. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "cmd.h"

struct keys_opts {
    char *dir;
    bool force;
};

static const struct cfg_option options[] = {
    CFG_STRING_OPT(struct keys_opts, dir, .key = "oaif.keys.dir", .def = ".", .flag = "--dir",
                   .help = "Where to write NAME.key and NAME.key.pub."),
    CFG_BOOL_OPT(struct keys_opts, force, .key = "oaif.keys.force", .def = "false",
                 .flag = "--force",
                 .help = "Replace an existing pair (whoever holds the old one is locked out)."),
};

static const struct cfg_spec spec = {
    .name = "oaif keys NAME",
    .summary = "Makes a CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.key.pub.\n"
               "An existing pair is kept (exit 1) unless --force.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct keys_opts),
};

int cmd_keys(int argc, char **argv)
{
    static const char verb[] = "oaif keys";
    struct keys_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 1, &npos);
    if (rc)
        return cli_exit_status(rc);
    int status = 0;
    struct bus_curve k;
    char path[2048], err[512];
    if (npos != 1) {
        fprintf(stderr, "usage: oaif keys NAME [--dir DIR]   (writes DIR/NAME.key and "
                        "DIR/NAME.key.pub)\n");
        status = 2;
    } else if (bus_curve_generate(&k)) {
        cli_error(verb, "this libzmq was built without CURVE");
        status = 1;
    } else if (snprintf(path, sizeof path, "%s/%s.key", o.dir, argv[0]) >= (int)sizeof path) {
        cli_error(verb, "the path %s/%s.key is too long", o.dir, argv[0]);
        status = 2;
    } else if (!o.force && (access(path, F_OK) == 0 || errno != ENOENT)) {
        /* A second `oaif keys alice` would lock alice's services and allow-list entries out. */
        cli_error(verb,
                  "%s already exists: keeping it (--force replaces the pair, and every "
                  "allow-list holding the old public key must then be updated)",
                  path);
        status = 1;
    } else if (bus_curve_save(&k, path, err, sizeof err)) {
        cli_error(verb, "%s", err);
        status = 1;
    } else {
        printf("wrote %s (secret, mode 0600) and %s.pub\npublic key: %s\n", path, path,
               k.public_key);
    }
    cfg_release(&spec, &o);
    return status;
}
