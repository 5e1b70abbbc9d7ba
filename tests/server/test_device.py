"""infvsrd's `device` directive: the workers run the engine on the backend it names.

  - `--device devsim` (the device-emulating backend: CPU kernels behind memory the host
    cannot read): the worker reports backend devsim in /v1/models and /healthz, a job runs
    through it, and its raw y4m output is byte-identical to the same job on `--device cpu`
    (f32 on both: the engine's outputs are bit-identical across the two backends);
  - `--device cuda` where no usable GPU exists (a build without CUDA, or a machine without
    a GPU): the daemon still starts and answers probes, /healthz says unhealthy with an
    error naming CUDA, /readyz is 503 and a job's upload is refused with 503 rather than
    hanging. Where a GPU is usable the same job must simply succeed.
"""
import time

import harness as H

SPEC = {"input": {"format": "yuv4mpegpipe", "max_frames": 12}, "output": {"container": "y4m", "codec": "rawvideo"}}


def wait_health(c, timeout):
    """/healthz once the worker has tried to open its device: status ok or unhealthy."""
    deadline = time.time() + timeout
    h = {}
    while time.time() < deadline:
        h = c.get("/healthz").json()
        if h.get("status") in ("ok", "unhealthy"):
            return h
        time.sleep(0.1)
    return h


def run_job(t, d, label):
    c = t.client(d)
    models = c.get("/v1/models").json().get("models", [])
    backend = models[0].get("backend") if models else None
    jid = c.create_job(SPEC).json()["id"]
    with open(H.fixture("small.y4m"), "rb") as f:
        t.eq(c.put_input(jid, f.read(), content_type="application/octet-stream").status, 204, f"{label}: PUT 204")
    j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=240 * H.SLOWDOWN)
    t.eq((j["state"], j.get("frames_out")), ("succeeded", 12), f"{label}: job succeeded with 12 frames")
    out, _ = c.read_output(jid)
    t.eq(out.status, 200, f"{label}: GET output 200")
    c.delete(f"/v1/jobs/{jid}")
    return backend, out.body


def body(t):
    cpu = H.Daemon(t.work, "cpu", model="tiny", args=["--threads", "2", "--device", "cpu"]).start()
    b_cpu, out_cpu = run_job(t, cpu, "cpu")
    t.eq(b_cpu, "cpu", "/v1/models backend cpu")
    cpu.stop()

    dev = H.Daemon(t.work, "devsim", model="tiny", args=["--threads", "2", "--device", "devsim"]).start()
    h = t.client(dev).get("/healthz").json()
    t.eq([w.get("backend") for w in h.get("workers", [])], ["devsim"], "/healthz: the worker runs on devsim")
    b_dev, out_dev = run_job(t, dev, "devsim")
    t.eq(b_dev, "devsim", "/v1/models backend devsim")
    t.check(len(out_dev) > 0 and out_dev == out_cpu, "devsim output byte-identical to cpu (raw y4m)",
            f"{len(out_dev)} vs {len(out_cpu)} bytes")
    dev.stop()

    gpu = H.Daemon(t.work, "cuda", model="tiny", args=["--threads", "2", "--device", "cuda"]).start(wait_ready=False)
    c = t.client(gpu)
    h = wait_health(c, 120 * H.SLOWDOWN)
    if h.get("status") == "ok":  # a usable GPU: the job must run on it
        b, _ = run_job(t, gpu, "cuda")
        t.check(b.startswith("cuda"), "/v1/models backend cuda", b)
    else:
        err = h.get("error", "") + " ".join(w.get("error", "") for w in h.get("workers", []))
        t.check("CUDA" in err or "cuda" in err, "/healthz error names CUDA", h)
        r = c.get("/readyz")
        t.eq(r.status, 503, "/readyz 503 without a usable GPU")
        r = c.create_job(SPEC, expect=None)
        t.check(r.status in (201, 503), "job creation answers (201 or 503), no hang", r.status)
        if r.status == 201:
            jid = r.json()["id"]
            with open(H.fixture("small.y4m"), "rb") as f:
                p = c.put_input(jid, f.read(), content_type="application/octet-stream")
            t.check(p.status >= 400, "an upload to a daemon whose worker failed gets an error status", p.status)
    gpu.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("device"), body)
