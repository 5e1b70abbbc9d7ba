/* The streaming chunk scheduler of MODEL-SPEC §2.2: turns a stream of LR frames into the
 * chunks the model consumes (9 frames for the first chunk of a scene, then 12), with
 * boundaries forced at scene cuts and the visual-reference refresh decision.
 *
 *   struct infvsr_chunker_config cfg = infvsr_chunker_config_default(w, h);
 *   struct infvsr_chunker * ch = NULL;
 *   infvsr_chunker_create(&cfg, &ch, &err);
 *   while (read a frame into a malloc'd W*H*3 buffer `rgb`) {
 *       if (infvsr_chunker_push(ch, rgb, &err) != INFVSR_OK) { free(rgb); ... }
 *       struct infvsr_chunk c;
 *       while (infvsr_chunker_pop(ch, &c)) { run the model on c; infvsr_chunk_release(&c); }
 *   }
 *   infvsr_chunker_finish(ch, &err);   then pop the remaining chunks the same way
 *   infvsr_chunker_destroy(ch);
 *
 * Frames are RGB u8 (H, W, 3) buffers allocated with malloc(); ownership moves into the
 * chunker when push returns INFVSR_OK, and on to the caller with each popped chunk
 * (infvsr_chunk_release frees them). Memory is bounded: at most
 * INFVSR_CHUNKER_MAX_PENDING frames are held (15 frames of detector delay + one chunk),
 * plus O(W*H) bytes of HSV planes, whatever the video length. The caller must pop every
 * ready chunk before the next push (push answers INFVSR_ERR_BUSY otherwise), which is
 * what keeps the bound. Not thread-safe: one chunker per stream. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "infvsr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    INFVSR_CHUNK_FIRST_FRAMES = 9,   /* first chunk of a scene (1 + 4·2 frames)      */
    INFVSR_CHUNK_NEXT_FRAMES  = 12,  /* every later chunk of the scene (4·3 frames)  */
    INFVSR_CHUNK_MAX_FRAMES   = 12,
    INFVSR_CHUNKER_DELAY      = 15,  /* detector's event_buffer_length = min_scene_len */
    INFVSR_REFERENCE_MIN_GAP  = 15,  /* frames between two reference refreshes       */
    INFVSR_CHUNKER_MAX_PENDING = 32, /* > 15 + 12 frames held at once                */
};

struct infvsr_chunker_config {
    int     width, height;
    bool    scene_detection;     /* false: --no_scene_detection, chunks 9, 12, 12, ...   */
    double  scene_threshold;     /* ContentDetector threshold, default 27                 */
    double  reference_threshold; /* reference refresh threshold, default 27               */
    int64_t max_frames;          /* 0: all frames; otherwise later frames are discarded  */
};

struct infvsr_chunk {
    int64_t   first;      /* absolute index of frames[0] in the input stream */
    int       n;          /* 1..12 */
    uint8_t * frames[INFVSR_CHUNK_MAX_FRAMES]; /* owned after pop */
    int64_t   pts[INFVSR_CHUNK_MAX_FRAMES];    /* as pushed (INT64_MIN by plain push) */
    /* new_scene: drop VAE state and KV cache, position = 0. update: recompute the visual
     * context from frames[0]. Without scene detection the first chunk has both set
     * (the reference starts a sequence there) and no later chunk has either. */
    bool      new_scene;
    bool      update;
};

struct infvsr_chunker;

struct infvsr_chunker_config infvsr_chunker_config_default(int width, int height);

enum infvsr_status infvsr_chunker_create(const struct infvsr_chunker_config * cfg,
                                         struct infvsr_chunker ** out, struct infvsr_err * err);
void infvsr_chunker_destroy(struct infvsr_chunker * ch); /* frees frames still held */

/* Adds the next frame. INFVSR_OK: ownership of `rgb` moved to the chunker (a frame past
 * max_frames is freed at once, see infvsr_chunker_wants_frames). INFVSR_ERR_BUSY: ready
 * chunks were not popped; INFVSR_ERR_INVALID_ARG: after finish. On errors the caller
 * keeps `rgb`. */
enum infvsr_status infvsr_chunker_push(struct infvsr_chunker * ch, uint8_t * rgb,
                                       struct infvsr_err * err);

/* The same, carrying the frame's timestamp through to chunk.pts (for the writer). */
enum infvsr_status infvsr_chunker_push_pts(struct infvsr_chunker * ch, uint8_t * rgb, int64_t pts,
                                           struct infvsr_err * err);

/* End of stream: flushes every pending frame into chunks. Call once. */
enum infvsr_status infvsr_chunker_finish(struct infvsr_chunker * ch, struct infvsr_err * err);

/* Moves the oldest ready chunk into *out; false when none is ready. */
bool infvsr_chunker_pop(struct infvsr_chunker * ch, struct infvsr_chunk * out);

/* False once max_frames frames were accepted or finish was called. */
bool infvsr_chunker_wants_frames(const struct infvsr_chunker * ch);

/* Frames accepted so far, and the score the scene detector gave the last one (0 without
 * scene detection); for logs and tests. */
int64_t infvsr_chunker_frames_in(const struct infvsr_chunker * ch);
double  infvsr_chunker_last_score(const struct infvsr_chunker * ch);

void infvsr_chunk_release(struct infvsr_chunk * c);

#ifdef __cplusplus
}
#endif
