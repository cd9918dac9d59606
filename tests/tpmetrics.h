/* tpmetrics.h - reading one series off a service's /metrics in the process tests. */
#ifndef TPMETRICS_H
#define TPMETRICS_H

#include "buf.h"

/* GETs http://127.0.0.1:<port><path>, appending the body to out; the HTTP status, or 0 when the
 * request failed. */
long tp_http_get(int port, const char *path, buf_t *out);

/* GETs http://127.0.0.1:<port>/metrics (failing the test when it cannot) and returns the value of
 * the first line starting with `prefix` (a series name, with labels if any), or -1 when none. */
double tp_metric(int port, const char *prefix);

#endif /* TPMETRICS_H */
