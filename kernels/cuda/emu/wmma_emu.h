/* nvcuda::wmma for the kernel emulation (the subset attention.cu uses: 16x16x16 bf16
 * operands, f32 accumulators).
 *
 * WMMA fragments have no documented element-to-lane mapping (CUDA C++ Programming Guide,
 * "Warp Matrix Functions": the mapping is unspecified), so kernels may only move them
 * through load/store/fill/mma. The emulation therefore keeps the whole tile in every
 * lane: a load reads the full tile per lane, mma_sync computes the full product per
 * lane, and store_matrix_sync writes element e of the tile from lane e % 32 only, so a
 * kernel that reads another lane's stored elements without __syncwarp sees stale data
 * (the fiber scheduler runs a lane ahead until it blocks). Pointers must be 32-byte
 * aligned and ldm a multiple of 16 bytes, as the guide requires; violations fail the
 * launch. Products are exact (bf16 x bf16 fits f32), the 16-term sums plus the
 * accumulator are formed in double and rounded once to f32. */
#pragma once

#include <type_traits>

#include "cuda_emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
template <class Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { static constexpr int r = M, c = K; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { static constexpr int r = K, c = N; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { static constexpr int r = M, c = N; };
static inline float to_f(float v) { return v; }
static inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
void check_ptr(const void * p, unsigned ldm, size_t elem, const char * what);
int  lane();
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static constexpr int R = detail::dims<Use, M, N, K>::r, C = detail::dims<Use, M, N, K>::c;
    float v[R][C];
};

template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L> & f, float x) {
    for (auto & row : f.v)
        for (float & e : row) e = x;
}

/* Operand tiles: row_major reads element (r, c) at p[r * ldm + c], col_major at p[c * ldm + r]. */
template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L> & f, const T * p, unsigned ldm) {
    detail::check_ptr(p, ldm, sizeof(T), "load_matrix_sync");
    using F = fragment<Use, M, N, K, T, L>;
    for (int r = 0; r < F::R; r++)
        for (int c = 0; c < F::C; c++)
            f.v[r][c] = detail::to_f(std::is_same<L, col_major>::value ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]);
}
template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float> & f, const float * p, unsigned ldm, layout_t l) {
    detail::check_ptr(p, ldm, sizeof(float), "load_matrix_sync");
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) f.v[r][c] = l == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
}
template <int M, int N, int K>
inline void store_matrix_sync(float * p, const fragment<accumulator, M, N, K, float> & f, unsigned ldm, layout_t l) {
    detail::check_ptr(p, ldm, sizeof(float), "store_matrix_sync");
    const int lane = detail::lane();
    for (int e = lane; e < M * N; e += 32) {
        const int r = e / N, c = e % N;
        (l == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]) = f.v[r][c];
    }
}
template <int M, int N, int K, class TA, class LA, class TB, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float> & d, const fragment<matrix_a, M, N, K, TA, LA> & a,
                     const fragment<matrix_b, M, N, K, TB, LB> & b, const fragment<accumulator, M, N, K, float> & c) {
    float out[M][N];
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = c.v[m][n];
            for (int k = 0; k < K; k++) s += (double)a.v[m][k] * (double)b.v[k][n];
            out[m][n] = (float)s;
        }
    memcpy(d.v, out, sizeof out);
}

}  // namespace wmma
}  // namespace nvcuda
