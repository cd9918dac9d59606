/* local.c - see local.h. */
#include "local.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

void local_bin_path(char *out, size_t len, const char *svc)
{
    char self[4096], cand[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *slash = NULL;
    if (n > 0) {
        self[n] = '\0';
        slash = strrchr(self, '/');
    }
    /* Installed side by side (/usr/local/bin), or in the build tree (services/oaif/oaif). */
    for (int i = 0; slash && i < 2; i++) {
        *slash = '\0';
        if (i == 0)
            snprintf(cand, sizeof cand, "%s/%s", self, svc);
        else
            snprintf(cand, sizeof cand, "%s/../%s/%s", self, svc, svc);
        if (access(cand, X_OK) == 0) {
            snprintf(out, len, "%s", cand);
            return;
        }
    }
    snprintf(out, len, "%s", svc); /* from PATH */
}

bool local_read_kv(const char *path, const char *key, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    size_t kl = strlen(key);
    bool ok = false;
    while (!ok && fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, len, "%s", line + kl + 1);
            ok = true;
        }
    }
    fclose(f);
    return ok;
}

void local_stop_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
}
