/* rmfixture.h - what the reward-model process tests share: a temporary directory with a real
 * ledger process and a tiny random model as the "SFT" checkpoint the members start from; records
 * put into the ledger; the `oaif` binary run with its output captured. cmocka asserts inside. */
#ifndef RMFIXTURE_H
#define RMFIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oaif.pb-c.h"

struct rmfx {
    char dir[256], log[300], ep[300], ckpt[300], init[300];
    char cep[256]; /* the ledger's client endpoint (also in BUS_CLIENTS_ENDPOINT) */
    pid_t ledger;
    void *zctx;
};

/* mkdtemp(/tmp/oaif-test-<name>-XXXXXX), the init model (C = 32, one layer, 48 positions), the
 * ledger, OMP_NUM_THREADS=1 and BUS_CLIENTS_ENDPOINT for the children, and a watchdog of
 * watchdog_s. NULL when the directory cannot be made. */
struct rmfx *rmfx_open(const char *name, int watchdog_s);
/* Stops the ledger and removes the directory (kept, and named on stderr, with KEEP_LOGS set).
 * 0, or -1 when the directory could not be removed. */
int rmfx_close(struct rmfx *f);

/* A tiny random model (hidden 32, one layer, two heads) of `positions` positions, initialised
 * from `seed` with weights of standard deviation `std`, saved as a checkpoint in dir. */
void rmfx_tiny_model(const char *dir, int positions, uint64_t seed, float std);

/* rec := a record of `kind` and `id` holding m packed into a malloc'd *buf (freed by rmfx_put). */
void rmfx_pack(Oaif__V1__Record *rec, uint8_t **buf, Oaif__V1__RecordKind kind, const char *id,
               const ProtobufCMessage *m);
/* Commits rec[0..n) as one put of client id `cid`, then frees bufs[0..n). */
void rmfx_put(struct rmfx *f, const char *cid, Oaif__V1__Record *rec, uint8_t **bufs, size_t n);

/* Runs `oaif ARGS` with stdout and stderr into out (NUL-terminated, cut to len - 1); its exit
 * status, or -1 when it did not exit. */
int rmfx_oaif(char *out, size_t len, const char *args);
/* The same with stdout alone into out (stderr inherited). */
int rmfx_oaif_stdout(char *out, size_t len, const char *args);

#endif /* RMFIXTURE_H */
