"""Byte-level builders for torch.save-style archives and pickles, for the io tests.

write_zip() lays out entries the way torch.save (miniz) does: general-purpose flag 0x0808
(bit 3 set, so local sizes and CRC are zero), method 0, and an 'FB' padding record in the
local extra field that aligns every entry's data to 64 bytes. With zip64=True it always
writes the ZIP64 end record, locator and 0x0001 extra fields (as files > 4 GiB need), so
that path is tested without a 4 GiB fixture. Hostile variants are made by passing hooks.

The pickle helpers emit protocol-2 opcodes by hand (the names are pickletools')."""
import struct
import zlib


def write_zip(path, entries, zip64=False, align=64, method=0, cd_hook=None, eocd_hook=None):
    """entries: list of (name, data) where data is bytes, or an int n for n zero bytes written
    as a hole (a sparse file: how a > 4 GiB archive is tested without 4 GiB of disk; the CRC
    of such an entry is left 0, which the reader does not check).
    cd_hook(i, dict) may edit central-directory fields, eocd_hook(dict) the end record.
    Returns the file's bytes when every entry is bytes (used to derive hostile variants)."""
    records = []
    with open(path, "w+b") as f:
        for name, data in entries:
            nb = name.encode()
            off = f.tell()
            pad = (align - (off + 30 + len(nb) + 4) % align) % align if align else 0
            extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad if align else b""
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0x0808, method, 0, 0x21,
                                0, 0, 0, len(nb), len(extra)))
            f.write(nb + extra)
            if isinstance(data, int):
                size, crc = data, 0
                f.seek(data, 1)
            else:
                size, crc = len(data), zlib.crc32(data)
                f.write(data)
            records.append(dict(name=nb, off=off, size=size, csize=size, crc=crc, method=method, flags=0x0808))
        cd_off = f.tell()
        for i, r in enumerate(records):
            if cd_hook:
                cd_hook(i, r)
            if zip64:
                x = struct.pack("<HHQQQ", 0x0001, 24, r["size"], r["csize"], r["off"])
                size32 = csize32 = off32 = 0xFFFFFFFF
            else:
                x = b""
                size32, csize32, off32 = r["size"], r["csize"], r["off"]
            f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if zip64 else 20, 45 if zip64 else 20,
                                r["flags"], r["method"], 0, 0x21, r["crc"], csize32, size32, len(r["name"]),
                                len(x), 0, 0, 0, 0, off32))
            f.write(r["name"] + x)
        cd_size = f.tell() - cd_off
        e = dict(n=len(records), cd_size=cd_size, cd_off=cd_off)
        if eocd_hook:
            eocd_hook(e)
        if zip64:
            z64 = f.tell()
            f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, e["n"], e["n"], e["cd_size"], e["cd_off"]))
            f.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        else:
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, e["n"], e["n"], e["cd_size"], e["cd_off"], 0))
        if any(isinstance(d, int) for _, d in entries):
            return None
        f.seek(0)
        return f.read()


# ---- pickle opcodes ------------------------------------------------------------------

def uni(s):
    b = s.encode() if isinstance(s, str) else s
    return b"X" + struct.pack("<I", len(b)) + b


def glob(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def pint(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def tup(*items):
    return b"(" + b"".join(items) + b"t"


def tensor(key, storage_class, numel, offset, size, stride, rebuild=b""):
    """REDUCE(_rebuild_tensor_v2, (persistent storage, offset, size, stride, False, OrderedDict()))."""
    pid = tup(uni("storage"), glob("torch", storage_class), uni(key), uni("cpu"), pint(numel))
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + pint(offset) +
            tup(*[pint(s) for s in size]) + tup(*[pint(s) for s in stride]) + b"\x89" +
            glob("collections", "OrderedDict") + b")R" + b"t" + b"R")


def state_dict(pairs):
    """Protocol-2 pickle of a dict {key: value-opcodes}."""
    return b"\x80\x02}(" + b"".join(uni(k) + v for k, v in pairs) + b"u."
