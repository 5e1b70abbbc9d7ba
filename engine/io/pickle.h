/* A restricted pickle machine for torch.save's data.pkl: it builds values, it never calls
 * anything. The only "callables" are an allow-list of torch/collections globals that
 * are interpreted here (OrderedDict(), _rebuild_tensor_v2, _rebuild_parameter, storage
 * classes); any other GLOBAL is an error naming it. All objects live in one registry
 * owned by the machine and are freed together by infvsr_pickle_free(), so reference
 * cycles created through the memo are harmless. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"
#include "infvsr/tensor.h"

enum infvsr_pk_type {
    INFVSR_PK_NONE = 0,
    INFVSR_PK_BOOL,
    INFVSR_PK_INT,
    INFVSR_PK_FLOAT,
    INFVSR_PK_STR,
    INFVSR_PK_BYTES,
    INFVSR_PK_TUPLE,
    INFVSR_PK_LIST,
    INFVSR_PK_DICT,    /* dict and OrderedDict; items are key, value pairs */
    INFVSR_PK_GLOBAL,  /* an allow-listed global, not yet called */
    INFVSR_PK_STORAGE, /* persistent id ('storage', class, key, location, numel) */
    INFVSR_PK_TENSOR,  /* _rebuild_tensor_v2 record */
};

enum infvsr_pk_global {
    INFVSR_PK_G_ORDERED_DICT = 0,
    INFVSR_PK_G_REBUILD_TENSOR_V2,
    INFVSR_PK_G_REBUILD_PARAMETER,
    INFVSR_PK_G_STORAGE_CLASS,
    /* Pure value constructors that torch.load(weights_only=True) also allows, seen in the
     * non-tensor extras of checkpoints: torch.Size(tuple) -> that tuple, builtins.set(list)
     * / frozenset(list) -> that list (protocol 2 has no set opcode). */
    INFVSR_PK_G_TORCH_SIZE,
    INFVSR_PK_G_SET,
};

struct infvsr_pk_obj {
    enum infvsr_pk_type type;
    uint32_t            depth; /* nesting depth: 1 for leaves, 1 + deepest child for containers */
    union {
        bool    b;
        int64_t i;
        double  f;
        struct {
            const char * s;    /* points into the pickle bytes; not NUL-terminated */
            size_t       len;
        } str;                 /* STR and BYTES */
        struct {
            struct infvsr_pk_obj ** items;
            size_t                  n, cap; /* DICT: n counts items, i.e. 2 per pair */
        } seq;                 /* TUPLE, LIST, DICT */
        struct {
            enum infvsr_pk_global kind;
            enum infvsr_dtype     dtype; /* STORAGE_CLASS only */
        } global;
        struct {
            enum infvsr_dtype dtype;
            const char *      key;
            size_t            key_len;
            int64_t           numel;
        } storage;
        struct {
            const struct infvsr_pk_obj * storage;
            int64_t                      offset;
            int                          ndim;
            int64_t                      size[INFVSR_MAX_DIMS];
            int64_t                      stride[INFVSR_MAX_DIMS];
        } tensor;
    } u;
};

/* Limits on hostile input; each violation is an error naming the opcode and offset. */
#define INFVSR_PK_MAX_STACK   (1u << 17)  /* torch.save batches SETITEMS by 1000 pairs */
#define INFVSR_PK_MAX_MEMO    (1u << 20)
#define INFVSR_PK_MAX_OBJECTS (1u << 21)
#define INFVSR_PK_MAX_DEPTH   64
#define INFVSR_PK_MAX_STRING  (1u << 20)

struct infvsr_pickle {
    const uint8_t *         data;
    size_t                  size, pos;
    struct infvsr_pk_obj ** stack;
    size_t                  sp, stack_cap;
    size_t *                marks;
    size_t                  n_marks, marks_cap;
    struct infvsr_pk_obj ** memo;
    size_t                  memo_cap, memo_len;
    struct infvsr_pk_obj ** all;
    size_t                  n_all, all_cap;
    struct infvsr_pk_obj *  result;
};

/* Runs the pickle in data[0, size) (which must outlive the machine: strings point into
 * it). On success vm->result is the unpickled object. Always call infvsr_pickle_free. */
enum infvsr_status infvsr_pickle_run(struct infvsr_pickle * vm, const uint8_t * data, size_t size,
                                     struct infvsr_err * err);
void               infvsr_pickle_free(struct infvsr_pickle * vm);
