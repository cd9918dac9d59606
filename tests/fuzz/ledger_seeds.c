/* ledger_seeds.c - writes fuzz_ledger's seed corpus (tests/fuzz/corpus/ledger/) in its frame
 * format (see fuzz_ledger.c): one file per conversation a real client or worker has with the
 * ledger (submit and lease and answer, put and get, scan, lookup, status, heartbeats, a
 * disconnect) and a few malformed ones (a second frame, another protocol version, no body).
 * Usage: ledger_seeds DIR. Run again after a change to oaif.proto and commit what it writes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "oaif.pb-c.h"

enum { C0 = 0, C1 = 1, W0 = 2, W1 = 3, MORE = 4, TURN = 8 };

struct seed {
    uint8_t data[1 << 16];
    size_t len;
};

static void frame(struct seed *s, int flags, const void *bytes, size_t n)
{
    if (s->len + 3 + n > sizeof s->data || n > 0xffff)
        abort();
    s->data[s->len++] = (uint8_t)flags;
    s->data[s->len++] = (uint8_t)(n & 0xff);
    s->data[s->len++] = (uint8_t)(n >> 8);
    memcpy(s->data + s->len, bytes, n);
    s->len += n;
}

static void env(struct seed *s, int flags, Oaif__V1__Envelope *e)
{
    e->version = BUS_PROTOCOL_VERSION;
    uint8_t buf[4096];
    size_t n = oaif__v1__envelope__get_packed_size(e);
    if (n > sizeof buf)
        abort();
    oaif__v1__envelope__pack(e, buf);
    frame(s, flags, buf, n);
}

static void submit(struct seed *s, int flags, const char *id, const char *service)
{
    Oaif__V1__Submit m = OAIF__V1__SUBMIT__INIT;
    m.id = (char *)id;
    m.service = (char *)service;
    m.payload.data = (uint8_t *)"payload";
    m.payload.len = 7;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.corr = 1;
    e.body_case = OAIF__V1__ENVELOPE__BODY_SUBMIT;
    e.submit = &m;
    env(s, flags, &e);
}

static void ready(struct seed *s, int flags, const char *service, uint32_t credit)
{
    Oaif__V1__Ready m = OAIF__V1__READY__INIT;
    m.service = (char *)service;
    m.credit = credit;
    m.name = "host/1234";
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.body_case = OAIF__V1__ENVELOPE__BODY_READY;
    e.ready = &m;
    env(s, flags, &e);
}

static void result(struct seed *s, int flags, const char *id, int ok, const char *rec_id)
{
    Oaif__V1__Record r = OAIF__V1__RECORD__INIT;
    Oaif__V1__Record *rs[1] = {&r};
    r.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR;
    r.id = (char *)(rec_id ? rec_id : "");
    r.data.data = (uint8_t *)"\x0a\x02p1";
    r.data.len = 4;
    Oaif__V1__Result m = OAIF__V1__RESULT__INIT;
    m.id = (char *)id;
    m.ok = ok;
    m.payload.data = (uint8_t *)"reply";
    m.payload.len = 5;
    m.error = ok ? "" : "the judge said no";
    m.permanent = !ok;
    m.n_records = rec_id ? 1 : 0;
    m.records = rs;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.body_case = OAIF__V1__ENVELOPE__BODY_RESULT;
    e.result = &m;
    env(s, flags, &e);
}

static void put(struct seed *s, int flags, const char *id, Oaif__V1__RecordKind kind, int n,
                int if_absent)
{
    Oaif__V1__Record r[4], *rs[4];
    char ids[4][16];
    for (int i = 0; i < n; i++) {
        oaif__v1__record__init(&r[i]);
        snprintf(ids[i], sizeof ids[i], "rec-%d", i);
        r[i].kind = kind;
        r[i].id = ids[i];
        r[i].data.data = (uint8_t *)"\x0a\x03"
                                    "abc";
        r[i].data.len = 5;
        rs[i] = &r[i];
    }
    Oaif__V1__Put m = OAIF__V1__PUT__INIT;
    m.id = (char *)id;
    m.n_records = (size_t)n;
    m.records = rs;
    m.if_absent = if_absent;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.corr = 2;
    e.body_case = OAIF__V1__ENVELOPE__BODY_PUT;
    e.put = &m;
    env(s, flags, &e);
}

static void get(struct seed *s, int flags, Oaif__V1__RecordKind kind, int n)
{
    char *ids[3] = {"rec-0", "rec-1", "absent"};
    Oaif__V1__Get m = OAIF__V1__GET__INIT;
    m.kind = kind;
    m.n_ids = (size_t)n;
    m.ids = ids;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.corr = 3;
    e.body_case = OAIF__V1__ENVELOPE__BODY_GET;
    e.get = &m;
    env(s, flags, &e);
}

static void scan(struct seed *s, int flags, Oaif__V1__RecordKind kind, uint64_t after,
                 uint32_t limit)
{
    Oaif__V1__Scan m = OAIF__V1__SCAN__INIT;
    m.kind = kind;
    m.after_seq = after;
    m.limit = limit;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.corr = 4;
    e.body_case = OAIF__V1__ENVELOPE__BODY_SCAN;
    e.scan = &m;
    env(s, flags, &e);
}

static void lookup(struct seed *s, int flags)
{
    char *ids[2] = {"req-1", "nobody"};
    Oaif__V1__Lookup m = OAIF__V1__LOOKUP__INIT;
    m.n_ids = 2;
    m.ids = ids;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.corr = 5;
    e.body_case = OAIF__V1__ENVELOPE__BODY_LOOKUP;
    e.lookup = &m;
    env(s, flags, &e);
}

static void status(struct seed *s, int flags)
{
    Oaif__V1__StatusQuery m = OAIF__V1__STATUS_QUERY__INIT;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.corr = 6;
    e.body_case = OAIF__V1__ENVELOPE__BODY_STATUS_QUERY;
    e.status_query = &m;
    env(s, flags, &e);
}

static void heartbeat(struct seed *s, int flags)
{
    Oaif__V1__Heartbeat m = OAIF__V1__HEARTBEAT__INIT;
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.body_case = OAIF__V1__ENVELOPE__BODY_HEARTBEAT;
    e.heartbeat = &m;
    env(s, flags, &e);
}

static void disconnect(struct seed *s, int flags)
{
    Oaif__V1__Disconnect m = OAIF__V1__DISCONNECT__INIT;
    m.reason = "shutting down";
    Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
    e.body_case = OAIF__V1__ENVELOPE__BODY_DISCONNECT;
    e.disconnect = &m;
    env(s, flags, &e);
}

static void save(const char *dir, const char *name, const struct seed *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->data, 1, s->len, f) != s->len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static struct seed s;
    const Oaif__V1__RecordKind prompt = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;

    s.len = 0; /* a request leased to a worker and answered, with a record */
    ready(&s, W0 | TURN, "echo", 2);
    submit(&s, C0 | TURN, "req-1", "echo");
    result(&s, W0 | TURN, "req-1", 1, "pair-1");
    lookup(&s, C0);
    save(dir, "submit_lease_result", &s);

    s.len = 0; /* a failed, permanent result; the same id submitted twice */
    submit(&s, C0, "req-2", "echo");
    submit(&s, C1 | TURN, "req-2", "echo");
    ready(&s, W1 | TURN, "echo", 1);
    result(&s, W1, "req-2", 0, NULL);
    save(dir, "submit_fail_duplicate", &s);

    s.len = 0; /* records put, read back, scanned */
    put(&s, C0 | TURN, "put-1", prompt, 3, 0);
    put(&s, C1 | TURN, "put-2", prompt, 2, 1);
    get(&s, C0, prompt, 3);
    scan(&s, C1, prompt, 0, 2);
    save(dir, "put_get_scan", &s);

    s.len = 0; /* status, heartbeats and a worker leaving */
    status(&s, C0);
    ready(&s, W0 | TURN, "annotate", 4);
    heartbeat(&s, W0 | TURN);
    disconnect(&s, W0);
    status(&s, C1);
    save(dir, "status_heartbeat_disconnect", &s);

    s.len = 0; /* a result from a worker that never said Ready and holds no lease */
    submit(&s, C0 | TURN, "req-3", "nobody-serves-this");
    result(&s, W1, "req-3", 1, "forged");
    save(dir, "result_without_ready", &s);

    s.len = 0; /* a second frame after the envelope */
    status(&s, C0 | MORE);
    frame(&s, C0, "extra", 5);
    save(dir, "two_frames", &s);

    s.len = 0; /* another protocol version; an envelope with no body; not protobuf at all */
    {
        Oaif__V1__Envelope e = OAIF__V1__ENVELOPE__INIT;
        uint8_t buf[64];
        e.version = 99;
        e.body_case = OAIF__V1__ENVELOPE__BODY_HEARTBEAT;
        Oaif__V1__Heartbeat h = OAIF__V1__HEARTBEAT__INIT;
        e.heartbeat = &h;
        frame(&s, W0, buf, oaif__v1__envelope__pack(&e, buf));
        e.version = BUS_PROTOCOL_VERSION;
        e.body_case = OAIF__V1__ENVELOPE__BODY__NOT_SET;
        frame(&s, C0, buf, oaif__v1__envelope__pack(&e, buf));
        frame(&s, C1, "\xff\xff\xff", 3);
        frame(&s, W1, "", 0);
    }
    save(dir, "malformed", &s);
    return 0;
}
