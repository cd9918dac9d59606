/* bus.c - see bus.h. */
#include "bus.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "buscheck.h"
#include "err.h"
#include "log.h"
#include "utf8.h"

uint64_t bus_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t bus_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- CURVE keys ---------------------------------------------------------------------------- */

int bus_curve_generate(struct bus_curve *c)
{
    memset(c, 0, sizeof *c);
    if (zmq_curve_keypair(c->public_key, c->secret_key) != 0)
        return ERR_INVAL;
    c->on = true;
    return ERR_OK;
}

int bus_curve_save(const struct bus_curve *c, const char *path, char *err, size_t errlen)
{
    char pub[4096];
    snprintf(pub, sizeof pub, "%s.pub", path);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    chmod(path, 0600);
    fprintf(f, "# oaif CURVE key pair: keep this file secret\npublic-key = %s\nsecret-key = %s\n",
            c->public_key, c->secret_key);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    f = fopen(pub, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", pub, strerror(errno));
        return ERR_IO;
    }
    fprintf(f, "# oaif CURVE public key\npublic-key = %s\n", c->public_key);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", pub, strerror(errno));
        return ERR_IO;
    }
    return ERR_OK;
}

static bool z85_key_ok(const char *s)
{
    if (strlen(s) != 40)
        return false;
    uint8_t bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Calls fn for each key line of `path`: "public-key = K", "secret-key = K" or a bare key. */
static int read_key_lines(const char *path, char *err, size_t errlen,
                          int (*fn)(void *ctx, const char *name, const char *key), void *ctx)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    char line[512];
    int lineno = 0, rc = ERR_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        const char *name = "public-key";
        char *key = s;
        char *eq = strchr(s, '=');
        if (eq) {
            *eq = '\0';
            name = trim(s);
            key = trim(eq + 1);
            if (strcmp(name, "public-key") != 0 && strcmp(name, "secret-key") != 0) {
                snprintf(err, errlen, "%s:%d: unknown field '%s' (want public-key or secret-key)",
                         path, lineno, name);
                rc = ERR_INVAL;
                break;
            }
        }
        if (!z85_key_ok(key)) {
            snprintf(err, errlen, "%s:%d: not a 40-character Z85 CURVE key", path, lineno);
            rc = ERR_INVAL;
            break;
        }
        rc = fn(ctx, name, key);
        if (rc)
            break;
    }
    fclose(f);
    return rc;
}

static int curve_line(void *ctx, const char *name, const char *key)
{
    struct bus_curve *c = ctx;
    if (strcmp(name, "secret-key") == 0)
        memcpy(c->secret_key, key, 41);
    else
        memcpy(c->public_key, key, 41);
    return ERR_OK;
}

int bus_curve_load(struct bus_curve *c, const char *path, bool want_secret, char *err,
                   size_t errlen)
{
    char server_key[41];
    memcpy(server_key, c->server_key, sizeof server_key);
    memset(c, 0, sizeof *c);
    memcpy(c->server_key, server_key, sizeof server_key);
    int rc = read_key_lines(path, err, errlen, curve_line, c);
    if (rc)
        return rc;
    if (!c->public_key[0]) {
        snprintf(err, errlen, "%s: no public-key line", path);
        return ERR_INVAL;
    }
    if (want_secret && !c->secret_key[0]) {
        snprintf(err, errlen, "%s: no secret-key line (is this the .pub file?)", path);
        return ERR_INVAL;
    }
    if (want_secret) {
        /* The two halves must belong together. */
        char derived[41];
        if (zmq_curve_public(derived, c->secret_key) != 0 || strcmp(derived, c->public_key)) {
            snprintf(err, errlen, "%s: public-key does not match secret-key", path);
            return ERR_INVAL;
        }
    }
    c->on = true;
    return ERR_OK;
}

int bus_curve_client(struct bus_curve *out, const char *secret_path, const char *ledger_key,
                     const char *secret_option, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    bool secret = secret_path && *secret_path;
    bool server = ledger_key && *ledger_key;
    if (!secret && !server)
        return ERR_OK;
    if (!secret || !server) {
        snprintf(why, whylen, "CURVE needs both %s and bus.ledger_public_key", secret_option);
        return ERR_INVAL;
    }
    char err[512];
    if (bus_curve_load(out, secret_path, true, err, sizeof err)) {
        snprintf(why, whylen, "%s: %s", secret_option, err);
        return ERR_INVAL;
    }
    if (z85_key_ok(ledger_key)) {
        snprintf(out->server_key, sizeof out->server_key, "%s", ledger_key);
    } else {
        struct bus_curve s = {0};
        if (bus_curve_load(&s, ledger_key, false, err, sizeof err)) {
            snprintf(why, whylen, "bus.ledger_public_key: not a Z85 key, and as a file: %s", err);
            return ERR_INVAL;
        }
        memcpy(out->server_key, s.public_key, sizeof out->server_key);
    }
    out->on = true;
    return ERR_OK;
}

/* ---- sockets ------------------------------------------------------------------------------- */

int bus_setup_socket(void *sock, bool binds, int type, size_t max_msg, const struct bus_curve *c)
{
    int zero = 0, one = 1;
    int64_t maxmsg = (int64_t)(max_msg ? max_msg : BUS_DEFAULT_MAX_MSG);
    int rc = zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (type == ZMQ_ROUTER)
        rc |= zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (!binds) {
        int ivl = 100, ivl_max = 1000;
        /* Not on a SUB: there it lost the first message published after every connection
         * (libzmq 4.3), however long after: the first checkpoint event a service waited for
         * (test_ledger). A SUB sends nothing but its subscriptions, which it resends on each
         * connection anyway. */
        if (type != ZMQ_SUB)
            rc |= zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one);
        rc |= zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        rc |= zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
        rc |= zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE, &one, sizeof one);
    }
    if (type == ZMQ_ROUTER || type == ZMQ_DEALER) {
        int hwm = 100000;
        rc |= zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        rc |= zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    if (c && c->on) {
        if (binds) {
            rc |= zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
            rc |= zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->secret_key, 40);
            rc |= zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "oaif", 4);
        } else {
            rc |= zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server_key, 40);
            rc |= zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->public_key, 40);
            rc |= zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->secret_key, 40);
        }
    }
    if (rc) {
        log_error("bus: socket options: %s", zmq_strerror(zmq_errno()));
        return ERR_INVAL;
    }
    return ERR_OK;
}

static int zerr(void)
{
    int e = zmq_errno();
    if (e == EAGAIN)
        return ERR_AGAIN;
    if (e == EINTR)
        return ERR_INTR;
    if (e == EHOSTUNREACH)
        return ERR_NOTFOUND;
    return ERR_IO;
}

static bool more_frames(void *sock)
{
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    return more != 0;
}

static size_t drain(void *sock)
{
    size_t n = 0;
    while (more_frames(sock)) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        zmq_msg_close(&part);
        n++;
    }
    return n;
}

void bus_msg_clear(struct bus_msg *m)
{
    if (m->env)
        oaif__v1__envelope__free_unpacked(m->env, NULL);
    m->env = NULL;
    m->rid_len = 0;
    m->error[0] = '\0';
    m->bytes = 0;
}

int bus_recv(void *sock, bool router, struct bus_msg *m)
{
    m->env = NULL;
    m->rid_len = 0;
    m->error[0] = '\0';
    m->bytes = 0;
    m->code = OAIF__V1__ERROR_CODE__ERROR_CODE_PROTOCOL;
    m->corr = 0;
    m->user[0] = '\0';
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (router) {
        if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            return zerr();
        }
        size_t n = zmq_msg_size(&frame);
        m->rid_len = n < BUS_ROUTING_ID_MAX ? n : BUS_ROUTING_ID_MAX;
        memcpy(m->rid, zmq_msg_data(&frame), m->rid_len);
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (!more_frames(sock)) {
            snprintf(m->error, sizeof m->error, "malformed message: no envelope frame");
            return ERR_PROTO;
        }
        if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            snprintf(m->error, sizeof m->error, "malformed message: truncated");
            return ERR_PROTO;
        }
    } else if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return zerr();
    }
    m->bytes = zmq_msg_size(&frame);
    const char *user = zmq_msg_gets(&frame, "User-Id");
    if (user && strlen(user) < sizeof m->user)
        memcpy(m->user, user, strlen(user) + 1);
    size_t extra = drain(sock);
    if (extra) {
        zmq_msg_close(&frame);
        snprintf(m->error, sizeof m->error,
                 "malformed message: %zu frames after the envelope (one frame expected)", extra);
        return ERR_PROTO;
    }
    /* The bytes first: protobuf-c would cut a string at a NUL and keep bytes that are not
     * UTF-8, and would allocate every element of a huge repeated field. */
    char why[200];
    int wrc = bus_check_wire(&oaif__v1__envelope__descriptor, zmq_msg_data(&frame), m->bytes, why,
                             sizeof why);
    if (wrc) {
        m->corr = bus_peek_varint(zmq_msg_data(&frame), m->bytes, 2);
        m->code = wrc == ERR_INVAL    ? OAIF__V1__ERROR_CODE__ERROR_CODE_INVALID
                  : wrc == ERR_TOOBIG ? OAIF__V1__ERROR_CODE__ERROR_CODE_TOO_BIG
                                      : OAIF__V1__ERROR_CODE__ERROR_CODE_PROTOCOL;
        zmq_msg_close(&frame);
        snprintf(m->error, sizeof m->error, "malformed envelope (%zu bytes): %s%s", m->bytes,
                 wrc == ERR_PROTO ? "not a protobuf oaif.v1.Envelope: " : "", why);
        return ERR_PROTO;
    }
    Oaif__V1__Envelope *env =
        oaif__v1__envelope__unpack(NULL, zmq_msg_size(&frame), zmq_msg_data(&frame));
    zmq_msg_close(&frame); /* unpack copies */
    if (!env) {
        snprintf(m->error, sizeof m->error, "malformed envelope: not a protobuf oaif.v1.Envelope "
                                            "(%zu bytes)",
                 m->bytes);
        return ERR_PROTO;
    }
    m->corr = env->corr;
    if (env->version != BUS_PROTOCOL_VERSION) {
        snprintf(m->error, sizeof m->error,
                 "protocol version %u is not supported (this peer speaks version %d)",
                 env->version, BUS_PROTOCOL_VERSION);
        oaif__v1__envelope__free_unpacked(env, NULL);
        return ERR_PROTO;
    }
    if (env->body_case == OAIF__V1__ENVELOPE__BODY__NOT_SET) {
        snprintf(m->error, sizeof m->error, "envelope has no body (unknown or empty command)");
        oaif__v1__envelope__free_unpacked(env, NULL);
        return ERR_PROTO;
    }
    m->env = env;
    return ERR_OK;
}

int bus_send(void *sock, const uint8_t *rid, size_t rid_len, Oaif__V1__Envelope *env)
{
    env->version = BUS_PROTOCOL_VERSION;
    size_t n = oaif__v1__envelope__get_packed_size(env);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, n) != 0)
        return ERR_NOMEM;
    oaif__v1__envelope__pack(env, zmq_msg_data(&msg));
    if (rid) {
        if (zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return zerr();
        }
    }
    if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) < 0) {
        int rc = zerr();
        zmq_msg_close(&msg); /* a failed send leaves it ours */
        return rc;
    }
    return ERR_OK;
}

int bus_send_error(void *sock, const uint8_t *rid, size_t rid_len, uint64_t corr,
                   Oaif__V1__ErrorCode code, const char *id, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* The text may quote a peer's bytes or be cut inside a UTF-8 sequence; a string that is not
     * UTF-8 would make the whole Error undecodable (bus_recv refuses it). */
    char *clean = utf8_clean(text, strlen(text));
    Oaif__V1__Error e = OAIF__V1__ERROR__INIT;
    e.code = code;
    e.message = clean ? clean : text;
    e.id = (char *)(id ? id : "");
    Oaif__V1__Envelope env = OAIF__V1__ENVELOPE__INIT;
    env.corr = corr;
    env.body_case = OAIF__V1__ENVELOPE__BODY_ERROR;
    env.error = &e;
    int rc = bus_send(sock, rid, rid_len, &env);
    free(clean);
    return rc;
}

/* ---- ZAP ----------------------------------------------------------------------------------- */

struct bus_zap {
    void *zctx;
    void *rep; /* used only by the thread */
    pthread_t thread;
    pthread_mutex_t lock;
    char (*keys)[41];
    size_t nkeys, akeys;
    atomic_int stop;
    atomic_ullong denied, allowed;
};

static int zap_add(bus_zap_t *z, const char *key)
{
    pthread_mutex_lock(&z->lock);
    int rc = ERR_OK;
    if (z->nkeys == z->akeys) {
        size_t n = z->akeys ? z->akeys * 2 : 16;
        char(*p)[41] = realloc(z->keys, n * sizeof *p);
        if (!p)
            rc = ERR_NOMEM;
        else {
            z->keys = p;
            z->akeys = n;
        }
    }
    if (!rc)
        snprintf(z->keys[z->nkeys++], 41, "%s", key);
    pthread_mutex_unlock(&z->lock);
    return rc;
}

static bool zap_allowed(bus_zap_t *z, const char *key)
{
    bool ok = false;
    pthread_mutex_lock(&z->lock);
    for (size_t i = 0; i < z->nkeys && !ok; i++)
        ok = strcmp(z->keys[i], key) == 0;
    pthread_mutex_unlock(&z->lock);
    return ok;
}

/* One ZAP request: version, request id, domain, address, routing id, mechanism, credentials. */
static void zap_serve_one(bus_zap_t *z)
{
    zmq_msg_t parts[8];
    int n = 0;
    for (;;) {
        zmq_msg_init(&parts[n]);
        if (zmq_msg_recv(&parts[n], z->rep, 0) < 0) {
            zmq_msg_close(&parts[n]);
            break;
        }
        n++;
        if (!more_frames(z->rep) || n == 8)
            break;
    }
    drain(z->rep);
    if (n < 6) {
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
        return;
    }
    const char *status = "400", *text = "denied";
    char key[41] = "";
    bool curve = zmq_msg_size(&parts[5]) == 5 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0;
    if (curve && n >= 7 && zmq_msg_size(&parts[6]) == 32) {
        zmq_z85_encode(key, zmq_msg_data(&parts[6]), 32);
        if (zap_allowed(z, key)) {
            status = "200";
            text = "OK";
        }
    }
    if (status[0] == '2')
        atomic_fetch_add(&z->allowed, 1);
    else {
        atomic_fetch_add(&z->denied, 1);
        log_warn("bus: refused a %s client (key %.8s...) not on the allow-list",
                 curve ? "CURVE" : "non-CURVE", key[0] ? key : "none");
    }
    zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->rep, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
    zmq_send(z->rep, status, 3, ZMQ_SNDMORE);
    zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->rep, key, strlen(key), ZMQ_SNDMORE); /* user id: the client's key */
    zmq_send(z->rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

static void *zap_thread(void *arg)
{
    bus_zap_t *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {z->rep, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, 100);
        if (rc > 0 && (it.revents & ZMQ_POLLIN))
            zap_serve_one(z);
    }
    zmq_close(z->rep);
    return NULL;
}

int bus_zap_start(bus_zap_t **out, void *zctx, const char *const *keys, size_t n)
{
    *out = NULL;
    bus_zap_t *z = calloc(1, sizeof *z);
    if (!z)
        return ERR_NOMEM;
    pthread_mutex_init(&z->lock, NULL);
    for (size_t i = 0; i < n; i++) {
        if (!z85_key_ok(keys[i]) || zap_add(z, keys[i])) {
            bus_zap_stop(&z);
            return ERR_INVAL;
        }
    }
    z->zctx = zctx;
    z->rep = zmq_socket(zctx, ZMQ_REP);
    int zero = 0;
    if (!z->rep || zmq_setsockopt(z->rep, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_bind(z->rep, "inproc://zeromq.zap.01") != 0) {
        log_error("bus: ZAP handler: %s", zmq_strerror(zmq_errno()));
        if (z->rep)
            zmq_close(z->rep);
        z->rep = NULL;
        bus_zap_stop(&z);
        return ERR_IO;
    }
    if (pthread_create(&z->thread, NULL, zap_thread, z) != 0) {
        zmq_close(z->rep);
        z->rep = NULL;
        bus_zap_stop(&z);
        return ERR_NOMEM;
    }
    *out = z;
    return ERR_OK;
}

static int zap_line(void *ctx, const char *name, const char *key)
{
    (void)name;
    return zap_add(ctx, key);
}

int bus_zap_allow_file(bus_zap_t *z, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_NOTFOUND;
    }
    if (!S_ISDIR(st.st_mode))
        return read_key_lines(path, err, errlen, zap_line, z);
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    int rc = ERR_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        rc = read_key_lines(file, err, errlen, zap_line, z);
    }
    closedir(d);
    return rc;
}

int bus_zap_allow_key(bus_zap_t *z, const char *z85)
{
    if (!z85_key_ok(z85))
        return ERR_INVAL;
    return zap_add(z, z85);
}

uint64_t bus_zap_denied(const bus_zap_t *z)
{
    return z ? atomic_load(&((bus_zap_t *)z)->denied) : 0;
}

uint64_t bus_zap_allowed(const bus_zap_t *z)
{
    return z ? atomic_load(&((bus_zap_t *)z)->allowed) : 0;
}

void bus_zap_stop(bus_zap_t **pz)
{
    if (!pz || !*pz)
        return;
    bus_zap_t *z = *pz;
    if (z->rep) {
        atomic_store(&z->stop, 1);
        pthread_join(z->thread, NULL);
    }
    pthread_mutex_destroy(&z->lock);
    free(z->keys);
    free(z);
    *pz = NULL;
}
