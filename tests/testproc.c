/* testproc.c - see testproc.h. */
#include "testproc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t tp_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
    }
    execv(argv[0], argv);
    perror(argv[0]);
    _exit(127);
}

int tp_stop(pid_t pid, int sig)
{
    int status = 0;
    kill(pid, sig);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

bool tp_read_kv(const char *path, const char *key, char *out, size_t outlen, int timeout_ms)
{
    size_t klen = strlen(key);
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        FILE *f = fopen(path, "r");
        if (f) {
            char line[512];
            while (fgets(line, sizeof line, f)) {
                if (!strncmp(line, key, klen) && line[klen] == '=') {
                    line[strcspn(line, "\n")] = '\0';
                    snprintf(out, outlen, "%s", line + klen + 1);
                    fclose(f);
                    return true;
                }
            }
            fclose(f);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

const char *tp_bin(const char *rel)
{
    static char buf[8][1024];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 1024, "%s/%s", OAIF_BIN_DIR, rel);
    return b;
}
