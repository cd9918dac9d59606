/* test_storage_procs - the ledger's store under damage and a full disk, through the real
 * processes: a write-ahead log cut short or damaged in the middle makes the ledger refuse to
 * start (naming the store and README's recovery), a torn last record (a crash during a write)
 * is dropped, `ledger --repair` gets a refused store going again, a damaged table makes
 * `oaif export` fail instead of printing fewer records, and a full disk (a small tmpfs) makes
 * the ledger refuse writes with a clear error until space returns, without crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "testproc.h"
#include "tpmetrics.h"

struct fx {
    char dir[256], db[300], log[300], ep[64];
    pid_t ledger;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-storage-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/db", f->dir);
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    tp_watchdog(60, "storage", f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGKILL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "umount %s/db 2>/dev/null; rm -rf %s", f->dir, f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void start(struct fx *f)
{
    f->ledger = tp_ledger(f->dir, f->log, NULL, "clients", f->ep, sizeof f->ep);
    assert_true(f->ledger > 0);
}

/* Starts the ledger on the store expecting it to refuse: its exit status (within 10 s). */
static int start_refused(struct fx *f)
{
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    f->db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "",
                    NULL};
    pid_t p = tp_spawn(argv, f->log);
    assert_true(p > 0);
    char buf[128];
    for (int i = 0; i < 100 && !tp_state(p, buf, sizeof buf); i++)
        usleep(100 * 1000);
    if (!tp_state(p, buf, sizeof buf)) {
        tp_stop(p, SIGKILL);
        fail_msg("the ledger started on a damaged store");
    }
    int st = 0;
    assert_int_equal(waitpid(p, &st, 0), p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* `oaif WORDS... --clients EP`, stdout to dir/out, stderr to dir/err: the exit status. */
static int oaif(struct fx *f, const char *words)
{
    char cmd[1200];
    /* --timeout 60s: the 5 s default is short for a 3 MB import on a loaded CI machine, and a
     * timeout would read as the wrong error */
    snprintf(cmd, sizeof cmd, "%s %s --clients %s --timeout 60s >%s/out 2>%s/err",
             tp_bin("services/oaif/oaif"), words, f->ep, f->dir, f->dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    char line[8192];
    bool found = false;
    while (!found && fgets(line, sizeof line, fp))
        found = strstr(line, needle) != NULL;
    if (!found) { /* say what was there instead */
        rewind(fp);
        fprintf(stderr, "%s has no '%s'; it holds:\n", path, needle);
        while (fgets(line, sizeof line, fp))
            fputs(line, stderr);
    }
    fclose(fp);
    return found;
}

static long lines_of(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    long n = 0;
    int c;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

/* Writes `n` prompts (tag in each, `pad` bytes of text) to dir/NAME.jsonl. */
static void prompts_file(struct fx *f, const char *name, const char *tag, int n, int pad)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.jsonl", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < n; i++) {
        fprintf(fp, "{\"prompt\":\"%s %d ", tag, i);
        for (int k = 0; k < pad; k++)
            fputc('a' + (i * 7 + k * 13) % 26, fp);
        fputs("\"}\n", fp);
    }
    fclose(fp);
}

static int import(struct fx *f, const char *name)
{
    char words[400];
    snprintf(words, sizeof words, "import prompts %s/%s.jsonl", f->dir, name);
    return oaif(f, words);
}

/* The newest file of the store whose name ends in `ext` (".log", ".sst"): its path, or the
 * largest one when `largest`. */
static void store_file(struct fx *f, const char *ext, bool largest, char *out, size_t outlen)
{
    DIR *d = opendir(f->db);
    assert_non_null(d);
    struct dirent *e;
    char best[256] = "";
    off_t best_size = -1;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name), el = strlen(ext);
        if (n <= el || strcmp(e->d_name + n - el, ext) != 0)
            continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", f->db, e->d_name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        bool better = largest ? st.st_size > best_size : strcmp(e->d_name, best) > 0;
        if (better) {
            snprintf(best, sizeof best, "%s", e->d_name);
            best_size = st.st_size;
        }
    }
    closedir(d);
    assert_true(best[0] != 0);
    snprintf(out, outlen, "%s/%s", f->db, best);
}

static off_t size_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void overwrite(const char *path, off_t at, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char junk[64];
    memset(junk, 0xA5, sizeof junk);
    assert_int_equal(pwrite(fd, junk, n, at), (ssize_t)n);
    close(fd);
}

/* A log cut short at a record boundary replays "cleanly" into an older store: before, the
 * ledger started without a word and re-queued requests that had completed. It must refuse,
 * and `ledger --repair` must get it going again with what is left. */
static void test_wal_cut_short(void **state)
{
    struct fx *f = *state;
    prompts_file(f, "a", "first", 50, 100);
    prompts_file(f, "b", "second", 50, 100);
    start(f);
    assert_int_equal(import(f, "a"), 0);
    char wal[600];
    store_file(f, ".log", false, wal, sizeof wal);
    off_t after_a = size_of(wal);
    assert_int_equal(import(f, "b"), 0);
    tp_stop(f->ledger, SIGKILL);
    f->ledger = 0;
    assert_true(size_of(wal) > after_a);
    assert_int_equal(truncate(wal, after_a), 0); /* the second import's records are gone */
    assert_int_equal(start_refused(f), 1);
    assert_true(file_has(f->log, "was cut short or removed"));
    assert_true(file_has(f->log, f->db));

    /* the documented recovery: repair, accepting the loss */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "%s --repair --db %s 2>>%s", tp_bin("services/ledger/ledger"), f->db,
             f->log);
    assert_int_equal(system(cmd), 0);
    start(f);
    assert_int_equal(oaif(f, "export prompts"), 0);
    char out[400];
    snprintf(out, sizeof out, "%s/out", f->dir);
    assert_int_equal(lines_of(out), 50); /* the first import, and nothing of the second */
}

/* A crash during a write leaves a torn last record, whose fsync never returned (so it was
 * never acknowledged and the commit watermark was not advanced): dropped, the ledger starts. */
static void test_wal_torn_tail(void **state)
{
    struct fx *f = *state;
    prompts_file(f, "a", "first", 50, 100);
    prompts_file(f, "b", "second", 50, 100);
    start(f);
    assert_int_equal(import(f, "a"), 0);
    char wal[600], wm[400], saved[64] = {0};
    store_file(f, ".log", false, wal, sizeof wal);
    off_t after_a = size_of(wal);
    snprintf(wm, sizeof wm, "%s/OAIF-COMMITTED", f->db);
    int fd = open(wm, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, saved, sizeof saved - 1) > 0);
    close(fd);
    assert_int_equal(import(f, "b"), 0);
    tp_stop(f->ledger, SIGKILL);
    f->ledger = 0;
    off_t after_b = size_of(wal);
    assert_true(after_b > after_a + 64);
    /* as if the ledger died half-way through writing the second import's commit */
    assert_int_equal(truncate(wal, after_a + (after_b - after_a) / 2), 0);
    fd = open(wm, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, saved, strlen(saved)), (ssize_t)strlen(saved));
    close(fd);
    start(f);
    assert_int_equal(oaif(f, "export prompts"), 0);
    char out[400];
    snprintf(out, sizeof out, "%s/out", f->dir);
    assert_int_equal(lines_of(out), 50);
}

/* Damage before the end of the log is not a crash: refused, named. */
static void test_wal_damaged_middle(void **state)
{
    struct fx *f = *state;
    prompts_file(f, "a", "first", 50, 100);
    prompts_file(f, "b", "second", 50, 100);
    start(f);
    assert_int_equal(import(f, "a"), 0);
    assert_int_equal(import(f, "b"), 0);
    tp_stop(f->ledger, SIGKILL);
    f->ledger = 0;
    char wal[600];
    store_file(f, ".log", false, wal, sizeof wal);
    overwrite(wal, size_of(wal) / 4, 16);
    assert_int_equal(start_refused(f), 1);
    assert_true(file_has(f->log, "the store is damaged, refusing to start"));
    assert_true(file_has(f->log, "Corruption"));
}

/* A damaged table: reads that reach it are errors, never absences. Before, `oaif export`
 * printed fewer records and exited 0. */
static void test_table_damaged(void **state)
{
    struct fx *f = *state;
    prompts_file(f, "a", "first", 400, 400);
    start(f);
    assert_int_equal(import(f, "a"), 0);
    /* the log is replayed into tables when the ledger starts again */
    tp_stop(f->ledger, SIGTERM);
    start(f);
    tp_stop(f->ledger, SIGTERM);
    f->ledger = 0;
    char sst[600];
    store_file(f, ".sst", true, sst, sizeof sst);
    overwrite(sst, size_of(sst) / 3, 32);
    start(f);
    assert_int_not_equal(oaif(f, "export prompts"), 0);
    char err[400];
    snprintf(err, sizeof err, "%s/err", f->dir);
    assert_true(file_has(err, "data corrupted"));
}

/* Fills the file system of dir/db with dir/db/filler until `leave` bytes are free. */
static void fill(struct fx *f, unsigned long long leave)
{
    struct statvfs sv;
    assert_int_equal(statvfs(f->db, &sv), 0);
    unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
    assert_true(avail > leave);
    char path[400];
    snprintf(path, sizeof path, "%s/filler", f->db);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    static char block[1 << 16];
    for (unsigned long long n = avail - leave; n > 0;) {
        size_t k = n < sizeof block ? (size_t)n : sizeof block;
        assert_int_equal(fwrite(block, 1, k, fp), k);
        n -= k;
    }
    assert_int_equal(fclose(fp), 0);
}

/* The store on a 48 MiB tmpfs: before, the ledger died of SIGABRT (a RocksDB assertion) when
 * the disk filled. Now a write that would go below ledger.min_free_space is refused with a
 * clear error, /healthz says why, the ledger lives, and when space returns writes are taken
 * again; nothing acknowledged is lost. Needs mount(2) (root with CAP_SYS_ADMIN): skipped
 * without it. */
static void test_disk_full(void **state)
{
    struct fx *f = *state;
    assert_int_equal(mkdir(f->db, 0755), 0);
    if (mount("tmpfs", f->db, "tmpfs", 0, "size=48m") != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): skipped\n", strerror(errno));
        skip();
    }
    prompts_file(f, "a", "first", 20, 1000);
    prompts_file(f, "b", "second", 30, 100000); /* 3 MB */
    char mport[16];
    f->ledger = tp_ledger(f->dir, f->log,
                          (const char *[]){"--min-free-space", "8MiB", "--metrics-port", "0", NULL},
                          "clients", f->ep, sizeof f->ep);
    assert_true(f->ledger > 0);
    char epf[400];
    snprintf(epf, sizeof epf, "%s/endpoints", f->dir);
    assert_true(tp_read_kv(epf, "metrics_port", mport, sizeof mport, 5000));
    int port = atoi(mport);
    assert_int_equal(import(f, "a"), 0);

    /* 9 MiB free: not room for 3 MB twice above 8 MiB, and /healthz stays unhealthy until
     * a quarter of min_free_space is spare (10 MiB free) */
    fill(f, 9u << 20);
    assert_int_not_equal(import(f, "b"), 0);
    char err[400], out[400];
    snprintf(err, sizeof err, "%s/err", f->dir);
    snprintf(out, sizeof out, "%s/out", f->dir);
    assert_true(file_has(err, "disk is full"));
    char st[128];
    assert_null(tp_state(f->ledger, st, sizeof st));
    buf_t body;
    buf_init(&body, 1 << 16);
    assert_int_equal(tp_http_get(port, "/healthz", &body), 503);
    assert_non_null(strstr(body.data, "full"));
    buf_reset(&body);
    /* alive all the same: a liveness probe must not restart it, which frees no disk */
    assert_int_equal(tp_http_get(port, "/livez", &body), 200);
    buf_reset(&body);
    /* reads still work, and what was acknowledged is there */
    assert_int_equal(oaif(f, "export prompts"), 0);
    assert_int_equal(lines_of(out), 20);

    char filler[400];
    snprintf(filler, sizeof filler, "%s/filler", f->db);
    assert_int_equal(unlink(filler), 0);
    int rc = 1;
    for (int i = 0; i < 50 && rc != 0; i++) { /* the ledger looks every 100 ms */
        rc = import(f, "b");
        if (rc)
            usleep(100 * 1000);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(tp_http_get(port, "/healthz", &body), 200);
    buf_free(&body);
    assert_int_equal(oaif(f, "export prompts"), 0);
    assert_int_equal(lines_of(out), 50);
    assert_null(tp_state(f->ledger, st, sizeof st));
    assert_true(file_has(f->log, "space is back"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wal_cut_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_damaged_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
