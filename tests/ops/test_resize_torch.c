/* The fast resampler against torch.nn.functional.interpolate(antialias=True) on the
 * fixture written by gen_resize_fixture.py: rel L2 error <= 1e-6 per case. */
#include "ops_util.h"

static const char * fixture_dir;

static bool read_f32(const char * path, float * dst, size_t n) {
    FILE * f = fopen(path, "rb");
    if (!f) return false;
    size_t got = fread(dst, sizeof *dst, n, f);
    int extra = fgetc(f);
    fclose(f);
    return got == n && extra == EOF;
}

static void test_resize_vs_torch(void) {
    struct infvsr_backend * be;
    CHECK(infvsr_cpu_backend_init(NULL, &be) == INFVSR_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", fixture_dir);
    FILE * mf = fopen(path, "r");
    CHECK_MSG(mf != NULL, "cannot open %s (run ops.resize_fixture_gen)", path);
    if (!mf) {
        infvsr_backend_free(be);
        return;
    }
    char name[256];
    int mode, n_cases = 0;
    long long P, hi, wi, ho, wo;
    while (fscanf(mf, "%255s %d %lld %lld %lld %lld %lld", name, &mode, &P, &hi, &wi, &ho, &wo) == 7) {
        struct tbuf x = tb_new("x", INFVSR_TYPE_F32, 3, S3(P, hi, wi));
        struct tbuf want = tb_new("want", INFVSR_TYPE_F32, 3, S3(P, ho, wo));
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 3, S3(P, ho, wo));
        snprintf(path, sizeof path, "%s/%s.in.f32", fixture_dir, name);
        CHECK_MSG(read_f32(path, tb_f(&x), x.n), "bad fixture file %s", path);
        snprintf(path, sizeof path, "%s/%s.out.f32", fixture_dir, name);
        CHECK_MSG(read_f32(path, tb_f(&want), want.n), "bad fixture file %s", path);
        struct infvsr_err err = { 0 };
        enum infvsr_status st = infvsr_op_resize(be, (enum infvsr_resize_mode)mode, &x.t, &y.t, &err);
        CHECK_MSG(st == INFVSR_OK, "%s: %s", name, err.msg);
        double e = rel_err_f32(tb_f(&y), tb_f(&want), y.n);
        double maxd = 0;
        for (size_t i = 0; i < y.n; i++) {
            double d = fabs((double)tb_f(&y)[i] - tb_f(&want)[i]);
            if (d > maxd) maxd = d;
        }
        printf("  %-28s rel err %.3e  max abs %.3e\n", name, e, maxd);
        CHECK_MSG(e <= 1e-6, "%s: rel err %.3e vs torch", name, e);
        CHECK(tb_canary_ok(&y));
        tb_free(&x), tb_free(&want), tb_free(&y);
        n_cases++;
    }
    fclose(mf);
    CHECK_MSG(n_cases >= 5, "only %d cases in the fixture", n_cases);
    infvsr_backend_free(be);
}

static const struct test_case tests[] = {
    TEST(test_resize_vs_torch),
    { 0 },
};

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_resize_torch FIXTURE_DIR [filter]\n");
        return 2;
    }
    fixture_dir = argv[1];
    return test_main(argc - 1, argv + 1, tests);
}
