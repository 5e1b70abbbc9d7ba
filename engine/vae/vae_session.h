/* The streaming session's state, shared by vae_session.c (open/close/reset, planning) and
 * vae_stream.c (encode/decode of chunks). Not a public header. */
#pragma once

#include "vae/vae_internal.h"

struct vae_tile {
    int       r0, r1, c0, c1;     /* latent rows/columns [r0, r1) x [c0, c1)              */
    float **  cache;              /* per slot (n_slots entries)                            */
    uint8_t * started;            /* per slot                                              */
    float *   enc_mask;           /* [(r1-r0) x (c1-c0)] blend mask (tiled only)           */
    float *   dec_mask;           /* [8(r1-r0) x 8(c1-c0)]                                 */
};

struct infvsr_vae_session {
    struct infvsr_vae *              m;
    struct infvsr_vae_session_params p;
    int                              h, w;          /* latent size                          */
    bool                             tiled;
    int                              n_tiles;
    struct vae_tile *                tiles;
    float **                         cache_ptrs;    /* n_tiles * n_slots                    */
    uint8_t *                        started;       /* n_tiles * n_slots                    */
    float *                          cache_mem;
    size_t                           cache_floats;
    float *                          masks;         /* all tiles' masks (tiled only)        */
    float *                          enc_weight;    /* [h x w] sum of masks                 */
    float *                          dec_weight;    /* [8h x 8w]                            */
    float *                          arena;
    size_t                           arena_floats;
    bool                             enc_started, dec_started;
    infvsr_abort_cb                  should_abort;  /* polled between calls and layers */
    void *                           abort_user;
};

/* Runs one encoder call on tile `tl`: frames [t0, t0+n) of `frames` (NULL in dry mode) ->
 * the normalised mean latent [16, 1, th, tw] left at the arena bottom in `out`. */
enum infvsr_status vae_encode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * frames, int t0, int n, struct vae_act * out);
/* One decoder call on tile `tl`: latent frame t of `latents` -> [3, 1 or 4, 8th, 8tw]. */
enum infvsr_status vae_decode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * latents, int t, struct vae_act * out);
