/* Cases of the memory API every backend implements (infvsr/backend.h): allocations are
 * zero-filled, tensor_set/tensor_get move exactly the bytes asked for at any offset and
 * refuse ranges outside the tensor, the traffic counters count them, capabilities agree
 * with where tensors live, and a device backend refuses a host tensor by name. */
#include "backend_ops.h"

#define FAIL_IF(c, cond, ...)                                                             \
    do {                                                                                  \
        if (cond) {                                                                       \
            st = infvsr_err_set(&(c)->err, INFVSR_ERR_INVALID_ARG, __VA_ARGS__);          \
            goto done;                                                                    \
        }                                                                                 \
    } while (0)

struct mem_p {
    enum infvsr_dtype dt;
    int64_t           n;
};

static enum infvsr_status get_sync(struct bo_ctx * c, const struct infvsr_tensor * t, void * dst, size_t off, size_t n) {
    enum infvsr_status st = infvsr_backend_tensor_get(c->be, t, dst, off, n, &c->err);
    return st != INFVSR_OK ? st : infvsr_backend_synchronize(c->be, &c->err);
}

static enum infvsr_status run_zeroed(struct bo_ctx * c, const struct bo_case * k) {
    const struct mem_p * p = BO_P(k, struct mem_p);
    struct infvsr_tensor t;
    enum infvsr_status st;
    unsigned char * buf = NULL;
    infvsr_tensor_setup(&t, "t", p->dt, 1, S1(p->n));
    if ((st = infvsr_backend_tensor_alloc(c->be, &t, &c->err)) != INFVSR_OK) return st;
    size_t nb = infvsr_tensor_nbytes(&t);
    buf = malloc(nb + 1);
    memset(buf, 0x5A, nb + 1);
    if (nb && (st = get_sync(c, &t, buf, 0, nb)) != INFVSR_OK) goto done;
    for (size_t i = 0; i < nb; i++) FAIL_IF(c, buf[i] != 0, "byte %zu of a new %zu-byte tensor is %d, not 0", i, nb, buf[i]);
    FAIL_IF(c, buf[nb] != 0x5A, "tensor_get wrote past the %zu bytes asked for", nb);
done:
    free(buf);
    infvsr_backend_tensor_free(c->be, &t);
    return st;
}

static enum infvsr_status run_set_get(struct bo_ctx * c, const struct bo_case * k) {
    (void)k;
    struct infvsr_tensor t;
    enum infvsr_status st;
    const size_t nb = 4096;
    unsigned char src[1000], got[4096 + 8];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(bo_rand(c) >> 24);
    infvsr_tensor_setup(&t, "t", INFVSR_TYPE_U8, 1, S1((int64_t)nb));
    if ((st = infvsr_backend_tensor_alloc(c->be, &t, &c->err)) != INFVSR_OK) return st;
    struct infvsr_backend_traffic t0, t1;
    infvsr_backend_get_traffic(c->be, &t0);
    if ((st = infvsr_backend_tensor_set(c->be, &t, src, 100, sizeof src, &c->err)) != INFVSR_OK) goto done;
    memset(got, 0x77, sizeof got);
    if ((st = get_sync(c, &t, got, 0, nb)) != INFVSR_OK) goto done;
    for (size_t i = 0; i < nb; i++) {
        unsigned char want = i >= 100 && i < 1100 ? src[i - 100] : 0;
        FAIL_IF(c, got[i] != want, "byte %zu after tensor_set(offset 100, 1000 bytes): %d, expected %d", i, got[i], want);
    }
    FAIL_IF(c, got[nb] != 0x77, "tensor_get wrote past the bytes asked for");
    memset(got, 0x77, sizeof got);
    if ((st = get_sync(c, &t, got, 150, 200)) != INFVSR_OK) goto done;
    FAIL_IF(c, memcmp(got, src + 50, 200) != 0 || got[200] != 0x77, "tensor_get(offset 150, 200 bytes) returned other bytes");
    infvsr_backend_get_traffic(c->be, &t1);
    FAIL_IF(c, t1.bytes_to_device - t0.bytes_to_device != sizeof src,
            "traffic: %llu bytes to the device counted, %zu moved",
            (unsigned long long)(t1.bytes_to_device - t0.bytes_to_device), sizeof src);
    FAIL_IF(c, t1.bytes_from_device - t0.bytes_from_device != nb + 200,
            "traffic: %llu bytes from the device counted, %zu moved",
            (unsigned long long)(t1.bytes_from_device - t0.bytes_from_device), nb + 200);
done:
    infvsr_backend_tensor_free(c->be, &t);
    if (st == INFVSR_OK && (t.data || t.owns_data)) {
        st = infvsr_err_set(&c->err, INFVSR_ERR_INVALID_ARG, "tensor_free left data %p, owns_data %d", t.data, t.owns_data);
    }
    return st;
}

/* Out-of-range transfers: INVALID_ARG, nothing moved, the backend still healthy. */
static enum infvsr_status run_out_of_range(struct bo_ctx * c, const struct bo_case * k) {
    (void)k;
    struct infvsr_tensor t;
    enum infvsr_status st;
    unsigned char buf[64] = { 0 };
    struct infvsr_err e;
    infvsr_tensor_setup(&t, "t", INFVSR_TYPE_F32, 2, S2(3, 5));
    if ((st = infvsr_backend_tensor_alloc(c->be, &t, &c->err)) != INFVSR_OK) return st;
    const struct { size_t off, n; bool set; } bad[] = {
        { 56, 8, false }, { 0, 61, true }, { 61, 0, false }, { SIZE_MAX, 2, true }, { 8, SIZE_MAX - 4, false },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        infvsr_err_clear(&e);
        enum infvsr_status r = bad[i].set ? infvsr_backend_tensor_set(c->be, &t, buf, bad[i].off, bad[i].n, &e)
                                          : infvsr_backend_tensor_get(c->be, &t, buf, bad[i].off, bad[i].n, &e);
        FAIL_IF(c, r != INFVSR_ERR_INVALID_ARG || !e.msg[0], "tensor_%s(offset %zu, %zu bytes) of a 60-byte tensor: %s \"%s\"",
                bad[i].set ? "set" : "get", bad[i].off, bad[i].n, infvsr_status_str(r), e.msg);
    }
    if ((st = infvsr_backend_synchronize(c->be, &c->err)) != INFVSR_OK) goto done;
    FAIL_IF(c, !infvsr_backend_healthy(c->be), "unhealthy after refused transfers: %s", infvsr_backend_last_error(c->be));
done:
    infvsr_backend_tensor_free(c->be, &t);
    return st;
}

/* A weight that was never imported (host memory) handed to a device backend. */
static enum infvsr_status run_host_tensor(struct bo_ctx * c, const struct bo_case * k) {
    (void)k;
    struct infvsr_tensor host;
    enum infvsr_status st;
    if (infvsr_tensor_alloc(&host, "host_x", INFVSR_TYPE_F32, 2, S2(4, 8)) != INFVSR_OK) {
        return infvsr_err_set(&c->err, INFVSR_ERR_NOMEM, "host alloc");
    }
    struct infvsr_tensor * y = bo_out(c, "y", INFVSR_TYPE_F32, 2, S2(4, 8));
    struct infvsr_err e;
    infvsr_err_clear(&e);
    st = INFVSR_OK;
    FAIL_IF(c, !y, "setup: %s", c->setup_msg);
    enum infvsr_status r = infvsr_op_unary(c->be, INFVSR_UNARY_SILU, &host, y, &e);
    FAIL_IF(c, r != INFVSR_ERR_INVALID_ARG || !strstr(e.msg, "host_x"), "a host tensor on %s: %s \"%s\"",
            infvsr_backend_name(c->be), infvsr_status_str(r), e.msg);
    FAIL_IF(c, !infvsr_backend_healthy(c->be), "unhealthy after a refused op");
done:
    infvsr_tensor_release(&host);
    return st;
}

static enum infvsr_status run_caps(struct bo_ctx * c, const struct bo_case * k) {
    (void)k;
    struct infvsr_backend_caps caps;
    struct infvsr_tensor t;
    enum infvsr_status st;
    infvsr_backend_get_caps(c->be, &caps);
    infvsr_tensor_setup(&t, "t", INFVSR_TYPE_F32, 1, S1(4));
    if ((st = infvsr_backend_tensor_alloc(c->be, &t, &c->err)) != INFVSR_OK) return st;
    FAIL_IF(c, !caps.name[0] || !caps.device[0], "caps without a name or device");
    FAIL_IF(c, strcmp(caps.name, infvsr_backend_name(c->be)) != 0, "caps.name '%s' != backend name '%s'", caps.name,
            infvsr_backend_name(c->be));
    FAIL_IF(c, caps.host_visible != (t.mem == INFVSR_MEM_HOST), "host_visible %d but tensors in %s memory",
            caps.host_visible, t.mem == INFVSR_MEM_HOST ? "host" : "device");
    FAIL_IF(c, !(caps.act_dtype == INFVSR_TYPE_F32 ? caps.act_f32 : caps.act_dtype == INFVSR_TYPE_BF16 && caps.act_bf16),
            "act_dtype %s is not one the backend accepts", infvsr_dtype_name(caps.act_dtype));
done:
    infvsr_backend_tensor_free(c->be, &t);
    return st;
}

void bo_cases_memory(struct bo_list * l) {
    const struct mem_p sizes[] = { { INFVSR_TYPE_F32, 1 }, { INFVSR_TYPE_BF16, 1001 }, { INFVSR_TYPE_U8, 100003 },
                                   { INFVSR_TYPE_F64, 4097 }, { INFVSR_TYPE_F32, 0 } };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct bo_case * k = bo_add(l, "memory", BO_SELF, run_zeroed, &sizes[i], sizeof sizes[i]);
        bo_desc(k, "tensor_alloc zero-fills %lld x %s", (long long)sizes[i].n, infvsr_dtype_name(sizes[i].dt));
        k->flags |= BO_ACT_FREE;
    }
    struct bo_case * k = bo_add(l, "memory", BO_SELF, run_set_get, NULL, 0);
    bo_desc(k, "tensor_set/get at offsets, traffic counters, tensor_free clears");
    k->flags |= BO_ACT_FREE;
    k = bo_add(l, "memory", BO_SELF, run_out_of_range, NULL, 0);
    bo_desc(k, "tensor_set/get outside the tensor refused");
    k->flags |= BO_ACT_FREE;
    k = bo_add(l, "memory", BO_SELF, run_host_tensor, NULL, 0);
    bo_desc(k, "a host tensor refused by name");
    k->flags |= BO_ACT_FREE | BO_DEVICE_ONLY;
    k = bo_add(l, "memory", BO_SELF, run_caps, NULL, 0);
    bo_desc(k, "capabilities agree with tensor memory");
}
