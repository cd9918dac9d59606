/* err.h - the one error enum of oaif.
 * Actions return int: ERR_OK (0) or one of the negative codes below. */
#ifndef ERR_H
#define ERR_H

#include <stddef.h>

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,    /* out of memory */
    ERR_INVAL = -2,    /* bad argument, bad input, bad configuration */
    ERR_NOTFOUND = -3, /* no such key, file, version, service */
    ERR_IO = -4,       /* file, store or socket I/O failed */
    ERR_PROTO = -5,    /* a peer sent bytes we cannot parse */
    ERR_TIMEOUT = -6,  /* a deadline passed */
    ERR_INTR = -7,     /* interrupted by a signal */
    ERR_TOOBIG = -8,   /* over a configured size limit */
    ERR_EXISTS = -9,   /* already there */
    ERR_AGAIN = -10,   /* try again later (transient remote failure, rate limit) */
    ERR_REMOTE = -11,  /* the remote side answered with an error */
    ERR_CORRUPT = -12, /* stored data failed its checksum or is damaged: never "absent" */
    ERR_NOSPACE = -13, /* the disk (or a quota) is full */
};

/* A static string naming rc ("out of memory", ...); never NULL. */
const char *err_str(int rc);

/* The printf-style message into err[errlen], cut to fit; nothing when err is NULL or errlen 0. The
 * `char *err, size_t errlen` pair is how the engine and the trainer's functions say why. */
void err_fmt(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* ERR_H */
