"""`infvsr submit` against the real daemon (issue 20 item 1 acceptance).

A TCP proxy (CutProxy, in this process) sits between the client and the daemon: it counts
the bytes of every connection and can cut (or stall, then cut) a connection N bytes after a
marker (`PATCH `, `/output`) went through it. Cases, tiny model unless said:
  plain:     a run through the proxy exits 0; OUT has 48 frames at 128x96 and is
             byte-identical to the job's output read directly; no state file or .part left.
  upload_cut: the first PATCH is cut after 12 KB: the client HEADs and continues at the
             server's offset (0 < offset), the upload crosses the proxy less than twice.
  kill:      the upload is slowed (--limit-rate), the client is SIGKILLed once the server holds
             > 8 KB; the same command again resumes: its first PATCH starts at the HEAD offset,
             and the bytes it sends upstream are fewer than the file (it did not restart at 0).
  download_cut: the output stream is cut 20 KB in while the job runs; the client resumes
             (re-stream compared with OUT.part, or Range) and OUT is byte-identical.
  download_range: the output stream stalls 20 KB in until the job has succeeded, then it is
             cut: the client resumes with `Range: bytes=N-` (206) and OUT is byte-identical.
  auth:      a wrong token and no token: exit code 4, the server's 401 message.
  bad_input: not a video (422 unprocessable_video) and options the server refuses (400):
             exit code 1 with the server's message, no state left.
  busy:      null model, one job slot held by an open PUT, max_queued_jobs 0, retry_after_s 1:
             --max-wait 0 exits 5 naming the 503 and Retry-After; with the default it waits
             (a `retry` event with wait_s 1), the slot is freed, and the run completes.
  lost_url:  (null model) a run killed before it saved the tus URL: the next run's tus
             creation gets 409 and continues at /v1/uploads/{job id} from the server's offset.
  redirect:  two instances behind a proxy that sends creations to a and the rest to b: b's
             307s are followed (PATCH body included), then a is used directly.
  readme:    README's submit block, run as written (build dir and port substituted).
No fixed sleeps: every wait is for a state or an event, with generous deadlines."""
import hashlib
import json
import os
import sys
import re
import select
import signal
import socket
import subprocess
import threading
import time

import harness as H

INFVSR = os.environ.get("INFVSR", "")
TOKEN = "submit-test-token"


class CutProxy:
    """Forwards 127.0.0.1:<port> to the daemon. rule: None, or dict(marker=b'PATCH ',
    direction='up'|'down', after=N, stall=False): the first connection whose client side
    sends `marker` is cut after `after` more bytes in `direction` (with stall=True the
    proxy stops forwarding there until release() and then cuts). One cut per arm()."""

    def __init__(self, upstream_port, route=None):
        self.up_port = upstream_port
        self.route = route  # route(first bytes of the connection) -> upstream port (a load balancer)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.rule = None
        self.throttle = 0  # bytes/s client -> daemon (0: unlimited), pieces of at most 1 KiB then
        self.cuts = 0
        self.gen = 0
        self.up_bytes = 0
        self.down_bytes = 0
        self.stalled = threading.Event()
        self.released = threading.Event()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, **rule):
        with self.lock:
            self.rule = dict(rule)
            self.stalled.clear()
            self.released.clear()

    def reset_counts(self):
        with self.lock:
            self.up_bytes = self.down_bytes = 0
            self.gen += 1

    def release(self):
        self.released.set()

    def close(self):
        self.closed = True
        self.released.set()
        try:
            self.ls.close()
        except OSError:
            pass

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(c,), daemon=True).start()

    def _connect(self, c):
        if True:
            port = self.up_port
            if self.route:
                try:
                    port = self.route(c.recv(64, socket.MSG_PEEK))
                except OSError:
                    c.close()
                    return
            try:
                u = socket.create_connection(("127.0.0.1", port))
            except OSError:
                c.close()
                return
            conn = {"gen": self.gen, "c": c, "u": u, "armed": None, "count": 0, "tail": b"", "dead": False}
            threading.Thread(target=self._pump, args=(conn, c, u, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, u, c, "down"), daemon=True).start()

    def _kill(self, conn):
        conn["dead"] = True
        for s in (conn["c"], conn["u"]):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _pump(self, conn, src, dst, direction):
        while not conn["dead"]:
            try:
                data = src.recv(1024 if self.throttle and direction == "up" else 16384)
            except OSError:
                data = b""
            if not data:
                break
            with self.lock:
                if conn["gen"] == self.gen:  # bytes of connections from before reset_counts() are not counted
                    if direction == "up":
                        self.up_bytes += len(data)
                    else:
                        self.down_bytes += len(data)
                rule = self.rule
                cut_at = None
                if rule and direction == "up" and conn["armed"] is None:
                    buf = conn["tail"] + data
                    i = buf.find(rule["marker"])
                    if i >= 0:
                        conn["armed"] = rule
                        self.rule = None  # one connection per arm()
                        conn["count"] = 0
                        if rule["direction"] == "up":
                            # the bytes of this piece after the marker count already
                            conn["count"] = min(len(data), len(buf) - i - len(rule["marker"]))
                            conn["counted"] = True
                    conn["tail"] = buf[-64:]
                armed = conn["armed"]
                if armed and armed["direction"] == direction and not armed.get("fired"):
                    if not conn.pop("counted", False):
                        conn["count"] += len(data)
                    if conn["count"] >= armed["after"]:
                        armed["fired"] = True
                        # forward exactly up to the limit, then cut
                        cut_at = max(0, len(data) - (conn["count"] - armed["after"]))
                throttle = self.throttle if direction == "up" else 0
            if cut_at is not None:
                try:
                    dst.sendall(data[:cut_at])
                except OSError:
                    pass
                if armed.get("stall"):
                    self.stalled.set()
                    self.released.wait(600)
                with self.lock:
                    self.cuts += 1
                self._kill(conn)
                return
            try:
                dst.sendall(data)
            except OSError:
                break
            if throttle:
                time.sleep(len(data) / throttle)
        self._kill(conn)


class Submit:
    """One `infvsr submit` process with --json; its events are collected as they arrive."""

    def __init__(self, t, args, name):
        self.name = name
        self.events = []
        self.eof = False
        self.cond = threading.Condition()
        self.errpath = os.path.join(t.work, f"submit-{name}.stderr")
        self.err = open(self.errpath, "wb")
        cmd = [INFVSR, "submit", *args, "--json"]
        H.log(f"[{name}] $ {' '.join(cmd)}")
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, cwd=t.work)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "unparsable", "line": line.decode("utf-8", "replace")}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_event(self, pred, timeout):
        deadline = time.time() + timeout * H.WAIT_SCALE
        with self.cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                if self.eof:  # the process ended without that event
                    return None
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def wait(self, timeout=300):
        try:
            rc = self.p.wait(timeout=timeout * H.WAIT_SCALE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self.reader.join(30)  # every line of stdout parsed before the caller looks at the events
        self.err.close()
        return rc

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def of(self, kind):
        with self.cond:
            return [e for e in self.events if e.get("event") == kind]

    def job_id(self):
        e = self.wait_event(lambda e: e.get("event") == "job", 60)
        return e and e["id"]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def no_sanitizer(t, s):
    marks = [m for m in H.SANITIZER_MARKS if m in s.stderr()]
    t.check(not marks, f"{s.name}: no sanitizer report from infvsr submit", marks)


def direct_output(t, c, jid):
    r, _ = c.read_output(jid)
    t.eq(r.status, 200, f"direct GET output of {jid}")
    return r.body


def finished_ok(t, s, rc, out, what):
    t.eq(rc, 0, f"{what}: exit 0 ({s.stderr()[-600:]!r})")
    t.check(os.path.exists(out), f"{what}: {out} written")
    t.check(not os.path.exists(out + ".part") and not os.path.exists(out + ".infvsr-submit.json"),
            f"{what}: no .part or state file left")
    no_sanitizer(t, s)


def case_plain(t, d, proxy, c, clip, ref):
    out = os.path.join(t.work, "plain.ts")
    s = Submit(t, [clip, "-o", out, "--server", proxy.url, "--token", TOKEN], "plain")
    rc = s.wait()
    finished_ok(t, s, rc, out, "plain")
    jid = s.job_id()
    p = H.ffprobe_video(out)
    t.eq((p["width"], p["height"], p["frames"]), (128, 96, 48), "plain: output 128x96, 48 frames")
    body = direct_output(t, c, jid)
    t.check(open(out, "rb").read() == body, "plain: OUT byte-identical to the job's output read directly",
            f"{os.path.getsize(out)} vs {len(body)} bytes")
    prog = s.of("progress")
    t.check(any(e["frames_out"] == 48 for e in prog) and any(e["upload_pct"] == 100.0 for e in prog),
            "plain: progress events report 48 frames out and the upload at 100%", prog[-1:] if prog else None)
    t.check(any(e["fps"] > 0 for e in prog), "plain: progress reports frames/s from the events stream")
    t.check(any(e["output_bytes"] > 0 and e["state"] == "running" for e in prog),
            "plain: output bytes arrived while the job was still running (streamed download)")
    done = s.of("done")
    t.check(done and done[0]["frames"] == 48 and done[0]["bytes"] == len(body), "plain: done event (48 frames, size)",
            done)
    ref["out"] = open(out, "rb").read()


def case_upload_cut(t, d, proxy, c, clip, ref):
    out = os.path.join(t.work, "upcut.ts")
    size = os.path.getsize(clip)
    proxy.arm(marker=b"PATCH ", direction="up", after=12000)
    proxy.reset_counts()
    cuts0 = proxy.cuts
    s = Submit(t, [clip, "-o", out, "--server", proxy.url, "--token", TOKEN], "upload_cut")
    rc = s.wait()
    finished_ok(t, s, rc, out, "upload_cut")
    t.eq(proxy.cuts - cuts0, 1, "upload_cut: the proxy cut one PATCH")
    offs = [e["offset"] for e in s.of("upload_offset")]
    patches = [e["offset"] for e in s.of("patch")]
    t.check(len(offs) >= 2 and 0 < offs[-1] < size, f"upload_cut: HEAD after the cut reports 0 < offset < {size}",
            offs)
    t.check(len(patches) >= 2 and patches[0] == 0 and patches[1] == offs[-1],
            "upload_cut: the second PATCH starts at the server's offset", (patches, offs))
    t.check(proxy.up_bytes < 2 * size, f"upload_cut: {proxy.up_bytes} bytes upstream < twice the file ({size})")
    t.check(open(out, "rb").read() == ref["out"], "upload_cut: output identical to the plain run's")


def case_kill(t, d, proxy, c, clip, ref):
    out = os.path.join(t.work, "kill.ts")
    size = os.path.getsize(clip)
    args = [clip, "-o", out, "--server", proxy.url, "--token", TOKEN]
    proxy.throttle = 2500  # the upload takes ~14 s: time to kill it midway
    s1 = Submit(t, args, "kill_run1")
    jid = s1.job_id()
    t.check(jid is not None, "kill: run 1 created a job", s1.stderr()[-500:])
    if not jid:
        s1.p.kill()
        return
    deadline = time.time() + 60 * H.WAIT_SCALE
    off = 0
    while time.time() < deadline:
        # the job's status, not a tus HEAD: a HEAD would take the upload over from the PATCH
        r = c.get(f"/v1/jobs/{jid}", record=False)
        off = r.json()["input"]["bytes_received"] if r.status == 200 else 0
        if off > 8000:
            break
        time.sleep(0.05)
    t.check(8000 < off < size, f"kill: server holds {off} of {size} bytes mid-upload")
    s1.p.send_signal(signal.SIGKILL)
    s1.wait()
    proxy.throttle = 0
    t.check(os.path.exists(out + ".infvsr-submit.json") and not os.path.exists(out),
            "kill: state file kept next to OUT, no OUT")
    st = json.load(open(out + ".infvsr-submit.json"))
    t.eq(st.get("job_id"), jid, "kill: the state file names the job")
    r = c.request("HEAD", f"/v1/uploads/{jid}", headers={"Tus-Resumable": "1.0.0"})
    head_off = int(r.headers.get("upload-offset", "-1"))
    t.check(0 < head_off < size, f"kill: after the kill the server holds {head_off} bytes")
    proxy.reset_counts()
    s2 = Submit(t, args, "kill_run2")
    rc = s2.wait()
    finished_ok(t, s2, rc, out, "kill: run 2")
    t.eq(s2.job_id(), jid, "kill: run 2 continues the same job")
    offs = [e["offset"] for e in s2.of("upload_offset")]
    patches = [e["offset"] for e in s2.of("patch")]
    t.check(offs and offs[0] == head_off, f"kill: run 2's HEAD reports the server's offset {head_off}", offs)
    t.check(patches and patches[0] == head_off, "kill: run 2's first PATCH starts there, not at 0", patches)
    t.check(proxy.up_bytes < size, f"kill: run 2 sent {proxy.up_bytes} bytes upstream < the file's {size} "
            f"(remaining {size - head_off} + requests)")
    t.check(open(out, "rb").read() == ref["out"], "kill: output identical to the plain run's")
    H.log(f"  kill: killed at server offset {head_off}/{size}; run 2 sent {proxy.up_bytes} bytes upstream")


def case_download_cut(t, d, proxy, c, clip, ref, stall):
    name = "download_range" if stall else "download_cut"
    out = os.path.join(t.work, f"{name}.ts")
    proxy.arm(marker=b"/output", direction="down", after=20000, stall=stall)
    cuts0 = proxy.cuts
    s = Submit(t, [clip, "-o", out, "--server", proxy.url, "--token", TOKEN], name)
    if stall:
        jid = s.job_id()
        t.check(proxy.stalled.wait(120 * H.WAIT_SCALE), f"{name}: the output stream stalled at 20000 bytes")
        c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=120)
        proxy.release()
    rc = s.wait()
    finished_ok(t, s, rc, out, name)
    jid = s.job_id()
    t.eq(proxy.cuts - cuts0, 1, f"{name}: the proxy cut the output stream once")
    res = s.of("download_resume")
    t.check(res and res[0]["offset"] >= 20000 - 16384, f"{name}: the download resumed at the bytes it had", res)
    if stall:
        t.check(res and res[0]["mode"] == "range", f"{name}: resumed with Range (206) after the job succeeded", res)
    H.log(f"  {name}: resume events {res}")
    body = direct_output(t, c, jid)
    t.check(open(out, "rb").read() == body, f"{name}: OUT byte-identical to the job's output read directly",
            f"{os.path.getsize(out)} vs {len(body)}")
    t.eq(sha(out), hashlib.sha256(ref["out"]).hexdigest(), f"{name}: sha256 equal to the plain run's output")


def case_auth(t, d, proxy, clip):
    for name, tok in (("wrong_token", ["--token", "not-the-token"]), ("no_token", [])):
        out = os.path.join(t.work, f"{name}.mkv")
        s = Submit(t, [clip, "-o", out, "--server", d.url, *tok], name)
        rc = s.wait(60)
        err = s.stderr()
        t.eq(rc, 4, f"auth {name}: exit code 4")
        t.check("401" in err and "unauthorized" in err and "--token" in err,
                f"auth {name}: the message names the 401 and the token", err[-400:])
        t.check(not os.path.exists(out) and not os.path.exists(out + ".infvsr-submit.json"),
                f"auth {name}: nothing left next to OUT")
        no_sanitizer(t, s)


def case_bad_input(t, d, clip):
    """The server's refusals reach the user: a file that is not a video (422 at the end of
    the upload, `unprocessable_video`) and options the server rejects (400 `bad_request`:
    ffv1 needs Matroska); exit code 1, the server's message, nothing left to resume."""
    junk = os.path.join(t.work, "not-a-video.bin")
    with open(junk, "wb") as f:
        f.write(bytes((i * 7919) % 251 for i in range(50000)))
    cases = (("not_video", [junk, "-o", os.path.join(t.work, "junk.mkv")], "unprocessable_video"),
             ("bad_option", [clip, "-o", os.path.join(t.work, "ffv1.ts"), "--codec", "ffv1"], "bad_request"))
    for name, args, code in cases:
        s = Submit(t, [*args, "--server", d.url, "--token", TOKEN], name)
        rc = s.wait(120)
        err = s.stderr()
        t.eq(rc, 1, f"{name}: exit code 1")
        t.check(code in err, f"{name}: the message carries the server's error ({code})", err[-500:])
        out = args[2]
        t.check(not os.path.exists(out + ".infvsr-submit.json") and not os.path.exists(out + ".part")
                and not os.path.exists(out), f"{name}: nothing left next to OUT (a failed job is not resumed)")
        no_sanitizer(t, s)


def case_busy(t):
    d = H.Daemon(t.work, "busy", model="null",
                 args=["--max-active-jobs-per-worker", "1", "--max-queued-jobs", "0", "--retry-after-s", "1"]).start()
    c = t.client(d)
    clip = H.fixture("small.ts")
    hold = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    data = open(clip, "rb").read()
    sock = H.partial_put(d.port, hold, data[:4096])
    c.wait_state(hold, ("queued", "running"), timeout=30)
    r = c.create_job({}, expect=(503,))
    t.eq((r.status, r.code(), r.headers.get("retry-after")), (503, "unavailable", "1"),
         "busy: the daemon answers 503 + Retry-After 1 with its one slot held")
    out = os.path.join(t.work, "busy0.mkv")
    s = Submit(t, [clip, "-o", out, "--server", d.url, "--max-wait", "0"], "busy_nowait")
    t0 = time.time()
    rc = s.wait(60)
    err = s.stderr()
    t.eq(rc, 5, "busy --max-wait 0: exit code 5")
    t.check("503" in err and "Retry-After: 1" in err and "admission limit" in err,
            "busy --max-wait 0: the message names the 503, the server's reason and Retry-After", err[-400:])
    no_sanitizer(t, s)
    out = os.path.join(t.work, "busy.mkv")
    s = Submit(t, [clip, "-o", out, "--server", d.url], "busy_wait")
    ev = s.wait_event(lambda e: e.get("event") == "retry" and e.get("status") == 503, 60)
    t.check(ev is not None and ev.get("wait_s") == 1, "busy: the client waits Retry-After (1 s) on 503", ev)
    n_retries = len(s.of("retry"))
    sock.close()  # the held PUT ends early: its job is cancelled, the slot frees
    c.wait_state(hold, ("cancelled", "failed", "succeeded"), timeout=30)
    rc = s.wait()
    finished_ok(t, s, rc, out, "busy: run after the slot freed")
    p = H.ffprobe_video(out)
    t.eq((p["width"], p["height"], p["frames"]), (128, 96, 48), "busy: output 128x96, 48 frames")
    H.log(f"  busy: {n_retries}+ retries before the slot freed ({time.time() - t0:.1f} s)")
    if want("lost_url"):
        case_lost_url(t, d, c)
    d.stop()


def case_lost_url(t, d, c):
    """A run killed after its tus creation but before it saved the upload URL (simulated:
    the URL is blanked in the state file after a SIGKILL mid-upload): the next run's tus
    creation gets 409 (the job has a tus upload) and continues at /v1/uploads/{job id} from
    the server's offset."""
    clip = H.fixture("small.ts")
    size = os.path.getsize(clip)
    proxy = CutProxy(d.port)
    proxy.throttle = 2500
    out = os.path.join(t.work, "lost_url.mkv")
    args = [clip, "-o", out, "--server", proxy.url]
    s1 = Submit(t, args, "lost_url_run1")
    jid = s1.job_id()
    deadline = time.time() + 60 * H.WAIT_SCALE
    off = 0
    while jid and time.time() < deadline and off <= 8000:
        r = c.get(f"/v1/jobs/{jid}", record=False)
        off = r.json()["input"]["bytes_received"] if r.status == 200 else 0
        time.sleep(0.05)
    s1.p.send_signal(signal.SIGKILL)
    s1.wait()
    proxy.throttle = 0
    t.check(8000 < off < size, f"lost_url: killed with {off} of {size} bytes on the server")
    sp = out + ".infvsr-submit.json"
    st = json.load(open(sp))
    st["upload_url"] = ""
    json.dump(st, open(sp, "w"))
    r = c.request("HEAD", f"/v1/uploads/{jid}", headers={"Tus-Resumable": "1.0.0"})
    head_off = int(r.headers.get("upload-offset", "-1"))
    s2 = Submit(t, args, "lost_url_run2")  # the same command (a state is tied to its --server)
    rc = s2.wait()
    proxy.close()
    finished_ok(t, s2, rc, out, "lost_url: run 2")
    up = s2.of("upload")
    t.check(up and up[0]["url"] == f"{proxy.url}/v1/uploads/{jid}", "lost_url: run 2 found the upload of the same job", up)
    offs = [e["offset"] for e in s2.of("upload_offset")]
    t.check(offs and offs[0] == head_off > 0, f"lost_url: run 2 continued at the server's offset {head_off}", offs)
    p = H.ffprobe_video(out)
    t.eq((p["width"], p["height"], p["frames"]), (128, 96, 48), "lost_url: output 128x96, 48 frames")


def case_redirect(t):
    """Two instances behind a 'load balancer' that sends job creations to a and every other
    connection to b: b answers the job's requests with 307 to a, the client follows them
    (PATCH with its body) and then talks to a directly."""
    pa = H.free_port()
    b = H.Daemon(t.work, "b", model="null", args=["--instance", "b", "--peer", f"a=http://127.0.0.1:{pa}"]).start()
    a = H.Daemon(t.work, "a", model="null", port=pa, args=["--instance", "a", "--peer", f"b={b.url}"]).start()
    lb = CutProxy(b.port, route=lambda first: a.port if first.startswith(b"POST /v1/jobs ") else b.port)
    out = os.path.join(t.work, "redirect.mkv")
    s = Submit(t, [H.fixture("small.ts"), "-o", out, "--server", lb.url], "redirect")
    rc = s.wait()
    lb.close()
    finished_ok(t, s, rc, out, "redirect")
    jid = s.job_id() or ""
    t.check(jid.startswith("a."), "redirect: the job belongs to instance a", jid)
    red = s.of("redirected")
    t.check(red and red[0]["base"] == a.url, "redirect: the client followed b's 307 to a and stayed there", red)
    n307 = len(re.findall(r" 307 ", b.log_text()))
    t.check(n307 >= 1, f"redirect: b answered {n307} requests with 307")
    p = H.ffprobe_video(out)
    t.eq((p["width"], p["height"], p["frames"]), (128, 96, 48), "redirect: output 128x96, 48 frames")
    a.stop()
    b.stop()


def case_readme(t):
    text = open(os.path.join(H.SOURCE_DIR, "README.md"), encoding="utf-8").read()
    sec = text.split("\n### The client: `infvsr submit`\n", 1)
    t.check(len(sec) == 2, "README has the `infvsr submit` section")
    if len(sec) != 2:
        return
    block = re.search(r"```sh\n(.*?)```", sec[1], re.S).group(1)
    bindir = os.path.dirname(H.INFVSRD)
    port = H.free_port()
    script = block.replace("build/demo/", bindir + "/").replace("8080", str(port))
    work = os.path.join(t.work, "readme")
    os.makedirs(work, exist_ok=True)
    subprocess.run(["cp", H.fixture("small.mkv"), os.path.join(work, "in.mkv")], check=True)
    H.log("---- README submit block as run ----\n" + script + "----")
    log = os.path.join(t.work, "readme-run.log")
    with open(log, "wb") as f:
        p = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=240 * H.SLOWDOWN)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = None
    text = open(log, "rb").read().decode("utf-8", "replace")
    t.eq(rc, 0, f"README submit block exits 0 ({log}: {text[-800:]!r})")
    pr = H.ffprobe_video(os.path.join(work, "out.mkv"))
    t.eq((pr["width"], pr["height"], pr["frames"]), (128, 96, 48), "README block: out.mkv 128x96, 48 frames")
    t.check(not [m for m in H.SANITIZER_MARKS if m in text], "README block: no sanitizer report")


# test_submit.py [CASE,...]: a subset while developing (plain, upload_cut, kill, download,
# auth, bad_input, busy, lost_url (with busy), redirect, readme); ctest runs all of them.
CASES = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None


def want(name):
    return CASES is None or name in CASES


def body(t):
    if not INFVSR or not os.access(INFVSR, os.X_OK):
        t.check(False, "infvsr CLI built", INFVSR)
        return
    if not want("plain"):  # the tiny-model cases compare with the plain run's output
        for name, fn in (("busy", case_busy), ("redirect", case_redirect), ("readme", case_readme)):
            if want(name):
                fn(t)
        return
    clip = H.fixture("small.ts")
    d = H.Daemon(t.work, "tiny", model="tiny", args=["--threads", "2"], env={"INFVSR_TOKENS": TOKEN}).start()
    c = t.client(d, token=TOKEN)
    proxy = CutProxy(d.port)
    ref = {}
    try:
        case_plain(t, d, proxy, c, clip, ref)
        if "out" in ref:
            if want("upload_cut"):
                case_upload_cut(t, d, proxy, c, clip, ref)
            if want("kill"):
                case_kill(t, d, proxy, c, clip, ref)
            if want("download"):
                case_download_cut(t, d, proxy, c, clip, ref, stall=False)
                case_download_cut(t, d, proxy, c, clip, ref, stall=True)
        if want("auth"):
            case_auth(t, d, proxy, clip)
        if want("bad_input"):
            case_bad_input(t, d, clip)
    finally:
        proxy.close()
    d.stop()
    for name, fn in (("busy", case_busy), ("redirect", case_redirect), ("readme", case_readme)):
        if want(name):
            fn(t)


if __name__ == "__main__":
    H.run_main(H.Suite("submit"), body)
