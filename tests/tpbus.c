/* tpbus.c - see tpbus.h. */
#include "tpbus.h"

#include <string.h>
#include <unistd.h>

#include "err.h"

void tp_service_status(bus_client_t *c, const char *svc, unsigned *workers, uint64_t *queued,
                       uint64_t *completed)
{
    unsigned w = 0;
    uint64_t q = 0, d = 0;
    Oaif__V1__Envelope *env = NULL;
    if (bus_client_status(c, 3000, &env) == ERR_OK) {
        for (size_t i = 0; i < env->status->n_services; i++) {
            const Oaif__V1__ServiceStatus *s = env->status->services[i];
            if (!strcmp(s->name, svc)) {
                w = s->workers;
                q = s->queued;
                d = s->completed;
            }
        }
        oaif__v1__envelope__free_unpacked(env, NULL);
    }
    if (workers)
        *workers = w;
    if (queued)
        *queued = q;
    if (completed)
        *completed = d;
}

unsigned tp_workers_of(bus_client_t *c, const char *svc)
{
    unsigned w = 0;
    tp_service_status(c, svc, &w, NULL, NULL);
    return w;
}

bool tp_wait_workers(bus_client_t *c, const char *svc, unsigned n, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (tp_workers_of(c, svc) == n)
            return true;
        usleep(20000);
    }
    return tp_workers_of(c, svc) == n;
}
