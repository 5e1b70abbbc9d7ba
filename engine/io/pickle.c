/* Restricted pickle VM (protocols 2-5) for torch.save's data.pkl.
 *
 * What it reads: `python3 -m pickletools` of a two-tensor state dict written by torch 1.13
 * (torch.save(OrderedDict(...)); the second tensor is abridged the same way):
 *
 *     0: \x80 PROTO      2
 *     2: c    GLOBAL     'collections OrderedDict'
 *    27: q    BINPUT     0
 *    29: )    EMPTY_TUPLE
 *    30: R    REDUCE                       -> the state dict, an empty OrderedDict
 *    31: q    BINPUT     1
 *    33: (    MARK
 *    34: X        BINUNICODE 'blocks.0.norm.weight'
 *    59: q        BINPUT     2
 *    61: c        GLOBAL     'torch._utils _rebuild_tensor_v2'
 *    94: q        BINPUT     3
 *    96: (        MARK
 *    97: (            MARK
 *    98: X                BINUNICODE 'storage'
 *   110: q                BINPUT     4
 *   112: c                GLOBAL     'torch BFloat16Storage'
 *   135: q                BINPUT     5
 *   137: X                BINUNICODE '0'          -> zip entry <prefix>/data/0
 *   143: q                BINPUT     6
 *   145: X                BINUNICODE 'cpu'
 *   153: q                BINPUT     7
 *   155: K                BININT1    4            -> storage numel
 *   157: t                TUPLE      (MARK at 97)
 *   158: q            BINPUT     8
 *   160: Q            BINPERSID                   -> storage object
 *   161: K            BININT1    0                -> storage offset
 *   163: K            BININT1    4
 *   165: \x85         TUPLE1                      -> size (4,)
 *   166: q            BINPUT     9
 *   168: K            BININT1    1
 *   170: \x85         TUPLE1                      -> stride (1,)
 *   171: q            BINPUT     10
 *   173: \x89         NEWFALSE                    -> requires_grad
 *   174: h            BINGET     0
 *   176: )            EMPTY_TUPLE
 *   177: R            REDUCE                      -> backward_hooks = OrderedDict()
 *   178: q            BINPUT     11
 *   180: t            TUPLE      (MARK at 96)
 *   181: q        BINPUT     12
 *   183: R        REDUCE                          -> tensor record
 *   184: q        BINPUT     13
 *   186: X        BINUNICODE 'blocks.0.proj.weight'
 *   ...           (same shape of record, BINGET 3 / BINGET 4 reuse memoized objects)
 *   284: q        BINPUT     22
 *   286: u        SETITEMS   (MARK at 33)
 *   287: .    STOP
 *
 * Semantics follow CPython's Lib/pickle.py (_Unpickler): MARK pushes the stack height on a
 * mark stack, and opcodes that pop can never reach below the innermost mark. */
#include "io/pickle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/mapped_file.h"

/* Opcode bytes (pickletools names). */
enum {
    OP_MARK = '(', OP_STOP = '.', OP_BININT = 'J', OP_BININT1 = 'K', OP_BININT2 = 'M', OP_NONE = 'N',
    OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b',
    OP_GLOBAL = 'c', OP_APPENDS = 'e', OP_BINGET = 'h', OP_LONG_BINGET = 'j', OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't', OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
    OP_EMPTY_TUPLE = ')', OP_EMPTY_LIST = ']', OP_EMPTY_DICT = '}', OP_BINBYTES = 'B',
    OP_SHORT_BINBYTES = 'C', OP_PROTO = 0x80, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE8 = 0x8d, OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94, OP_FRAME = 0x95,
    /* data-only opcodes that generic extras next to the weights may use (sets in protocol 4,
     * Python 2 byte strings, large ints); they build values and call nothing */
    OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2', OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U',
    OP_LONG4 = 0x8b, OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f, OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91,
    OP_BYTEARRAY8 = 0x96,
    /* object construction (REDUCE's siblings): placeholders in, inert objects out */
    OP_NEWOBJ = 0x81, OP_NEWOBJ_EX = 0x92, OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84,
    /* protocol 5 out-of-band buffers (never written by torch.save: no buffer_callback) */
    OP_NEXT_BUFFER = 0x97, OP_READONLY_BUFFER = 0x98,
    /* text opcodes of protocols 0/1, which protocol 2+ pickles may still contain when a
     * __reduce__ result was pickled by an old writer or by hand */
    OP_INT = 'I', OP_LONG = 'L', OP_FLOAT = 'F', OP_STRING = 'S', OP_UNICODE = 'V', OP_PERSID = 'P',
    OP_GET = 'g', OP_PUT = 'p', OP_DICT = 'd', OP_LIST = 'l', OP_INST = 'i', OP_OBJ = 'o',
};

static const char * op_name(int op) {
    switch (op) {
        case OP_MARK: return "MARK"; case OP_STOP: return "STOP"; case OP_BININT: return "BININT";
        case OP_BININT1: return "BININT1"; case OP_BININT2: return "BININT2"; case OP_NONE: return "NONE";
        case OP_BINPERSID: return "BINPERSID"; case OP_REDUCE: return "REDUCE";
        case OP_BINUNICODE: return "BINUNICODE"; case OP_APPEND: return "APPEND"; case OP_BUILD: return "BUILD";
        case OP_GLOBAL: return "GLOBAL"; case OP_APPENDS: return "APPENDS"; case OP_BINGET: return "BINGET";
        case OP_LONG_BINGET: return "LONG_BINGET"; case OP_BINPUT: return "BINPUT";
        case OP_LONG_BINPUT: return "LONG_BINPUT"; case OP_SETITEM: return "SETITEM"; case OP_TUPLE: return "TUPLE";
        case OP_SETITEMS: return "SETITEMS"; case OP_BINFLOAT: return "BINFLOAT";
        case OP_EMPTY_TUPLE: return "EMPTY_TUPLE"; case OP_EMPTY_LIST: return "EMPTY_LIST";
        case OP_EMPTY_DICT: return "EMPTY_DICT"; case OP_BINBYTES: return "BINBYTES";
        case OP_SHORT_BINBYTES: return "SHORT_BINBYTES"; case OP_PROTO: return "PROTO";
        case OP_TUPLE1: return "TUPLE1"; case OP_TUPLE2: return "TUPLE2"; case OP_TUPLE3: return "TUPLE3";
        case OP_NEWTRUE: return "NEWTRUE"; case OP_NEWFALSE: return "NEWFALSE"; case OP_LONG1: return "LONG1";
        case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE"; case OP_BINUNICODE8: return "BINUNICODE8";
        case OP_STACK_GLOBAL: return "STACK_GLOBAL"; case OP_MEMOIZE: return "MEMOIZE"; case OP_FRAME: return "FRAME";
        case OP_POP: return "POP"; case OP_POP_MARK: return "POP_MARK"; case OP_DUP: return "DUP";
        case OP_BINSTRING: return "BINSTRING"; case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
        case OP_LONG4: return "LONG4"; case OP_BINBYTES8: return "BINBYTES8"; case OP_EMPTY_SET: return "EMPTY_SET";
        case OP_ADDITEMS: return "ADDITEMS"; case OP_FROZENSET: return "FROZENSET"; case OP_BYTEARRAY8: return "BYTEARRAY8";
        case OP_NEWOBJ: return "NEWOBJ"; case OP_NEWOBJ_EX: return "NEWOBJ_EX"; case OP_EXT1: return "EXT1";
        case OP_EXT2: return "EXT2"; case OP_EXT4: return "EXT4"; case OP_NEXT_BUFFER: return "NEXT_BUFFER";
        case OP_READONLY_BUFFER: return "READONLY_BUFFER"; case OP_INT: return "INT"; case OP_LONG: return "LONG";
        case OP_FLOAT: return "FLOAT"; case OP_STRING: return "STRING"; case OP_UNICODE: return "UNICODE";
        case OP_PERSID: return "PERSID"; case OP_GET: return "GET"; case OP_PUT: return "PUT"; case OP_DICT: return "DICT";
        case OP_LIST: return "LIST"; case OP_INST: return "INST"; case OP_OBJ: return "OBJ";
    }
    return "?";
}

const char * infvsr_pickle_op_name(int op) { return op_name(op); }

static const char * type_name(enum infvsr_pk_type t) {
    static const char * names[] = { "None", "bool", "int", "float", "str", "bytes", "tuple", "list",
                                    "dict", "global", "storage", "tensor", "object", "bad tensor" };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Context of the opcode being executed, for error messages. */
struct op_ctx {
    struct infvsr_pickle * vm;
    int                    op;
    size_t                 at; /* byte offset of the opcode */
    struct infvsr_err *    err;
};

#define FAIL(c, fmt, ...)                                                                        \
    infvsr_err_set((c)->err, INFVSR_ERR_FORMAT, "pickle: " fmt " (opcode %s at offset %zu)",     \
                   __VA_ARGS__, op_name((c)->op), (c)->vm->base + (c)->at)

const char * infvsr_pickle_describe(const struct infvsr_pk_obj * o, char * buf, size_t len) {
    if ((o->type == INFVSR_PK_GLOBAL && o->u.global.kind == INFVSR_PK_G_UNKNOWN) || o->type == INFVSR_PK_OBJECT) {
        snprintf(buf, len, "%s '%.*s.%.*s'", o->type == INFVSR_PK_OBJECT ? "an object made by" : "a placeholder for global",
                 o->ref.mod_len, o->ref.mod, o->ref.name_len, o->ref.name);
    } else {
        const char * t = type_name(o->type);
        snprintf(buf, len, "%s %s", strchr("aeiou", t[0]) ? "an" : "a", t);
    }
    return buf;
}

/* ---- objects ------------------------------------------------------------------------ */

static enum infvsr_status new_obj(struct op_ctx * c, enum infvsr_pk_type type, struct infvsr_pk_obj ** out) {
    struct infvsr_pickle * vm = c->vm;
    if (vm->n_all >= INFVSR_PK_MAX_OBJECTS) return FAIL(c, "more than %u objects", INFVSR_PK_MAX_OBJECTS);
    if (vm->n_all == vm->all_cap) {
        size_t cap = vm->all_cap ? vm->all_cap * 2 : 1024;
        void * p   = realloc(vm->all, cap * sizeof *vm->all);
        if (!p) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
        vm->all     = p;
        vm->all_cap = cap;
    }
    struct infvsr_pk_obj * o = calloc(1, sizeof *o);
    if (!o) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
    o->type  = type;
    o->depth = 1;
    vm->all[vm->n_all++] = o;
    *out = o;
    return INFVSR_OK;
}

static enum infvsr_status seq_push(struct op_ctx * c, struct infvsr_pk_obj * s, struct infvsr_pk_obj * item) {
    if (item->depth + 1 > INFVSR_PK_MAX_DEPTH) return FAIL(c, "nesting deeper than %d levels", INFVSR_PK_MAX_DEPTH);
    if (s->u.seq.n == s->u.seq.cap) {
        size_t cap = s->u.seq.cap ? s->u.seq.cap * 2 : 4;
        void * p   = realloc(s->u.seq.items, cap * sizeof *s->u.seq.items);
        if (!p) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
        s->u.seq.items = p;
        s->u.seq.cap   = cap;
    }
    s->u.seq.items[s->u.seq.n++] = item;
    if (item->depth + 1 > s->depth) s->depth = item->depth + 1;
    s->has_tensor |= item->has_tensor;
    return INFVSR_OK;
}

/* ---- stack, marks and memo ---------------------------------------------------------- */

static size_t stack_floor(const struct infvsr_pickle * vm) {
    return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
}

static enum infvsr_status push(struct op_ctx * c, struct infvsr_pk_obj * o) {
    struct infvsr_pickle * vm = c->vm;
    if (vm->sp >= INFVSR_PK_MAX_STACK) return FAIL(c, "stack deeper than %u", INFVSR_PK_MAX_STACK);
    if (vm->sp == vm->stack_cap) {
        size_t cap = vm->stack_cap ? vm->stack_cap * 2 : 256;
        void * p   = realloc(vm->stack, cap * sizeof *vm->stack);
        if (!p) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
        vm->stack     = p;
        vm->stack_cap = cap;
    }
    vm->stack[vm->sp++] = o;
    return INFVSR_OK;
}

static enum infvsr_status push_new(struct op_ctx * c, enum infvsr_pk_type type, struct infvsr_pk_obj ** out) {
    enum infvsr_status st = new_obj(c, type, out);
    return st ? st : push(c, *out);
}

/* Pops n objects (they stay valid: the registry owns them); returns a pointer to them. */
static enum infvsr_status pop_n(struct op_ctx * c, size_t n, struct infvsr_pk_obj *** items) {
    struct infvsr_pickle * vm = c->vm;
    if (vm->sp - stack_floor(vm) < n) return FAIL(c, "stack underflow: need %zu items, have %zu", n, vm->sp - stack_floor(vm));
    vm->sp -= n;
    *items = vm->stack + vm->sp;
    return INFVSR_OK;
}

static enum infvsr_status pop1(struct op_ctx * c, struct infvsr_pk_obj ** o) {
    struct infvsr_pk_obj ** p = NULL;
    enum infvsr_status      st = pop_n(c, 1, &p);
    if (!st) *o = p[0];
    return st;
}

static enum infvsr_status top(struct op_ctx * c, struct infvsr_pk_obj ** o) {
    struct infvsr_pickle * vm = c->vm;
    if (vm->sp - stack_floor(vm) < 1) return FAIL(c, "stack underflow: %s", "empty stack");
    *o = vm->stack[vm->sp - 1];
    return INFVSR_OK;
}

/* Pops everything above the innermost mark, and the mark. */
static enum infvsr_status pop_mark(struct op_ctx * c, struct infvsr_pk_obj *** items, size_t * n) {
    struct infvsr_pickle * vm = c->vm;
    if (vm->n_marks == 0) return FAIL(c, "no MARK on the stack%s", "");
    size_t m = vm->marks[--vm->n_marks];
    *n       = vm->sp - m;
    *items   = vm->stack + m;
    vm->sp   = m;
    return INFVSR_OK;
}

static enum infvsr_status memo_put(struct op_ctx * c, uint64_t idx) {
    struct infvsr_pickle * vm = c->vm;
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st = top(c, &o);
    if (st) return st;
    if (idx >= INFVSR_PK_MAX_MEMO) return FAIL(c, "memo index %llu exceeds the limit %u", (unsigned long long)idx, INFVSR_PK_MAX_MEMO);
    if (idx >= vm->memo_cap) {
        size_t cap = vm->memo_cap ? vm->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        void * p = realloc(vm->memo, cap * sizeof *vm->memo);
        if (!p) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
        memset((struct infvsr_pk_obj **)p + vm->memo_cap, 0, (cap - vm->memo_cap) * sizeof *vm->memo);
        vm->memo     = p;
        vm->memo_cap = cap;
    }
    if (!vm->memo[idx]) vm->memo_len++;
    vm->memo[idx] = o;
    return INFVSR_OK;
}

static enum infvsr_status memo_get(struct op_ctx * c, uint64_t idx) {
    struct infvsr_pickle * vm = c->vm;
    if (idx >= vm->memo_cap || !vm->memo[idx]) return FAIL(c, "memo index %llu was never set", (unsigned long long)idx);
    return push(c, vm->memo[idx]);
}

/* ---- argument readers ---------------------------------------------------------------- */

static enum infvsr_status take(struct op_ctx * c, uint64_t n, const uint8_t ** p) {
    struct infvsr_pickle * vm = c->vm;
    if (!infvsr__range_ok(vm->pos, n, vm->size)) {
        return FAIL(c, "argument of %llu bytes runs past the end of the pickle (%zu bytes)", (unsigned long long)n, vm->size);
    }
    *p = vm->data + vm->pos;
    vm->pos += (size_t)n;
    return INFVSR_OK;
}

static enum infvsr_status push_string(struct op_ctx * c, enum infvsr_pk_type type, uint64_t len) {
    if (len > INFVSR_PK_MAX_STRING) return FAIL(c, "string of %llu bytes exceeds the limit %u", (unsigned long long)len, INFVSR_PK_MAX_STRING);
    const uint8_t *        p = NULL;
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st = take(c, len, &p);
    if (!st) st = push_new(c, type, &o);
    if (!st) {
        o->u.str.s   = (const char *)p;
        o->u.str.len = (size_t)len;
    }
    return st;
}

static enum infvsr_status push_int(struct op_ctx * c, int64_t v) {
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st = push_new(c, INFVSR_PK_INT, &o);
    if (!st) o->u.i = v;
    return st;
}

static enum infvsr_status push_tuple(struct op_ctx * c, struct infvsr_pk_obj ** items, size_t n) {
    struct infvsr_pk_obj * t = NULL;
    /* items point into the stack above sp; copy them before pushing the tuple over them */
    struct infvsr_pk_obj * tmp[3];
    struct infvsr_pk_obj ** src = items;
    if (n <= 3) {
        if (n) memcpy(tmp, items, n * sizeof *items);
        src = tmp;
    }
    enum infvsr_status st = new_obj(c, INFVSR_PK_TUPLE, &t);
    for (size_t i = 0; !st && i < n; i++) st = seq_push(c, t, src[i]);
    return st ? st : push(c, t);
}

/* ---- globals ------------------------------------------------------------------------ */

struct storage_class {
    const char *      name;
    enum infvsr_dtype dtype;
};
static const struct storage_class storage_classes[] = {
    { "BFloat16Storage", INFVSR_TYPE_BF16 }, { "HalfStorage", INFVSR_TYPE_F16 },
    { "FloatStorage", INFVSR_TYPE_F32 },     { "DoubleStorage", INFVSR_TYPE_F64 },
    { "LongStorage", INFVSR_TYPE_I64 },      { "IntStorage", INFVSR_TYPE_I32 },
    { "ShortStorage", INFVSR_TYPE_I16 },     { "CharStorage", INFVSR_TYPE_I8 },
    { "ByteStorage", INFVSR_TYPE_U8 },       { "BoolStorage", INFVSR_TYPE_BOOL },
};

static bool span_eq(const char * s, size_t n, const char * lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

struct known_global {
    const char *          mod, * name;
    enum infvsr_pk_global kind;
    enum infvsr_dtype     dtype; /* STORAGE_CLASS, DTYPE */
    bool                  untyped;
};
static const struct known_global known_globals[] = {
    { "collections", "OrderedDict", INFVSR_PK_G_ORDERED_DICT, 0, false },
    { "torch._utils", "_rebuild_tensor", INFVSR_PK_G_REBUILD_TENSOR_V1, 0, false },
    { "torch._utils", "_rebuild_tensor_v2", INFVSR_PK_G_REBUILD_TENSOR_V2, 0, false },
    { "torch._utils", "_rebuild_tensor_v3", INFVSR_PK_G_REBUILD_TENSOR_V3, 0, false },
    { "torch._utils", "_rebuild_parameter", INFVSR_PK_G_REBUILD_PARAMETER, 0, false },
    { "torch._utils", "_rebuild_parameter_with_state", INFVSR_PK_G_REBUILD_PARAMETER_STATE, 0, false },
    { "torch._tensor", "_rebuild_from_type_v2", INFVSR_PK_G_REBUILD_FROM_TYPE_V2, 0, false },
    { "torch", "Size", INFVSR_PK_G_TORCH_SIZE, 0, false },
    { "builtins", "set", INFVSR_PK_G_SET, 0, false },
    { "builtins", "frozenset", INFVSR_PK_G_SET, 0, false },
    { "__builtin__", "set", INFVSR_PK_G_SET, 0, false },
    { "__builtin__", "frozenset", INFVSR_PK_G_SET, 0, false },
    /* torch 2.x persistent ids of untyped storages: numel counts bytes */
    { "torch", "UntypedStorage", INFVSR_PK_G_STORAGE_CLASS, INFVSR_TYPE_U8, true },
    { "torch", "_UntypedStorage", INFVSR_PK_G_STORAGE_CLASS, INFVSR_TYPE_U8, true },
    { "torch.storage", "UntypedStorage", INFVSR_PK_G_STORAGE_CLASS, INFVSR_TYPE_U8, true },
    { "torch.storage", "_UntypedStorage", INFVSR_PK_G_STORAGE_CLASS, INFVSR_TYPE_U8, true },
    /* dtypes (arguments of _rebuild_tensor_v3 and of torch 2.x typed-storage records) */
    { "torch", "float32", INFVSR_PK_G_DTYPE, INFVSR_TYPE_F32, false },
    { "torch", "float", INFVSR_PK_G_DTYPE, INFVSR_TYPE_F32, false },
    { "torch", "float16", INFVSR_PK_G_DTYPE, INFVSR_TYPE_F16, false },
    { "torch", "half", INFVSR_PK_G_DTYPE, INFVSR_TYPE_F16, false },
    { "torch", "bfloat16", INFVSR_PK_G_DTYPE, INFVSR_TYPE_BF16, false },
    { "torch", "float64", INFVSR_PK_G_DTYPE, INFVSR_TYPE_F64, false },
    { "torch", "double", INFVSR_PK_G_DTYPE, INFVSR_TYPE_F64, false },
    { "torch", "int64", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I64, false },
    { "torch", "long", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I64, false },
    { "torch", "int32", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I32, false },
    { "torch", "int", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I32, false },
    { "torch", "int16", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I16, false },
    { "torch", "short", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I16, false },
    { "torch", "int8", INFVSR_PK_G_DTYPE, INFVSR_TYPE_I8, false },
    { "torch", "uint8", INFVSR_PK_G_DTYPE, INFVSR_TYPE_U8, false },
    { "torch", "bool", INFVSR_PK_G_DTYPE, INFVSR_TYPE_BOOL, false },
};

static enum infvsr_status push_global(struct op_ctx * c, const char * mod, size_t mod_len, const char * name,
                                      size_t name_len) {
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st = push_new(c, INFVSR_PK_GLOBAL, &o);
    if (st) return st;
    for (size_t i = 0; i < sizeof known_globals / sizeof known_globals[0]; i++) {
        if (span_eq(mod, mod_len, known_globals[i].mod) && span_eq(name, name_len, known_globals[i].name)) {
            o->u.global.kind    = known_globals[i].kind;
            o->u.global.dtype   = known_globals[i].dtype;
            o->u.global.untyped = known_globals[i].untyped;
            return INFVSR_OK;
        }
    }
    /* torch.FloatStorage & co., and the legacy format's torch.cuda.FloatStorage (a file saved
     * from a GPU; the location string is ignored, as torch.load(map_location='cpu') does) */
    const char * cls = NULL;
    size_t       cls_len = 0;
    if (span_eq(mod, mod_len, "torch") || span_eq(mod, mod_len, "torch.cuda")) cls = name, cls_len = name_len;
    for (size_t i = 0; cls && i < sizeof storage_classes / sizeof storage_classes[0]; i++) {
        if (span_eq(cls, cls_len, storage_classes[i].name)) {
            o->u.global.kind  = INFVSR_PK_G_STORAGE_CLASS;
            o->u.global.dtype = storage_classes[i].dtype;
            return INFVSR_OK;
        }
    }
    /* Anything else is an inert placeholder: never imported, never called. */
    o->u.global.kind = INFVSR_PK_G_UNKNOWN;
    o->ref.mod       = mod;
    o->ref.mod_len   = (uint16_t)(mod_len > 0xffff ? 0xffff : mod_len);
    o->ref.name      = name;
    o->ref.name_len  = (uint16_t)(name_len > 0xffff ? 0xffff : name_len);
    /* torch's own rebuild helpers that we do not interpret (quantized, sparse, nested,
     * meta tensors...) make tensors: flag them so that a walked entry reports it. */
    o->has_tensor = mod_len >= 5 && memcmp(mod, "torch", 5) == 0 && name_len >= 8 && memcmp(name, "_rebuild", 8) == 0;
    return INFVSR_OK;
}

/* GLOBAL's argument: "module\nname\n". */
static enum infvsr_status op_global(struct op_ctx * c) {
    struct infvsr_pickle * vm = c->vm;
    const char *           parts[2];
    size_t                 lens[2];
    for (int k = 0; k < 2; k++) {
        const char * s   = (const char *)vm->data + vm->pos;
        size_t       max = vm->size - vm->pos < 256 ? vm->size - vm->pos : 256;
        const char * nl  = memchr(s, '\n', max);
        if (!nl) return FAIL(c, "unterminated or over-long %s name", k ? "global" : "module");
        parts[k] = s;
        lens[k]  = (size_t)(nl - s);
        vm->pos += lens[k] + 1;
    }
    return push_global(c, parts[0], lens[0], parts[1], lens[1]);
}

static enum infvsr_status op_stack_global(struct op_ctx * c) {
    struct infvsr_pk_obj ** it = NULL;
    enum infvsr_status      st = pop_n(c, 2, &it);
    if (st) return st;
    struct infvsr_pk_obj * mod = it[0], * name = it[1];
    if (mod->type != INFVSR_PK_STR || name->type != INFVSR_PK_STR) return FAIL(c, "module and name must be str, got %s and %s", type_name(mod->type), type_name(name->type));
    return push_global(c, mod->u.str.s, mod->u.str.len, name->u.str.s, name->u.str.len);
}

/* ---- calls -------------------------------------------------------------------------- */

/* A tensor rebuild that cannot be interpreted: an ERROR object with the message (the walker
 * adds the key path). The pickle goes on: an entry nobody walks to never matters. */
static enum infvsr_status push_error(struct op_ctx * c, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
static enum infvsr_status push_error(struct op_ctx * c, const char * fmt, ...) {
    char    msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct infvsr_pk_obj * e = NULL;
    enum infvsr_status     st = push_new(c, INFVSR_PK_ERROR, &e);
    if (st) return st;
    size_t len = strlen(msg) + 64;
    e->u.error = malloc(len);
    if (!e->u.error) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
    snprintf(e->u.error, len, "%s (opcode %s at offset %zu)", msg, op_name(c->op), c->vm->base + c->at);
    e->has_tensor = true;
    e->at         = c->vm->base + c->at;
    return INFVSR_OK;
}

/* An inert instance made by calling/instantiating placeholder `fn` with `args`. */
static enum infvsr_status push_object(struct op_ctx * c, const struct infvsr_pk_obj * fn, const struct infvsr_pk_obj * args) {
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st = push_new(c, INFVSR_PK_OBJECT, &o);
    if (st) return st;
    o->ref        = fn->ref;
    o->op         = (uint8_t)c->op;
    o->at         = c->vm->base + c->at;
    o->has_tensor = fn->has_tensor || (args && args->has_tensor);
    return INFVSR_OK;
}

/* Checks that t is a tuple of ints; else describes the offending item into why. */
static bool int_tuple(const struct infvsr_pk_obj * t, char * why, size_t len) {
    char d[200];
    if (t->type != INFVSR_PK_TUPLE) {
        snprintf(why, len, "is %s, not a tuple of ints", infvsr_pickle_describe(t, d, sizeof d));
        return false;
    }
    for (size_t i = 0; i < t->u.seq.n; i++) {
        if (t->u.seq.items[i]->type != INFVSR_PK_INT) {
            snprintf(why, len, "item %zu is %s, not an int", i, infvsr_pickle_describe(t->u.seq.items[i], d, sizeof d));
            return false;
        }
    }
    return true;
}

/* _rebuild_tensor(storage, storage_offset, size, stride)                  (v1, 4 arguments)
 * _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
 * _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype[, metadata]) */
static enum infvsr_status rebuild_tensor(struct op_ctx * c, enum infvsr_pk_global kind, const struct infvsr_pk_obj * args) {
    const char * fn = kind == INFVSR_PK_G_REBUILD_TENSOR_V1 ? "_rebuild_tensor"
                      : kind == INFVSR_PK_G_REBUILD_TENSOR_V2 ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3";
    size_t n = args->u.seq.n, lo = 4, hi = 4;
    if (kind == INFVSR_PK_G_REBUILD_TENSOR_V2) lo = 6, hi = 7;
    if (kind == INFVSR_PK_G_REBUILD_TENSOR_V3) lo = 7, hi = 8;
    if (n < lo || n > hi) return push_error(c, "%s takes %zu to %zu arguments, got %zu", fn, lo, hi, n);
    struct infvsr_pk_obj * const * a = args->u.seq.items;
    char d[200], why[240];
    if (a[0]->type == INFVSR_PK_ERROR) return push(c, a[0]); /* the storage's own error says more */
    if (a[0]->type != INFVSR_PK_STORAGE) {
        return push_error(c, "%s: argument 0 is %s, not a storage", fn, infvsr_pickle_describe(a[0], d, sizeof d));
    }
    if (a[1]->type != INFVSR_PK_INT || a[1]->u.i < 0) {
        return push_error(c, "%s: storage offset is %s, not a non-negative int", fn, infvsr_pickle_describe(a[1], d, sizeof d));
    }
    if (!int_tuple(a[2], why, sizeof why)) return push_error(c, "%s: size %s", fn, why);
    if (!int_tuple(a[3], why, sizeof why)) return push_error(c, "%s: stride %s", fn, why);
    if (a[2]->u.seq.n != a[3]->u.seq.n) {
        return push_error(c, "%s: size has %zu dims but stride %zu", fn, a[2]->u.seq.n, a[3]->u.seq.n);
    }
    size_t ndim = a[2]->u.seq.n;
    if (ndim > INFVSR_MAX_DIMS) return push_error(c, "%s: rank %zu exceeds the maximum %d", fn, ndim, INFVSR_MAX_DIMS);
    enum infvsr_dtype dtype = a[0]->u.storage.dtype;
    if (kind == INFVSR_PK_G_REBUILD_TENSOR_V3) {
        if (a[6]->type != INFVSR_PK_GLOBAL || a[6]->u.global.kind != INFVSR_PK_G_DTYPE) {
            return push_error(c, "%s: dtype is %s, not a supported torch dtype", fn, infvsr_pickle_describe(a[6], d, sizeof d));
        }
        dtype = a[6]->u.global.dtype;
    } else if (a[0]->u.storage.untyped) {
        return push_error(c, "%s: an untyped storage needs _rebuild_tensor_v3's dtype", fn);
    }
    for (size_t i = 0; i < ndim; i++) {
        if (a[2]->u.seq.items[i]->u.i < 0) return push_error(c, "%s: negative size %lld in dim %zu", fn, (long long)a[2]->u.seq.items[i]->u.i, i);
        if (a[3]->u.seq.items[i]->u.i < 0) return push_error(c, "%s: negative stride %lld in dim %zu", fn, (long long)a[3]->u.seq.items[i]->u.i, i);
    }
    struct infvsr_pk_obj * t = NULL;
    enum infvsr_status     st = new_obj(c, INFVSR_PK_TENSOR, &t);
    if (st) return st;
    t->has_tensor       = true;
    t->u.tensor.storage = a[0];
    t->u.tensor.dtype   = dtype;
    t->u.tensor.offset  = a[1]->u.i;
    t->u.tensor.ndim    = (int)ndim;
    for (size_t i = 0; i < ndim; i++) {
        t->u.tensor.size[i]   = a[2]->u.seq.items[i]->u.i;
        t->u.tensor.stride[i] = a[3]->u.seq.items[i]->u.i;
    }
    return push(c, t);
}

/* fn(*args) where fn is a GLOBAL (allow-listed or a placeholder) or a placeholder OBJECT.
 * `nested` guards _rebuild_from_type_v2, which names another rebuild function. */
static enum infvsr_status call(struct op_ctx * c, struct infvsr_pk_obj * fn, struct infvsr_pk_obj * args, int nested) {
    char d[200];
    if (fn->type == INFVSR_PK_OBJECT) return push_object(c, fn, args);
    if (fn->type != INFVSR_PK_GLOBAL) return FAIL(c, "cannot call a %s", type_name(fn->type));
    if (args->type != INFVSR_PK_TUPLE) {
        if (fn->u.global.kind == INFVSR_PK_G_UNKNOWN) return push_object(c, fn, args);
        return FAIL(c, "arguments are a %s, not a tuple", type_name(args->type));
    }
    size_t                         n = args->u.seq.n;
    struct infvsr_pk_obj * const * a = args->u.seq.items;
    switch (fn->u.global.kind) {
        case INFVSR_PK_G_UNKNOWN:
            return push_object(c, fn, args);
        case INFVSR_PK_G_ORDERED_DICT: {
            if (n != 0) return FAIL(c, "OrderedDict() with %zu arguments is not supported", n);
            struct infvsr_pk_obj * dct = NULL;
            return push_new(c, INFVSR_PK_DICT, &dct);
        }
        case INFVSR_PK_G_REBUILD_TENSOR_V1:
        case INFVSR_PK_G_REBUILD_TENSOR_V2:
        case INFVSR_PK_G_REBUILD_TENSOR_V3:
            return rebuild_tensor(c, fn->u.global.kind, args);
        case INFVSR_PK_G_REBUILD_PARAMETER:       /* (data, requires_grad, backward_hooks) */
        case INFVSR_PK_G_REBUILD_PARAMETER_STATE: /* (data, requires_grad, backward_hooks, state) */ {
            size_t want = fn->u.global.kind == INFVSR_PK_G_REBUILD_PARAMETER ? 3 : 4;
            if (n != want) return push_error(c, "_rebuild_parameter%s takes %zu arguments, got %zu", want == 4 ? "_with_state" : "", want, n);
            if (a[0]->type == INFVSR_PK_TENSOR || a[0]->type == INFVSR_PK_ERROR) return push(c, a[0]);
            return push_error(c, "_rebuild_parameter: data is %s, not a tensor", infvsr_pickle_describe(a[0], d, sizeof d));
        }
        case INFVSR_PK_G_REBUILD_FROM_TYPE_V2: /* (func, new_type, args, state): func(*args), type and state ignored */
            if (n != 4) return push_error(c, "_rebuild_from_type_v2 takes 4 arguments, got %zu", n);
            if (nested) return push_error(c, "_rebuild_from_type_v2 nested in itself%s", "");
            if (a[0]->type != INFVSR_PK_GLOBAL || a[0]->u.global.kind == INFVSR_PK_G_UNKNOWN) {
                return push_error(c, "tensor rebuilt through %s, which is not supported", infvsr_pickle_describe(a[0], d, sizeof d));
            }
            if (a[2]->type != INFVSR_PK_TUPLE) return push_error(c, "_rebuild_from_type_v2: args is %s, not a tuple", infvsr_pickle_describe(a[2], d, sizeof d));
            return call(c, a[0], a[2], nested + 1);
        case INFVSR_PK_G_TORCH_SIZE: /* torch.Size((d0, d1, ...)) */
            if (n == 1 && a[0]->type == INFVSR_PK_TUPLE) return push(c, a[0]);
            return push_object(c, fn, args);
        case INFVSR_PK_G_SET: { /* set() or set([items]): kept as a list of its items */
            if (n == 1 && a[0]->type == INFVSR_PK_LIST) return push(c, a[0]);
            struct infvsr_pk_obj * l = NULL;
            return push_new(c, INFVSR_PK_LIST, &l);
        }
        case INFVSR_PK_G_STORAGE_CLASS:
            return FAIL(c, "calling a storage class is not allowed%s", "");
        case INFVSR_PK_G_DTYPE:
            break;
    }
    return FAIL(c, "calling a dtype is not allowed%s", "");
}

static enum infvsr_status op_reduce(struct op_ctx * c) {
    struct infvsr_pk_obj ** it = NULL;
    enum infvsr_status      st = pop_n(c, 2, &it);
    return st ? st : call(c, it[0], it[1], 0);
}

/* NEWOBJ: cls.__new__(cls, *args); NEWOBJ_EX adds kwargs. Only placeholders and the
 * value constructors make sense here; the result is built the way REDUCE builds it. */
static enum infvsr_status op_newobj(struct op_ctx * c, bool ex) {
    struct infvsr_pk_obj ** it = NULL;
    enum infvsr_status      st = pop_n(c, ex ? 3 : 2, &it);
    if (st) return st;
    struct infvsr_pk_obj * cls = it[0], * args = it[1], * kwargs = ex ? it[2] : NULL;
    if (cls->type == INFVSR_PK_GLOBAL && cls->u.global.kind == INFVSR_PK_G_ORDERED_DICT) {
        struct infvsr_pk_obj * dct = NULL; /* OrderedDict.__new__ ignores its arguments */
        return push_new(c, INFVSR_PK_DICT, &dct);
    }
    if (cls->type == INFVSR_PK_GLOBAL && cls->u.global.kind != INFVSR_PK_G_UNKNOWN &&
        cls->u.global.kind != INFVSR_PK_G_SET && cls->u.global.kind != INFVSR_PK_G_TORCH_SIZE) {
        return push_error(c, "%s of a torch function or storage class is not a tensor rebuild", ex ? "NEWOBJ_EX" : "NEWOBJ");
    }
    if ((st = call(c, cls, args, 0))) return st;
    struct infvsr_pk_obj * o = c->vm->stack[c->vm->sp - 1];
    if (kwargs && o->type == INFVSR_PK_OBJECT) o->has_tensor |= kwargs->has_tensor;
    return INFVSR_OK;
}

/* ('storage', StorageClass, key, location, numel) -> storage object; the legacy format adds
 * a sixth item, view_metadata: None or (view_key, offset, view_size). */
static enum infvsr_status persid(struct op_ctx * c, struct infvsr_pk_obj * pid) {
    char d[200];
    if (pid->type != INFVSR_PK_TUPLE || pid->u.seq.n < 1 || pid->u.seq.items[0]->type != INFVSR_PK_STR ||
        !span_eq(pid->u.seq.items[0]->u.str.s, pid->u.seq.items[0]->u.str.len, "storage")) {
        /* another kind of persistent id (the legacy format's ('module', ...) source records):
         * inert, and only a problem if used where a storage belongs */
        if (pid->type == INFVSR_PK_TUPLE && pid->u.seq.n >= 1 && pid->u.seq.items[0]->type == INFVSR_PK_STR) {
            struct infvsr_pk_obj * o = NULL;
            enum infvsr_status     st = push_new(c, INFVSR_PK_OBJECT, &o);
            if (!st) {
                o->ref.mod = "persistent_id", o->ref.mod_len = 13;
                o->ref.name = pid->u.seq.items[0]->u.str.s;
                o->ref.name_len = (uint16_t)(pid->u.seq.items[0]->u.str.len > 200 ? 200 : pid->u.seq.items[0]->u.str.len);
                o->at = c->vm->base + c->at;
                o->op = (uint8_t)c->op;
            }
            return st;
        }
        return push_error(c, "persistent id is %s, not a ('storage', ...) tuple", infvsr_pickle_describe(pid, d, sizeof d));
    }
    size_t                         n = pid->u.seq.n;
    struct infvsr_pk_obj * const * a = pid->u.seq.items;
    if (n != 5 && n != 6) return push_error(c, "persistent id has %zu items, expected 5 (or 6 in the legacy format)", n);
    if (a[1]->type != INFVSR_PK_GLOBAL || a[1]->u.global.kind != INFVSR_PK_G_STORAGE_CLASS) {
        return push_error(c, "persistent id's storage class is %s, not a torch storage class", infvsr_pickle_describe(a[1], d, sizeof d));
    }
    if (a[2]->type != INFVSR_PK_STR || a[4]->type != INFVSR_PK_INT || a[4]->u.i < 0) {
        return push_error(c, "persistent id needs a str key and a non-negative int numel%s", "");
    }
    int64_t base = 0, numel = a[4]->u.i;
    if (n == 6 && a[5]->type != INFVSR_PK_NONE) { /* (view_key, offset, view_size) into root storage a[2] */
        const struct infvsr_pk_obj * v = a[5];
        if (v->type != INFVSR_PK_TUPLE || v->u.seq.n != 3 || v->u.seq.items[1]->type != INFVSR_PK_INT ||
            v->u.seq.items[2]->type != INFVSR_PK_INT || v->u.seq.items[1]->u.i < 0 || v->u.seq.items[2]->u.i < 0 ||
            v->u.seq.items[1]->u.i > numel || v->u.seq.items[2]->u.i > numel - v->u.seq.items[1]->u.i) {
            return push_error(c, "persistent id: bad view_metadata (want (key, offset, size) inside %lld elements)", (long long)numel);
        }
        base  = v->u.seq.items[1]->u.i;
        numel = v->u.seq.items[2]->u.i;
    }
    struct infvsr_pk_obj * s = NULL;
    enum infvsr_status     st = push_new(c, INFVSR_PK_STORAGE, &s);
    if (st) return st;
    s->has_tensor        = true;
    s->u.storage.dtype   = a[1]->u.global.dtype;
    s->u.storage.untyped = a[1]->u.global.untyped;
    s->u.storage.key     = a[2]->u.str.s;
    s->u.storage.key_len = a[2]->u.str.len;
    s->u.storage.numel   = numel;
    s->u.storage.root_numel = a[4]->u.i;
    s->u.storage.base    = base;
    return INFVSR_OK;
}

static enum infvsr_status op_binpersid(struct op_ctx * c) {
    struct infvsr_pk_obj * pid = NULL;
    enum infvsr_status     st = pop1(c, &pid);
    return st ? st : persid(c, pid);
}

/* ---- containers --------------------------------------------------------------------- */

static enum infvsr_status op_appends(struct op_ctx * c, bool batch) {
    struct infvsr_pk_obj ** it = NULL;
    size_t                  n = 1;
    enum infvsr_status      st = batch ? pop_mark(c, &it, &n) : pop_n(c, 1, &it);
    if (st) return st;
    struct infvsr_pk_obj * list = NULL;
    if ((st = top(c, &list))) return st;
    if (list->type == INFVSR_PK_OBJECT) list->obj_list = true; /* a list subclass: kept, not walked */
    else if (list->type != INFVSR_PK_LIST) return FAIL(c, "append to a %s", type_name(list->type));
    for (size_t i = 0; !st && i < n; i++) st = seq_push(c, list, it[i]);
    return st;
}

static enum infvsr_status op_setitems(struct op_ctx * c, bool batch) {
    struct infvsr_pk_obj ** it = NULL;
    size_t                  n = 2;
    enum infvsr_status      st = batch ? pop_mark(c, &it, &n) : pop_n(c, 2, &it);
    if (st) return st;
    if (n % 2) return FAIL(c, "odd number of items (%zu)", n);
    struct infvsr_pk_obj * d = NULL;
    if ((st = top(c, &d))) return st;
    /* an OrderedDict/defaultdict subclass made from a placeholder: its items are walked like
     * a dict's (a state dict wrapper class keeps the weights readable) */
    if (d->type == INFVSR_PK_OBJECT) d->obj_dict = true;
    else if (d->type != INFVSR_PK_DICT) return FAIL(c, "setitem on a %s", type_name(d->type));
    /* Duplicate keys are not collapsed here; the flattened index rejects them later. */
    for (size_t i = 0; !st && i < n; i++) st = seq_push(c, d, it[i]);
    return st;
}

static enum infvsr_status op_build(struct op_ctx * c) {
    struct infvsr_pk_obj * state = NULL, * target = NULL;
    enum infvsr_status     st = pop1(c, &state);
    if (!st) st = top(c, &target);
    if (st) return st;
    /* state_dict() pickles as OrderedDict + BUILD({'_metadata': ...}): the module versions
     * are irrelevant to inference. Placeholder objects and globals (argparse.Namespace's
     * __dict__, numpy dtype state, a tensor's python attributes) ignore their state too:
     * __setstate__ is never run. Built-in values cannot be built. */
    if (target->type == INFVSR_PK_DICT || target->type == INFVSR_PK_OBJECT || target->type == INFVSR_PK_TENSOR ||
        target->type == INFVSR_PK_ERROR || (target->type == INFVSR_PK_GLOBAL && target->u.global.kind == INFVSR_PK_G_UNKNOWN)) {
        return INFVSR_OK;
    }
    return FAIL(c, "BUILD of a %s with a %s state is not supported", type_name(target->type), type_name(state->type));
}

/* ---- protocol 0/1 text opcodes ------------------------------------------------------- */

/* The argument of a text opcode: bytes up to '\n' (at most `max`), newline consumed. */
static enum infvsr_status read_line(struct op_ctx * c, size_t max, const char ** s, size_t * len) {
    struct infvsr_pickle * vm = c->vm;
    size_t                 avail = vm->size - vm->pos;
    const char *           p = (const char *)vm->data + vm->pos;
    const char *           nl = memchr(p, '\n', avail < max + 1 ? avail : max + 1);
    if (!nl) return FAIL(c, "unterminated or over-long text argument (limit %zu bytes)", max);
    *s   = p;
    *len = (size_t)(nl - p);
    vm->pos += *len + 1;
    return INFVSR_OK;
}

/* Decimal integer text (INT, LONG with its 'L', GET, PUT), overflow-checked. */
static enum infvsr_status parse_decimal(struct op_ctx * c, const char * s, size_t len, int64_t * out) {
    if (len && s[len - 1] == 'L') len--;
    char buf[32];
    if (len == 0 || len >= sizeof buf) return FAIL(c, "bad integer text of %zu bytes", len);
    memcpy(buf, s, len);
    buf[len] = '\0';
    char * end;
    errno    = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno == ERANGE) return FAIL(c, "integer '%s' is malformed or does not fit 64 bits", buf);
    *out = v;
    return INFVSR_OK;
}

static enum infvsr_status text_op(struct op_ctx * c) {
    const char *           s = NULL;
    size_t                 len = 0;
    int64_t                v = 0;
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st = read_line(c, c->op == OP_STRING || c->op == OP_UNICODE ? INFVSR_PK_MAX_STRING : 64, &s, &len);
    if (st) return st;
    switch (c->op) {
        case OP_INT:
            if (len == 2 && (memcmp(s, "01", 2) == 0 || memcmp(s, "00", 2) == 0)) { /* protocol 0 True/False */
                if ((st = push_new(c, INFVSR_PK_BOOL, &o))) return st;
                o->u.b = s[1] == '1';
                return INFVSR_OK;
            }
            /* fall through */
        case OP_LONG:
            return (st = parse_decimal(c, s, len, &v)) ? st : push_int(c, v);
        case OP_GET:
        case OP_PUT:
            if ((st = parse_decimal(c, s, len, &v))) return st;
            if (v < 0) return FAIL(c, "negative memo index %lld", (long long)v);
            return c->op == OP_GET ? memo_get(c, (uint64_t)v) : memo_put(c, (uint64_t)v);
        case OP_FLOAT: {
            char buf[72];
            if (len == 0 || len >= sizeof buf) return FAIL(c, "bad float text of %zu bytes", len);
            memcpy(buf, s, len);
            buf[len] = '\0';
            char * end;
            double f = strtod(buf, &end);
            if (*end) return FAIL(c, "bad float text '%s'", buf);
            if ((st = push_new(c, INFVSR_PK_FLOAT, &o))) return st;
            o->u.f = f;
            return INFVSR_OK;
        }
        case OP_STRING: /* a quoted repr; escapes are kept as written (such strings are never keys we look up) */
            if (len < 2 || (s[0] != '\'' && s[0] != '"') || s[len - 1] != s[0]) return FAIL(c, "STRING argument is not quoted%s", "");
            if ((st = push_new(c, INFVSR_PK_BYTES, &o))) return st;
            o->u.str.s = s + 1, o->u.str.len = len - 2;
            return INFVSR_OK;
        case OP_UNICODE: /* raw-unicode-escape; plain ASCII keys are exact, escapes are kept as written */
            if ((st = push_new(c, INFVSR_PK_STR, &o))) return st;
            o->u.str.s = s, o->u.str.len = len;
            return INFVSR_OK;
        case OP_PERSID: /* a string persistent id: torch never writes one */
            if ((st = new_obj(c, INFVSR_PK_STR, &o))) return st;
            o->u.str.s = s, o->u.str.len = len;
            return persid(c, o);
    }
    return FAIL(c, "internal: not a text opcode%s", "");
}

/* DICT and LIST: the items above the mark. */
static enum infvsr_status op_mark_container(struct op_ctx * c, enum infvsr_pk_type type) {
    struct infvsr_pk_obj ** it = NULL, * o = NULL;
    size_t                  n = 0;
    enum infvsr_status      st = pop_mark(c, &it, &n);
    if (st) return st;
    if (type == INFVSR_PK_DICT && n % 2) return FAIL(c, "odd number of items (%zu)", n);
    /* new_obj does not touch the stack, so `it` stays valid until the push */
    if ((st = new_obj(c, type, &o))) return st;
    for (size_t i = 0; !st && i < n; i++) st = seq_push(c, o, it[i]);
    return st ? st : push(c, o);
}

/* INST "module\nname\n" (MARK args) and OBJ (MARK cls args): cls(*args), as REDUCE. */
static enum infvsr_status op_inst(struct op_ctx * c) {
    struct infvsr_pk_obj * cls = NULL, * args = NULL;
    enum infvsr_status     st;
    if (c->op == OP_INST) {
        const char * m = NULL, * n = NULL; /* set by read_line on success (GCC -O3 cannot see it) */
        size_t       ml = 0, nl = 0;
        if ((st = read_line(c, 255, &m, &ml)) || (st = read_line(c, 255, &n, &nl))) return st;
        if ((st = push_global(c, m, ml, n, nl)) || (st = pop1(c, &cls))) return st;
    }
    struct infvsr_pk_obj ** it = NULL;
    size_t                  n = 0;
    if ((st = pop_mark(c, &it, &n))) return st;
    if (c->op == OP_OBJ) {
        if (n < 1) return FAIL(c, "OBJ without a class%s", "");
        cls = it[0], it++, n--;
    }
    if ((st = new_obj(c, INFVSR_PK_TUPLE, &args))) return st;
    for (size_t i = 0; !st && i < n; i++) st = seq_push(c, args, it[i]);
    return st ? st : call(c, cls, args, 0);
}

/* ---- the loop ----------------------------------------------------------------------- */

static enum infvsr_status step(struct op_ctx * c, bool * stop) {
    struct infvsr_pickle *  vm = c->vm;
    const uint8_t *         p = NULL;
    struct infvsr_pk_obj *  o = NULL;
    struct infvsr_pk_obj ** it = NULL;
    size_t                  n = 0;
    enum infvsr_status      st;
    switch (c->op) {
        case OP_PROTO:
            if ((st = take(c, 1, &p))) return st;
            if (p[0] < 2 || p[0] > 5) return FAIL(c, "unsupported protocol %u", p[0]);
            vm->protocol = p[0];
            return INFVSR_OK;
        case OP_FRAME: /* framing is only a read-ahead hint: the opcodes inside are ordinary */
            if ((st = take(c, 8, &p))) return st;
            if (infvsr__rd_u64(p) > vm->size - vm->pos) return FAIL(c, "frame of %llu bytes runs past the end", (unsigned long long)infvsr__rd_u64(p));
            return INFVSR_OK;
        case OP_STOP:
            if ((st = pop1(c, &vm->result))) return st;
            *stop = true;
            return INFVSR_OK;
        case OP_MARK:
            if (vm->n_marks >= INFVSR_PK_MAX_STACK) return FAIL(c, "more than %u marks", INFVSR_PK_MAX_STACK);
            if (vm->n_marks == vm->marks_cap) {
                size_t cap = vm->marks_cap ? vm->marks_cap * 2 : 64;
                void * q   = realloc(vm->marks, cap * sizeof *vm->marks);
                if (!q) return infvsr_err_set(c->err, INFVSR_ERR_NOMEM, "pickle: out of memory");
                vm->marks     = q;
                vm->marks_cap = cap;
            }
            vm->marks[vm->n_marks++] = vm->sp;
            return INFVSR_OK;
        case OP_GLOBAL:       return op_global(c);
        case OP_STACK_GLOBAL: return op_stack_global(c);
        case OP_BINPUT:       return (st = take(c, 1, &p)) ? st : memo_put(c, p[0]);
        case OP_LONG_BINPUT:  return (st = take(c, 4, &p)) ? st : memo_put(c, infvsr__rd_u32(p));
        case OP_MEMOIZE:      return memo_put(c, vm->memo_len);
        case OP_BINGET:       return (st = take(c, 1, &p)) ? st : memo_get(c, p[0]);
        case OP_LONG_BINGET:  return (st = take(c, 4, &p)) ? st : memo_get(c, infvsr__rd_u32(p));
        case OP_EMPTY_TUPLE:  return push_tuple(c, NULL, 0);
        case OP_TUPLE:        return (st = pop_mark(c, &it, &n)) ? st : push_tuple(c, it, n);
        case OP_TUPLE1:       return (st = pop_n(c, 1, &it)) ? st : push_tuple(c, it, 1);
        case OP_TUPLE2:       return (st = pop_n(c, 2, &it)) ? st : push_tuple(c, it, 2);
        case OP_TUPLE3:       return (st = pop_n(c, 3, &it)) ? st : push_tuple(c, it, 3);
        case OP_EMPTY_DICT:   return push_new(c, INFVSR_PK_DICT, &o);
        case OP_EMPTY_LIST:   return push_new(c, INFVSR_PK_LIST, &o);
        case OP_APPEND:       return op_appends(c, false);
        case OP_APPENDS:      return op_appends(c, true);
        case OP_SETITEM:      return op_setitems(c, false);
        case OP_SETITEMS:     return op_setitems(c, true);
        case OP_REDUCE:       return op_reduce(c);
        case OP_BUILD:        return op_build(c);
        case OP_BINPERSID:    return op_binpersid(c);
        case OP_BINUNICODE:   return (st = take(c, 4, &p)) ? st : push_string(c, INFVSR_PK_STR, infvsr__rd_u32(p));
        case OP_SHORT_BINUNICODE: return (st = take(c, 1, &p)) ? st : push_string(c, INFVSR_PK_STR, p[0]);
        case OP_BINUNICODE8:  return (st = take(c, 8, &p)) ? st : push_string(c, INFVSR_PK_STR, infvsr__rd_u64(p));
        case OP_BINBYTES:     return (st = take(c, 4, &p)) ? st : push_string(c, INFVSR_PK_BYTES, infvsr__rd_u32(p));
        case OP_SHORT_BINBYTES: return (st = take(c, 1, &p)) ? st : push_string(c, INFVSR_PK_BYTES, p[0]);
        case OP_BININT:       return (st = take(c, 4, &p)) ? st : push_int(c, (int32_t)infvsr__rd_u32(p));
        case OP_BININT1:      return (st = take(c, 1, &p)) ? st : push_int(c, p[0]);
        case OP_BININT2:      return (st = take(c, 2, &p)) ? st : push_int(c, infvsr__rd_u16(p));
        case OP_POP: return pop1(c, &o);
        case OP_POP_MARK: return pop_mark(c, &it, &n);
        case OP_DUP: return (st = top(c, &o)) ? st : push(c, o);
        case OP_BINSTRING:    return (st = take(c, 4, &p)) ? st : push_string(c, INFVSR_PK_BYTES, infvsr__rd_u32(p));
        case OP_SHORT_BINSTRING: return (st = take(c, 1, &p)) ? st : push_string(c, INFVSR_PK_BYTES, p[0]);
        case OP_BINBYTES8:
        case OP_BYTEARRAY8:   return (st = take(c, 8, &p)) ? st : push_string(c, INFVSR_PK_BYTES, infvsr__rd_u64(p));
        case OP_EMPTY_SET:    return push_new(c, INFVSR_PK_LIST, &o); /* sets are kept as lists: never walked */
        case OP_ADDITEMS:     return op_appends(c, true);
        case OP_FROZENSET: {
            if ((st = pop_mark(c, &it, &n))) return st;
            struct infvsr_pk_obj * set = NULL;
            if ((st = new_obj(c, INFVSR_PK_LIST, &set))) return st;
            for (size_t i = 0; !st && i < n; i++) st = seq_push(c, set, it[i]);
            return st ? st : push(c, set);
        }
        case OP_LONG1:
        case OP_LONG4: {
            size_t len;
            if (c->op == OP_LONG4) {
                if ((st = take(c, 4, &p))) return st;
                len = infvsr__rd_u32(p);
            } else {
                if ((st = take(c, 1, &p))) return st;
                len = p[0];
            }
            if (len > 8) { /* a Python int beyond 64 bits (metadata: never a size we use): inert */
                if ((st = take(c, len, &p)) || (st = push_new(c, INFVSR_PK_OBJECT, &o))) return st;
                o->ref.mod = "builtins", o->ref.mod_len = 8;
                o->ref.name = "int (more than 64 bits)", o->ref.name_len = 23;
                o->op = (uint8_t)c->op, o->at = vm->base + c->at;
                return INFVSR_OK;
            }
            if ((st = take(c, len, &p))) return st;
            uint64_t v = 0;
            for (size_t i = 0; i < len; i++) v |= (uint64_t)p[i] << (8 * i);
            if (len && len < 8 && (p[len - 1] & 0x80)) v |= ~0ull << (8 * len); /* sign-extend */
            return push_int(c, (int64_t)v);
        }
        case OP_NEWTRUE:
        case OP_NEWFALSE:
            if ((st = push_new(c, INFVSR_PK_BOOL, &o))) return st;
            o->u.b = c->op == OP_NEWTRUE;
            return INFVSR_OK;
        case OP_NONE: return push_new(c, INFVSR_PK_NONE, &o);
        case OP_NEWOBJ:       return op_newobj(c, false);
        case OP_NEWOBJ_EX:    return op_newobj(c, true);
        case OP_EXT1:
        case OP_EXT2:
        case OP_EXT4: /* a copyreg extension code: which global it names is process state; a placeholder */
            if ((st = take(c, c->op == OP_EXT1 ? 1 : c->op == OP_EXT2 ? 2 : 4, &p))) return st;
            return push_global(c, "copyreg", 7, "extension", 9);
        case OP_NEXT_BUFFER:
            return FAIL(c, "out-of-band buffers are not supported (the pickle was written with a buffer_callback)%s", "");
        case OP_READONLY_BUFFER: return top(c, &o); /* marks the buffer on the stack read-only: a no-op here */
        case OP_INT: case OP_LONG: case OP_FLOAT: case OP_STRING: case OP_UNICODE: case OP_PERSID:
        case OP_GET: case OP_PUT: return text_op(c);
        case OP_DICT: return op_mark_container(c, INFVSR_PK_DICT);
        case OP_LIST: return op_mark_container(c, INFVSR_PK_LIST);
        case OP_INST:
        case OP_OBJ: return op_inst(c);
        case OP_BINFLOAT: {
            if ((st = take(c, 8, &p))) return st;
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++) bits = bits << 8 | p[i]; /* big-endian */
            if ((st = push_new(c, INFVSR_PK_FLOAT, &o))) return st;
            memcpy(&o->u.f, &bits, sizeof bits);
            return INFVSR_OK;
        }
    }
    return infvsr_err_set(c->err, INFVSR_ERR_FORMAT, "pickle: unknown or unsupported opcode 0x%02x at offset %zu",
                          c->op, vm->base + c->at);
}

enum infvsr_status infvsr_pickle_run(struct infvsr_pickle * vm, const uint8_t * data, size_t size,
                                     struct infvsr_err * err) {
    return infvsr_pickle_run_at(vm, data, size, 0, err);
}

enum infvsr_status infvsr_pickle_run_at(struct infvsr_pickle * vm, const uint8_t * data, size_t size, size_t base,
                                        struct infvsr_err * err) {
    memset(vm, 0, sizeof *vm);
    vm->data = data;
    vm->size = size;
    vm->base = base;
    bool stop = false;
    while (!stop) {
        if (vm->pos >= vm->size) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "pickle: truncated: no STOP opcode before offset %zu", vm->base + vm->size);
        }
        struct op_ctx c = { vm, vm->data[vm->pos], vm->pos, err };
        vm->pos++;
        enum infvsr_status st = step(&c, &stop);
        if (st) return st;
    }
    return INFVSR_OK;
}

void infvsr_pickle_free(struct infvsr_pickle * vm) {
    for (size_t i = 0; i < vm->n_all; i++) {
        struct infvsr_pk_obj * o = vm->all[i];
        if (o->type == INFVSR_PK_TUPLE || o->type == INFVSR_PK_LIST || o->type == INFVSR_PK_DICT ||
            o->type == INFVSR_PK_OBJECT) free(o->u.seq.items);
        if (o->type == INFVSR_PK_ERROR) free(o->u.error);
        free(o);
    }
    free(vm->all);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    memset(vm, 0, sizeof *vm);
}
