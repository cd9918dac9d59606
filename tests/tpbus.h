/* tpbus.h - what the process tests ask the ledger about its services (Status through a real
 * bus client): how many workers a service has, and its queue. */
#ifndef TPBUS_H
#define TPBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "busclient.h"

/* Workers of service `svc` (0 when the ledger does not answer within 3 s). */
unsigned tp_workers_of(bus_client_t *c, const char *svc);

/* Waits until the ledger counts n workers of `svc`, asking every 20 ms for up to timeout_ms;
 * whether it did. */
bool tp_wait_workers(bus_client_t *c, const char *svc, unsigned n, int timeout_ms);

/* The service's workers, queued and completed requests (all 0 when the ledger does not answer or
 * does not know it). */
void tp_service_status(bus_client_t *c, const char *svc, unsigned *workers, uint64_t *queued,
                       uint64_t *completed);

#endif /* TPBUS_H */
