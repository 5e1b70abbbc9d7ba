/* tensor.h scalar conversions against values printed by torch 1.13:
 *
 *   import torch, struct
 *   for v in [1.0, 1.00390625, 1.005859375, 1.0068359375, -2.5e-3, 3.0e38, 1e-40, 65504.0]:
 *       t = torch.tensor([v], dtype=torch.float32)
 *       print(hex(t.view(torch.int32).item() & 0xffffffff),
 *             hex(t.to(torch.bfloat16).view(torch.int16).item() & 0xffff))
 *   for bits in [0x3f808000, 0x3f818000, 0xbf808000, 0x00008000, 0x7f7f8000]:   # ties
 *       f = struct.unpack('<f', struct.pack('<I', bits))[0]
 *       print(hex(torch.tensor([f]).to(torch.bfloat16).view(torch.int16).item() & 0xffff))
 *   for v in [1.0, 0.1, 65504.0, 65520.0, 65519.0, 1e5, 6.1035156e-05, 6.0e-05,
 *             5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 1e-8, -3.14159, 1.00146484375]:
 *       t = torch.tensor([v], dtype=torch.float32); h = t.to(torch.float16)
 *       print(hex(t.view(torch.int32).item() & 0xffffffff),
 *             hex(h.view(torch.int16).item() & 0xffff), float(h.float()))
 */
#include <math.h>

#include "check.h"
#include "infvsr/tensor.h"

static float from_bits(uint32_t u) {
    union { uint32_t u; float f; } v = { .u = u };
    return v.f;
}

static uint32_t to_bits(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    return v.u;
}

static void test_bf16_rne(void) {
    static const struct { uint32_t f32; uint16_t bf16; } cases[] = {
        { 0x3f800000u, 0x3f80 }, /* 1.0 */
        { 0x3f808000u, 0x3f80 }, /* 1.00390625: tie, even stays */
        { 0x3f80c000u, 0x3f81 }, /* above half: up */
        { 0x3f80e000u, 0x3f81 },
        { 0xbb23d70au, 0xbb24 }, /* -2.5e-3 */
        { 0x7f61b1e6u, 0x7f62 }, /* 3e38 */
        { 0x7f7f8000u, 0x7f80 }, /* tie at the top rounds to inf */
        { 0x000116c2u, 0x0001 }, /* 1e-40 subnormal */
        { 0x477fe000u, 0x4780 }, /* 65504 */
        { 0x3f818000u, 0x3f82 }, /* tie, odd rounds up */
        { 0xbf808000u, 0xbf80 }, /* negative tie */
        { 0x00008000u, 0x0000 }, /* tiny tie to zero */
        { 0x7f800000u, 0x7f80 }, /* inf */
        { 0xff800000u, 0xff80 }, /* -inf */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = infvsr_f32_to_bf16(from_bits(cases[i].f32));
        CHECK_MSG(got == cases[i].bf16, "bf16(0x%08x) = 0x%04x, torch 0x%04x", cases[i].f32, got, cases[i].bf16);
        /* widening is exact */
        CHECK(to_bits(infvsr_bf16_to_f32(cases[i].bf16)) == (uint32_t)cases[i].bf16 << 16);
    }
    /* NaN stays NaN (quiet), never becomes inf */
    CHECK(isnan(infvsr_bf16_to_f32(infvsr_f32_to_bf16(NAN))));
    CHECK(isnan(infvsr_bf16_to_f32(infvsr_f32_to_bf16(from_bits(0x7f800001u))))); /* payload only in low bits */
    CHECK(isnan(infvsr_bf16_to_f32(infvsr_f32_to_bf16(from_bits(0xff800001u)))));
}

static void test_f16(void) {
    static const struct { uint32_t f32; uint16_t f16; double back; } cases[] = {
        { 0x3f800000u, 0x3c00, 1.0 },
        { 0x3dcccccdu, 0x2e66, 0.0999755859375 },
        { 0x477fe000u, 0x7bff, 65504.0 },
        { 0x477ff000u, 0x7c00, INFINITY },               /* 65520: overflow to inf */
        { 0x477fef00u, 0x7bff, 65504.0 },                /* 65519 */
        { 0x47c35000u, 0x7c00, INFINITY },               /* 1e5 */
        { 0x38800000u, 0x0400, 6.103515625e-05 },        /* smallest normal */
        { 0x387ba882u, 0x03ef, 6.002187728881836e-05 },  /* subnormal */
        { 0x33800000u, 0x0001, 5.960464477539063e-08 },  /* smallest subnormal */
        { 0x33000000u, 0x0000, 0.0 },                    /* half of it: tie to even (0) */
        { 0x33000001u, 0x0001, 5.960464477539063e-08 },  /* just above: up */
        { 0x322bcc77u, 0x0000, 0.0 },                    /* 1e-8 */
        { 0xc0490fd0u, 0xc248, -3.140625 },
        { 0x3f803000u, 0x3c02, 1.001953125 },            /* tie between 0x3c01 and 0x3c02 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = infvsr_f32_to_f16(from_bits(cases[i].f32));
        CHECK_MSG(got == cases[i].f16, "f16(0x%08x) = 0x%04x, torch 0x%04x", cases[i].f32, got, cases[i].f16);
        CHECK_MSG((double)infvsr_f16_to_f32(cases[i].f16) == cases[i].back, "f16 0x%04x -> %g, torch %g",
                  cases[i].f16, (double)infvsr_f16_to_f32(cases[i].f16), cases[i].back);
    }
    CHECK(isnan(infvsr_f16_to_f32(infvsr_f32_to_f16(NAN))));
    CHECK(infvsr_f16_to_f32(infvsr_f32_to_f16(-INFINITY)) == -INFINITY);
    /* every finite f16 survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u) continue; /* inf / NaN */
        uint16_t back = infvsr_f32_to_f16(infvsr_f16_to_f32((uint16_t)h));
        if (back != h) {
            CHECK_MSG(false, "f16 round trip 0x%04x -> 0x%04x", h, back);
            break;
        }
    }
}

static void test_bulk_conversions(void) {
    const float src[6] = { 1.0f, -2.5e-3f, 65504.0f, 6.0e-05f, 3.0e38f, -0.0f };
    uint16_t h[6], b[6];
    float back[6];
    infvsr_convert_from_f32(h, INFVSR_TYPE_F16, src, 6);
    infvsr_convert_from_f32(b, INFVSR_TYPE_BF16, src, 6);
    for (int i = 0; i < 6; i++) {
        CHECK(h[i] == infvsr_f32_to_f16(src[i]));
        CHECK(b[i] == infvsr_f32_to_bf16(src[i]));
    }
    infvsr_convert_to_f32(back, h, INFVSR_TYPE_F16, 6);
    for (int i = 0; i < 6; i++) CHECK(to_bits(back[i]) == to_bits(infvsr_f16_to_f32(h[i])));
    infvsr_convert_to_f32(back, b, INFVSR_TYPE_BF16, 6);
    for (int i = 0; i < 6; i++) CHECK(to_bits(back[i]) == to_bits(infvsr_bf16_to_f32(b[i])));
}

static const struct test_case tests[] = {
    TEST(test_bf16_rne),
    TEST(test_f16),
    TEST(test_bulk_conversions),
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
