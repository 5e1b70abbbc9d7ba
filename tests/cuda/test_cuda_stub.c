/* Builds without CUDA (INFVSR_CUDA=OFF or no nvcc): the CUDA entry points of kernels/ops.h
 * exist (kernels/cuda/no_cuda.c) and refuse cleanly with INFVSR_ERR_UNSUPPORTED. */
#include "check.h"
#include "ops.h"

static void test_init_reports_unsupported(void) {
    struct infvsr_backend * be = (struct infvsr_backend *)&be; /* non-NULL garbage: must be cleared */
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(infvsr_cuda_backend_init(0, INFVSR_PRECISION_AUTO, &be, &err), INFVSR_ERR_UNSUPPORTED);
    CHECK(be == NULL);
    CHECK_EQ_INT(err.status, INFVSR_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "built without CUDA");
    CHECK_EQ_INT(infvsr_cuda_backend_init(0, INFVSR_PRECISION_AUTO, &be, NULL), INFVSR_ERR_UNSUPPORTED); /* err optional */
    infvsr_backend_free(NULL);                                               /* harmless */
}

static const struct test_case tests[] = {
    TEST(test_init_reports_unsupported),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
