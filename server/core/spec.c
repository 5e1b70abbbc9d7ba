/* Strict parsing of the JobSpec request body (proto/openapi.yaml #/components/schemas/JobSpec)
 * into native structs. jansson objects never leave this file.
 *
 * Rules: the body must be one JSON object without duplicate keys; an unknown key anywhere
 * is 400 unknown_field naming its path ("output.bitrate"); a wrong type or an out-of-range
 * value is 400 bad_request naming the field; input.expected_bytes above max_upload_bytes
 * is 413. Defaults are applied here, and the full spec is re-serialised canonically (sorted
 * keys, every default present) so that idempotent re-creations can be compared byte for
 * byte. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "srv.h"

struct parse_ctx {
    struct srv_spec_result * out;
    bool failed;
};

static bool fail(struct parse_ctx * c, enum srv_error e, const char * fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(struct parse_ctx * c, enum srv_error e, const char * fmt, ...) {
    if (c->failed) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->out->msg, sizeof(c->out->msg), fmt, ap);
    va_end(ap);
    c->out->err = e;
    c->failed = true;
    return false;
}

/* Every key of `obj` must be in `allowed` (NULL-terminated). */
static bool check_keys(struct parse_ctx * c, json_t * obj, const char * prefix, const char * const * allowed) {
    const char * key;
    json_t * v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char * const * a = allowed; *a; a++)
            if (strcmp(*a, key) == 0) ok = true;
        if (!ok) return fail(c, SRV_E_UNKNOWN_FIELD, "unknown field '%s%s'", prefix, key);
    }
    return true;
}

static bool get_int(struct parse_ctx * c, json_t * obj, const char * key, const char * path, int64_t lo, int64_t hi,
                    int64_t * out) {
    json_t * v = json_object_get(obj, key);
    if (!v) return true;
    if (!json_is_integer(v))
        return fail(c, SRV_E_BAD_REQUEST, "%s: expected an integer in [%lld, %lld]", path, (long long)lo, (long long)hi);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail(c, SRV_E_BAD_REQUEST, "%s: %lld is outside [%lld, %lld]", path, (long long)x, (long long)lo,
                    (long long)hi);
    *out = x;
    return true;
}

static bool get_pos_number(struct parse_ctx * c, json_t * obj, const char * key, const char * path, double * out) {
    json_t * v = json_object_get(obj, key);
    if (!v) return true;
    if (!json_is_number(v)) return fail(c, SRV_E_BAD_REQUEST, "%s: expected a number > 0", path);
    double x = json_number_value(v);
    if (!(x > 0) || !isfinite(x) || x > 1e6) return fail(c, SRV_E_BAD_REQUEST, "%s: expected a number in (0, 1e6]", path);
    *out = x;
    return true;
}

static bool get_bool(struct parse_ctx * c, json_t * obj, const char * key, const char * path, bool * out) {
    json_t * v = json_object_get(obj, key);
    if (!v) return true;
    if (!json_is_boolean(v)) return fail(c, SRV_E_BAD_REQUEST, "%s: expected true or false", path);
    *out = json_is_true(v);
    return true;
}

/* A string from a fixed set; returns its index in *out. */
static bool get_enum(struct parse_ctx * c, json_t * obj, const char * key, const char * path,
                     const char * const * names, int * out) {
    json_t * v = json_object_get(obj, key);
    if (!v) return true;
    char list[160] = "";
    for (const char * const * n = names; *n; n++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", n == names ? "" : ", ", *n);
    if (!json_is_string(v)) return fail(c, SRV_E_BAD_REQUEST, "%s: expected one of %s", path, list);
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], json_string_value(v)) == 0) {
            *out = i;
            return true;
        }
    return fail(c, SRV_E_BAD_REQUEST, "%s: '%.40s' is not one of %s", path, json_string_value(v), list);
}

static bool get_object(struct parse_ctx * c, json_t * root, const char * key, json_t ** out) {
    json_t * v = json_object_get(root, key);
    *out = NULL;
    if (!v) return true;
    if (!json_is_object(v)) return fail(c, SRV_E_BAD_REQUEST, "%s: expected an object", key);
    *out = v;
    return true;
}

static const char * const container_names[] = { "matroska", "mpegts", "mp4", "y4m", NULL };
static const char * const codec_names[] = { "h264", "ffv1", "rawvideo", NULL };
static const char * const pix_names[] = { "auto", "yuv420p", "yuv444p", NULL };

static bool parse_input(struct parse_ctx * c, json_t * in, struct srv_spec_result * o, int64_t max_upload) {
    static const char * const keys[] = { "format", "expected_bytes", "max_frames", NULL };
    if (!in) return true;
    if (!check_keys(c, in, "input.", keys)) return false;
    json_t * f = json_object_get(in, "format");
    if (f) {
        if (!json_is_string(f)) return fail(c, SRV_E_BAD_REQUEST, "input.format: expected a demuxer name");
        const char * s = json_string_value(f);
        size_t n = strlen(s);
        if (n < 1 || n >= sizeof(o->spec.input_format))
            return fail(c, SRV_E_BAD_REQUEST, "input.format: expected 1-%zu characters", sizeof(o->spec.input_format) - 1);
        for (size_t i = 0; i < n; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == ','))
                return fail(c, SRV_E_BAD_REQUEST, "input.format: expected [a-z0-9_,] (an FFmpeg demuxer name)");
        snprintf(o->spec.input_format, sizeof(o->spec.input_format), "%s", s);
    }
    int64_t eb = 0, mf = 0;
    if (!get_int(c, in, "expected_bytes", "input.expected_bytes", 1, INT64_MAX, &eb)) return false;
    if (!get_int(c, in, "max_frames", "input.max_frames", 1, INT64_C(1) << 40, &mf)) return false;
    if (eb > max_upload)
        return fail(c, SRV_E_PAYLOAD_TOO_LARGE, "input.expected_bytes: %lld exceeds max_upload_bytes %lld",
                    (long long)eb, (long long)max_upload);
    o->expected_bytes = eb;
    o->spec.max_frames = mf;
    return true;
}

static bool parse_output(struct parse_ctx * c, json_t * out, struct srv_spec_result * o) {
    static const char * const keys[] = { "container", "codec", "crf", "pixel_format", "copy_audio", NULL };
    if (!out) return true;
    if (!check_keys(c, out, "output.", keys)) return false;
    int container = (int)o->spec.container, codec = -1, pix = (int)o->spec.pix_fmt;
    int64_t crf = o->spec.crf;
    if (!get_enum(c, out, "container", "output.container", container_names, &container)) return false;
    if (!get_enum(c, out, "codec", "output.codec", codec_names, &codec)) return false;
    if (!get_int(c, out, "crf", "output.crf", 0, 51, &crf)) return false;
    if (!get_enum(c, out, "pixel_format", "output.pixel_format", pix_names, &pix)) return false;
    if (!get_bool(c, out, "copy_audio", "output.copy_audio", &o->spec.copy_audio)) return false;
    o->spec.container = (enum pl_container)container;
    /* y4m can only hold raw frames: its codec defaults to rawvideo */
    if (codec < 0) codec = o->spec.container == PL_CONTAINER_Y4M ? PL_CODEC_RAWVIDEO : PL_CODEC_H264;
    o->spec.codec = (enum pl_codec)codec;
    o->spec.crf = (int)crf;
    o->spec.pix_fmt = (enum pl_pix_fmt)pix;
    if (o->spec.codec == PL_CODEC_FFV1 && o->spec.container != PL_CONTAINER_MATROSKA)
        return fail(c, SRV_E_BAD_REQUEST, "output.codec: ffv1 needs output.container matroska");
    if ((o->spec.codec == PL_CODEC_RAWVIDEO) != (o->spec.container == PL_CONTAINER_Y4M))
        return fail(c, SRV_E_BAD_REQUEST, "output.codec: rawvideo goes with output.container y4m and only there");
    return true;
}

static bool parse_scenes(struct parse_ctx * c, json_t * sc, struct srv_spec_result * o) {
    static const char * const keys[] = { "detect", "threshold", "reference_threshold", NULL };
    if (!sc) return true;
    if (!check_keys(c, sc, "scenes.", keys)) return false;
    if (!get_bool(c, sc, "detect", "scenes.detect", &o->spec.scene_detect)) return false;
    if (!get_pos_number(c, sc, "threshold", "scenes.threshold", &o->spec.scene_threshold)) return false;
    return get_pos_number(c, sc, "reference_threshold", "scenes.reference_threshold", &o->spec.reference_threshold);
}

static void set_defaults(struct srv_spec_result * o, const char * model) {
    memset(&o->spec, 0, sizeof(o->spec));
    o->spec.scale = 4;
    o->spec.container = PL_CONTAINER_MATROSKA;
    o->spec.codec = PL_CODEC_H264;
    o->spec.crf = 15;
    o->spec.pix_fmt = PL_PIX_AUTO;
    o->spec.copy_audio = true;
    o->spec.scene_detect = true;
    o->spec.scene_threshold = 27;
    o->spec.reference_threshold = 27;
    snprintf(o->model, sizeof(o->model), "%s", model ? model : "");
}

static char * canonical(const struct srv_spec_result * o) {
    json_t * in = json_object();
    if (o->spec.input_format[0]) json_object_set_new(in, "format", json_string(o->spec.input_format));
    if (o->expected_bytes) json_object_set_new(in, "expected_bytes", json_integer(o->expected_bytes));
    if (o->spec.max_frames) json_object_set_new(in, "max_frames", json_integer(o->spec.max_frames));
    json_t * root = json_pack("{s:s, s:i, s:o, s:{s:s, s:s, s:i, s:s, s:b}, s:{s:b, s:f, s:f}}",
                              "model", o->model, "scale", o->spec.scale, "input", in,
                              "output", "container", container_names[o->spec.container],
                              "codec", codec_names[o->spec.codec], "crf", o->spec.crf,
                              "pixel_format", pix_names[o->spec.pix_fmt], "copy_audio", o->spec.copy_audio,
                              "scenes", "detect", o->spec.scene_detect, "threshold", o->spec.scene_threshold,
                              "reference_threshold", o->spec.reference_threshold);
    char * s = root ? json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

bool srv_spec_parse(const char * body, size_t len, const char * const * model_names, int64_t max_upload_bytes,
                    struct srv_spec_result * out) {
    memset(out, 0, sizeof(*out));
    set_defaults(out, model_names && model_names[0] ? model_names[0] : "");
    struct parse_ctx c = { out, false };
    json_error_t jerr;
    json_t * root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!root) {
        if (!len) fail(&c, SRV_E_BAD_REQUEST, "empty body: expected a JSON object (at least {})");
        else fail(&c, SRV_E_BAD_REQUEST, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return false;
    }
    static const char * const keys[] = { "model", "scale", "input", "output", "scenes", NULL };
    json_t * in = NULL, * o = NULL, * sc = NULL;
    int64_t scale = out->spec.scale;
    if (!json_is_object(root)) fail(&c, SRV_E_BAD_REQUEST, "body: expected a JSON object");
    else if (check_keys(&c, root, "", keys) && get_int(&c, root, "scale", "scale", 1, 8, &scale) &&
             get_object(&c, root, "input", &in) && get_object(&c, root, "output", &o) &&
             get_object(&c, root, "scenes", &sc)) {
        out->spec.scale = (int)scale;
        json_t * m = json_object_get(root, "model");
        if (m) {
            bool known = false;
            if (json_is_string(m))
                for (const char * const * n = model_names; n && *n; n++)
                    if (strcmp(*n, json_string_value(m)) == 0) known = true;
            if (!json_is_string(m)) fail(&c, SRV_E_BAD_REQUEST, "model: expected a model name (GET /v1/models)");
            else if (!known) fail(&c, SRV_E_BAD_REQUEST, "model: unknown model '%.60s' (GET /v1/models)", json_string_value(m));
            else snprintf(out->model, sizeof(out->model), "%s", json_string_value(m));
        }
        if (!c.failed && parse_input(&c, in, out, max_upload_bytes) && parse_output(&c, o, out)) parse_scenes(&c, sc, out);
    }
    json_decref(root);
    if (c.failed) return false;
    out->canonical = canonical(out);
    if (!out->canonical) {
        fail(&c, SRV_E_INTERNAL, "out of memory");
        return false;
    }
    return true;
}

/* ---- hand-built JSON ----------------------------------------------------------------- */

void srv_buf_add(struct srv_buf * b, const char * s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char * p = realloc(b->p, cap);
        if (!p) return; /* the caller's output is truncated; only under OOM */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void srv_buf_printf(struct srv_buf * b, const char * fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(tmp)) {
        srv_buf_add(b, tmp, (size_t)n);
        return;
    }
    char * big = malloc((size_t)n + 1);
    if (!big) return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    srv_buf_add(b, big, (size_t)n);
    free(big);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one. */
static int utf8_len(const unsigned char * p) {
    int n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : 0;
    if (n == 0 || (n == 4 && p[0] > 0xf4)) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0; /* overlong, surrogates */
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

/* Messages may quote client bytes (headers, truncated with %.Ns): control characters are
 * escaped and invalid UTF-8 becomes U+FFFD, so the body is always valid JSON. */
void srv_buf_json_str(struct srv_buf * b, const char * s) {
    srv_buf_add(b, "\"", 1);
    for (const unsigned char * p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            srv_buf_add(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            srv_buf_add(b, esc, 6);
        } else if (*p < 0x80) srv_buf_add(b, (const char *)p, 1);
        else {
            int n = utf8_len(p);
            if (n == 0) srv_buf_add(b, "\\ufffd", 6);
            else {
                srv_buf_add(b, (const char *)p, (size_t)n);
                p += n - 1;
            }
        }
    }
    srv_buf_add(b, "\"", 1);
}
