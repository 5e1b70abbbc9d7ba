/* Float64 reference 3-D convolution, direct loops.
 * x [Cin, T, H, W], w [Cout, Cin, kt, kh, kw], b [Cout] (optional), y [Cout, To, Ho, Wo];
 * zero spatial padding (top/bottom/left/right), no temporal padding. */
#include "../cpu_impl.h"

void infvsr_cpu_ref_conv3d(const struct infvsr_cpu_conv * a) {
    for (int64_t co = 0; co < a->cout; co++) {
        for (int64_t to = 0; to < a->to; to++) {
            for (int64_t ho = 0; ho < a->ho; ho++) {
                for (int64_t wo = 0; wo < a->wo; wo++) {
                    double acc = a->b.data ? (double)infvsr__w_get(a->b, (size_t)co) : 0.0;
                    for (int64_t ci = 0; ci < a->cin; ci++) {
                        for (int64_t dt = 0; dt < a->kt; dt++) {
                            int64_t ti = to * a->st + dt;
                            for (int64_t dh = 0; dh < a->kh; dh++) {
                                int64_t hi = ho * a->sh + dh - a->pad_top;
                                if (hi < 0 || hi >= a->h) continue;
                                for (int64_t dw = 0; dw < a->kw; dw++) {
                                    int64_t wi = wo * a->sw + dw - a->pad_left;
                                    if (wi < 0 || wi >= a->w_in) continue;
                                    size_t widx = (size_t)((((co * a->cin + ci) * a->kt + dt) * a->kh + dh) * a->kw + dw);
                                    acc += (double)infvsr__w_get(a->w, widx) *
                                           a->x[((ci * a->t + ti) * a->h + hi) * a->w_in + wi];
                                }
                            }
                        }
                    }
                    a->y[((co * a->to + to) * a->ho + ho) * a->wo + wo] = (float)acc;
                }
            }
        }
    }
}
