/* Bounded frame rings between the pipeline's threads (see pl_internal.h). */
#include <stdlib.h>

#include "pl_internal.h"

int pl_ring_init(struct pl_ring * r, int cap, size_t frame_bytes) {
    r->cap = cap;
    r->frame_bytes = frame_bytes;
    r->head = r->count = 0;
    r->buf = calloc((size_t)cap, sizeof(*r->buf));
    r->pts = calloc((size_t)cap, sizeof(*r->pts));
    if (!r->buf || !r->pts) {
        pl_ring_free(r);
        return -1;
    }
    return 0;
}

void pl_ring_free(struct pl_ring * r) {
    if (r->buf)
        for (int i = 0; i < r->cap; i++) free(r->buf[i]);
    free(r->buf);
    free(r->pts);
    r->buf = NULL;
    r->pts = NULL;
    r->cap = r->count = r->head = 0;
}

/* The producer owns slot i = (head + count) % cap, computed under mu: the consumer never
 * touches a slot outside [head, head + count), and count only grows (under mu) after the
 * producer filled it, so the buffer itself is used without the lock. */
uint8_t * pl_ring_buf(struct pl_ring * r, int i) {
    if (!r->buf[i]) r->buf[i] = malloc(r->frame_bytes);
    return r->buf[i];
}
