/* log.h - one line per event on stderr:
 *   2026-11-22T10:15:03.120Z WARN sampler kv.c:88 open /data/kv: IO error
 * Thread-safe (one fprintf per line). The level comes from LOG_LEVEL (error, warn, info, debug)
 * or log_set_level(); the name is the process's (log_set_name, usually the service). With
 * LOG_FILE set, every line also goes to that file (appended), and log_detail's lines, the long
 * ones nobody watches scroll by (the configuration), go there only: a terminal keeps what matters,
 * the file keeps everything. Without it, log_detail is log_info. */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

void log_set_name(const char *name);
void log_set_level(enum log_level level);
/* Parses "error" "warn" "info" "debug"; returns -1 for anything else. */
int log_level_parse(const char *s);
/* Reads LOG_LEVEL and LOG_FILE from the environment; unknown levels and a file that cannot be
 * opened are reported and ignored. */
void log_init_from_env(const char *name);
/* Whether LOG_FILE is open. */
bool log_has_file(void);
int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same line to LOG_FILE only, when it is open; to stderr otherwise. */
void log_write_file(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(...)  log_write(LOG_LVL_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)   log_write(LOG_LVL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)   log_write(LOG_LVL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_detail(...) log_write_file(LOG_LVL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LVL_DEBUG))                                                            \
            log_write(LOG_LVL_DEBUG, __FILE__, __LINE__, __VA_ARGS__);                             \
    } while (0)

#endif /* LOG_H */
