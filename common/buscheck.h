/* buscheck.h - what the bus accepts from outside, checked in one place: the wire bytes of a
 * message before they are unpacked, ids and names, endpoints; and the two helpers that keep a
 * hostile peer out of the log (escaping, rate-limited warnings).
 *
 * protobuf-c unpacks a string field into a NUL-terminated C string without looking at it, so a
 * string holding a NUL byte would be cut there (two different ids would become one) and a string
 * that is not UTF-8 would be stored and passed on to peers that cannot decode it. Every message
 * the bus receives is therefore walked first (bus_check_wire): every string field of every
 * nested message must be valid UTF-8 without NUL, so that after unpacking strlen() is the
 * string's length and every id can be handled as the bytes it is. The walk also bounds the
 * elements of each repeated field before protobuf-c allocates them (a 20 MB Get of ten million
 * empty ids is refused in milliseconds instead of being unpacked and looked up).
 *
 * The functions are pure (no sockets, no globals) so that the fuzz targets can call them on
 * arbitrary bytes. */
#ifndef BUSCHECK_H
#define BUSCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* What an id is: 1 to BUS_ID_MAX bytes (request and put ids; record ids up to
 * BUS_RECORD_ID_MAX) of printable UTF-8: no C0 control character (which includes NUL, newline
 * and ESC), no DEL, no C1 control character (U+0080 to U+009F). */
#define BUS_ID_MAX        256
#define BUS_RECORD_ID_MAX 512
/* A service name: 1 to BUS_NAME_MAX characters of [a-z0-9._-]. */
#define BUS_NAME_MAX 64
/* Elements of one repeated field of one message (the ledger's scans return at most this many
 * records; its own per-command caps are lower). */
#define BUS_REPEATED_MAX 100000
/* What one message may ask of the ledger, which refuses more with an Error naming the limit
 * (ERROR_CODE_TOO_BIG) rather than hold every other peer while it works: ids per Get or Lookup,
 * records per Put or Result (one put is one write batch: about 7 us a small record here, so
 * 50,000 prompts hold the ledger's loop about 0.35 s, under a heartbeat interval). Clients that
 * may have more split them (oaif import), or check their configuration against them (the
 * trainer's checkpoint put). */
#define BUS_GET_IDS_MAX     10000
#define BUS_PUT_RECORDS_MAX 50000
/* Messages nested deeper than this are refused (the envelope is 3 deep). */
#define BUS_NEST_MAX 16

/* Walk the wire bytes of a message of type `d`. ERR_OK; ERR_INVAL: a string that is not UTF-8 or
 * holds NUL; ERR_TOOBIG: a repeated field over BUS_REPEATED_MAX; ERR_PROTO: not a protobuf (bad
 * tag, a length past the end, a group, nesting over BUS_NEST_MAX). `why` names the field path
 * and the problem ("get.ids[3]: byte 0 at offset 5 is NUL ..."). Unknown fields are skipped (a
 * newer peer may add some). */
int bus_check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, char *why,
                   size_t whylen);

/* The value of top-level varint field `field` of the message in buf (the envelope's corr, so a
 * refusal can still be matched by its sender), or 0 if absent or unreadable. */
uint64_t bus_peek_varint(const uint8_t *buf, size_t len, unsigned field);

/* Is `s` an id by the definition above, at most `max` bytes? ERR_OK, or ERR_INVAL with
 * `why` saying what is wrong, prefixed by `what` ("submit id"), the id itself escaped. */
int bus_check_id(const char *s, size_t max, const char *what, char *why, size_t whylen);

/* Is `s` a service name (1 to BUS_NAME_MAX characters of [a-z0-9._-])? */
bool bus_name_ok(const char *s);

/* `s` for a log line: printable ASCII and valid UTF-8 as is, a control character, DEL, a C1
 * control or a byte that is not UTF-8 as \xNN, backslash as \\; cut with "..." to fit `outlen`.
 * Returns out. NULL s: "". */
const char *bus_escape(const char *s, char *out, size_t outlen);

/* A warning that a peer can trigger at will: at most one line per `every_ms`, which says how many
 * were not written since the last one. */
struct bus_ratelog {
    uint64_t every_ms;
    uint64_t last_ms; /* monotonic time of the last line written (0: none yet) */
    uint64_t held;    /* warnings since, not written */
};
/* Should this warning be written now? If so, *held is how many were suppressed before it (and
 * the count restarts); if not, it is counted. */
bool bus_ratelog_ok(struct bus_ratelog *r, uint64_t now_ms, uint64_t *held);

/* Is `ep` a ZeroMQ endpoint whose port, for tcp://, is a number from 0 to 65535 or '*'? (libzmq
 * takes "tcp://127.0.0.1:70000" and binds port 4464.) ERR_OK, or ERR_INVAL with `why`. Other
 * transports (ipc://, inproc://) are passed as they are. */
int bus_endpoint_check(const char *ep, char *why, size_t whylen);

#endif /* BUSCHECK_H */
