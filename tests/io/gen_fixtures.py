"""Generates the io test fixtures into OUTDIR (the build directory, never git).

  good/   checkpoints written by torch.save (torch 1.13) and by st_io.save, plus archives
          re-laid-out by torch_zip_writer (ZIP64, 'archive/' prefix, big-endian, protocol 4)
  bad/    hostile files, each one defect away from a valid file
  manifest.json  {"good": [{"file", "tensors": [{"key","dtype","shape","sha256"}]}],
                  "bad":  [{"file", "expect"}]}   expect = a word the error message must contain

sha256 is over the tensor's elements as contiguous little-endian bytes in its stored dtype,
computed here by PyTorch/numpy, independently of the C reader.

usage: /usr/bin/python3 gen_fixtures.py OUTDIR"""
import collections
import hashlib
import json
import os
import struct
import sys
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, HERE)
import st_io  # noqa: E402
from torch_zip_writer import glob, pint, state_dict, tensor, tup, uni, write_zip  # noqa: E402

DTYPE_NAME = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "bool",
}

out_dir = sys.argv[1]
good_dir = os.path.join(out_dir, "good")
bad_dir = os.path.join(out_dir, "bad")
os.makedirs(good_dir, exist_ok=True)
os.makedirs(bad_dir, exist_ok=True)
manifest = {"good": [], "bad": []}
gen = torch.Generator().manual_seed(1234)


def rnd(*shape, dtype=torch.float32):
    if dtype == torch.bool:
        return torch.rand(*shape, generator=gen) > 0.5
    if dtype.is_floating_point:
        return torch.randn(*shape, generator=gen).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -1000), min(info.max, 1000) + 1, shape, generator=gen, dtype=dtype)


def flatten(obj, prefix=""):
    """Expected flattening rule of the C reader: dicts joined by '.', tensors kept, rest skipped."""
    out = []
    for k, v in obj.items():
        key = prefix + "." + str(k) if prefix else str(k)
        if isinstance(v, dict):
            out += flatten(v, key)
        elif isinstance(v, torch.Tensor):
            out.append((key, v))
    return out


def expect(name, tensors):
    manifest["good"].append({"file": "good/" + name, "tensors": [
        {"key": k, "dtype": DTYPE_NAME[t.dtype], "shape": list(t.shape),
         "sha256": hashlib.sha256(st_io.tensor_bytes(t)).hexdigest()} for k, t in tensors]})


def save_torch(name, obj, **kw):
    torch.save(obj, os.path.join(good_dir, name), **kw)
    expect(name, flatten(obj))


def bad(name, data, word):
    with open(os.path.join(bad_dir, name), "wb") as f:
        f.write(data)
    manifest["bad"].append({"file": "bad/" + name, "expect": word})


def bad_zip(name, entries, word, **kw):
    write_zip(os.path.join(bad_dir, name), entries, **kw)
    manifest["bad"].append({"file": "bad/" + name, "expect": word})


# ---- good: torch.save ------------------------------------------------------------------
all_dtypes = collections.OrderedDict()
for dt in DTYPE_NAME:
    all_dtypes["w_" + DTYPE_NAME[dt]] = rnd(3, 5, dtype=dt)
all_dtypes["scalar"] = torch.tensor(2.5)
all_dtypes["scalar_i64"] = torch.tensor(-7, dtype=torch.int64)
all_dtypes["empty"] = torch.zeros(0, 4)
all_dtypes["empty_bf16"] = torch.zeros(3, 0, 2, dtype=torch.bfloat16)
all_dtypes["five_d"] = rnd(2, 3, 1, 4, 2, dtype=torch.bfloat16)
save_torch("all_dtypes.pt", all_dtypes)
st_io.save(os.path.join(good_dir, "all_dtypes.safetensors"), all_dtypes, {"format": "pt", "note": "io test"})
expect("all_dtypes.safetensors", list(all_dtypes.items()))

inner = collections.OrderedDict([("c", rnd(4)), ("d", rnd(2, 2, dtype=torch.float16))])
save_torch("nested.pt", {"a": {"b": inner, "e": rnd(3)}, "top": rnd(1)})

sd = collections.OrderedDict([("encoder.conv.weight", rnd(4, 3, 3, 3)), ("encoder.conv.bias", rnd(4)),
                              ("decoder.norm.gamma", rnd(4, dtype=torch.bfloat16))])
save_torch("model_state.pt", {"model_state": sd})
save_torch("ram_like.pt", {"model": sd, "epoch": 3, "names": ["a"], "cfg": None, "lr": 0.1,
                           "opt": {"step": 10, "betas": (0.9, 0.99)},
                           # protocol 2 pickles these as REDUCE of torch.Size / builtins.set
                           "input_shape": torch.Size([3, 384, 384]), "classes": {"cat", "dog"},
                           "empty": set(), "frozen": frozenset({1})})

# A real nn.Module state_dict(): OrderedDict + BUILD({'_metadata': ...}), buffers (BatchNorm's
# 0-dim i64 num_batches_tracked), nested module prefixes. This is InfVSR.ckpt's framing.
torch.manual_seed(0)
module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                             torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.LayerNorm(5)))
module_sd = module.state_dict()
assert hasattr(module_sd, "_metadata")
save_torch("module_state_dict.pt", module_sd)
save_torch("module_bf16.pt", {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in module_sd.items()})

big = rnd(10, 6)
base = rnd(20)
views = collections.OrderedDict()
views["tail"] = base[3:]                       # storage offset 3
views["head"] = base[:3]                       # shares the storage with "tail"
views["mid"] = base[5:9].view(2, 2)            # offset + reshape
views["transposed"] = big.t()                  # non-contiguous
views["permuted"] = rnd(2, 3, 4, dtype=torch.bfloat16).permute(2, 0, 1)
views["strided"] = big[::2, 1::3]              # offset + steps
views["expanded"] = rnd(1, 4).expand(3, 4)     # stride 0
views["param"] = torch.nn.Parameter(rnd(3, 2))
views["param_frozen"] = torch.nn.Parameter(rnd(2), requires_grad=False)
save_torch("views.pt", views)

many = collections.OrderedDict(("layers.%d.weight" % i, rnd(2)) for i in range(300))  # memo > 255
save_torch("many.pt", many)
save_torch("proto4.pt", {"model": collections.OrderedDict(list(many.items())[:20]), "x": rnd(3, 3),
                         "tags": {"a", "b"}, "frozen": frozenset({1, 2}), "blob": b"xyz", "big": 2**40,
                         "neg": -5, "ratio": 1.5, "pair": (1, "a"), "none": None},
           pickle_protocol=4)  # FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, EMPTY_SET, FROZENSET, ...

# ---- good: re-laid-out archives (same pickle and storages, different container) -------
def relayout(src, dst, prefix=None, **kw):
    with zipfile.ZipFile(os.path.join(good_dir, src)) as z:
        ents = [(n, z.read(n)) for n in z.namelist()]
    if prefix:
        ents = [(prefix + "/" + n.split("/", 1)[1], d) for n, d in ents]
    write_zip(os.path.join(good_dir, dst), ents, **kw)
    e = next(g for g in manifest["good"] if g["file"] == "good/" + src)
    manifest["good"].append({"file": "good/" + dst, "tensors": e["tensors"]})
    return ents


relayout("views.pt", "views_zip64.pt", zip64=True)
relayout("all_dtypes.pt", "all_dtypes_archive.pt", prefix="archive", zip64=True)
relayout("many.pt", "many_unaligned.pt", align=0)  # data not 64-aligned (some not even 2-aligned)

# Handcrafted pickle + big-endian storages with a byteorder record.
be_t = collections.OrderedDict([("f32", rnd(2, 3)), ("bf16", rnd(5, dtype=torch.bfloat16)),
                                ("i64", rnd(4, dtype=torch.int64)), ("f64t", rnd(3, 2, dtype=torch.float64).t()),
                                ("u8", rnd(3, dtype=torch.uint8))])
cls = {torch.float32: "FloatStorage", torch.bfloat16: "BFloat16Storage", torch.int64: "LongStorage",
       torch.float64: "DoubleStorage", torch.uint8: "ByteStorage"}
pairs, ents = [], []
for i, (k, t) in enumerate(be_t.items()):
    storage = t.contiguous() if k != "f64t" else t.t().contiguous()  # f64t: transposed view of its storage
    raw = st_io.tensor_bytes(storage)
    es = storage.element_size()
    raw_be = b"".join(raw[j:j + es][::-1] for j in range(0, len(raw), es))
    ents.append(("archive/data/%d" % i, raw_be))
    pairs.append((k, tensor(str(i), cls[t.dtype], storage.numel(), 0, list(t.shape), list(t.stride()))))
be_pkl = state_dict(pairs)
write_zip(os.path.join(good_dir, "big_endian.pt"),
          [("archive/data.pkl", be_pkl), ("archive/byteorder", b"big")] + ents + [("archive/version", b"3\n")])
expect("big_endian.pt", list(be_t.items()))

# Control for the hostile pickles below: a minimal handcrafted archive that must load.
ok_t = torch.arange(6, dtype=torch.float32)
ok_raw = st_io.tensor_bytes(ok_t)


def ok_entries(pkl, data=ok_raw):
    return [("archive/data.pkl", pkl), ("archive/data/0", data), ("archive/version", b"3\n")]


ok_pkl = state_dict([("w", tensor("0", "FloatStorage", 6, 0, [2, 3], [3, 1]))])
write_zip(os.path.join(good_dir, "handmade.pt"), ok_entries(ok_pkl))
expect("handmade.pt", [("w", ok_t.reshape(2, 3))])

# Extras built with the data-only opcodes POP_MARK, DUP, POP, BINSTRING, LONG4: skipped.
extras_pkl = (b"\x80\x02}(" + uni("w") + tensor("0", "FloatStorage", 6, 0, [2, 3], [3, 1]) +
              uni("x1") + b"(K\x01K\x021" + b"]20" + uni("x2") + b"T\x03\x00\x00\x00abc" +
              uni("x3") + b"\x8b\x02\x00\x00\x00\xff\x7f" + b"u.")
write_zip(os.path.join(good_dir, "handmade_extras.pt"), ok_entries(extras_pkl))
expect("handmade_extras.pt", [("w", ok_t.reshape(2, 3))])

# An empty view whose other dims are huge (numel 0 must not overflow anything).
huge_empty = state_dict([("e", tensor("0", "FloatStorage", 6, 0, [0, 2**62, 2**62], [1, 1, 1])),
                         ("w", tensor("0", "FloatStorage", 6, 0, [2, 3], [3, 1]))])
write_zip(os.path.join(good_dir, "huge_empty.pt"), ok_entries(huge_empty))
manifest["good"].append({"file": "good/huge_empty.pt", "tensors": [
    {"key": "e", "dtype": "f32", "shape": [0, 2**62, 2**62], "sha256": hashlib.sha256(b"").hexdigest()},
    {"key": "w", "dtype": "f32", "shape": [2, 3], "sha256": hashlib.sha256(ok_raw).hexdigest()}]})

# A real > 4 GiB archive (sparse file): a 4.6 GB storage of zeros, then a small tensor whose
# local header offset needs the ZIP64 extra field. Skipped where the filesystem is not sparse.
huge_path = os.path.join(good_dir, "huge_zip64.pt")
huge_numel = 1_150_000_000
huge_pkl = state_dict([("zeros", tensor("0", "FloatStorage", huge_numel, 0, [huge_numel], [1])),
                       ("w", tensor("1", "FloatStorage", 6, 0, [2, 3], [3, 1]))])
write_zip(huge_path, [("archive/data.pkl", huge_pkl), ("archive/data/0", huge_numel * 4),
                      ("archive/data/1", ok_raw), ("archive/version", b"3\n")], zip64=True)
if os.stat(huge_path).st_blocks * 512 < 2**26:
    manifest["good"].append({"file": "good/huge_zip64.pt", "large": True, "tensors": [
        {"key": "zeros", "dtype": "f32", "shape": [huge_numel], "sha256": None},  # not hashed: 4.6 GB
        {"key": "w", "dtype": "f32", "shape": [2, 3], "sha256": hashlib.sha256(ok_raw).hexdigest()}]})
else:
    os.remove(huge_path)
    print("note: filesystem is not sparse; the > 4 GiB ZIP64 fixture is skipped")

# safetensors whose header length is not a multiple of 8 (unaligned data: reader must copy)
una = {"a": rnd(3, dtype=torch.float64), "b": rnd(2, dtype=torch.bfloat16)}
hdr = json.dumps({"a": {"dtype": "F64", "shape": [3], "data_offsets": [0, 24]},
                  "b": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]}}).encode() + b"   "
with open(os.path.join(good_dir, "unaligned.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hdr)) + hdr + st_io.tensor_bytes(una["a"]) + st_io.tensor_bytes(una["b"]))
assert (8 + len(hdr)) % 8 != 0
expect("unaligned.safetensors", list(una.items()))

# ---- bad: container ------------------------------------------------------------------
good_pt = open(os.path.join(good_dir, "handmade.pt"), "rb").read()
bad("trunc_10.pt", good_pt[:10], "too short")
bad("trunc_half.pt", good_pt[:len(good_pt) // 2], "end of central directory")
bad("trunc_tail.pt", good_pt[:-5], "end of central directory")
bad_zip("eocd_entries.pt", ok_entries(ok_pkl), "entries",
        eocd_hook=lambda e: e.update(n=5000))
bad_zip("cd_offset.pt", ok_entries(ok_pkl), "central directory",
        eocd_hook=lambda e: e.update(cd_off=e["cd_off"] + 100000))
bad_zip("cd_size.pt", ok_entries(ok_pkl), "central directory",
        eocd_hook=lambda e: e.update(cd_size=e["cd_size"] + 7))
bad_zip("zip64_cd_offset.pt", ok_entries(ok_pkl), "central directory", zip64=True,
        eocd_hook=lambda e: e.update(cd_off=2**62))
bad_zip("entry_offset.pt", ok_entries(ok_pkl), "local header offset",
        cd_hook=lambda i, r: r.update(off=r["off"] + 10**6) if i == 1 else None)
bad_zip("entry_size.pt", ok_entries(ok_pkl), "beyond the file",
        cd_hook=lambda i, r: r.update(size=10**6, csize=10**6) if i == 1 else None)
bad_zip("deflate.pt", ok_entries(ok_pkl), "compression method 8",
        cd_hook=lambda i, r: r.update(method=8) if i == 0 else None)
bad_zip("encrypted.pt", ok_entries(ok_pkl), "encrypted",
        cd_hook=lambda i, r: r.update(flags=r["flags"] | 1) if i == 1 else None)
zip64_no_loc = bytearray(write_zip(os.path.join(bad_dir, "tmp"), ok_entries(ok_pkl), zip64=True))
zip64_no_loc[-42:-38] = b"\0\0\0\0"  # clobber the locator signature (22-byte EOCD + 20-byte locator)
bad("zip64_no_locator.pt", bytes(zip64_no_loc), "ZIP64")
os.remove(os.path.join(bad_dir, "tmp"))
bad_zip("no_data_pkl.pt", [("archive/data.pk", ok_pkl), ("archive/data/0", ok_raw)], "data.pkl")
bad_zip("two_data_pkl.pt", ok_entries(ok_pkl) + [("other/data.pkl", ok_pkl)], "several")
bad_zip("missing_storage.pt", [("archive/data.pkl", ok_pkl)], "missing")
bad_zip("storage_short.pt", ok_entries(ok_pkl, ok_raw[:20]), "declares")
bad_zip("byteorder.pt", ok_entries(ok_pkl) + [("archive/byteorder", b"middle")], "byteorder")

# ---- bad: tensor records ---------------------------------------------------------------
def bad_rec(name, rec, word, data=ok_raw):
    bad_zip(name, ok_entries(state_dict([("w", rec)]), data), word)


bad_rec("view_too_big.pt", tensor("0", "FloatStorage", 6, 0, [3, 3], [3, 1]), "needs element")
bad_rec("view_offset.pt", tensor("0", "FloatStorage", 6, 4, [3], [1]), "needs element")
bad_rec("numel_overflow.pt", tensor("0", "FloatStorage", 6, 0, [2**62, 2**62], [1, 1]), "element count overflows")
bad_rec("stride_overflow.pt", tensor("0", "FloatStorage", 6, 0, [5, 2], [2**62, 1]), "strides overflow")
bad_rec("empty_offset.pt", tensor("0", "FloatStorage", 6, 7, [0, 2**62, 2**62], [1, 1, 1]), "storage offset 7 beyond")
bad_rec("negative_dim.pt", tensor("0", "FloatStorage", 6, 0, [-1, 3], [3, 1]), "negative size")
bad_rec("rank6.pt", tensor("0", "FloatStorage", 6, 0, [1] * 6, [1] * 6), "rank 6")
bad_rec("storage_numel.pt", tensor("0", "FloatStorage", 2**61, 0, [2], [1]), "declares")
bad_zip("dup_key.pt", ok_entries(b"\x80\x02}(" + uni("a.b") + tensor("0", "FloatStorage", 6, 0, [6], [1]) +
                                 uni("a") + b"}" + uni("b") + tensor("0", "FloatStorage", 6, 0, [6], [1]) + b"su."),
        "duplicate")

# ---- bad: pickle -----------------------------------------------------------------------
def bad_pkl(name, pkl, word):
    bad_zip(name, ok_entries(pkl), word)


bad_pkl("global_os_system.pt", b"\x80\x02" + glob("os", "system") + uni("echo pwned") + b"\x85R.", "os.system")
bad_pkl("global_eval.pt", b"\x80\x04" + uni("builtins") + uni("eval") + b"\x93" + uni("1") + b"\x85R.",
        "builtins.eval")
bad_pkl("global_getattr.pt", b"\x80\x02" + glob("torch", "load") + b".", "torch.load")
bad_pkl("unknown_opcode.pt", b"\x80\x02}\xff.", "0xff")
bad_pkl("stack_underflow.pt", b"\x80\x02]a.", "underflow")
bad_pkl("mark_underflow.pt", b"\x80\x02](a.", "underflow")
bad_pkl("no_mark.pt", b"\x80\x02}u.", "MARK")
bad_pkl("deep_lists.pt", b"\x80\x02" + b"]" * 10000 + b"a" * 9999 + b"}.", "nesting")
bad_pkl("deep_dicts.pt", b"\x80\x02" + b"}" + (uni("k") + b"}") * 10000 + b"s" * 10000 + b".", "nesting")
bad_pkl("dict_cycle.pt", b"\x80\x02}q\x00" + uni("self") + b"h\x00s.", "cycle")
bad_pkl("memo_huge.pt", b"\x80\x02}r\xff\xff\xff\xff.", "memo index")
bad_pkl("binget_unset.pt", b"\x80\x02}q\x00h\x05.", "never set")
bad_pkl("huge_string.pt", b"\x80\x02X\xf0\xff\xff\x7f" + b"a" * 100 + b".", "exceeds the limit")
bad_pkl("string_past_end.pt", b"\x80\x02X\x00\x10\x00\x00abc", "past the end")
bad_pkl("no_stop.pt", b"\x80\x02}", "truncated")
bad_pkl("protocol6.pt", b"\x80\x06}.", "protocol")
bad_pkl("long1_9bytes.pt", b"\x80\x02\x8a\x09" + b"\x01" * 9 + b".", "64 bits")
bad_pkl("call_storage.pt", b"\x80\x02" + glob("torch", "FloatStorage") + b")R.", "storage class")
bad_pkl("call_int.pt", b"\x80\x02K\x01)R.", "cannot call")
bad_pkl("build_list.pt", b"\x80\x02]}b.", "BUILD")
bad_pkl("top_list.pt", b"\x80\x02].", "expected a dict")
bad_pkl("persid_bad.pt", b"\x80\x02}(" + uni("w") + tup(uni("storage"), uni("x")) + b"Qu.", "persistent id")
bad_pkl("ordered_dict_args.pt", b"\x80\x02" + glob("collections", "OrderedDict") + pint(5) + b"\x85R.", "OrderedDict")

# ---- bad: safetensors ------------------------------------------------------------------
def st_file(header, data=b"", raw_len=None):
    hb = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(hb) if raw_len is None else raw_len) + hb + data


f4 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
bad("st_hlen.safetensors", st_file({"a": f4}, b"\0" * 8, raw_len=10**6), "exceeds the file")
bad("st_hlen_huge.safetensors", st_file({"a": f4}, b"\0" * 8, raw_len=2**64 - 1), "exceeds the file")
bad("st_json.safetensors", st_file(b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]', b"\0" * 8), "bad JSON")
bad("st_not_object.safetensors", st_file(b'{"a": 3}', b""), "not an object")
bad("st_offsets.safetensors", st_file({"a": dict(f4, data_offsets=[0, 16])}, b"\0" * 8), "out of range")
bad("st_offsets_reversed.safetensors", st_file({"a": dict(f4, data_offsets=[8, 0])}, b"\0" * 8), "out of range")
bad("st_size.safetensors", st_file({"a": dict(f4, shape=[3])}, b"\0" * 16), "size mismatch")
bad("st_dtype.safetensors", st_file({"a": dict(f4, dtype="F8_E4M3")}, b"\0" * 8), "unknown dtype")
bad("st_rank9.safetensors", st_file({"a": dict(f4, shape=[1] * 8 + [2])}, b"\0" * 8), "rank 9")
bad("st_negative.safetensors", st_file({"a": dict(f4, shape=[-2])}, b"\0" * 8), "non-negative")
bad("st_numel.safetensors", st_file({"a": dict(f4, shape=[2**40, 2**40])}, b"\0" * 8), "overflows")
bad("st_dup.safetensors", st_file(b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                                  b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 8), "duplicate")
bad("st_metadata.safetensors", st_file({"__metadata__": [1], "a": f4}, b"\0" * 8), "__metadata__")

# ---- bad: other formats -----------------------------------------------------------------
# the legacy (pre-1.6) format is read since issue 19: a good file here, many in gen_ckpt_fixtures.py
save_torch("legacy.pt", {"w": ok_t}, _use_new_zipfile_serialization=False)
manifest["good"][-1]["format"] = "legacy"
bad("empty.bin", b"", "unknown format")
bad("random.bin", bytes(range(7, 200)), "unknown format")

import gen_ckpt_fixtures  # noqa: E402  (issue 19: protocols, legacy format, wrappers, torch 2.x, hostile)
gen_ckpt_fixtures.generate(good_dir, bad_dir, manifest, rnd, DTYPE_NAME)

with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print("io fixtures: %d good, %d bad -> %s" % (len(manifest["good"]), len(manifest["bad"]), out_dir))
