"""Cancel mid-stream frees the worker slot (issue 7 acceptance; issue 15: within one DiT
block / VAE layer, not at the next chunk boundary). Tiny model, ONE active slot
(max_active_jobs_per_worker 1):
  1. job A (8 s clip, 192 frames) runs and its output is being read; job B is fully
     uploaded and waits (queued gauge 1, active gauge 1);
     DELETE A -> 204; A's output stream ends early; GET A -> 404; B starts
     (queued gauge 0, B produces frames);
  2. DELETE B just after one of its chunks completed (so the next one is being computed):
     infvsrd_jobs_active drops to 0, and infvsrd_chunks_total does not grow after the
     DELETE: the chunk in progress was abandoned, the slot was released before that chunk
     would have completed (the bound, asserted on the job's own progress, not on a clock);
  3. job C is cancelled while its (slow, chunked) upload is still going: the PUT ends with
     an error instead of hanging, the job is gone;
then jobs_total{state="cancelled"} grew by 3 and the spool holds nothing of A, B, C.
Every wait is for a state with a generous deadline (DEADLINE): on a loaded 2-core machine
under ASan a chunk takes seconds; the measured times are printed, not asserted."""
import http.client
import threading
import time

import harness as H

DEADLINE = 60 * H.SLOWDOWN


def wait_metric(c, name, pred, timeout):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = c.metrics().get(name)
        if pred(v):
            return v, True
        time.sleep(0.05)
    return v, False


def wait_frames(c, jid, n, timeout=DEADLINE):
    deadline = time.time() + timeout
    j = None
    while time.time() < deadline:
        j = c.job(jid)
        if j.get("frames_out", 0) >= n or j["state"] in ("succeeded", "failed", "cancelled"):
            return j
        time.sleep(0.05)
    return j


def body(t):
    d = H.Daemon(t.work, "cancel", model="tiny",
                 args=["--threads", "2", "--max-active-jobs-per-worker", "1"]).start()
    c = t.client(d)
    long_ts = open(H.fixture("long.ts"), "rb").read()
    cancelled0 = c.metrics().get('infvsrd_jobs_total{state="cancelled"}', 0.0)

    a = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    t.eq(c.put_input(a, long_ts).status, 204, "A: PUT 204")
    ja = wait_frames(c, a, 1)
    t.check(ja["state"] == "running" and ja["frames_out"] >= 1, "A is running and has produced frames", ja)
    a_out = {"bytes": 0}

    def read_a():
        conn, r = c.open_output(a)
        a_out["status"] = r.status
        if r.status != 200:  # e.g. 410 gone: the job was deleted before its first output byte
            body_ = r.read()
            c.rec.add("GET", f"/v1/jobs/{a}/output", r.status, H._headers_dict(r.msg), body_)
            a_out["end"] = time.time()
            conn.close()
            return
        try:
            while True:
                b = r.read1(65536)
                if not b:
                    break
                a_out["bytes"] += len(b)
        except (http.client.IncompleteRead, OSError) as e:
            a_out["error"] = repr(e)
        a_out["end"] = time.time()
        c.record_stream("GET", f"/v1/jobs/{a}/output", r, a_out["bytes"])
        conn.close()

    ra = threading.Thread(target=read_a)
    ra.start()
    b = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    t.eq(c.put_input(b, long_ts).status, 204, "B: PUT 204")
    time.sleep(0.3)
    m = c.metrics()
    t.eq((m.get("infvsrd_jobs_active"), m.get("infvsrd_jobs_queued")), (1.0, 1.0), "A active, B queued (gauges)")
    jb = c.job(b)
    t.eq(jb.get("frames_out"), 0, "B has not started while A holds the slot")

    t_del = time.time()
    r = c.delete(f"/v1/jobs/{a}")
    t.eq(r.status, 204, "DELETE A mid-stream 204")
    ra.join(DEADLINE)
    H.log(f"A's output stream ended {a_out.get('end', 1e18) - t_del:.2f} s after DELETE")
    t.check(not ra.is_alive() and "end" in a_out, "A's output stream ended after DELETE", a_out)
    t.check(a_out["bytes"] < 10_000_000, "A's output was cut short", a_out)
    t.eq(c.get(f"/v1/jobs/{a}").status, 404, "GET A after DELETE 404")
    v, ok = wait_metric(c, "infvsrd_jobs_queued", lambda x: x == 0.0, DEADLINE)
    H.log(f"queued gauge 0 {time.time() - t_del:.2f} s after DELETE A")
    t.check(ok, "queued gauge dropped to 0 (B took the freed slot)", v)
    jb = wait_frames(c, b, 1)
    t.check(jb["state"] == "running" and jb["frames_out"] >= 1, "B started after A was cancelled", jb)

    m = c.metrics()
    t.eq(m.get("infvsrd_jobs_active"), 1.0, "B active")
    # B is the only job: infvsrd_chunks_total counts its chunks. Right after it grows, B's
    # next chunk is being computed (its input is all there and its output is drained), so
    # the DELETE lands at that chunk's start.
    c0 = m.get("infvsrd_chunks_total")
    v, ok = wait_metric(c, "infvsrd_chunks_total", lambda x: x is not None and x > c0, DEADLINE)
    t.check(ok, "B completed another chunk", (c0, v))
    c_del = v
    t_del = time.time()
    t.eq(c.delete(f"/v1/jobs/{b}").status, 204, "DELETE B mid-stream 204")
    v, ok = wait_metric(c, "infvsrd_jobs_active", lambda x: x == 0.0, DEADLINE)
    H.log(f"jobs_active 0 {time.time() - t_del:.2f} s after DELETE B (a chunk takes "
          f"{c.metrics().get('infvsrd_chunk_seconds_sum', 0) / max(1.0, c_del):.2f} s here)")
    t.check(ok, "infvsrd_jobs_active dropped to 0 after DELETE B", v)
    t.eq(c.metrics().get("infvsrd_chunks_total"), c_del,
         "no chunk completed after DELETE B: the chunk in progress was abandoned and the slot freed before it "
         "would have completed")

    # C: cancelled while the upload is still running.
    cj = c.create_job({}).json()["id"]
    put = {}

    def slow_put():
        try:
            put["r"] = c.put_input(cj, long_ts, chunked=True, chunk_size=2048, delay=0.1)
        except (OSError, http.client.HTTPException) as e:
            put["error"] = repr(e)
        put["end"] = time.time()

    tp = threading.Thread(target=slow_put)
    tp.start()
    time.sleep(1.5)
    t_del = time.time()
    t.eq(c.delete(f"/v1/jobs/{cj}").status, 204, "DELETE C during its upload 204")
    tp.join(DEADLINE)
    H.log(f"C's PUT ended {put.get('end', 1e18) - t_del:.2f} s after DELETE")
    t.check(not tp.is_alive() and "end" in put, "C's PUT ended after DELETE",
            f"still running or no end: {put} (the client stops sending as soon as an answer arrives)")
    if "r" in put:
        t.check(put["r"].status != 204, "C's PUT did not report success", put["r"])
    t.eq(c.get(f"/v1/jobs/{cj}").status, 404, "GET C after DELETE 404")

    v, ok = wait_metric(c, 'infvsrd_jobs_total{state="cancelled"}', lambda x: x is not None and x >= cancelled0 + 3,
                        DEADLINE)
    t.check(ok, "jobs_total{state=cancelled} grew by 3", (cancelled0, v))
    t.eq(H.gauges_settled(c, DEADLINE), (0.0, 0.0, 0.0), "gauges 0 at the end")
    deadline = time.time() + DEADLINE
    while d.spool_files() and time.time() < deadline:
        time.sleep(0.1)
    t.eq(d.spool_files(), [], "spool holds nothing of the cancelled jobs")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("cancel"), body)
