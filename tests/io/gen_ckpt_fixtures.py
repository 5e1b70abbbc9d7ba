"""Checkpoint files as users meet them (issue 19), added to the io fixtures by gen_fixtures.py.

  - torch.save at pickle protocols 2-5 (zip) and in the legacy pre-1.6 format (protocols
    2-5), with metadata beside the tensors: torch.Size, sets, argparse.Namespace, numpy
    scalars/dtypes/arrays, bytes (_codecs.encode at protocol 2), datetime, Enum, complex,
    OrderedDict/defaultdict/dict subclasses holding tensors
  - wrappers: state_dict, model, model_state, ema, module. (DataParallel), a Lightning
    checkpoint (state_dict beside optimizer_states, callbacks, hyper_parameters, loops)
  - torch 2.x archives built by hand with Python's pickle (torch 1.13 cannot write them):
    .format_version, byteorder, .data/serialization_id, .data/version, _rebuild_tensor_v3
    with torch.UntypedStorage + dtype, _rebuild_parameter_with_state, _rebuild_from_type_v2
  - legacy files built by hand: big-endian, storage views (view_metadata)
  - hostile variants: unknown callables in tensor rebuilds, placeholders as sizes, strides,
    storages and dtypes, recursion, memo abuse, malformed legacy storage lists

Expectations: for files torch 1.13 can load, the tensors torch.load returns (flattened by the
C reader's rule); for hand-built files, the bytes written, viewed with torch.as_strided."""
import argparse
import collections
import datetime
import enum
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, HERE)
import st_io  # noqa: E402
from torch_zip_writer import write_zip  # noqa: E402


# ---- metadata objects as training code leaves them --------------------------------------
class StateDictWrapper(collections.OrderedDict):
    """An OrderedDict subclass (pickled as REDUCE of this class + SETITEMS)."""


class PlainDictSub(dict):
    """A dict subclass without __reduce__ (pickled with NEWOBJ + BUILD + SETITEMS)."""


class Phase(enum.Enum):
    TRAIN = 1


class Opaque:
    def __init__(self):
        self.step = 3
        self.name = "opaque"


def metadata():
    return {
        "input_shape": torch.Size([3, 384, 384]),
        "classes": {"cat", "dog"},
        "frozen": frozenset({1, 2}),
        "args": argparse.Namespace(lr=1e-4, betas=(0.9, 0.99), name="run", size=torch.Size([2, 2])),
        "np_f64": np.float64(1.5), "np_i64": np.int64(-3), "np_f32": np.float32(0.25),
        "np_dtype": np.dtype("float16"), "np_array": np.arange(6, dtype=np.int32).reshape(2, 3),
        "blob": b"\x00\x01bytes", "when": datetime.datetime(2021, 5, 4, 3, 2, 1), "phase": Phase.TRAIN,
        "z": complex(1, 2), "obj": Opaque(), "nested": [{"a": (1, 2.5, None, True)}, "s" * 300],
        "big": 2**70, "neg": -(2**40), "bools": [True, False], "none": None,
    }


# ---- helpers ------------------------------------------------------------------------
def flatten(obj, prefix=""):
    """The C reader's rule: dicts (and dict subclasses) joined by '.', tensors kept, rest skipped."""
    out = []
    for k, v in obj.items():
        key = prefix + "." + str(k) if prefix else str(k)
        if isinstance(v, dict):
            out += flatten(v, key)
        elif isinstance(v, torch.Tensor):
            out.append((key, v))
    return out


def stub(module, name):
    """The object pickle writes as GLOBAL module.name; a do-nothing stand-in when this torch
    lacks it (torch 2.x functions), registered where pickle's lookup finds it."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):  # parents too: pickle imports the dotted name
        name_i = ".".join(parts[:i])
        if name_i not in sys.modules:
            sys.modules[name_i] = types.ModuleType(name_i)
    mod = sys.modules[module]
    if not hasattr(mod, name):
        def f(*a):
            raise RuntimeError("stub")
        f.__module__, f.__qualname__, f.__name__ = module, name, name
        setattr(mod, name, f)
    return getattr(mod, name)


class Call:
    """Pickles as REDUCE(fn, args) [+ BUILD(state)]."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


import copyreg  # noqa: E402,F401  (protocol 2+ pickles plain instances as copyreg.__newobj__ -> NEWOBJ)


class Storage:
    """A persistent-id storage: ('storage', cls, key, 'cpu', numel[, view_metadata])."""

    def __init__(self, cls, key, numel, view=None, legacy=False):
        self.cls, self.key, self.numel, self.view, self.legacy = cls, key, numel, view, legacy


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", obj.cls, obj.key, "cpu", obj.numel)
            return pid + (obj.view,) if obj.legacy else pid
        if isinstance(obj, tuple) and len(obj) and obj[0] == "__pid__":
            return obj[1]
        return None


def dumps(obj, protocol=2):
    b = io.BytesIO()
    Pickler(b, protocol=protocol).dump(obj)
    return b.getvalue()


R_V2 = torch._utils._rebuild_tensor_v2
R_V3 = stub("torch._utils", "_rebuild_tensor_v3")
R_PARAM = torch._utils._rebuild_parameter
R_PARAM_STATE = stub("torch._utils", "_rebuild_parameter_with_state")
R_FROM_TYPE = torch._tensor._rebuild_from_type_v2
STORAGE_CLS = {torch.float32: torch.FloatStorage, torch.bfloat16: torch.BFloat16Storage, torch.float16: torch.HalfStorage,
               torch.int64: torch.LongStorage, torch.uint8: torch.ByteStorage, torch.float64: torch.DoubleStorage}


def v2(storage, offset, size, stride):
    return Call(R_V2, (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()))


def v3(storage, offset, size, stride, dtype):
    return Call(R_V3, (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict(), dtype))


def raw_of(t):
    return st_io.tensor_bytes(t)


def view_of(raw, dtype, offset, size, stride):
    base = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
    return torch.as_strided(base, size, stride, offset).clone()


TORCH2_RECORDS = [(".format_version", b"1"), (".storage_alignment", b"64"), ("byteorder", b"little")]
TORCH2_TAIL = [("version", b"3\n"), (".data/version", b"3\n"), (".data/serialization_id", b"1234567890123456789000000000000000")]


def torch2_zip(path, pkl, blobs, prefix="model", byteorder=b"little"):
    recs = [(n, byteorder if n == "byteorder" else d) for n, d in TORCH2_RECORDS]
    ents = [(prefix + "/data.pkl", pkl)] + [(prefix + "/" + n, d) for n, d in recs]
    ents += [(prefix + "/data/" + k, b) for k, b in blobs] + [(prefix + "/" + n, d) for n, d in TORCH2_TAIL]
    write_zip(path, ents)


def legacy_file(obj, blobs, protocol=2, little=True):
    """Hand-built legacy torch.save: blobs = [(key, element_size, raw little-endian bytes)]."""
    b = io.BytesIO()
    pickle.dump(0x1950a86a20f9469cfc6c, b, protocol=protocol)
    pickle.dump(1001, b, protocol=protocol)
    pickle.dump({"protocol_version": 1001, "little_endian": little, "type_sizes": {"short": 2, "int": 4, "long": 4}},
                b, protocol=protocol)
    Pickler(b, protocol=protocol).dump(obj)
    pickle.dump([k for k, _, _ in blobs], b, protocol=protocol)
    for k, es, raw in blobs:
        n = len(raw) // es
        if little:
            b.write(struct.pack("<q", n) + raw)
        else:
            b.write(struct.pack(">q", n) + b"".join(raw[i:i + es][::-1] for i in range(0, len(raw), es)))
    return b.getvalue()


def generate(good_dir, bad_dir, manifest, rnd, dtype_name):
    count = [0, 0]

    def expect(name, tensors, fmt=None):
        import hashlib
        e = {"file": "good/" + name, "tensors": [
            {"key": k, "dtype": dtype_name[t.dtype], "shape": list(t.shape),
             "sha256": hashlib.sha256(raw_of(t)).hexdigest()} for k, t in tensors]}
        if fmt:
            e["format"] = fmt
        manifest["good"].append(e)
        count[0] += 1

    def save_and_load(name, obj, fmt=None, **kw):
        """torch.save, then the expectation from what torch.load returns."""
        path = os.path.join(good_dir, name)
        torch.save(obj, path, **kw)
        expect(name, flatten(torch.load(path)), fmt)

    def good_bytes(name, data, tensors, fmt=None, torch_check=False):
        path = os.path.join(good_dir, name)
        with open(path, "wb") as f:
            f.write(data)
        if torch_check:  # files torch 1.13 can read: its tensors must be ours
            got = dict(flatten(torch.load(path)))
            for k, t in tensors:
                assert torch.equal(got[k], t), (name, k)
        expect(name, tensors, fmt)

    def bad(name, data, words):
        with open(os.path.join(bad_dir, name), "wb") as f:
            f.write(data)
        manifest["bad"].append({"file": "bad/" + name, "expect": words})
        count[1] += 1

    def bad_torch2(name, pkl, blobs, words, **kw):
        torch2_zip(os.path.join(bad_dir, name), pkl, blobs, **kw)
        manifest["bad"].append({"file": "bad/" + name, "expect": words})
        count[1] += 1

    sd = collections.OrderedDict([("blocks.0.attn.qkv.weight", rnd(6, 4)), ("blocks.0.attn.qkv.bias", rnd(6)),
                                  ("norm.weight", rnd(4, dtype=torch.bfloat16)), ("head.weight", rnd(2, 4, dtype=torch.float16)),
                                  ("steps", torch.tensor(7, dtype=torch.int64))])

    # ---- protocols 2-5, zip and legacy, with metadata beside the tensors -------------------
    for proto in (2, 3, 4, 5):
        obj = dict(metadata(), model=sd, ema=collections.OrderedDict((k, v.clone()) for k, v in sd.items()))
        save_and_load("p%d_meta.pt" % proto, obj, pickle_protocol=proto)
        save_and_load("p%d_legacy_meta.pth" % proto, obj, fmt="legacy", pickle_protocol=proto,
                      _use_new_zipfile_serialization=False)
        # dict-like metadata holding tensors: walked like dicts, as torch.load's result is
        holders = {"wrapped": StateDictWrapper(w=rnd(3)), "dd": collections.defaultdict(list, {"x": rnd(2, 2)}),
                   "plain_sub": PlainDictSub(y=rnd(4, dtype=torch.bfloat16)), "meta": metadata()}
        save_and_load("p%d_dict_subclasses.pt" % proto, holders, pickle_protocol=proto)

    # views, parameters, every dtype, in the legacy format (copied because unaligned)
    base = rnd(24)
    lv = collections.OrderedDict([("tail", base[5:]), ("head", base[:5]), ("t", rnd(4, 6).t()),
                                  ("strided", rnd(6, 6, dtype=torch.bfloat16)[::2, 1::2]), ("p", torch.nn.Parameter(rnd(3))),
                                  ("i64", rnd(5, dtype=torch.int64)), ("u8", rnd(7, dtype=torch.uint8)),
                                  ("b", rnd(3, dtype=torch.bool)), ("f64", rnd(2, dtype=torch.float64)),
                                  ("scalar", torch.tensor(3.5)), ("empty", torch.zeros(0, 3))])
    save_and_load("legacy_views.pth", lv, fmt="legacy", _use_new_zipfile_serialization=False)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 5))
    save_and_load("legacy_module_state_dict.pth", module.state_dict(), fmt="legacy", _use_new_zipfile_serialization=False)
    save_and_load("legacy_ram_like.pth", {"model": sd, "epoch": 30, "config": argparse.Namespace(img=384)},
                  fmt="legacy", _use_new_zipfile_serialization=False)

    # ---- wrappers ----------------------------------------------------------------------
    save_and_load("wrap_state_dict.pth", {"state_dict": sd, "epoch": 3})
    save_and_load("wrap_model.pth", {"model": sd, "optimizer": {"lr": 0.1}})
    save_and_load("wrap_model_state.pth", {"model_state": sd, "step": 100})
    save_and_load("wrap_ema.pth", {"ema": sd, "step": 100})
    save_and_load("wrap_module.pth", collections.OrderedDict(("module." + k, v) for k, v in sd.items()))
    save_and_load("wrap_state_dict_module.pth", {"state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())})
    lin = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    lin(torch.ones(2, 4)).sum().backward()
    opt.step()
    lightning = {
        "epoch": 4, "global_step": 1000, "pytorch-lightning_version": "2.1.0",
        "state_dict": collections.OrderedDict(("model." + k, v) for k, v in sd.items()),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 5}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val', 'mode': 'min'}": {"best_model_score": torch.tensor(0.25),
                                                                            "best_model_path": "/ckpt/best.ckpt"}},
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [{"last_epoch": 4, "_step_count": 5}],
        "hparams_name": "kwargs",
        "hyper_parameters": {"lr": 1e-4, "args": argparse.Namespace(batch=8), "size": torch.Size([64, 64])},
    }
    save_and_load("lightning.ckpt", lightning)
    save_and_load("lightning_legacy.ckpt", lightning, fmt="legacy", _use_new_zipfile_serialization=False)

    # ---- torch 2.x archives, hand-built --------------------------------------------------
    a = rnd(2, 3)
    bf = rnd(4, 2, dtype=torch.bfloat16)
    h = rnd(5, dtype=torch.float16)
    for proto in (2, 4, 5):
        # typed storages by class, as torch 2.x writes state dicts
        s0 = Storage(torch.FloatStorage, "0", 6)
        s1 = Storage(torch.BFloat16Storage, "1", 8)
        pkl = dumps(collections.OrderedDict([("a", v2(s0, 0, [2, 3], [3, 1])), ("at", v2(s0, 0, [3, 2], [1, 3])),
                                             ("bf", v2(s1, 0, [4, 2], [2, 1])), ("meta", metadata())]), proto)
        torch2_zip(os.path.join(good_dir, "t2_typed_p%d.pt" % proto), pkl, [("0", raw_of(a)), ("1", raw_of(bf))])
        expect("t2_typed_p%d.pt" % proto, [("a", a), ("at", a.t()), ("bf", bf)])
        # untyped storages (bytes) + dtype: _rebuild_tensor_v3
        u0 = Storage(torch.UntypedStorage, "0", 24)
        u1 = Storage(torch.UntypedStorage, "1", 10)
        pkl = dumps({"a": v3(u0, 1, [2, 2], [1, 2], torch.float32), "h": v3(u1, 0, [5], [1], torch.float16),
                     "hb": v3(u1, 1, [2], [2], torch.bfloat16), "size": torch.Size([1])}, proto)
        torch2_zip(os.path.join(good_dir, "t2_untyped_v3_p%d.pt" % proto), pkl, [("0", raw_of(a)), ("1", raw_of(h))])
        expect("t2_untyped_v3_p%d.pt" % proto, [("a", view_of(raw_of(a), torch.float32, 1, [2, 2], [1, 2])), ("h", h),
                                                ("hb", view_of(raw_of(h), torch.bfloat16, 1, [2], [2]))])
    # parameters with state, _rebuild_from_type_v2, big-endian, a torch 2.x prefix name
    s0 = Storage(torch.FloatStorage, "0", 6)
    pkl = dumps({"p": Call(R_PARAM_STATE, (v2(s0, 0, [6], [1]), True, collections.OrderedDict(), {"tag": "x"})),
                 "p_old": Call(R_PARAM, (v2(s0, 2, [2, 2], [2, 1]), False, collections.OrderedDict())),
                 "ft": Call(R_FROM_TYPE, (R_V2, torch.nn.Parameter, (s0, 0, (3,), (2,), False, collections.OrderedDict()),
                                          {"extra": 1}))}, 2)
    torch2_zip(os.path.join(good_dir, "t2_param_state.pt"), pkl, [("0", raw_of(a))], prefix="InfVSR")
    fa = a.flatten()
    expect("t2_param_state.pt", [("p", fa), ("p_old", fa[2:6].view(2, 2)), ("ft", fa[0::2])])
    s0 = Storage(torch.FloatStorage, "0", 6)
    s1 = Storage(torch.HalfStorage, "1", 5)
    pkl = dumps({"a": v2(s0, 0, [2, 3], [3, 1]), "h": v2(s1, 0, [5], [1])}, 4)
    be = lambda t: b"".join(raw_of(t)[i:i + t.element_size()][::-1] for i in range(0, len(raw_of(t)), t.element_size()))  # noqa
    torch2_zip(os.path.join(good_dir, "t2_big_endian.pt"), pkl, [("0", be(a)), ("1", be(h))], byteorder=b"big")
    expect("t2_big_endian.pt", [("a", a), ("h", h)])
    # OrderedDict subclass (NEWOBJ of an unknown class + SETITEMS) holding tensor records
    s0 = Storage(torch.FloatStorage, "0", 6)
    pkl = dumps({"state_dict": StateDictWrapper(w=v2(s0, 0, [6], [1])), "hp": Opaque()}, 4)
    torch2_zip(os.path.join(good_dir, "t2_dict_subclass.pt"), pkl, [("0", raw_of(a))])
    expect("t2_dict_subclass.pt", [("state_dict.w", fa)])

    # ---- legacy, hand-built: big-endian, views, protocol 4 -------------------------------
    x = rnd(8)
    y = rnd(3, dtype=torch.int64)
    for little in (True, False):
        root = Storage(torch.FloatStorage, "100", 8, legacy=True)
        view = Storage(torch.FloatStorage, "100", 8, view=("101", 2, 4), legacy=True)  # elements 2..5 of root
        ls = Storage(torch.LongStorage, "7", 3, legacy=True)
        obj = collections.OrderedDict([("x", v2(root, 0, [8], [1])), ("v", v2(view, 1, [3], [1])),
                                       ("y", v2(ls, 0, [3], [1])), ("meta", metadata())])
        data = legacy_file(obj, [("100", 4, raw_of(x)), ("7", 8, raw_of(y))], protocol=2, little=little)
        good_bytes("legacy_hand_%s.pth" % ("le" if little else "be"), data, [("x", x), ("v", x[3:6]), ("y", y)],
                   fmt="legacy", torch_check=little)
    root = Storage(torch.BFloat16Storage, "0", 8, legacy=True)
    bx = rnd(8, dtype=torch.bfloat16)
    data = legacy_file({"w": v2(root, 0, [2, 4], [4, 1])}, [("0", 2, raw_of(bx))], protocol=4)
    good_bytes("legacy_hand_p4.pth", data, [("w", bx.view(2, 4))], fmt="legacy", torch_check=True)

    # recursion that is harmless: a list that contains itself, next to the weights
    loop = []
    loop.append(loop)
    save_and_load("self_list.pt", {"w": rnd(2), "loop": loop})

    # ---- hostile -------------------------------------------------------------------------
    ok_raw = raw_of(torch.arange(6, dtype=torch.float32))
    S = lambda: Storage(torch.FloatStorage, "0", 6)  # noqa: E731
    qt = stub("torch._utils", "_rebuild_qtensor")
    bad_torch2("h_unknown_rebuild.pt", dumps({"model": {"q": Call(qt, (S(), 0, (6,), (1,), (0.1, 0), False))}}),
               [("0", ok_raw)], ["tensor 'model.q'", "_rebuild_qtensor", "opcode REDUCE at offset"])
    evil = stub("evil.module", "make_tensor")
    bad_torch2("h_unknown_callable_storage.pt", dumps({"w": Call(evil, (S(),))}), [("0", ok_raw)],
               ["tensor 'w'", "evil.module.make_tensor", "offset"])
    lfb = stub("torch.storage", "_load_from_bytes")
    bad_torch2("h_placeholder_storage.pt", dumps({"w": v2(Call(lfb, (b"\x80\x02",)), 0, [6], [1])}), [("0", ok_raw)],
               ["tensor 'w'", "argument 0", "torch.storage._load_from_bytes", "offset"])
    np_scalar = np.int64(6)
    bad_torch2("h_placeholder_size.pt", dumps({"w": Call(R_V2, (S(), 0, (np_scalar,), (1,), False, collections.OrderedDict()))}),
               [("0", ok_raw)], ["tensor 'w'", "size item 0", "numpy", "offset"])
    bad_torch2("h_placeholder_stride.pt", dumps({"a": {"w": Call(R_V2, (S(), 0, (6,), argparse.Namespace(), False, None))}}),
               [("0", ok_raw)], ["tensor 'a.w'", "stride is a", "argparse.Namespace", "offset"])
    bad_torch2("h_placeholder_offset.pt", dumps({"w": Call(R_V2, (S(), Opaque(), (6,), (1,), False, None))}),
               [("0", ok_raw)], ["tensor 'w'", "storage offset", "offset"])
    bad_torch2("h_placeholder_dtype.pt", dumps({"w": v3(Storage(torch.UntypedStorage, "0", 24), 0, [6], [1], np.dtype("f4"))}),
               [("0", ok_raw)], ["tensor 'w'", "dtype is a", "offset"])
    bad_torch2("h_v3_ragged.pt", dumps({"w": v3(Storage(torch.UntypedStorage, "0", 22), 0, [1], [1], torch.float32)}),
               [("0", ok_raw[:22])], ["tensor 'w'", "whole number"])
    bad_torch2("h_untyped_v2.pt", dumps({"w": v2(Storage(torch.UntypedStorage, "0", 24), 0, [6], [1])}),
               [("0", ok_raw)], ["tensor 'w'", "untyped"])
    bad_torch2("h_storage_class_placeholder.pt", dumps({"w": v2(Storage(Opaque, "0", 6), 0, [6], [1])}),
               [("0", ok_raw)], ["tensor 'w'", "storage class", "Opaque"])
    bad_torch2("h_from_type_unknown.pt", dumps({"w": Call(R_FROM_TYPE, (evil, torch.Tensor, (S(),), {}))}),
               [("0", ok_raw)], ["tensor 'w'", "evil.module.make_tensor", "not supported"])
    bad_torch2("h_from_type_nested.pt",
               dumps({"w": Call(R_FROM_TYPE, (R_FROM_TYPE, torch.Tensor, (R_V2, torch.Tensor, (S(), 0, (6,), (1,), False, None), {}), {}))}),
               [("0", ok_raw)], ["tensor 'w'", "nested"])
    bad_torch2("h_param_not_tensor.pt", dumps({"w": Call(R_PARAM, (Opaque(), False, None))}), [("0", ok_raw)],
               ["tensor 'w'", "_rebuild_parameter", "Opaque"])
    pk = dumps({"w": Call(R_V2, (S(), 0, (6,), (1,), False, None))})
    assert pk[-5:-3] == b"Rq", pk[-8:]  # ... REDUCE, BINPUT n, SETITEM, STOP: make that REDUCE a NEWOBJ
    bad_torch2("h_newobj_rebuild.pt", pk[:-5] + b"\x81" + pk[-4:], [("0", ok_raw)], ["tensor 'w'", "NEWOBJ"])
    bad_torch2("h_format_version.pt", dumps({"w": v2(S(), 0, [6], [1])}), [("0", ok_raw)], [".format_version", "'2'"])
    with zipfile.ZipFile(os.path.join(bad_dir, "h_format_version.pt")) as z:
        ents = [(n, b"2" if n.endswith(".format_version") else z.read(n)) for n in z.namelist()]
    write_zip(os.path.join(bad_dir, "h_format_version.pt"), ents)
    # recursion: an OrderedDict subclass that contains itself (walked: a cycle)
    selfdict = StateDictWrapper()
    selfdict["me"] = selfdict
    bad_torch2("h_recursive_dict_subclass.pt", dumps({"w": selfdict}), [("0", ok_raw)], ["cycle"])
    # recursion through the pickle stack: placeholder dict subclasses nested 100 deep
    nest = b"\x80\x02}X\x01\x00\x00\x00w" + (b"cevil\nD\n)RX\x01\x00\x00\x00k") * 100 + b"}" + b"s" * 101 + b"."
    bad_torch2("h_deep_objects.pt", nest, [("0", ok_raw)], ["nesting deeper", "SETITEM", "offset"])
    # memo abuse
    bad_torch2("h_memo_put_text.pt", b"\x80\x02}p99999999999\n.", [("0", ok_raw)], ["memo index", "PUT", "offset"])
    bad_torch2("h_memo_get_text.pt", b"\x80\x02}g17\n.", [("0", ok_raw)], ["never set", "GET"])
    bad_torch2("h_memoize_empty.pt", b"\x80\x04\x94.", [("0", ok_raw)], ["underflow", "MEMOIZE"])
    bad_torch2("h_memo_overflow_text.pt", b"\x80\x02}p99999999999999999999999\n.", [("0", ok_raw)], ["does not fit", "PUT"])
    bad_torch2("h_next_buffer.pt", b"\x80\x05\x97.", [("0", ok_raw)], ["out-of-band", "NEXT_BUFFER"])
    pk = dumps({"w": Call(evil, (S(),))})
    assert b"cevil.module\nmake_tensor\n" in pk
    bad_torch2("h_ext_tensor.pt", pk.replace(b"cevil.module\nmake_tensor\n", b"\x82\x05"), [("0", ok_raw)],
               ["tensor 'w'", "copyreg.extension"])
    # legacy storage lists
    lobj = {"w": v2(Storage(torch.FloatStorage, "0", 6, legacy=True), 0, [6], [1])}
    good_legacy = legacy_file(lobj, [("0", 4, ok_raw)])
    bad("h_legacy_truncated.pth", good_legacy[:-5], ["legacy torch.save", "runs past the end"])
    bad("h_legacy_unknown_key.pth", legacy_file(lobj, [("9", 4, ok_raw), ("0", 4, ok_raw)]),
        ["tensor 'w'", "storage '9', listed before it, is named by no tensor"])
    bad("h_legacy_twice.pth", legacy_file(lobj, [("0", 4, ok_raw), ("0", 4, ok_raw)]), ["listed twice"])
    bad("h_legacy_missing.pth", legacy_file(lobj, []), ["not in the file's storage list", "tensor 'w'"])
    pv = legacy_file(lobj, [("0", 4, ok_raw)])
    bad("h_legacy_protocol_version.pth", pv.replace(b"M\xe9\x03", b"M\xea\x03", 1), ["protocol version"])
    bad("h_legacy_view.pth", legacy_file({"w": v2(Storage(torch.FloatStorage, "0", 6, view=("1", 4, 5), legacy=True), 0, [1], [1])},
                                         [("0", 4, ok_raw)]), ["tensor 'w'", "view_metadata"])
    bad("h_legacy_numel.pth", legacy_file({"w": v2(Storage(torch.FloatStorage, "0", 9, legacy=True), 0, [6], [1])},
                                          [("0", 4, ok_raw)]), ["tensor 'w'", "declares 9"])
    print("issue-19 checkpoint fixtures: %d good, %d hostile" % tuple(count))
