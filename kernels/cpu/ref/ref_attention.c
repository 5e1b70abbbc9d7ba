/* Float64 reference attention: for every (head, query) the full score row in double,
 * exact softmax, weighted sum of values. O(Nk) scratch, O(Nq Nk H D) time. */
#include <math.h>
#include <stdlib.h>

#include "../cpu_impl.h"

/* q [Nq, H*D]; k0/v0 [N0, H*D], k1/v1 [N1, H*D] (optional); bias [H, Nq, N0+N1] (optional);
 * out [Nq, H*D] */
bool infvsr_cpu_ref_attention(const struct infvsr_cpu_attn * a) {
    const int64_t H = a->n_heads, D = a->head_dim, HD = H * D, nk = a->n0 + a->n1;
    const float * q = a->q, * k0 = a->k0, * v0 = a->v0, * k1 = a->k1, * v1 = a->v1; /* f32: backend.c widens */
    float * out = a->out;
    double * s = malloc((size_t)(nk > 0 ? nk : 1) * sizeof *s);
    double * o = malloc((size_t)D * sizeof *o);
    if (!s || !o) {
        free(s);
        free(o);
        return false;
    }
    for (int64_t h = 0; h < H; h++) {
        for (int64_t i = 0; i < a->nq; i++) {
            const float * qi = q + i * HD + h * D;
            double mx = -INFINITY;
            for (int64_t j = 0; j < nk; j++) {
                const float * kj = j < a->n0 ? k0 + j * HD + h * D : k1 + (j - a->n0) * HD + h * D;
                double dot = 0;
                for (int64_t d = 0; d < D; d++) dot += (double)qi[d] * kj[d];
                s[j] = dot * a->scale + (a->bias ? a->bias[(h * a->nq + i) * nk + j] : 0.0);
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0;
            for (int64_t j = 0; j < nk; j++) {
                s[j] = exp(s[j] - mx);
                sum += s[j];
            }
            for (int64_t d = 0; d < D; d++) o[d] = 0;
            for (int64_t j = 0; j < nk; j++) {
                const float * vj = j < a->n0 ? v0 + j * HD + h * D : v1 + (j - a->n0) * HD + h * D;
                for (int64_t d = 0; d < D; d++) o[d] += s[j] * vj[d];
            }
            for (int64_t d = 0; d < D; d++) out[i * HD + h * D + d] = (float)(o[d] / sum);
        }
    }
    free(s);
    free(o);
    return true;
}
