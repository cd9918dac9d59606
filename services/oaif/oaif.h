/* oaif.h - the command-line client's verbs. Each takes the arguments after its verb and
 * returns the process exit status: 0 done, 1 failed (the reason printed on stderr), 2 bad
 * usage. Connection options shared by the verbs that talk to the ledger:
 *   --ledger EP        the ledger's client endpoint (env OAIF_LEDGER; tcp://127.0.0.1:5555)
 *   --curve-secret F   this client's key pair (env OAIF_CURVE_SECRET); with --server-key F
 *   --server-key F     the ledger's public key file (env OAIF_SERVER_KEY)
 *   --timeout-ms N     how long to wait for the ledger (default 5000) */
#ifndef OAIF_H
#define OAIF_H

#include <stdio.h>

int oaif_cmd_status(int argc, char **argv);
int oaif_cmd_import(int argc, char **argv);
int oaif_cmd_export(int argc, char **argv);
int oaif_cmd_keys(int argc, char **argv);
int oaif_cmd_task(int argc, char **argv);
int oaif_cmd_annotate(int argc, char **argv);
int oaif_cmd_audit(int argc, char **argv);
int oaif_cmd_up(int argc, char **argv);
int oaif_cmd_run(int argc, char **argv);

/* Validate a prompts JSONL file into packed Prompt records without sending anything.
 * Lines: {"prompt": "...", "id"?, "reference"?|"answer"?, "family"?, "split"?,
 * "instruction"?, "meta"?: {...}}; blank lines are skipped. On the first bad line writes
 * "FILE:LINE: reason" to `err` and returns ERR_INVAL; nothing is returned then.
 * On ERR_OK *recs is an array of *n records the caller frees with oaif_records_free. */
struct oaif_rec {
    char *id;
    unsigned char *data;
    size_t len;
};
int oaif_read_prompts(const char *path, struct oaif_rec **recs, size_t *n, char *err,
                      size_t errlen);
void oaif_records_free(struct oaif_rec *recs, size_t n);

#endif /* OAIF_H */
