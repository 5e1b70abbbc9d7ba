"""infvsrd with several workers (issue 16), proved on the CPU with devsim workers:

  - spread: `--workers devsim:0,devsim:1,devsim:2`, 9 concurrent tiny-model jobs all succeed
    with 12 frames each; every worker computed some of them (per-worker metrics
    infvsrd_worker_{chunks,frames}_total{worker="devsim:N"} add up to the jobs' frames);
    /healthz and /v1/models list the three workers with device, state and memory;
  - faults: `--devsim-faults devsim:1@2000,devsim:0@8500` (devsim's injected sticky device
    fault at that backend op; a 12-frame job is about 2350 ops, its first chunk ends before
    op 2000): the job on devsim:1 fails with device_fault after its first chunk, its output is
    not presented (no 200 output, no spool file left), the job on devsim:0 succeeds, /readyz
    stays 200 (/healthz "degraded"), new jobs run on devsim:0; when devsim:0 faults too (its
    4th job), /readyz and /healthz answer 503 and new jobs are refused with 503;
  - memory: one devsim:0 worker with 80 MiB (INFVSR_DEVSIM_CAPACITY_MB; the tiny model holds
    28 MiB, a 32x24 session 30.5 MiB, a 64x48 one 115.5 MiB) and device_reserve_mb 0: a
    64x48 job can never fit and fails at once with unprocessable_video (422) naming the
    limit; a second 32x24 job next to an open 32x24 session waits (waiting_jobs 1, no frame
    out) and runs when the first one ends.

Every wait is for a state, with deadlines scaled by SERVER_TEST_SLOWDOWN / WAIT_SCALE."""
import os
import threading
import time

import harness as H

SPEC = {"input": {"format": "yuv4mpegpipe", "max_frames": 12}, "output": {"container": "y4m", "codec": "rawvideo"}}
TERMINAL = ("succeeded", "failed", "cancelled")


def read(name):
    with open(H.fixture(name), "rb") as f:
        return f.read()


def wait_for(what, fn, timeout):
    """fn()'s value once truthy; AssertionError after timeout * WAIT_SCALE seconds."""
    deadline = time.time() + timeout * H.WAIT_SCALE
    v = None
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"{what}: not reached after {timeout * H.WAIT_SCALE:.0f}s (last {v!r})")


def all_workers_ready(c, n):
    """/healthz once all n workers have loaded the model: readyz turns 200 as soon as ONE
    worker is ready, the others may still be loading (slowly, on a loaded machine)."""
    def ready():
        h = c.get("/healthz").json()
        ws = h.get("workers", [])
        return h if len(ws) == n and all(w.get("state") == "ready" for w in ws) else None
    return wait_for(f"all {n} workers ready", ready, 60)


def run_job(c, data, results, key):
    jid = c.create_job(SPEC).json()["id"]
    p = c.put_input(jid, data, content_type="application/octet-stream")
    results[key] = (jid, p.status, c.wait_state(jid, TERMINAL, timeout=120))


def worker_metric(m, name, worker):
    return m.get(f'{name}{{worker="{worker}"}}')


def spread(t):
    names = ["devsim:0", "devsim:1", "devsim:2"]
    d = H.Daemon(t.work, "spread", model="tiny",
                 args=["--threads", "1", "--workers", ",".join(names), "--max-active-jobs-per-worker", "2"]).start()
    c = t.client(d)
    h = all_workers_ready(c, 3)
    t.eq([(w["name"], w["device"], w["state"]) for w in h["workers"]], [(n, n, "ready") for n in names],
         "/healthz lists the three devsim workers, ready")
    t.check(all(w["memory"]["model_bytes"] > 0 and w["memory"]["total_bytes"] > 0 for w in h["workers"]),
            "/healthz: each worker reports its device memory and resident model bytes", h["workers"])
    models = c.get("/v1/models").json()["models"]
    t.eq([w["name"] for w in models[0].get("workers", [])], names, "/v1/models lists the workers")

    data = read("small.y4m")
    results = {}
    threads = [threading.Thread(target=run_job, args=(c, data, results, i)) for i in range(9)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = sorted((r[1], r[2]["state"], r[2].get("frames_out")) for r in results.values())
    t.eq(got, [(204, "succeeded", 12)] * 9, "9 concurrent jobs on 3 workers: all succeed with 12 frames")
    m = c.metrics()
    frames = {n: worker_metric(m, "infvsrd_worker_frames_total", n) for n in names}
    chunks = {n: worker_metric(m, "infvsrd_worker_chunks_total", n) for n in names}
    busy = {n: worker_metric(m, "infvsrd_worker_busy_seconds_total", n) for n in names}
    H.log(f"per-worker share: frames {frames} chunks {chunks} busy seconds {busy}")
    t.check(all((frames[n] or 0) > 0 and (chunks[n] or 0) > 0 for n in names),
            "every worker computed some of the jobs (per-worker frames and chunks > 0)", (frames, chunks))
    t.eq(sum(frames.values()), 9 * 12.0, "per-worker frames add up to the jobs' frames")
    t.eq(sum(chunks.values()), m.get("infvsrd_chunks_total"), "per-worker chunks add up to infvsrd_chunks_total")
    t.check(all((busy[n] or 0) > 0 for n in names), "every worker has busy seconds", busy)
    t.eq(H.gauges_settled(c), (0.0, 0.0, 0.0), "gauges back to 0")
    d.stop()


def faults(t):
    d = H.Daemon(t.work, "faults", model="tiny",
                 args=["--threads", "1", "--workers", "devsim:0,devsim:1", "--max-active-jobs-per-worker", "1",
                       "--devsim-faults", "devsim:1@2000,devsim:0@8500"]).start()
    c = t.client(d)
    all_workers_ready(c, 2)
    data = read("small.y4m")
    # two jobs at once: one per worker (least loaded first)
    results = {}
    threads = [threading.Thread(target=run_job, args=(c, data, results, i)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    by_state = {r[2]["state"]: r for r in results.values()}
    t.eq(sorted(by_state), ["failed", "succeeded"], "one job per worker: the one on devsim:1 failed, the other succeeded")
    ok, bad = by_state.get("succeeded"), by_state.get("failed")
    if bad:
        err = bad[2].get("error") or {}
        t.eq(err.get("code"), "device_fault", "the job on the faulted worker failed with device_fault")
        t.check("devsim:1" in err.get("message", ""), "the error names the worker", err)
        t.check(0 < bad[2].get("frames_out", 0) < 12, "the fault came mid-job (after the first chunk)", bad[2])
        out, _ = c.read_output(bad[0])
        t.check(out.status >= 400, "the failed job's output is not served as complete", out.status)
        t.check(not any(f.startswith(bad[0]) and ".out" in f for f in d.spool_files()),
                "no output file of the failed job left in the spool", d.spool_files())
    if ok:
        t.eq(ok[2].get("frames_out"), 12, "the job on the healthy worker has all 12 frames")
    t.eq(c.get("/readyz").status, 200, "readyz 200 while devsim:0 is healthy")
    h = c.get("/healthz").json()
    t.eq(h.get("status"), "degraded", "/healthz: degraded")
    t.eq({w["name"]: w["state"] for w in h["workers"]}, {"devsim:0": "ready", "devsim:1": "failed"},
         "/healthz: devsim:1 failed, devsim:0 ready")
    m = c.metrics()
    t.eq((worker_metric(m, "infvsrd_worker_faults_total", "devsim:1"), worker_metric(m, "infvsrd_worker_healthy", "devsim:1")),
         (1.0, 0.0), "metrics: devsim:1 has 1 fault and is unhealthy")
    t.check("worker devsim:1 failed" in d.log_text(), "the log names the failed worker")

    # new jobs go to devsim:0 (2 more succeed: its 2nd and 3rd job)
    f0 = worker_metric(m, "infvsrd_worker_frames_total", "devsim:0")
    for i in range(2):
        r = {}
        run_job(c, data, r, 0)
        t.eq((r[0][2]["state"], r[0][2].get("frames_out")), ("succeeded", 12), f"new job {i + 1} succeeds on devsim:0")
    m = c.metrics()
    t.eq(worker_metric(m, "infvsrd_worker_frames_total", "devsim:0") - f0, 24.0, "the new jobs ran on devsim:0")
    # its 4th job reaches op 8500: every worker has failed now
    r = {}
    run_job(c, data, r, 0)
    t.eq((r[0][2]["state"], (r[0][2].get("error") or {}).get("code")), ("failed", "device_fault"),
         "devsim:0's 4th job fails with device_fault")
    t.eq(c.get("/readyz").status, 503, "readyz 503 with every worker failed")
    h = c.get("/healthz")
    t.eq((h.status, h.json().get("status")), (503, "unhealthy"), "/healthz 503 unhealthy")
    r = c.create_job(SPEC, expect=None)
    t.eq(r.status, 503, "job creation refused with 503")
    d.stop()


def memory(t):
    d = H.Daemon(t.work, "memory", model="tiny",
                 args=["--threads", "1", "--workers", "devsim:0", "--max-active-jobs-per-worker", "2",
                       "--device-reserve-mb", "0"],
                 env={"INFVSR_DEVSIM_CAPACITY_MB": "80"}).start()
    c = t.client(d)
    # too large for any worker even idle: refused at once (no waiting, no chunk)
    spec = {"input": {"format": "yuv4mpegpipe", "max_frames": 12}, "output": {"container": "y4m", "codec": "rawvideo"}}
    jid = c.create_job(spec).json()["id"]
    p = c.put_input(jid, read("clip.y4m"), content_type="application/octet-stream")
    H.log(f"PUT of the 64x48 job: {p.status} (422 when the refusal came before the upload's end)")
    t.check(p.status in (204, 422), "the PUT ends (204, or 422 when refused before its end)", p.status)
    j = c.wait_state(jid, TERMINAL, timeout=60)
    err = j.get("error") or {}
    t.eq((j["state"], err.get("code"), j.get("frames_out")), ("failed", "unprocessable_video", 0),
         "64x48 job larger than the worker's budget: unprocessable_video, no frame")
    t.check("MiB" in err.get("message", "") and "devsim:0" in err.get("message", ""),
            "the message names the worker and its limit in MiB", err)
    out, _ = c.read_output(jid)
    t.eq(out.status, 422, "its output answers 422")

    # one 32x24 session fits, two do not: the second job waits, then runs
    data = read("small.y4m")
    a = c.create_job(SPEC).json()["id"]
    sock = H.partial_put(d.port, a, data[: len(data) // 2], content_type="application/octet-stream")
    wait_for("job A's session open", lambda: c.get("/healthz").json()["workers"][0]["memory"]["session_bytes"] > 0, 60)
    b = c.create_job(SPEC).json()["id"]
    res = {}
    th = threading.Thread(target=lambda: res.update(p=c.put_input(b, data, content_type="application/octet-stream")))
    th.start()
    w = wait_for("job B waiting for device memory", lambda: c.get("/healthz").json()["workers"][0]["waiting_jobs"] == 1, 60)
    jb = c.job(b)
    t.check(w and jb["state"] == "running" and jb.get("frames_out", 0) == 0, "job B placed, waiting, no frame yet", jb)
    m = c.metrics()
    t.eq(worker_metric(m, "infvsrd_worker_queue_depth", "devsim:0"), 1.0, "metrics: queue depth 1 on devsim:0")
    rest = data[len(data) // 2:]
    sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
    ja = c.wait_state(a, TERMINAL, timeout=120)
    sock.close()
    t.eq((ja["state"], ja.get("frames_out")), ("succeeded", 12), "job A succeeds")
    th.join()
    jb = c.wait_state(b, TERMINAL, timeout=120)
    t.eq((res["p"].status, jb["state"], jb.get("frames_out")), (204, "succeeded", 12), "job B then runs and succeeds")
    t.eq(H.gauges_settled(c), (0.0, 0.0, 0.0), "gauges back to 0")
    d.stop()


def body(t):
    which = os.environ.get("WORKERS_PARTS", "spread,faults,memory").split(",")
    if "spread" in which:
        spread(t)
    if "faults" in which:
        faults(t)
    if "memory" in which:
        memory(t)


if __name__ == "__main__":
    H.run_main(H.Suite("workers"), body)
