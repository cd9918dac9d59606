/* tpmetrics.h - reading one series off a service's /metrics in the process tests. */
#ifndef TPMETRICS_H
#define TPMETRICS_H

/* GETs http://127.0.0.1:<port>/metrics (failing the test when it cannot) and returns the value of
 * the first line starting with `prefix` (a series name, with labels if any), or -1 when none. */
double tp_metric(int port, const char *prefix);

#endif /* TPMETRICS_H */
