"""SIGTERM drain (issue 7 "Behaviour"). Tiny model.
  1. drain_timeout_s 600: a job whose upload is still streaming gets SIGTERM'd; /readyz turns
     503 (status draining), new jobs get 503 unavailable + Retry-After; the running job's
     upload completes, the job succeeds with every frame delivered to the client that was
     reading its output; the process then exits 0 as soon as the job is done, without
     waiting for the timeout (a timeout far beyond the job's time even on a loaded machine).
  2. drain_timeout_s 3: a job that cannot finish in time (8 s clip, about 20 s of work) is
     cancelled when the timeout expires; its output stream ends, it did not deliver every
     frame; the process exits 0 no earlier than the timeout and promptly after it (the
     cancel stops the chunk within a DiT block; the bound is generous so that a loaded
     machine does not fail the test, the frame count is the real check).
The daemon keeps listening while it drains (issue 15 item 9: /readyz used to refuse new
connections, which a load balancer reads as a dead pod rather than a draining one): probes
on a connection opened before the signal and on NEW connections are answered, readyz 503
"draining", healthz 200 "draining"; POST /v1/jobs on a new connection gets 503 + Retry-After."""
import http.client
import json
import signal
import threading
import time

import harness as H


def probe(c, keep, method, path, body=None, headers=None):
    """Request on the kept-alive connection, else a fresh one. Returns Response or None."""
    for conn in (keep, None):
        try:
            cc = conn or http.client.HTTPConnection(c.host, c.port, timeout=10)
            cc.request(method, path, body=body, headers=headers or {})
            r = cc.getresponse()
            data = r.read()
            resp = H.Response(r.status, H._headers_dict(r.msg), data, 0)
            c.rec.add(method, path, resp.status, resp.headers, data)
            return resp
        except (OSError, http.client.HTTPException):
            continue
    return None


def reader(c, jid, out):
    conn, r = c.open_output(jid)
    out["status"] = r.status
    if r.status != 200:
        body_ = r.read()
        c.rec.add("GET", f"/v1/jobs/{jid}/output", r.status, H._headers_dict(r.msg), body_)
        out["bytes"], out["end"] = b"", time.time()
        conn.close()
        return
    buf = bytearray()
    try:
        while True:
            b = r.read1(65536)
            if not b:
                break
            buf += b
    except (http.client.IncompleteRead, OSError) as e:
        out["error"] = repr(e)
    out["bytes"] = bytes(buf)
    out["end"] = time.time()
    c.record_stream("GET", f"/v1/jobs/{jid}/output", r, len(buf))
    conn.close()


def body(t):
    # ---- 1: the running job finishes --------------------------------------------------
    d = H.Daemon(t.work, "drain1", model="tiny", args=["--threads", "2", "--drain-timeout-s", "600"]).start()
    c = t.client(d)
    keep = http.client.HTTPConnection(c.host, c.port, timeout=10)
    keep.request("GET", "/readyz")
    keep.getresponse().read()
    jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    clip = open(H.fixture("small.ts"), "rb").read()
    put = {}
    tp = threading.Thread(target=lambda: put.update(r=c.put_input(jid, clip, chunked=True, chunk_size=1024, delay=0.05)))
    tp.start()
    time.sleep(0.5)
    out = {}
    tr = threading.Thread(target=reader, args=(c, jid, out))
    tr.start()
    time.sleep(1.0)
    t_sig = time.time()
    d.signal(signal.SIGTERM)
    time.sleep(0.3)
    r = probe(c, keep, "GET", "/readyz")
    t.check(r is not None and r.status == 503, "readyz 503 while draining", r)
    if r is not None and r.status == 503:
        t.eq(r.json().get("status"), "draining", "readyz status draining")
    r = probe(c, None, "GET", "/readyz")
    t.check(r is not None and r.status == 503 and r.json().get("status") == "draining",
            "readyz on a NEW connection while draining: 503 draining (answered, not refused)", r)
    r = probe(c, None, "GET", "/healthz")
    t.check(r is not None and r.status == 200 and r.json().get("status") == "draining",
            "healthz on a NEW connection while draining: 200 draining (the process is alive)", r)
    r = probe(c, None, "POST", "/v1/jobs", body=b"{}", headers={"Content-Type": "application/json"})
    t.check(r is not None and r.status == 503 and r.code() == "unavailable" and r.headers.get("retry-after"),
            "POST /v1/jobs on a new connection while draining: 503 unavailable with Retry-After", r)
    tp.join(600 * H.SLOWDOWN)
    t.eq(getattr(put.get("r"), "status", None), 204, "the upload that was running at SIGTERM completed (204)")
    tr.join(600 * H.SLOWDOWN)
    p = H.ffprobe_video(out.get("bytes", b""), t.work)
    t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, 48),
         "the running job finished during the drain: its reader got all 48 frames")
    try:
        rc = d.wait(timeout=120 * H.SLOWDOWN)
    except Exception:
        rc = None
    t_exit = time.time() - t_sig
    t.eq(rc, 0, "process exited 0 after the drain")
    t.check(rc is not None and t_exit < 600, f"exited once the job was done, before drain_timeout_s ({t_exit:.1f} s)")
    d.stop()

    # ---- 2: the drain timeout cancels a job that cannot finish -----------------------------
    d = H.Daemon(t.work, "drain2", model="tiny", args=["--threads", "2", "--drain-timeout-s", "3"]).start()
    c = t.client(d)
    jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    t.eq(c.put_input(jid, open(H.fixture("long.ts"), "rb").read()).status, 204, "long job uploaded")
    out = {}
    tr = threading.Thread(target=reader, args=(c, jid, out))
    tr.start()
    evs = {}
    te = threading.Thread(target=lambda: evs.update(e=c.events(jid, timeout=120 * H.SLOWDOWN)))
    te.start()
    c.wait_state(jid, ("running",), timeout=120 * H.SLOWDOWN)
    time.sleep(0.5)
    t_sig = time.time()
    d.signal(signal.SIGTERM)
    try:
        rc = d.wait(timeout=60 * H.SLOWDOWN)
    except Exception:
        rc = None
    t_exit = time.time() - t_sig
    t.eq(rc, 0, "process exited 0 after cancelling at the drain timeout")
    # drain_timeout_s, then the cancel stops the chunk within a DiT block or VAE layer
    t.check(rc is not None and 2.5 <= t_exit <= 3 + 20 * H.SLOWDOWN,
            f"exit {t_exit:.1f} s after SIGTERM (drain_timeout_s 3, bound {3 + 20 * H.SLOWDOWN:.0f} s)")
    tr.join(60 * H.SLOWDOWN)
    te.join(60 * H.SLOWDOWN)
    t.check(not tr.is_alive(), "the output stream of the cancelled job ended")
    p = H.ffprobe_video(out.get("bytes", b""), t.work) if out.get("bytes") else {"frames": 0}
    t.check(p.get("frames", 0) < 192, "the cancelled job did not deliver all 192 frames", p)
    st, ev = evs.get("e", (None, []))
    last = ev[-1] if ev else {}
    state = None
    try:
        dd = json.loads(last.get("data", "{}"))
        state = dd.get("state") or (dd.get("error") or {}).get("code")
    except ValueError:
        pass
    H.log(f"events of the cancelled job: {[e['event'] for e in ev]}, last: {last}")
    t.check(last.get("event") in ("done", "error") and state in ("cancelled", "failed", "unavailable"),
            "the events stream reported the job's end (done/error, cancelled)", last)
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("drain"), body)
