/* The journal's record file format (journal.h): one JSON object, a newline, and a CRC-32C
 * trailer line. Pure functions; jansson stays inside this file. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"

static const char * const jstate_names[] = { "created", "uploading", "input_complete", "succeeded", "failed", "cancelled" };
static const char * const jupload_names[] = { "none", "put", "tus" };

const char * srv_jstate_name(enum srv_jstate s) {
    return (unsigned)s < sizeof(jstate_names) / sizeof(jstate_names[0]) ? jstate_names[s] : "unknown";
}

void srv_jrec_clear(struct srv_jrec * r) {
    free(r->spec_json);
    memset(r, 0, sizeof(*r));
}

/* ---- CRC-32C (reflected polynomial 0x82F63B78), one table built on first use ----------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t srv_crc32c(uint32_t crc, const void * data, size_t len) {
    pthread_once(&crc_once, crc_init); /* the loop and encode threads both write records */
    const unsigned char * p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- format ---------------------------------------------------------------------------------- */

static double finite_or_0(double x) { return isfinite(x) ? x : 0.0; }

char * srv_jrec_format(const struct srv_jrec * r, size_t * len) {
    const struct pl_job_status * st = &r->st;
    json_t * s = json_pack("{s:b,s:i,s:i,s:i,s:i,s:f,s:I,s:I,s:I,s:f,s:f,s:f,s:s,s:s}",
                           "probed", st->probed, "width", st->width, "height", st->height, "out_width", st->out_width,
                           "out_height", st->out_height, "in_fps", finite_or_0(st->in_fps),
                           "frames_in", (json_int_t)st->frames_in, "frames_out", (json_int_t)st->frames_out,
                           "chunks", (json_int_t)st->chunks, "started", finite_or_0(st->started_at),
                           "first_output", finite_or_0(st->first_output_at), "finished", finite_or_0(st->finished_at),
                           "error_code", pl_error_code_name(st->error_code), "error", st->error);
    json_t * o = s ? json_pack("{s:i,s:s,s:s,s:s,s:f,s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:s,s:I,s:o}",
                               "v", SRV_JOURNAL_VERSION, "id", r->id, "tenant", r->tenant, "idempotency_key", r->idem_key,
                               "created", finite_or_0(r->created_unix), "spec", r->spec_json ? r->spec_json : "{}",
                               "upload", jupload_names[r->upload], "upload_length", (json_int_t)r->tus_length,
                               "expected_bytes", (json_int_t)r->expected_bytes, "state", srv_jstate_name(r->state),
                               "input_bytes", (json_int_t)r->input_bytes, "input_synced", (json_int_t)r->input_synced,
                               "boot_id", r->boot_id, "output_bytes", (json_int_t)r->output_bytes, "status", s)
                   : NULL;
    char * body = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body) return NULL;
    size_t n = strlen(body);
    char * out = malloc(n + 32);
    if (out) {
        memcpy(out, body, n);
        out[n++] = '\n';
        n += (size_t)snprintf(out + n, 32, "crc32c=%08x\n", srv_crc32c(0, out, n));
        *len = n;
    }
    free(body);
    return out;
}

/* ---- parse ----------------------------------------------------------------------------------- */

static bool fail(char * err, size_t len, const char * msg) {
    snprintf(err, len, "%s", msg);
    return false;
}

static int name_index(const char * v, const char * const * names, int n) {
    for (int i = 0; v && i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

static bool copy_str(json_t * o, const char * key, char * dst, size_t cap, bool allow_empty) {
    const char * v = json_string_value(json_object_get(o, key));
    if (!v || strlen(v) >= cap || (!allow_empty && !v[0])) return false;
    snprintf(dst, cap, "%s", v);
    return true;
}

static bool get_i64(json_t * o, const char * key, int64_t lo, int64_t * out) {
    json_t * v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo) return false;
    *out = json_integer_value(v);
    return true;
}

static double get_real(json_t * o, const char * key) {
    json_t * v = json_object_get(o, key);
    double x = json_is_number(v) ? json_number_value(v) : 0;
    return isfinite(x) && x > 0 ? x : 0;
}

static bool parse_status(json_t * s, struct pl_job_status * st) {
    if (!json_is_object(s)) return false;
    int64_t w = 0, h = 0, ow = 0, oh = 0;
    bool ok = get_i64(s, "width", 0, &w) && get_i64(s, "height", 0, &h) && get_i64(s, "out_width", 0, &ow) &&
              get_i64(s, "out_height", 0, &oh) && get_i64(s, "frames_in", 0, &st->frames_in) &&
              get_i64(s, "frames_out", 0, &st->frames_out) && get_i64(s, "chunks", 0, &st->chunks) &&
              w <= 65536 && h <= 65536 && ow <= 1 << 20 && oh <= 1 << 20;
    if (!ok) return false;
    st->probed = json_is_true(json_object_get(s, "probed"));
    st->width = (int)w;
    st->height = (int)h;
    st->out_width = (int)ow;
    st->out_height = (int)oh;
    st->in_fps = get_real(s, "in_fps");
    st->started_at = get_real(s, "started");
    st->first_output_at = get_real(s, "first_output");
    st->finished_at = get_real(s, "finished");
    const char * code = json_string_value(json_object_get(s, "error_code"));
    st->error_code = PL_ERROR_NONE;
    for (int c = PL_ERROR_NONE; code && c <= PL_ERROR_LAST; c++)
        if (strcmp(code, pl_error_code_name((enum pl_error_code)c)) == 0) st->error_code = (enum pl_error_code)c;
    const char * msg = json_string_value(json_object_get(s, "error"));
    snprintf(st->error, sizeof(st->error), "%s", msg ? msg : "");
    return true;
}

bool srv_jrec_parse(const char * text, size_t len, struct srv_jrec * out, char * err, size_t err_len) {
    memset(out, 0, sizeof(*out));
    /* trailer: the last line, "crc32c=" + 8 hex digits, over every byte before it */
    static const size_t trailer = sizeof("crc32c=00000000\n") - 1;
    if (len < trailer + 3 || text[len - 1] != '\n' || text[len - trailer - 1] != '\n' ||
        strncmp(text + len - trailer, "crc32c=", 7) != 0)
        return fail(err, err_len, "no crc32c trailer (truncated or not a record)");
    char hex[9];
    memcpy(hex, text + len - trailer + 7, 8);
    hex[8] = 0;
    char * end = NULL;
    unsigned long want = strtoul(hex, &end, 16);
    if (*end || strspn(hex, "0123456789abcdef") != 8) return fail(err, err_len, "malformed crc32c trailer");
    if (srv_crc32c(0, text, len - trailer) != (uint32_t)want) return fail(err, err_len, "crc32c mismatch (damaged record)");

    json_error_t je;
    json_t * o = json_loadb(text, len - trailer, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return fail(err, err_len, "not a JSON object");
    }
    bool ok = false;
    int64_t v = 0;
    int st_i = name_index(json_string_value(json_object_get(o, "state")), jstate_names, 6);
    int up_i = name_index(json_string_value(json_object_get(o, "upload")), jupload_names, 3);
    const char * spec = json_string_value(json_object_get(o, "spec"));
    if (!get_i64(o, "v", 0, &v) || v != SRV_JOURNAL_VERSION) fail(err, err_len, "unknown record version");
    else if (!copy_str(o, "id", out->id, sizeof(out->id), false) || !srv_job_id_parse(out->id, NULL, 0))
        fail(err, err_len, "bad id");
    else if (!copy_str(o, "tenant", out->tenant, sizeof(out->tenant), true) ||
             (out->tenant[0] && !srv_tenant_name_valid(out->tenant)))
        fail(err, err_len, "bad tenant");
    else if (!copy_str(o, "idempotency_key", out->idem_key, sizeof(out->idem_key), true)) fail(err, err_len, "bad key");
    else if (!copy_str(o, "boot_id", out->boot_id, sizeof(out->boot_id), true)) fail(err, err_len, "bad boot_id");
    else if (st_i < 0 || up_i < 0) fail(err, err_len, "bad state or upload");
    else if (!spec || !(out->spec_json = strdup(spec))) fail(err, err_len, "bad spec");
    else if (!get_i64(o, "upload_length", -1, &out->tus_length) || !get_i64(o, "expected_bytes", 0, &out->expected_bytes) ||
             !get_i64(o, "input_bytes", 0, &out->input_bytes) || !get_i64(o, "input_synced", 0, &out->input_synced) ||
             !get_i64(o, "output_bytes", 0, &out->output_bytes))
        fail(err, err_len, "bad size field");
    else if (!parse_status(json_object_get(o, "status"), &out->st)) fail(err, err_len, "bad status");
    else ok = true;
    if (ok) {
        out->state = (enum srv_jstate)st_i;
        out->upload = (enum srv_jupload)up_i;
        out->created_unix = get_real(o, "created");
        out->st.input_bytes = out->input_bytes;
        out->st.output_bytes = out->output_bytes;
    }
    json_decref(o);
    if (!ok) srv_jrec_clear(out);
    return ok;
}
