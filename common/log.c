/* log.c - see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char log_name[32] = "oaif";
static int log_level = LOG_LVL_INFO;
static FILE *log_file; /* LOG_FILE: every line also goes here */

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_name(const char *name)
{
    snprintf(log_name, sizeof log_name, "%s", name ? name : "oaif");
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

int log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void log_init_from_env(const char *name)
{
    log_set_name(name);
    const char *v = getenv("LOG_LEVEL");
    if (v && *v) {
        int l = log_level_parse(v);
        if (l < 0)
            log_warn("LOG_LEVEL='%s' is not one of error, warn, info, debug; using info", v);
        else
            log_level = l;
    }
    const char *f = getenv("LOG_FILE");
    if (f && *f && !log_file) {
        log_file = fopen(f, "a");
        if (!log_file)
            log_warn("LOG_FILE='%s': cannot open for appending: %s; logging to stderr only", f,
                     strerror(errno));
        else
            setvbuf(log_file, NULL, _IOLBF, 0);
    }
}

bool log_has_file(void)
{
    return log_file != NULL;
}

int log_enabled(enum log_level level)
{
    return (int)level <= log_level;
}

static void write_line(enum log_level level, bool file_only, const char *file, int line,
                       const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char head[96];
    snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
             level_names[level], log_name);
    if (!file_only || !log_file)
        fprintf(stderr, "%s %s:%d %s\n", head, base, line, msg);
    if (log_file)
        fprintf(log_file, "%s %s:%d %s\n", head, base, line, msg);
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(level, false, file, line, fmt, ap);
    va_end(ap);
}

void log_write_file(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(level, true, file, line, fmt, ap);
    va_end(ap);
}
