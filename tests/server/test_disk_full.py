"""A full spool disk (issue 15 item 9): the job fails with error code insufficient_storage
and a message naming the cause (not "Input/output error"), HTTP answers 507, and the
daemon goes on serving once space is free. Null model, one active slot.

The spool is a real 512 KiB tmpfs: the daemon runs in a private mount namespace (`unshare
-m` as root, `unshare -rm` where unprivileged user namespaces are allowed) that mounts it
over its spool directory, so writes fail with ENOSPC. Where neither works, a 512 KiB file
size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes them fail with EFBIG instead, which the
daemon reports the same way; the log says which mode ran (DISK_FULL_TEST_MODE=fsize forces
the fallback).

  1. output: job A (clip.ts, 54 KB, to y4m at 4x: 5.3 MB) fails while writing its output:
     state failed, error.code insufficient_storage, message "writing the output: ...";
     GET output 507 with that code; DELETE frees its files;
  2. input: job H holds the only slot with a partial chunked upload; job B (queued, so its
     upload goes straight to the spool) uploads 710 KB: the PUT answers 507
     insufficient_storage, B is failed with "storing the upload: ...";
  3. recovery: B deleted, H's upload completes and H succeeds (a small Matroska output);
     gauges back to 0."""
import http.client
import os
import shutil
import subprocess
import sys
import time

import harness as H

SPOOL_BYTES = 512 * 1024
DEADLINE = 60 * H.SLOWDOWN

FSIZE_WRAPPER = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                 f"resource.setrlimit(resource.RLIMIT_FSIZE, ({SPOOL_BYTES}, {SPOOL_BYTES})); "
                 "os.execv(sys.argv[1], sys.argv[1:])")


def spool_mode(work):
    """('tmpfs', unshare argv) when a private tmpfs can be mounted, else ('fsize', None)."""
    unshare = shutil.which("unshare")
    if os.environ.get("DISK_FULL_TEST_MODE") == "fsize":  # to run the fallback by hand
        return "fsize", None
    if unshare:
        base = [unshare, "-m"] if os.geteuid() == 0 else [unshare, "-rm"]
        probe_dir = os.path.join(work, "mount-probe")
        os.makedirs(probe_dir, exist_ok=True)
        p = subprocess.run(base + ["sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', probe_dir],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return "tmpfs", base
        H.log(f"no private tmpfs ({' '.join(base)}: {p.stderr.strip()}): using a file size limit")
    return "fsize", None


class SmallSpoolDaemon(H.Daemon):
    def __init__(self, *a, mode, base, **kw):
        super().__init__(*a, **kw)
        self.mode, self.base = mode, base

    def command(self):
        cmd = super().command()
        if self.mode == "tmpfs":
            return self.base + ["sh", "-c", f'mount -t tmpfs -o size={SPOOL_BYTES} tmpfs "$0" && exec "$@"',
                                self.spool] + cmd
        return [sys.executable, "-c", FSIZE_WRAPPER] + cmd


class PartialPut:
    """A chunked PUT that sends its first bytes now and the rest later."""

    def __init__(self, c, job_id, first):
        self.path = f"/v1/jobs/{job_id}/input"
        self.conn = http.client.HTTPConnection(c.host, c.port, timeout=DEADLINE)
        self.conn.putrequest("PUT", self.path, skip_accept_encoding=True)
        self.conn.putheader("Content-Type", "video/mp2t")
        self.conn.putheader("Transfer-Encoding", "chunked")
        self.conn.endheaders()
        self.conn.send(b"%x\r\n%s\r\n" % (len(first), first))

    def finish(self, c, rest):
        self.conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
        r = self.conn.getresponse()
        body = r.read()
        c.rec.add("PUT", self.path, r.status, H._headers_dict(r.msg), body)
        self.conn.close()
        return r.status, body


def wait_metric(c, name, pred, timeout=DEADLINE):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = c.metrics().get(name)
        if pred(v):
            return v, True
        time.sleep(0.05)
    return v, False


def body(t):
    mode, base = spool_mode(t.work)
    cause = "the spool disk is full (No space left on device)" if mode == "tmpfs" else \
        "the spool file reached the file size limit (File too large)"
    H.log(f"spool: {mode} ({SPOOL_BYTES} bytes); expected cause: {cause}")
    d = SmallSpoolDaemon(t.work, "diskfull", model="null", mode=mode, base=base,
                         # H's upload pauses on purpose: no min_upload_rate cut-off
                         args=["--max-active-jobs-per-worker", "1", "--min-upload-rate", "0"]).start()
    c = t.client(d)
    clip = open(H.fixture("clip.ts"), "rb").read()

    # 1. The output fills the spool.
    a = c.create_job({"output": {"container": "y4m", "codec": "rawvideo"}}).json()["id"]
    r = c.put_input(a, clip)
    t.check(r.status in (204, 507), "A: PUT 204 (or 507 if the output filled the spool first)", r)
    ja = c.wait_state(a, ("failed", "succeeded", "cancelled"), timeout=DEADLINE)
    H.log(f"A: {ja.get('error')}")
    t.eq(ja["state"], "failed", "A failed")
    err = ja.get("error") or {}
    t.eq(err.get("code"), "insufficient_storage", "A: error code insufficient_storage")
    t.check(err.get("message", "").startswith("writing the output: ") and cause in err.get("message", ""),
            "A: the message names the output and the full disk", err)
    t.check("Input/output error" not in err.get("message", ""), "A: not reported as an I/O error", err)
    ro = c.get(f"/v1/jobs/{a}/output")
    t.eq((ro.status, ro.code()), (507, "insufficient_storage"), "A: GET output 507 insufficient_storage")
    t.eq(c.delete(f"/v1/jobs/{a}").status, 204, "A: DELETE frees its files")
    t.eq(H.gauges_settled(c, DEADLINE), (0.0, 0.0, 0.0), "gauges 0 after A")

    # 2. The input fills the spool: H holds the only slot, B is queued and stores its upload.
    h = c.create_job({"scale": 1, "output": {"container": "matroska"}}).json()["id"]
    hold = PartialPut(c, h, clip[:8192])
    v, ok = wait_metric(c, "infvsrd_jobs_active", lambda x: x == 1.0)
    t.check(ok, "H holds the only slot", v)
    b = c.create_job({}).json()["id"]
    big = open(H.fixture("long.ts"), "rb").read() * 5
    rb = c.put_input(b, big)
    H.log(f"B: PUT {len(big)} bytes -> {rb.status} {rb.body[:300]!r}")
    t.eq((rb.status, rb.code()), (507, "insufficient_storage"), "B: PUT 507 insufficient_storage")
    jb = c.wait_state(b, ("failed", "succeeded", "cancelled"), timeout=DEADLINE)
    err = jb.get("error") or {}
    t.eq((jb["state"], err.get("code")), ("failed", "insufficient_storage"), "B failed: insufficient_storage")
    t.check(err.get("message", "").startswith("storing the upload: ") and cause in err.get("message", ""),
            "B: the message names the upload and the full disk", err)

    # 3. Space is free again: H completes.
    t.eq(c.delete(f"/v1/jobs/{b}").status, 204, "B: DELETE")
    st, _ = hold.finish(c, clip[8192:])
    t.eq(st, 204, "H: the rest of the upload is stored (204)")
    jh = c.wait_state(h, ("failed", "succeeded", "cancelled"), timeout=DEADLINE)
    t.eq(jh["state"], "succeeded", "H succeeded once the spool had room")
    rh, _ = c.read_output(h)
    t.check(rh.status == 200 and len(rh.body) > 0, "H: output readable", rh)
    t.eq(H.gauges_settled(c, DEADLINE), (0.0, 0.0, 0.0), "gauges 0 at the end")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("disk_full"), body)
