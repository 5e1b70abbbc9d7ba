"""Seeds fuzz_weights' corpus from the io fixtures: every fixture under 64 KiB as a whole
file (first byte 0x00) and every data.pkl inside them, plus bare/legacy pickles, as a
pickle-mode input (first byte 0x01).

usage: python3 make_corpus.py FIXTURE_DIR CORPUS_DIR"""
import hashlib
import os
import sys
import zipfile

fx, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
n = 0


def put(b):
    global n
    with open(os.path.join(out, hashlib.sha1(b).hexdigest()), "wb") as f:
        f.write(b)
    n += 1


for sub in ("good", "bad"):
    for name in sorted(os.listdir(os.path.join(fx, sub))):
        path = os.path.join(fx, sub, name)
        if os.path.getsize(path) > 65536:  # e.g. the 4.6 GB sparse ZIP64 fixture
            continue
        data = open(path, "rb").read()
        put(b"\x00" + data)
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as z:
                    for e in z.namelist():
                        if e.endswith("data.pkl"):
                            put(b"\x01" + z.read(e))
            except Exception:  # hostile archives
                pass
        elif data[:1] == b"\x80":
            put(b"\x01" + data)
print("%d corpus files in %s" % (n, out))
