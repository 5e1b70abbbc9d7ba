"""README's daemon example, run as written (issue 15 item 8), and the upload/reader rules
it depends on.

1. The first ```sh block under "## The daemon" in README.md is extracted (never copied, so
   the README and this test cannot drift) and run by bash -e -o pipefail in an empty work
   directory holding an `in.mp4` (the 32x24 2 s fixture remuxed), with exactly two
   substitutions, also stated in the README: `build/demo/` -> this build's directory (where
   infvsr and infvsrd are) and `8080` -> a free port. It makes the demo model, starts the
   daemon, creates a job, reads the output while `curl -T -` uploads (no Content-Type),
   prints the status and stops the daemon. Checks: exit 0, out.mkv = 48 frames at 128x96,
   the printed status `succeeded`, no sanitizer report in the output.
   Before the fix the PUT got 415 (curl -T sends no Content-Type), the job stayed
   `created`, the reader hung 300 s (max_suspend_s) before a 503, and the block's bare
   `wait` also waited for the daemon.
2. The rules, on a null-model daemon with input_wait_s 2: a PUT without Content-Type or
   with application/octet-stream is accepted and the job succeeds; garbage without a type
   is sniffed and rejected (422 unprocessable_video); a declared non-video type is 415 and
   claims nothing; a reader of a job whose upload never starts gets 409 conflict after
   input_wait_s, not after max_suspend_s; a reader that starts before the upload streams."""
import os
import re
import signal
import subprocess
import threading
import time

import harness as H
import rawhttp as R


def readme_block():
    text = open(os.path.join(H.SOURCE_DIR, "README.md"), encoding="utf-8").read()
    sec = text.split("\n## The daemon\n", 1)[1]
    m = re.search(r"```sh\n(.*?)```", sec, re.S)
    return m.group(1)


def run_readme(t):
    block = readme_block()
    bindir = os.path.dirname(H.INFVSRD)
    t.check(os.path.exists(os.path.join(bindir, "infvsr")), "infvsr is next to infvsrd in the build", bindir)
    port = H.free_port()
    script = block.replace("build/demo/", bindir + "/").replace("8080", str(port))
    t.check("build/demo/" in block and "8080" in block and script.count(str(port)) == block.count("8080"),
            "README block has the two documented placeholders")
    work = os.path.join(t.work, "readme")
    os.makedirs(work, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", H.fixture("small.mkv"), "-c", "copy",
                    os.path.join(work, "in.mp4")], check=True, timeout=60)
    H.log("---- README block as run ----\n" + script + "----")
    log = os.path.join(t.work, "readme-run.log")
    limit = 240 * H.SLOWDOWN
    t0 = time.time()
    with open(log, "wb") as f:
        p = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            try:  # the daemon and the curls die with the block's process group
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    out = open(log, "rb").read().decode("utf-8", "replace")
    dt = time.time() - t0
    t.eq(rc, 0, f"the README block exits 0 ({dt:.1f} s, limit {limit:.0f} s; output {log})")
    if rc != 0:
        H.log(out[-4000:])
    probe = H.ffprobe_video(os.path.join(work, "out.mkv")) if os.path.exists(os.path.join(work, "out.mkv")) else {}
    t.eq((probe.get("width"), probe.get("height"), probe.get("frames")), (128, 96, 48),
         "out.mkv: all 48 frames at 4x (32x24 -> 128x96)")
    status = [ln for ln in out.splitlines() if ln.startswith('{"id"')]
    t.check(bool(status) and '"state":"succeeded"' in status[-1], "the printed job status is succeeded",
            status[-1][:300] if status else out[-1500:])
    marks = [m for m in H.SANITIZER_MARKS if m in out]
    t.check(not marks, "no sanitizer report from the README's daemon", marks)


def put_raw(c, jid, data, content_type, case):
    ct = f"Content-Type: {content_type}\r\n" if content_type else ""
    head = (f"PUT /v1/jobs/{jid}/input HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{ct}"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    rs, _, raw = R.exchange(c.port, head + data, timeout=60)
    if not rs:
        return H.Response(None, {}, raw, 0)
    c.rec.add("PUT", f"/v1/jobs/{jid}/input", rs[0][0], rs[0][1], rs[0][2], case=case)
    return H.Response(*rs[0], 0)


def rules(t):
    d = H.Daemon(t.work, "rules", model="null", args=["--input-wait-s", "2"]).start()
    c = t.client(d)
    clip = open(H.fixture("small.ts"), "rb").read()
    done = ("succeeded", "failed", "cancelled")
    for ct in (None, "application/octet-stream", "video/mp2t"):
        jid = c.create_job({}).json()["id"]
        t.eq(put_raw(c, jid, clip, ct, f"PUT {ct}").status, 204, f"PUT with Content-Type {ct or '(none)'}: 204")
        t.eq(c.wait_state(jid, done, timeout=60)["state"], "succeeded", f"  and the job succeeds ({ct or 'none'})")
    jid = c.create_job({}).json()["id"]
    r = put_raw(c, jid, os.urandom(65536), None, "garbage, no type")
    j = c.wait_state(jid, done, timeout=60)
    code = r.code() if r.status != 204 else ((j.get("error") or {}).get("code"))
    t.eq((j["state"], code), ("failed", "unprocessable_video"),
         f"garbage without a type is sniffed and rejected: unprocessable_video (PUT {r.status})")
    jid = c.create_job({}).json()["id"]
    r = put_raw(c, jid, clip, "text/plain", "text/plain")
    t.eq((r.status, r.code()), (415, "unsupported_media_type"), "a declared non-video type: 415")
    t.eq(c.job(jid)["upload"], "none", "  and the job has no upload")
    t0 = time.time()
    r = c.get(f"/v1/jobs/{jid}/output")
    dt = time.time() - t0
    t.eq((r.status, r.code()), (409, "conflict"), "the reader of a job whose upload never starts: 409 conflict")
    t.check(1.5 <= dt < 2 + 10 * H.SLOWDOWN, f"  after input_wait_s 2 ({dt:.1f} s), not max_suspend_s 300")
    # a reader that starts first gets the stream once the upload begins within input_wait_s
    jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    res = {}
    rd = threading.Thread(target=lambda: res.update(r=c.read_output(jid)))
    rd.start()
    time.sleep(0.5)
    t.eq(put_raw(c, jid, clip, None, "PUT after the reader").status, 204, "PUT (no type) after the reader started: 204")
    rd.join(60)
    r = res.get("r", (None,))[0]
    p = H.ffprobe_video(r.body if r else b"", t.work)
    t.eq((getattr(r, "status", None), p.get("frames")), (200, 48), "  the early reader streams all 48 frames")
    d.stop()


def body(t):
    rules(t)
    run_readme(t)


if __name__ == "__main__":
    H.run_main(H.Suite("readme_example"), body)
