/* Frame previews (pipeline.h "frame previews"): the capture on the media threads and the
 * lookup for the loop. Bounded: two slots (frame 0, one pinned frame) x (LR, SR) PNGs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_internal.h"

char * pl_preview_path(const struct pl_job * j, int slot, bool sr) {
    size_t n = strlen(j->e->spool_dir) + strlen(j->spec.id) + 32;
    char * p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.pv%d.%s.png", j->e->spool_dir, j->spec.id, slot, sr ? "sr" : "lr");
    return p;
}

void pl_preview_capture(struct pl_job * j, int64_t index, bool sr, const uint8_t * rgb, int w, int h) {
    struct pl_engine * e = j->e;
    /* every frame comes here: no lock unless this one is kept. The pin is set under mu
     * only while frames_in <= its index, and the decoder reads it after publishing the
     * frame under mu, so it sees any pin set in time. */
    int64_t pin = atomic_load(&j->preview_pin);
    int slot = index == 0 ? 0 : index == pin ? 1 : -1;
    if (slot < 0) return;
    if (slot == 1 && !sr) {
        pthread_mutex_lock(&e->mu);
        j->preview_pin_fixed = true; /* LR comes first: from now on the pin is final */
        pthread_mutex_unlock(&e->mu);
    }
    char * path = pl_preview_path(j, slot, sr);
    struct infvsr_err err = { 0 };
    enum infvsr_status st = path ? infvsr_media_png_write(path, rgb, w, h, &err) : INFVSR_ERR_NOMEM;
    free(path);
    pthread_mutex_lock(&e->mu);
    if (st == INFVSR_OK) j->preview_have |= PL_PV_BIT(slot, sr);
    else j->preview_failed |= PL_PV_BIT(slot, sr); /* a preview is best effort: the job goes on */
    pl_post_locked(e, j, PL_EV_PROGRESS);
    pthread_mutex_unlock(&e->mu);
}

enum pl_preview_state pl_job_preview(struct pl_job * j, int64_t frame, bool sr, char ** path) {
    struct pl_engine * e = j->e;
    *path = NULL;
    if (frame < 0) return PL_PREVIEW_NOT_KEPT;
    pthread_mutex_lock(&e->mu);
    int64_t pin = atomic_load(&j->preview_pin);
    int slot = frame == 0 ? 0 : frame == pin ? 1 : -1;
    enum pl_preview_state st;
    if (slot >= 0 && (j->preview_have & PL_PV_BIT(slot, sr))) st = PL_PREVIEW_READY;
    else if (slot >= 0 && (j->preview_failed & PL_PV_BIT(slot, sr))) st = PL_PREVIEW_NOT_KEPT;
    else if (pl_job_state_terminal(j->state) || j->deleted) st = PL_PREVIEW_NOT_KEPT;
    else if (slot >= 0) st = PL_PREVIEW_PENDING;
    else if (!j->preview_pin_fixed && pin < 0 && frame >= j->frames_in) {
        atomic_store(&j->preview_pin, frame); /* the decoder has not published it yet: it will be kept */
        st = PL_PREVIEW_PENDING;
    } else st = PL_PREVIEW_NOT_KEPT;
    pthread_mutex_unlock(&e->mu);
    if (st == PL_PREVIEW_READY) {
        *path = pl_preview_path(j, slot, sr);
        if (!*path) st = PL_PREVIEW_NOT_KEPT;
    }
    return st;
}
