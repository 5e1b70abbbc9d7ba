/* A device fault must turn the backend (worker) unhealthy, never crash the process.
 *
 * Runs an op on a device tensor whose pointer is bogus: the kernel faults (illegal
 * address), the next synchronising call reports INFVSR_ERR_DEVICE with the CUDA error
 * text, infvsr_cuda_backend_healthy() turns false, every later op is refused with
 * INFVSR_ERR_DEVICE, and freeing the backend still returns normally. Its own process:
 * a fault poisons the whole CUDA context. Exits 77 without a GPU. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cuda_backend.h"
#include "infvsr/tensor.h"
#include "ops.h"

static struct infvsr_backend * g_gpu;

static void test_fault_makes_backend_unhealthy(void) {
    struct infvsr_err err = { 0 };
    int64_t shape[1] = { 1 << 20 };
    struct infvsr_tensor good, bogus;
    memset(&good, 0, sizeof good);
    infvsr_tensor_setup(&good, "good", INFVSR_TYPE_F32, 1, shape);
    CHECK(infvsr_backend_tensor_alloc(g_gpu, &good, &err) == INFVSR_OK);
    CHECK(infvsr_cuda_backend_healthy(g_gpu));

    /* A device tensor pointing at an unmapped address: passes validation, faults on the GPU. */
    infvsr_tensor_view(&bogus, "bogus", INFVSR_TYPE_F32, 1, shape, (void *)(uintptr_t)0x1000);
    bogus.mem = INFVSR_MEM_DEVICE;
    enum infvsr_status st = infvsr_op_unary(g_gpu, INFVSR_UNARY_SILU, &bogus, &good, &err);
    /* the launch itself is fine (asynchronous); the fault surfaces at the sync */
    if (st == INFVSR_OK) st = infvsr_backend_synchronize(g_gpu, NULL);
    CHECK_EQ_INT(st, INFVSR_ERR_DEVICE);
    CHECK(!infvsr_cuda_backend_healthy(g_gpu));
    const char * why = infvsr_cuda_backend_last_error(g_gpu);
    printf("recorded: %s\n", why);
    CHECK(strlen(why) > 0);
    CHECK_STR_CONTAINS(why, "kernels/cuda/");

    /* Refused from now on, with the recorded reason. */
    struct infvsr_err err2 = { 0 };
    CHECK_EQ_INT(infvsr_op_unary(g_gpu, INFVSR_UNARY_SILU, &good, &good, &err2), INFVSR_ERR_DEVICE);
    CHECK_STR_CONTAINS(err2.msg, "unhealthy");
    CHECK_EQ_INT(infvsr_backend_synchronize(g_gpu, NULL), INFVSR_ERR_DEVICE);
    infvsr_backend_tensor_free(g_gpu, &good);
}

static const struct test_case tests[] = {
    TEST(test_fault_makes_backend_unhealthy),
    { 0 },
};

int main(int argc, char ** argv) {
    struct infvsr_err err = { 0 };
    enum infvsr_status st = infvsr_cuda_backend_init(0, INFVSR_PRECISION_AUTO, &g_gpu, &err);
    if (st == INFVSR_ERR_UNSUPPORTED) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    if (st != INFVSR_OK) {
        printf("FAIL: CUDA backend init: %s\n", err.msg);
        return 1;
    }
    int rc = test_main(argc, argv, tests);
    infvsr_backend_free(g_gpu); /* must return although the context is poisoned */
    printf("backend freed after the fault\n");
    return rc;
}
