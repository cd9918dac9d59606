/* testproc.c - see testproc.h. */
#include "testproc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t tp_spawn(char *const argv[], const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Die with the test: a test killed by ctest's timeout must not leave services behind
     * holding its ports and its output pipe. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
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

pid_t tp_ledger(const char *dir, const char *log, const char *const *extra, const char *key,
                char *out, size_t outlen)
{
    char db[512], ep[512];
    snprintf(db, sizeof db, "%s/db", dir);
    snprintf(ep, sizeof ep, "%s/endpoints", dir);
    char *argv[32] = {(char *)tp_bin("services/ledger/ledger"),
                      "--db",
                      db,
                      "--clients",
                      "tcp://127.0.0.1:*",
                      "--workers",
                      "tcp://127.0.0.1:*",
                      "--events",
                      "",
                      "--endpoints-file",
                      ep};
    int n = 11;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    unlink(ep);
    pid_t pid = tp_spawn(argv, log);
    if (pid > 0 && !tp_read_kv(ep, key, out, outlen, 10000)) {
        tp_stop(pid, SIGKILL);
        pid = -1;
    }
    return pid;
}

const char *tp_state(pid_t pid, char *buf, size_t len)
{
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
        snprintf(buf, len, "gone (already waited for)");
        return buf;
    }
    if (si.si_pid != pid)
        return NULL;
    if (si.si_code == CLD_EXITED)
        snprintf(buf, len, "exited with status %d", si.si_status);
    else
        snprintf(buf, len, "killed by signal %d (%s)%s", si.si_status, strsignal(si.si_status),
                 si.si_code == CLD_DUMPED ? ", core dumped" : "");
    return buf;
}

bool tp_alive(pid_t pid)
{
    char buf[160];
    return tp_state(pid, buf, sizeof buf) == NULL;
}

/* ---- the watchdog ------------------------------------------------------------------------ */

static char wd_log[1024], wd_what[256];
static volatile sig_atomic_t wd_seconds;

static void wd_write(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

void tp_log_tail(const char *path, long bytes)
{
    int fd = path && path[0] ? open(path, O_RDONLY) : -1;
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > bytes ? end - bytes : 0, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(2, buf, (size_t)n) < 0)
            break;
    close(fd);
}

/* Async-signal-safe: write, open, lseek, read, _exit only. */
static void wd_fire(int sig)
{
    (void)sig;
    char num[32];
    int k = (int)sizeof num - 1, v = (int)wd_seconds;
    num[k] = '\0';
    do
        num[--k] = (char)('0' + v % 10);
    while ((v /= 10) && k > 0);
    wd_write("\nwatchdog: ");
    wd_write(wd_what);
    wd_write(" still running after ");
    wd_write(num + k);
    wd_write(" s; the end of its log ");
    wd_write(wd_log);
    wd_write(":\n");
    tp_log_tail(wd_log, 12000);
    wd_write("\nwatchdog: stopping the test (its services die with it)\n");
    _exit(99);
}

void tp_watchdog(int seconds, const char *what, const char *log)
{
    if (seconds <= 0) {
        alarm(0);
        return;
    }
    snprintf(wd_what, sizeof wd_what, "%s", what ? what : "the test");
    snprintf(wd_log, sizeof wd_log, "%s", log ? log : "");
    wd_seconds = seconds;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wd_fire;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)seconds);
}

int tp_log_count(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}
