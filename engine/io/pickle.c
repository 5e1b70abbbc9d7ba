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
    }
    return "?";
}

static const char * type_name(enum infvsr_pk_type t) {
    static const char * names[] = { "None", "bool", "int", "float", "str", "bytes", "tuple", "list",
                                    "dict", "global", "storage", "tensor" };
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
                   __VA_ARGS__, op_name((c)->op), (c)->at)

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

static enum infvsr_status push_global(struct op_ctx * c, const char * mod, size_t mod_len, const char * name,
                                      size_t name_len) {
    struct infvsr_pk_obj * o = NULL;
    enum infvsr_status     st;
    if (span_eq(mod, mod_len, "collections") && span_eq(name, name_len, "OrderedDict")) {
        if ((st = push_new(c, INFVSR_PK_GLOBAL, &o))) return st;
        o->u.global.kind = INFVSR_PK_G_ORDERED_DICT;
        return INFVSR_OK;
    }
    if (span_eq(mod, mod_len, "torch._utils") && span_eq(name, name_len, "_rebuild_tensor_v2")) {
        if ((st = push_new(c, INFVSR_PK_GLOBAL, &o))) return st;
        o->u.global.kind = INFVSR_PK_G_REBUILD_TENSOR_V2;
        return INFVSR_OK;
    }
    if (span_eq(mod, mod_len, "torch._utils") && span_eq(name, name_len, "_rebuild_parameter")) {
        if ((st = push_new(c, INFVSR_PK_GLOBAL, &o))) return st;
        o->u.global.kind = INFVSR_PK_G_REBUILD_PARAMETER;
        return INFVSR_OK;
    }
    if (span_eq(mod, mod_len, "torch") && span_eq(name, name_len, "Size")) {
        if ((st = push_new(c, INFVSR_PK_GLOBAL, &o))) return st;
        o->u.global.kind = INFVSR_PK_G_TORCH_SIZE;
        return INFVSR_OK;
    }
    if ((span_eq(mod, mod_len, "builtins") || span_eq(mod, mod_len, "__builtin__")) &&
        (span_eq(name, name_len, "set") || span_eq(name, name_len, "frozenset"))) {
        if ((st = push_new(c, INFVSR_PK_GLOBAL, &o))) return st;
        o->u.global.kind = INFVSR_PK_G_SET;
        return INFVSR_OK;
    }
    if (span_eq(mod, mod_len, "torch")) {
        for (size_t i = 0; i < sizeof storage_classes / sizeof storage_classes[0]; i++) {
            if (span_eq(name, name_len, storage_classes[i].name)) {
                if ((st = push_new(c, INFVSR_PK_GLOBAL, &o))) return st;
                o->u.global.kind  = INFVSR_PK_G_STORAGE_CLASS;
                o->u.global.dtype = storage_classes[i].dtype;
                return INFVSR_OK;
            }
        }
    }
    int ml = mod_len > 100 ? 100 : (int)mod_len, nl = name_len > 100 ? 100 : (int)name_len;
    return FAIL(c, "global '%.*s.%.*s' is not allowed (only collections.OrderedDict, "
                "torch._utils._rebuild_tensor_v2/_rebuild_parameter, torch.*Storage, torch.Size, builtins.set/frozenset)", ml, mod, nl, name);
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

static bool is_int_tuple(const struct infvsr_pk_obj * t) {
    if (t->type != INFVSR_PK_TUPLE) return false;
    for (size_t i = 0; i < t->u.seq.n; i++) {
        if (t->u.seq.items[i]->type != INFVSR_PK_INT) return false;
    }
    return true;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
static enum infvsr_status rebuild_tensor(struct op_ctx * c, const struct infvsr_pk_obj * args) {
    size_t n = args->u.seq.n;
    if (n != 6 && n != 7) return FAIL(c, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", n);
    struct infvsr_pk_obj * const * a = args->u.seq.items;
    if (a[0]->type != INFVSR_PK_STORAGE) return FAIL(c, "_rebuild_tensor_v2: argument 0 is %s, not a storage", type_name(a[0]->type));
    if (a[1]->type != INFVSR_PK_INT || a[1]->u.i < 0) return FAIL(c, "_rebuild_tensor_v2: bad storage offset%s", "");
    if (!is_int_tuple(a[2]) || !is_int_tuple(a[3]) || a[2]->u.seq.n != a[3]->u.seq.n) {
        return FAIL(c, "_rebuild_tensor_v2: size and stride must be int tuples of equal length%s", "");
    }
    size_t ndim = a[2]->u.seq.n;
    if (ndim > INFVSR_MAX_DIMS) return FAIL(c, "_rebuild_tensor_v2: rank %zu exceeds the maximum %d", ndim, INFVSR_MAX_DIMS);
    struct infvsr_pk_obj * t = NULL;
    enum infvsr_status     st = new_obj(c, INFVSR_PK_TENSOR, &t);
    if (st) return st;
    t->u.tensor.storage = a[0];
    t->u.tensor.offset  = a[1]->u.i;
    t->u.tensor.ndim    = (int)ndim;
    for (size_t i = 0; i < ndim; i++) {
        t->u.tensor.size[i]   = a[2]->u.seq.items[i]->u.i;
        t->u.tensor.stride[i] = a[3]->u.seq.items[i]->u.i;
        if (t->u.tensor.size[i] < 0) return FAIL(c, "_rebuild_tensor_v2: negative size %lld in dim %zu", (long long)t->u.tensor.size[i], i);
        if (t->u.tensor.stride[i] < 0) return FAIL(c, "_rebuild_tensor_v2: negative stride %lld in dim %zu", (long long)t->u.tensor.stride[i], i);
    }
    return push(c, t);
}

static enum infvsr_status op_reduce(struct op_ctx * c) {
    struct infvsr_pk_obj ** it = NULL;
    enum infvsr_status      st = pop_n(c, 2, &it);
    if (st) return st;
    struct infvsr_pk_obj * fn = it[0], * args = it[1];
    if (fn->type != INFVSR_PK_GLOBAL) return FAIL(c, "cannot call a %s", type_name(fn->type));
    if (args->type != INFVSR_PK_TUPLE) return FAIL(c, "arguments are a %s, not a tuple", type_name(args->type));
    switch (fn->u.global.kind) {
        case INFVSR_PK_G_ORDERED_DICT: {
            if (args->u.seq.n != 0) return FAIL(c, "OrderedDict() with %zu arguments is not supported", args->u.seq.n);
            struct infvsr_pk_obj * d = NULL;
            return push_new(c, INFVSR_PK_DICT, &d);
        }
        case INFVSR_PK_G_REBUILD_TENSOR_V2:
            return rebuild_tensor(c, args);
        case INFVSR_PK_G_REBUILD_PARAMETER: /* (data, requires_grad, backward_hooks): the tensor itself */
            if (args->u.seq.n != 3 || args->u.seq.items[0]->type != INFVSR_PK_TENSOR) {
                return FAIL(c, "_rebuild_parameter expects (tensor, requires_grad, hooks)%s", "");
            }
            return push(c, args->u.seq.items[0]);
        case INFVSR_PK_G_TORCH_SIZE: /* torch.Size((d0, d1, ...)) */
            if (args->u.seq.n != 1 || !is_int_tuple(args->u.seq.items[0])) {
                return FAIL(c, "torch.Size expects one tuple of ints%s", "");
            }
            return push(c, args->u.seq.items[0]);
        case INFVSR_PK_G_SET: { /* set() or set([items]): kept as a list of its items */
            if (args->u.seq.n == 1 && args->u.seq.items[0]->type == INFVSR_PK_LIST) {
                return push(c, args->u.seq.items[0]);
            }
            if (args->u.seq.n != 0) return FAIL(c, "set expects () or (list,)%s", "");
            struct infvsr_pk_obj * l = NULL;
            return push_new(c, INFVSR_PK_LIST, &l);
        }
        case INFVSR_PK_G_STORAGE_CLASS:
            break;
    }
    return FAIL(c, "calling a storage class is not allowed%s", "");
}

/* ('storage', StorageClass, key, location, numel) -> storage object. */
static enum infvsr_status op_binpersid(struct op_ctx * c) {
    struct infvsr_pk_obj * pid = NULL;
    enum infvsr_status     st = pop1(c, &pid);
    if (st) return st;
    if (pid->type != INFVSR_PK_TUPLE || pid->u.seq.n != 5) return FAIL(c, "persistent id is not a 5-tuple%s", "");
    struct infvsr_pk_obj * const * a = pid->u.seq.items;
    if (a[0]->type != INFVSR_PK_STR || !span_eq(a[0]->u.str.s, a[0]->u.str.len, "storage")) {
        return FAIL(c, "persistent id kind is not 'storage'%s", "");
    }
    if (a[1]->type != INFVSR_PK_GLOBAL || a[1]->u.global.kind != INFVSR_PK_G_STORAGE_CLASS) {
        return FAIL(c, "persistent id has no torch storage class%s", "");
    }
    if (a[2]->type != INFVSR_PK_STR || a[4]->type != INFVSR_PK_INT || a[4]->u.i < 0) {
        return FAIL(c, "persistent id needs a str key and a non-negative int numel%s", "");
    }
    struct infvsr_pk_obj * s = NULL;
    if ((st = push_new(c, INFVSR_PK_STORAGE, &s))) return st;
    s->u.storage.dtype   = a[1]->u.global.dtype;
    s->u.storage.key     = a[2]->u.str.s;
    s->u.storage.key_len = a[2]->u.str.len;
    s->u.storage.numel   = a[4]->u.i;
    return INFVSR_OK;
}

/* ---- containers --------------------------------------------------------------------- */

static enum infvsr_status op_appends(struct op_ctx * c, bool batch) {
    struct infvsr_pk_obj ** it = NULL;
    size_t                  n = 1;
    enum infvsr_status      st = batch ? pop_mark(c, &it, &n) : pop_n(c, 1, &it);
    if (st) return st;
    struct infvsr_pk_obj * list = NULL;
    if ((st = top(c, &list))) return st;
    if (list->type != INFVSR_PK_LIST) return FAIL(c, "append to a %s", type_name(list->type));
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
    if (d->type != INFVSR_PK_DICT) return FAIL(c, "setitem on a %s", type_name(d->type));
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
     * are irrelevant to inference, so the state is ignored. Nothing else may be built. */
    if (target->type == INFVSR_PK_DICT && state->type == INFVSR_PK_DICT) return INFVSR_OK;
    return FAIL(c, "BUILD of a %s with a %s state is not supported", type_name(target->type), type_name(state->type));
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
            if (c->op == OP_LONG4) {
                if ((st = take(c, 4, &p))) return st;
                if (infvsr__rd_u32(p) > 8) return FAIL(c, "integer of %u bytes does not fit 64 bits", infvsr__rd_u32(p));
            } else if ((st = take(c, 1, &p))) {
                return st;
            }
            size_t len = p[0]; /* LONG1's length byte; for LONG4 the low byte of a length <= 8 */
            if (len > 8) return FAIL(c, "integer of %zu bytes does not fit 64 bits", len);
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
                          c->op, c->at);
}

enum infvsr_status infvsr_pickle_run(struct infvsr_pickle * vm, const uint8_t * data, size_t size,
                                     struct infvsr_err * err) {
    memset(vm, 0, sizeof *vm);
    vm->data = data;
    vm->size = size;
    bool stop = false;
    while (!stop) {
        if (vm->pos >= vm->size) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "pickle: truncated: no STOP opcode before offset %zu", vm->size);
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
        if (o->type == INFVSR_PK_TUPLE || o->type == INFVSR_PK_LIST || o->type == INFVSR_PK_DICT) free(o->u.seq.items);
        free(o);
    }
    free(vm->all);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    memset(vm, 0, sizeof *vm);
}
