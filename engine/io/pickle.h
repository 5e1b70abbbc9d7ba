/* A restricted pickle machine for torch.save's pickles: it builds values, it never calls,
 * imports or executes anything. A small allow-list of torch/collections globals is
 * interpreted here (OrderedDict(), the tensor rebuild functions, storage classes, dtypes,
 * torch.Size, set); any other GLOBAL is an inert placeholder, and calling, instantiating
 * or BUILDing one yields an inert OBJECT that remembers the callable's name. Metadata next
 * to the weights (argparse.Namespace, numpy scalars, _codecs.encode, OrderedDict subclasses,
 * ...) therefore never matters. A tensor rebuild that cannot be interpreted (an unknown
 * callable, a placeholder where a storage or a size belongs, a malformed record) becomes
 * an ERROR object carrying its message (opcode and offset); the walker reports it with the
 * key path where it sits. All objects live in one registry owned by the machine and are
 * freed together by infvsr_pickle_free(), so reference cycles made through the memo are
 * harmless. */
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
    INFVSR_PK_TENSOR,  /* a rebuilt tensor record (_rebuild_tensor / _v2 / _v3, parameters) */
    INFVSR_PK_OBJECT,  /* inert instance of an unknown global: REDUCE/NEWOBJ of a placeholder */
    INFVSR_PK_ERROR,   /* a tensor rebuild that failed; u.error holds the message */
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
    INFVSR_PK_G_REBUILD_TENSOR_V1,     /* torch._utils._rebuild_tensor (pre-1.0 records) */
    INFVSR_PK_G_REBUILD_TENSOR_V3,     /* torch._utils._rebuild_tensor_v3 (untyped storage + dtype) */
    INFVSR_PK_G_REBUILD_PARAMETER_STATE, /* torch._utils._rebuild_parameter_with_state */
    INFVSR_PK_G_REBUILD_FROM_TYPE_V2,  /* torch._tensor._rebuild_from_type_v2(func, type, args, state) */
    INFVSR_PK_G_DTYPE,                 /* torch.float32 & co. (u.global.dtype) */
    INFVSR_PK_G_UNKNOWN,               /* anything else: an inert placeholder (ref names it) */
};

struct infvsr_pk_obj {
    enum infvsr_pk_type type;
    uint32_t            depth; /* nesting depth: 1 for leaves, 1 + deepest child for containers */
    bool                has_tensor; /* it is, or (transitively) contains, a storage/tensor/error */
    bool                obj_dict;   /* OBJECT: items came from SETITEM(S) (a dict subclass) */
    bool                obj_list;   /* OBJECT: items came from APPEND(S) */
    uint8_t             op;         /* opcode that made it (OBJECT, ERROR) */
    size_t              at;         /* file offset of the opcode that made it (OBJECT, ERROR) */
    struct {
        const char * mod, * name; /* GLOBAL (UNKNOWN) and OBJECT: the global's name, in the data */
        uint16_t     mod_len, name_len;
    } ref;
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
        } seq;                 /* TUPLE, LIST, DICT, OBJECT */
        struct {
            enum infvsr_pk_global kind;
            enum infvsr_dtype     dtype;   /* STORAGE_CLASS and DTYPE */
            bool                  untyped; /* STORAGE_CLASS: torch.UntypedStorage (numel counts bytes) */
        } global;
        struct {
            enum infvsr_dtype dtype;
            const char *      key;
            size_t            key_len;
            int64_t           numel;  /* elements of dtype (bytes when untyped) */
            int64_t           base;   /* legacy view_metadata: element offset into the root storage */
            int64_t           root_numel; /* the root storage's numel (== numel without a view) */
            bool              untyped;
        } storage;
        struct {
            const struct infvsr_pk_obj * storage;
            enum infvsr_dtype            dtype;  /* the storage's, or _rebuild_tensor_v3's argument */
            int64_t                      offset; /* in elements of dtype */
            int                          ndim;
            int64_t                      size[INFVSR_MAX_DIMS];
            int64_t                      stride[INFVSR_MAX_DIMS];
        } tensor;
        char * error;          /* ERROR: malloc'd message naming the opcode and offset */
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
    size_t                  base; /* offset of data[0] in the file, for messages */
    int                     protocol; /* from the PROTO opcode (0 when absent) */
};

/* Runs the pickle in data[0, size) (which must outlive the machine: strings point into
 * it). On success vm->result is the unpickled object and vm->pos the offset just past its
 * STOP opcode (the legacy format has several pickles back to back). `base` is added to
 * the offsets in error messages. Always call infvsr_pickle_free. */
enum infvsr_status infvsr_pickle_run(struct infvsr_pickle * vm, const uint8_t * data, size_t size,
                                     struct infvsr_err * err);
enum infvsr_status infvsr_pickle_run_at(struct infvsr_pickle * vm, const uint8_t * data, size_t size, size_t base,
                                        struct infvsr_err * err);

const char * infvsr_pickle_op_name(int op);
/* "module.name" of a GLOBAL/OBJECT placeholder, or the type's name, for messages. */
const char * infvsr_pickle_describe(const struct infvsr_pk_obj * o, char * buf, size_t len);
void               infvsr_pickle_free(struct infvsr_pickle * vm);
