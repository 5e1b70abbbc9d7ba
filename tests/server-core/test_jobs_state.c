/* Unit tests of the pure parts of restart safety and tenants (issue 15): the tokens-file
 * line format, the journal record format (round trip, CRC, damage), the recovery decision
 * table, and the journal store's ordering rules on a real directory. The daemon-level
 * behaviour is tested in tests/server (test_restart.py, test_tenants.py, test_killnine.py). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "journal.h"
#include "srv.h"

/* ---- tokens file lines -------------------------------------------------------------------- */

static int parse(const char * line, struct srv_token * t, char * err) {
    return srv_token_line_parse(line, strlen(line), t, err, 200);
}

static void test_token_lines(void) {
    struct srv_token t;
    char err[200];
    CHECK_EQ_INT(parse("", &t, err), 0);
    CHECK_EQ_INT(parse("   \t\r\n", &t, err), 0);
    CHECK_EQ_INT(parse("# a comment acme admin", &t, err), 0);
    CHECK_EQ_INT(parse("  #indented comment", &t, err), 0);

    /* the old format: a bare token is a tenant of its own, named after a hash of it */
    CHECK_EQ_INT(parse("s3cret-token\n", &t, err), 1);
    CHECK(strcmp(t.secret, "s3cret-token") == 0 && t.len == 12 && !t.admin);
    CHECK_MSG(strncmp(t.tenant, "token-", 6) == 0 && strlen(t.tenant) == 22, "%s", t.tenant);
    CHECK(strstr(t.tenant, "s3cret") == NULL);
    char again[SRV_TENANT_MAX];
    srv_tenant_of_bare_token("s3cret-token", 12, again);
    CHECK(strcmp(again, t.tenant) == 0); /* stable: the journal stores it */
    srv_tenant_of_bare_token("s3cret-tokem", 12, again);
    CHECK(strcmp(again, t.tenant) != 0);
    free(t.secret);

    CHECK_EQ_INT(parse("  tokA   acme  \r\n", &t, err), 1);
    CHECK(strcmp(t.secret, "tokA") == 0 && strcmp(t.tenant, "acme") == 0 && !t.admin);
    free(t.secret);
    CHECK_EQ_INT(parse("tokB\tops.team-1\tadmin", &t, err), 1);
    CHECK(strcmp(t.secret, "tokB") == 0 && strcmp(t.tenant, "ops.team-1") == 0 && t.admin);
    free(t.secret);

    CHECK_EQ_INT(parse("tok acme root", &t, err), -1);
    CHECK_STR_CONTAINS(err, "admin");
    CHECK_EQ_INT(parse("tok acme admin extra", &t, err), -1);
    CHECK_EQ_INT(parse("tok ac/me", &t, err), -1);
    CHECK_STR_CONTAINS(err, "tenant");
    char longname[200] = "tok ";
    memset(longname + 4, 'a', 65); /* a 65-character tenant name: one too many */
    CHECK_EQ_INT(parse(longname, &t, err), -1);

    CHECK(srv_tenant_name_valid("a"));
    CHECK(srv_tenant_name_valid("A_b.c-9"));
    CHECK(!srv_tenant_name_valid(""));
    CHECK(!srv_tenant_name_valid("a b"));
    CHECK(!srv_tenant_name_valid("caf\xc3\xa9"));
}

/* ---- records -------------------------------------------------------------------------------- */

static void sample(struct srv_jrec * r) {
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "local.AAAAAAAAAAAAAAAAAAAAAA");
    snprintf(r->tenant, sizeof(r->tenant), "acme");
    snprintf(r->idem_key, sizeof(r->idem_key), "key-1");
    r->spec_json = strdup("{\"model\":\"null\",\"output\":{\"container\":\"y4m\"},\"note\":\"a \\\"quote\\\" and \\n\"}");
    r->created_unix = 1796625484.25;
    r->upload = SRV_JU_TUS;
    r->tus_length = 123456;
    r->expected_bytes = 7;
    r->state = SRV_J_SUCCEEDED;
    r->input_bytes = 123456;
    r->input_synced = 100000;
    snprintf(r->boot_id, sizeof(r->boot_id), "a25b1bbf-b5c3-4688-b6d3-5aaa65b84137");
    r->output_bytes = 885081;
    r->st.probed = true;
    r->st.width = 32;
    r->st.height = 24;
    r->st.out_width = 128;
    r->st.out_height = 96;
    r->st.in_fps = 24;
    r->st.frames_in = 48;
    r->st.frames_out = 48;
    r->st.chunks = 10;
    r->st.started_at = 1796625485.5;
    r->st.first_output_at = 1796625485.75;
    r->st.finished_at = 1796625486.0;
    r->st.error_code = PL_ERROR_INTERRUPTED;
    snprintf(r->st.error, sizeof(r->st.error), "line\nbreak \"and\" quote");
}

static void test_record_round_trip(void) {
    struct srv_jrec a, b;
    sample(&a);
    size_t len = 0;
    char * text = srv_jrec_format(&a, &len);
    CHECK(text && len == strlen(text));
    char err[200] = "";
    CHECK_MSG(srv_jrec_parse(text, len, &b, err, sizeof(err)), "%s", err);
    CHECK(strcmp(a.id, b.id) == 0 && strcmp(a.tenant, b.tenant) == 0 && strcmp(a.idem_key, b.idem_key) == 0);
    CHECK(strcmp(a.spec_json, b.spec_json) == 0); /* byte for byte: idempotent re-creation compares it */
    CHECK(a.created_unix == b.created_unix && a.upload == b.upload && a.tus_length == b.tus_length);
    CHECK(a.expected_bytes == b.expected_bytes && a.state == b.state && a.input_bytes == b.input_bytes);
    CHECK(a.input_synced == b.input_synced && strcmp(a.boot_id, b.boot_id) == 0 && a.output_bytes == b.output_bytes);
    CHECK(b.st.probed && b.st.width == 32 && b.st.height == 24 && b.st.out_width == 128 && b.st.out_height == 96);
    CHECK(b.st.in_fps == 24 && b.st.frames_in == 48 && b.st.frames_out == 48 && b.st.chunks == 10);
    CHECK(b.st.started_at == a.st.started_at && b.st.first_output_at == a.st.first_output_at &&
          b.st.finished_at == a.st.finished_at);
    CHECK(b.st.error_code == PL_ERROR_INTERRUPTED && strcmp(b.st.error, a.st.error) == 0);
    srv_jrec_clear(&b);

    /* every state and upload kind survives */
    for (int s = SRV_J_CREATED; s <= SRV_J_CANCELLED; s++) {
        a.state = (enum srv_jstate)s;
        a.upload = (enum srv_jupload)(s % 3);
        char * t2 = srv_jrec_format(&a, &len);
        CHECK(t2 && srv_jrec_parse(t2, len, &b, err, sizeof(err)) && b.state == a.state && b.upload == a.upload);
        srv_jrec_clear(&b);
        free(t2);
    }

    /* every error code survives (a failed job comes back with its code after a restart) */
    for (int c = PL_ERROR_NONE; c <= PL_ERROR_LAST; c++) {
        a.st.error_code = (enum pl_error_code)c;
        char * t2 = srv_jrec_format(&a, &len);
        CHECK_MSG(t2 && srv_jrec_parse(t2, len, &b, err, sizeof(err)) && b.st.error_code == a.st.error_code,
                  "error code %s", pl_error_code_name((enum pl_error_code)c));
        srv_jrec_clear(&b);
        free(t2);
    }
    a.st.error_code = PL_ERROR_INTERRUPTED;
    free(text);
    text = srv_jrec_format(&a, &len);

    /* damage: every single-byte change and every truncation is caught */
    int missed = 0;
    for (size_t i = 0; i < len; i++) {
        char * d = malloc(len);
        memcpy(d, text, len);
        d[i] ^= 0x20;
        if (srv_jrec_parse(d, len, &b, err, sizeof(err))) {
            missed++;
            srv_jrec_clear(&b);
        }
        free(d);
    }
    CHECK_EQ_INT(missed, 0);
    for (size_t n = 0; n < len; n++) {
        if (srv_jrec_parse(text, n, &b, err, sizeof(err))) {
            missed++;
            srv_jrec_clear(&b);
        }
    }
    CHECK_EQ_INT(missed, 0);
    CHECK(!srv_jrec_parse("", 0, &b, err, sizeof(err)));
    CHECK(!srv_jrec_parse("{}\ncrc32c=00000000\n", 18, &b, err, sizeof(err)));
    free(text);
    srv_jrec_clear(&a);
    /* CRC-32C check value (RFC 3720 B.4: 32 bytes of zeros) */
    unsigned char zeros[32] = { 0 };
    CHECK_EQ_INT(srv_crc32c(0, zeros, 32), 0x8A9136AA);
    CHECK_EQ_INT(srv_crc32c(0, "123456789", 9), 0xE3069283);
}

/* ---- recovery decisions --------------------------------------------------------------------- */

static struct srv_recover_plan plan(enum srv_jstate st, enum srv_jupload up, int64_t in_bytes, int64_t synced,
                                    int64_t tus_len, struct srv_spool_facts f) {
    struct srv_jrec r;
    memset(&r, 0, sizeof(r));
    r.state = st;
    r.upload = up;
    r.input_bytes = in_bytes;
    r.input_synced = synced;
    r.tus_length = tus_len;
    r.output_bytes = 5000;
    r.created_unix = 1000;
    r.st.finished_at = st >= SRV_J_SUCCEEDED ? 1100 : 0;
    return srv_recover_plan(&r, &f);
}

static struct srv_spool_facts facts(bool has_in, int64_t in_size, bool has_out, int64_t out_size, bool same_boot) {
    struct srv_spool_facts f = { 0 };
    f.has_in = has_in;
    f.in_size = in_size;
    f.has_out = has_out;
    f.out_size = out_size;
    f.same_boot = same_boot;
    f.now_unix = 1200;
    f.job_ttl_s = 3600;
    f.input_wait_timeout_s = 300;
    return f;
}

static void test_recover_plan(void) {
    struct srv_recover_plan p;
    /* succeeded: only an output of exactly the committed size is served */
    p = plan(SRV_J_SUCCEEDED, SRV_JU_PUT, 10, 10, -1, facts(false, 0, true, 5000, true));
    CHECK(p.action == SRV_RECOVER_TERMINAL && p.keep_out);
    p = plan(SRV_J_SUCCEEDED, SRV_JU_PUT, 10, 10, -1, facts(false, 0, true, 4999, true));
    CHECK(p.action == SRV_RECOVER_INTERRUPTED && !p.keep_out);
    p = plan(SRV_J_SUCCEEDED, SRV_JU_PUT, 10, 10, -1, facts(false, 0, false, 0, true));
    CHECK(p.action == SRV_RECOVER_INTERRUPTED);
    struct srv_spool_facts late = facts(false, 0, true, 5000, true);
    late.now_unix = 1100 + 3600;
    CHECK(plan(SRV_J_SUCCEEDED, SRV_JU_PUT, 10, 10, -1, late).action == SRV_RECOVER_DROP);
    CHECK(plan(SRV_J_FAILED, SRV_JU_PUT, 10, 10, -1, late).action == SRV_RECOVER_DROP);
    CHECK(plan(SRV_J_FAILED, SRV_JU_PUT, 10, 10, -1, facts(true, 10, false, 0, true)).action == SRV_RECOVER_TERMINAL);
    CHECK(plan(SRV_J_CANCELLED, SRV_JU_NONE, 0, 0, -1, facts(false, 0, false, 0, true)).action == SRV_RECOVER_TERMINAL);

    /* input complete: re-run when every byte is there (file size in the same boot, the
     * fdatasync'ed count after a reboot) */
    p = plan(SRV_J_INPUT_COMPLETE, SRV_JU_PUT, 800, 0, -1, facts(true, 800, true, 77, true));
    CHECK(p.action == SRV_RECOVER_RERUN && p.input_bytes == 800 && !p.keep_out);
    p = plan(SRV_J_INPUT_COMPLETE, SRV_JU_PUT, 800, 0, -1, facts(true, 800, false, 0, false));
    CHECK(p.action == SRV_RECOVER_INTERRUPTED);
    p = plan(SRV_J_INPUT_COMPLETE, SRV_JU_PUT, 800, 800, -1, facts(true, 800, false, 0, false));
    CHECK(p.action == SRV_RECOVER_RERUN && p.input_bytes == 800);
    p = plan(SRV_J_INPUT_COMPLETE, SRV_JU_PUT, 800, 800, -1, facts(true, 799, false, 0, true));
    CHECK(p.action == SRV_RECOVER_INTERRUPTED);
    p = plan(SRV_J_INPUT_COMPLETE, SRV_JU_PUT, 800, 800, -1, facts(false, 0, false, 0, true));
    CHECK(p.action == SRV_RECOVER_INTERRUPTED);
    /* ... a tus upload that lost bytes in a reboot resumes instead */
    p = plan(SRV_J_INPUT_COMPLETE, SRV_JU_TUS, 800, 500, 800, facts(true, 800, false, 0, false));
    CHECK(p.action == SRV_RECOVER_AWAIT && p.input_bytes == 500);

    /* tus uploading: resume from what is there */
    p = plan(SRV_J_UPLOADING, SRV_JU_TUS, 100, 100, 1000, facts(true, 640, false, 0, true));
    CHECK(p.action == SRV_RECOVER_AWAIT && p.input_bytes == 640);
    p = plan(SRV_J_UPLOADING, SRV_JU_TUS, 100, 100, 1000, facts(true, 640, false, 0, false));
    CHECK(p.action == SRV_RECOVER_AWAIT && p.input_bytes == 100);
    p = plan(SRV_J_UPLOADING, SRV_JU_TUS, 100, 100, 1000, facts(true, 1000, true, 5, true));
    CHECK(p.action == SRV_RECOVER_RERUN && p.input_bytes == 1000);
    p = plan(SRV_J_UPLOADING, SRV_JU_TUS, 100, 100, 1000, facts(true, 1500, false, 0, true));
    CHECK(p.action == SRV_RECOVER_RERUN && p.input_bytes == 1000); /* never beyond Upload-Length */
    p = plan(SRV_J_UPLOADING, SRV_JU_TUS, 0, 0, 1000, facts(false, 0, false, 0, true));
    CHECK(p.action == SRV_RECOVER_AWAIT && p.input_bytes == 0);

    /* created: no byte -> waits again; bytes -> a PUT was cut: interrupted */
    p = plan(SRV_J_CREATED, SRV_JU_NONE, 0, 0, -1, facts(true, 0, false, 0, true));
    CHECK(p.action == SRV_RECOVER_AWAIT && p.input_bytes == 0);
    p = plan(SRV_J_CREATED, SRV_JU_NONE, 0, 0, -1, facts(true, 4096, false, 0, true));
    CHECK(p.action == SRV_RECOVER_INTERRUPTED);
    struct srv_spool_facts waited = facts(true, 0, false, 0, true);
    waited.now_unix = 1000 + 300;
    CHECK(plan(SRV_J_CREATED, SRV_JU_NONE, 0, 0, -1, waited).action == SRV_RECOVER_DROP);
}

/* ---- the store on a real directory ------------------------------------------------------------- */

static char * slurp(const char * path, size_t * len) {
    FILE * f = fopen(path, "rb");
    if (!f) return NULL;
    char * buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void test_journal_store(void) {
    char dir[512], path[700];
    snprintf(dir, sizeof(dir), "%s/journal-store", TEST_WORK_DIR);
    mkdir(dir, 0700);
    struct srv_journal * jn = NULL;
    char err[200];
    CHECK(srv_journal_open(&jn, dir, err, sizeof(err)) == 0);
    if (!jn) return;
    struct srv_jrec r, back;
    sample(&r);
    r.state = SRV_J_CREATED;
    CHECK(srv_journal_put(jn, &r) == 0);
    snprintf(path, sizeof(path), "%s/%s.job", dir, r.id);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    size_t len = 0;
    char * text = slurp(path, &len);
    CHECK(text && srv_jrec_parse(text, len, &back, err, sizeof(err)) && back.state == SRV_J_CREATED);
    CHECK(strcmp(back.boot_id, srv_journal_boot_id(jn)) == 0); /* stamped with this boot */
    srv_jrec_clear(&back);
    free(text);

    /* commit: succeeded with the output size; then a stale non-terminal write is ignored */
    struct pl_job_status ps;
    memset(&ps, 0, sizeof(ps));
    ps.frames_out = 9;
    CHECK(srv_journal_commit_success(jn, r.id, 4242, &ps) == 0);
    r.state = SRV_J_INPUT_COMPLETE;
    CHECK(srv_journal_put(jn, &r) == 0);
    enum srv_jstate js;
    CHECK(srv_journal_state(jn, r.id, &js) && js == SRV_J_SUCCEEDED);
    text = slurp(path, &len);
    CHECK(text && srv_jrec_parse(text, len, &back, err, sizeof(err)) && back.state == SRV_J_SUCCEEDED &&
          back.output_bytes == 4242 && back.st.frames_out == 9);
    srv_jrec_clear(&back);
    free(text);
    /* ... but a different terminal state (the commit's job failed after all) replaces it */
    r.state = SRV_J_FAILED;
    CHECK(srv_journal_put(jn, &r) == 0);
    CHECK(srv_journal_state(jn, r.id, &js) && js == SRV_J_FAILED);

    /* remove: the file is gone, a commit for a removed job writes nothing */
    CHECK(srv_journal_remove(jn, r.id) == 0);
    CHECK(access(path, F_OK) != 0 && errno == ENOENT);
    CHECK(srv_journal_commit_success(jn, r.id, 1, &ps) == 0);
    CHECK(access(path, F_OK) != 0);
    CHECK(!srv_journal_state(jn, r.id, &js));
    CHECK(srv_journal_remove(jn, r.id) == 0); /* idempotent */
    snprintf(path, sizeof(path), "%s/%s.job.tmp", dir, r.id);
    CHECK(access(path, F_OK) != 0); /* no temporary left behind */

    /* input sync: the thread records the fdatasync'ed count */
    r.state = SRV_J_UPLOADING;
    r.input_synced = 0;
    CHECK(srv_journal_put(jn, &r) == 0);
    char in_path[700];
    snprintf(in_path, sizeof(in_path), "%s/%s.in", dir, r.id);
    int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "0123456789", 10) == 10);
    close(fd);
    srv_journal_sync_input(jn, r.id, in_path, 10);
    srv_journal_close(jn); /* runs the queued sync before it returns */
    snprintf(path, sizeof(path), "%s/%s.job", dir, r.id);
    text = slurp(path, &len);
    CHECK(text && srv_jrec_parse(text, len, &back, err, sizeof(err)) && back.input_synced == 10);
    srv_jrec_clear(&back);
    free(text);
    srv_jrec_clear(&r);
    unlink(path);
    unlink(in_path);
}

static const struct test_case tests[] = {
    TEST(test_token_lines),
    TEST(test_record_round_trip),
    TEST(test_recover_plan),
    TEST(test_journal_store),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
