/* err.c - err_str() and err_fmt(). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *err_str(int rc)
{
    switch (rc) {
    case ERR_OK:
        return "ok";
    case ERR_NOMEM:
        return "out of memory";
    case ERR_INVAL:
        return "invalid argument";
    case ERR_NOTFOUND:
        return "not found";
    case ERR_IO:
        return "I/O error";
    case ERR_PROTO:
        return "protocol error";
    case ERR_TIMEOUT:
        return "timed out";
    case ERR_INTR:
        return "interrupted";
    case ERR_TOOBIG:
        return "too big";
    case ERR_EXISTS:
        return "already exists";
    case ERR_AGAIN:
        return "try again";
    case ERR_REMOTE:
        return "remote error";
    case ERR_CORRUPT:
        return "data corrupted";
    case ERR_NOSPACE:
        return "no space left";
    default:
        return "unknown error";
    }
}

void err_fmt(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
