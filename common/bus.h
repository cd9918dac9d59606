/* bus.h - the wire under every service: one ZeroMQ frame per protobuf Envelope, socket
 * options, CURVE keys and the ZAP handler that enforces the allow-list.
 *
 * Framing: a DEALER peer sends exactly one frame, a packed oaif.v1.Envelope; the ledger's
 * ROUTER sees [routing id][envelope]. Anything else (more frames, bad protobuf, another
 * protocol version, an empty body) is malformed: bus_recv reports it with a reason so the
 * receiver can answer with an Error instead of dying. The client and worker sides live in
 * busclient.h and busworker.h. */
#ifndef BUS_H
#define BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oaif.pb-c.h"

#define BUS_PROTOCOL_VERSION 1

/* The largest message (ZMQ_MAXMSGSIZE: the transport drops larger frames), written once, in MiB;
 * BUS_DEFAULT_MAX_MSG is it in bytes, BUS_DEFAULT_MAX_MESSAGE its option text ("<N>MiB"). */
#define BUS_DEFAULT_MAX_MSG_MIB 64
#define BUS_DEFAULT_MAX_MSG     (BUS_DEFAULT_MAX_MSG_MIB << 20)
#define BUS_STR_(x)             #x
#define BUS_STR(x)              BUS_STR_(x) /* the text of a macro's value */

/* The defaults of the bus options (busopts.h), as their option tables write them: the ledger
 * binds these on loopback and everyone else connects to them. */
#define BUS_DEFAULT_CLIENTS     "tcp://127.0.0.1:5555"
#define BUS_DEFAULT_WORKERS     "tcp://127.0.0.1:5556"
#define BUS_DEFAULT_EVENTS      "tcp://127.0.0.1:5557"
#define BUS_DEFAULT_HEARTBEAT   "1s"
#define BUS_DEFAULT_MAX_MESSAGE BUS_STR(BUS_DEFAULT_MAX_MSG_MIB) "MiB"
#define BUS_ROUTING_ID_MAX   255

/* Milliseconds since the epoch (CLOCK_REALTIME) and a monotonic clock. */
uint64_t bus_now_ms(void);
uint64_t bus_mono_ms(void);

/* CURVE material, z85-encoded (40 characters + NUL). `on` false: plaintext. */
struct bus_curve {
    bool on;
    char public_key[41];
    char secret_key[41];
    char server_key[41]; /* clients and workers: the ledger's public key */
};

/* Generate a key pair into `c` (on = true). ERR_OK, or ERR_INVAL if libzmq lacks CURVE. */
int bus_curve_generate(struct bus_curve *c);
/* Write `c`'s pair to `path` (mode 0600: "public-key = ..." and "secret-key = ..." lines) and
 * the public half alone to `path`.pub. */
int bus_curve_save(const struct bus_curve *c, const char *path, char *err, size_t errlen);
/* Read a key file: a secret file fills public_key and secret_key; a .pub file (or a file with a
 * bare 40-character key) fills public_key only (want_secret false). Errors name file and line. */
int bus_curve_load(struct bus_curve *c, const char *path, bool want_secret, char *err,
                   size_t errlen);

/* CURVE for a service that connects to the ledger: `secret_path` is its key pair file and
 * `ledger_key` the ledger's public key, as Z85 text or a key file. Both empty: plaintext
 * (out->on false). One without the other, or a bad key, is ERR_INVAL with `why` naming the
 * option: `secret_option` is how the secret key is configured ("sampler.curve_secret_key"). */
int bus_curve_client(struct bus_curve *out, const char *secret_path, const char *ledger_key,
                     const char *secret_option, char *why, size_t whylen);

/* Options every oaif socket gets: ZMQ_LINGER 0 (never hang at exit), ZMQ_MAXMSGSIZE;
 * connecting sockets also ZMQ_IMMEDIATE, a short reconnect interval, TCP keepalive;
 * ROUTERs ZMQ_ROUTER_MANDATORY (a send to a vanished peer fails at once, EHOSTUNREACH).
 * CURVE server (bind side, with the ZAP domain "oaif") or client (connect side) if c->on. */
int bus_setup_socket(void *sock, bool binds, int type, size_t max_msg, const struct bus_curve *c);

/* A message read off a socket. */
struct bus_msg {
    uint8_t rid[BUS_ROUTING_ID_MAX]; /* ROUTER only: the peer's routing id */
    size_t rid_len;
    Oaif__V1__Envelope *env; /* NULL when malformed; free with bus_msg_clear */
    char error[384];         /* why it is malformed */
    int code;                /* malformed: the Oaif__V1__ErrorCode to answer with */
    uint64_t corr;           /* malformed: the envelope's corr if it could be read, else 0 */
    size_t bytes;            /* size of the envelope frame */
    char user[41];           /* CURVE: the peer's public key (Z85, the ZAP user id); else "" */
};

/* Receive one message without blocking. ERR_OK: a well-formed envelope in m->env: one frame,
 * a protobuf Envelope of this protocol version with a body, every string in it valid UTF-8
 * without NUL and every repeated field within BUS_REPEATED_MAX (buscheck.h, checked on the
 * wire bytes before unpacking). ERR_PROTO: malformed (m->error says why, m->code and m->corr
 * what to answer with; m->rid is set for ROUTERs so an Error can be sent back). ERR_AGAIN:
 * nothing to read. ERR_INTR, ERR_IO. `router`: the socket is a ROUTER. */
int bus_recv(void *sock, bool router, struct bus_msg *m);
void bus_msg_clear(struct bus_msg *m);

/* Pack and send `env` (its version is set here) to `rid` (ROUTER) or to the peer (rid NULL),
 * without blocking. ERR_OK; ERR_AGAIN if the peer's queue is full or (with ZMQ_IMMEDIATE)
 * there is no connection; ERR_NOTFOUND if a ROUTER's peer is gone; ERR_IO otherwise. */
int bus_send(void *sock, const uint8_t *rid, size_t rid_len, Oaif__V1__Envelope *env);

/* Send an Error{code, message, id} with correlation `corr`. */
int bus_send_error(void *sock, const uint8_t *rid, size_t rid_len, uint64_t corr,
                   Oaif__V1__ErrorCode code, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* The ZAP handler: a thread answering libzmq's authentication requests for every CURVE
 * server socket of `zctx`. Without it libzmq accepts any client key. A key is allowed when it
 * is in the allow-list; an empty allow-list refuses everyone. */
typedef struct bus_zap bus_zap_t;

/* Start the handler with `n` z85 public keys. Must run before the server socket binds. */
int bus_zap_start(bus_zap_t **out, void *zctx, const char *const *keys, size_t n);
/* Read an allow-list file or directory (every *.pub in it; lines "public-key = Z85" or a bare
 * key; '#' comments) and add its keys. Errors name the file and line. */
int bus_zap_allow_file(bus_zap_t *z, const char *path, char *err, size_t errlen);
/* Add one z85 public key. ERR_INVAL if it is not a key. */
int bus_zap_allow_key(bus_zap_t *z, const char *z85);
uint64_t bus_zap_denied(const bus_zap_t *z);
uint64_t bus_zap_allowed(const bus_zap_t *z);
void bus_zap_stop(bus_zap_t **z);

#endif /* BUS_H */
