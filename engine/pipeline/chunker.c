/* Streaming chunk scheduler, MODEL-SPEC §2.2 (see infvsr/chunker.h). The variable names
 * follow the spec's description of the reference: pending, cuts, start, new_scene,
 * reference_index, drain(limit, final). */
#include "infvsr/chunker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/scene.h"

#define RING 32 /* capacity of the three rings below; a power of two */

struct infvsr_chunker {
    struct infvsr_chunker_config cfg;
    size_t  npix;
    struct infvsr_scene_detector * det; /* NULL without scene detection */

    uint8_t * pending[RING];  /* frames start .. start + n_pending - 1 */
    int64_t   pending_pts[RING];
    int       pending_head, n_pending;
    int64_t   cuts[RING];     /* FIFO of cut frame indices, all >= start */
    int       cuts_head, n_cuts;
    struct infvsr_chunk ready[RING];
    int       ready_head, n_ready;

    int64_t   count;          /* frames accepted */
    int64_t   start;          /* absolute index of the next frame to emit */
    bool      new_scene;
    bool      finished;
    double    last_score;

    bool      have_reference;
    int64_t   reference_index;
    uint8_t * hsv_mem;        /* one allocation behind ref_hsv and tmp_hsv */
    uint8_t * ref_hsv[3];     /* HSV planes of the reference frame */
    uint8_t * tmp_hsv[3];     /* HSV planes of a chunk's first frame (swapped with ref_hsv) */
};

struct infvsr_chunker_config infvsr_chunker_config_default(int width, int height) {
    struct infvsr_chunker_config cfg = {
        .width = width, .height = height, .scene_detection = true,
        .scene_threshold = INFVSR_SCENE_THRESHOLD_DEFAULT,
        .reference_threshold = INFVSR_SCENE_THRESHOLD_DEFAULT, .max_frames = 0,
    };
    return cfg;
}

enum infvsr_status infvsr_chunker_create(const struct infvsr_chunker_config * cfg,
                                         struct infvsr_chunker ** out, struct infvsr_err * err) {
    *out = NULL;
    if (cfg->width <= 0 || cfg->height <= 0 || (int64_t)cfg->width * cfg->height > (int64_t)1 << 31)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "chunker: bad frame size %dx%d",
                              cfg->width, cfg->height);
    if (cfg->max_frames < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "chunker: max_frames must be >= 0 (got %lld)",
                              (long long)cfg->max_frames);
    if (cfg->scene_detection && (!(cfg->reference_threshold > 0) || !isfinite(cfg->reference_threshold)))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "chunker: reference_threshold must be > 0 (got %g)", cfg->reference_threshold);
    struct infvsr_chunker * ch = calloc(1, sizeof(*ch));
    if (!ch) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "chunker: out of memory");
    ch->cfg = *cfg;
    ch->npix = (size_t)cfg->width * (size_t)cfg->height;
    ch->new_scene = true;
    if (cfg->scene_detection) {
        enum infvsr_status st = infvsr_scene_detector_create(cfg->width, cfg->height, cfg->scene_threshold,
                                                             INFVSR_SCENE_MIN_SCENE_LEN_DEFAULT, &ch->det, err);
        if (st != INFVSR_OK) {
            free(ch);
            return st;
        }
        uint8_t * mem = ch->hsv_mem = malloc(6 * ch->npix);
        if (!mem) {
            infvsr_chunker_destroy(ch);
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "chunker: out of memory");
        }
        for (int c = 0; c < 3; c++) {
            ch->ref_hsv[c] = mem + (size_t)c * ch->npix;
            ch->tmp_hsv[c] = mem + (size_t)(3 + c) * ch->npix;
        }
    }
    *out = ch;
    return INFVSR_OK;
}

void infvsr_chunk_release(struct infvsr_chunk * c) {
    if (!c) return;
    for (int i = 0; i < c->n && i < INFVSR_CHUNK_MAX_FRAMES; i++) {
        free(c->frames[i]);
        c->frames[i] = NULL;
    }
    c->n = 0;
}

void infvsr_chunker_destroy(struct infvsr_chunker * ch) {
    if (!ch) return;
    for (int i = 0; i < ch->n_pending; i++) free(ch->pending[(ch->pending_head + i) % RING]);
    for (int i = 0; i < ch->n_ready; i++) infvsr_chunk_release(&ch->ready[(ch->ready_head + i) % RING]);
    infvsr_scene_detector_destroy(ch->det);
    free(ch->hsv_mem);
    free(ch);
}

static void emit(struct infvsr_chunker * ch, int n, bool update) {
    INFVSR_ASSERT(n >= 1 && n <= INFVSR_CHUNK_MAX_FRAMES && n <= ch->n_pending && ch->n_ready < RING);
    struct infvsr_chunk * c = &ch->ready[(ch->ready_head + ch->n_ready) % RING];
    memset(c, 0, sizeof(*c));
    c->first = ch->start;
    c->n = n;
    for (int i = 0; i < n; i++) {
        c->frames[i] = ch->pending[ch->pending_head];
        c->pts[i] = ch->pending_pts[ch->pending_head];
        ch->pending_head = (ch->pending_head + 1) % RING;
    }
    ch->n_pending -= n;
    c->new_scene = ch->new_scene;
    c->update = update;
    ch->n_ready++;
    ch->start += n;
    ch->new_scene = false;
}

/* Step 6 of drain: does this chunk refresh the visual reference? Keeps the reference's
 * HSV planes so that the next comparison needs only the new first frame's. */
static bool decide_update(struct infvsr_chunker * ch, const uint8_t * first) {
    if (ch->new_scene) {
        infvsr_rgb_to_hsv_u8(first, ch->npix, ch->ref_hsv[0], ch->ref_hsv[1], ch->ref_hsv[2]);
        return true;
    }
    INFVSR_ASSERT(ch->have_reference); /* every scene starts with an update */
    if (ch->start - ch->reference_index < INFVSR_REFERENCE_MIN_GAP) return false;
    infvsr_rgb_to_hsv_u8(first, ch->npix, ch->tmp_hsv[0], ch->tmp_hsv[1], ch->tmp_hsv[2]);
    const uint8_t * const ref[3] = { ch->ref_hsv[0], ch->ref_hsv[1], ch->ref_hsv[2] };
    const uint8_t * const cur[3] = { ch->tmp_hsv[0], ch->tmp_hsv[1], ch->tmp_hsv[2] };
    if (!infvsr_hsv_reference_changed(ref, cur, ch->npix, ch->cfg.reference_threshold)) return false;
    for (int c = 0; c < 3; c++) { /* swap instead of copying */
        uint8_t * t = ch->ref_hsv[c];
        ch->ref_hsv[c] = ch->tmp_hsv[c];
        ch->tmp_hsv[c] = t;
    }
    return true;
}

/* drain(limit, final) of MODEL-SPEC §2.2, steps 1-8. */
static void drain(struct infvsr_chunker * ch, int64_t limit, bool final) {
    while (ch->n_pending > 0 && ch->start < limit) {
        if (ch->n_cuts > 0 && ch->cuts[ch->cuts_head] == ch->start) {
            ch->cuts_head = (ch->cuts_head + 1) % RING;
            ch->n_cuts--;
            ch->new_scene = true;
        }
        bool has_boundary = ch->n_cuts > 0;
        int64_t boundary = has_boundary ? ch->cuts[ch->cuts_head] : 0;
        int64_t stop = has_boundary && boundary < limit ? boundary : limit;
        int64_t size = ch->new_scene ? INFVSR_CHUNK_FIRST_FRAMES : INFVSR_CHUNK_NEXT_FRAMES;
        int64_t available = stop - ch->start;
        if (available < size && !final && !(has_boundary && boundary == stop)) break;
        int64_t n = available < size ? available : size;
        if (n > ch->n_pending) n = ch->n_pending; /* cannot happen: limit <= count */
        if (n <= 0) break;
        bool update = decide_update(ch, ch->pending[ch->pending_head]);
        if (update) {
            ch->have_reference = true;
            ch->reference_index = ch->start;
        }
        emit(ch, (int)n, update);
    }
}

/* --no_scene_detection: 9, then 12, 12, ...; no delay is needed. */
static void drain_fixed(struct infvsr_chunker * ch, bool final) {
    for (;;) {
        int size = ch->start == 0 ? INFVSR_CHUNK_FIRST_FRAMES : INFVSR_CHUNK_NEXT_FRAMES;
        if (ch->n_pending == 0 || (ch->n_pending < size && !final)) return;
        bool first = ch->start == 0;
        ch->new_scene = first;
        emit(ch, ch->n_pending < size ? ch->n_pending : size, first);
    }
}

bool infvsr_chunker_wants_frames(const struct infvsr_chunker * ch) {
    return !ch->finished && (ch->cfg.max_frames == 0 || ch->count < ch->cfg.max_frames);
}

enum infvsr_status infvsr_chunker_push(struct infvsr_chunker * ch, uint8_t * rgb, struct infvsr_err * err) {
    return infvsr_chunker_push_pts(ch, rgb, INT64_MIN, err);
}

enum infvsr_status infvsr_chunker_push_pts(struct infvsr_chunker * ch, uint8_t * rgb, int64_t pts,
                                           struct infvsr_err * err) {
    if (!ch || !rgb) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "chunker: NULL argument");
    if (ch->finished) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "chunker: push after finish");
    if (ch->n_ready > 0)
        return infvsr_err_set(err, INFVSR_ERR_BUSY, "chunker: %d ready chunk(s) not popped before push",
                              ch->n_ready);
    if (!infvsr_chunker_wants_frames(ch)) { /* truncated by max_frames */
        free(rgb);
        return INFVSR_OK;
    }
    INFVSR_ASSERT(ch->n_pending < RING);
    int64_t index = ch->count;
    if (ch->det) {
        int64_t cut = -1;
        enum infvsr_status st = infvsr_scene_detector_push(ch->det, rgb, index, &ch->last_score, &cut, err);
        if (st != INFVSR_OK) return st;
        if (cut >= 0) {
            /* The 15-frame delay guarantees a cut never names an emitted frame. */
            INFVSR_ASSERT(cut >= ch->start && ch->n_cuts < RING);
            ch->cuts[(ch->cuts_head + ch->n_cuts) % RING] = cut;
            ch->n_cuts++;
        }
    }
    ch->pending[(ch->pending_head + ch->n_pending) % RING] = rgb;
    ch->pending_pts[(ch->pending_head + ch->n_pending) % RING] = pts;
    ch->n_pending++;
    ch->count++;
    if (ch->det) {
        int64_t limit = ch->count - INFVSR_CHUNKER_DELAY;
        drain(ch, limit > 0 ? limit : 0, false);
    } else {
        drain_fixed(ch, false);
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr_chunker_finish(struct infvsr_chunker * ch, struct infvsr_err * err) {
    if (!ch) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "chunker: NULL argument");
    if (ch->finished) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "chunker: finish called twice");
    ch->finished = true;
    /* ContentDetector.post_process returns nothing in 0.6.7.1: a pending merge is lost. */
    if (ch->det) drain(ch, ch->count, true);
    else         drain_fixed(ch, true);
    return INFVSR_OK;
}

bool infvsr_chunker_pop(struct infvsr_chunker * ch, struct infvsr_chunk * out) {
    if (!ch || ch->n_ready == 0) return false;
    *out = ch->ready[ch->ready_head];
    memset(&ch->ready[ch->ready_head], 0, sizeof(ch->ready[0]));
    ch->ready_head = (ch->ready_head + 1) % RING;
    ch->n_ready--;
    return true;
}

int64_t infvsr_chunker_frames_in(const struct infvsr_chunker * ch) { return ch->count; }
double  infvsr_chunker_last_score(const struct infvsr_chunker * ch) { return ch->last_score; }
