"""Config and connection limits of infvsrd (daemon contract "Binary, flags, config"):
  - precedence flag > INFVSR_* environment > config file > default, seen in --check-config;
    repeated `peer` lines accumulate; an unknown directive names FILE:LINE and exits 2; a bad
    flag value and an unknown flag exit 2; device/precision names are checked (exit 2);
  - a running daemon honours environment settings: INFVSR_MAX_JSON_BYTES (413 above it),
    INFVSR_TOKENS="a,b" (either token works, others 401), --retry-after-s on 429
    (max_awaiting_jobs_per_tenant);
  - idle_timeout_s closes a connection that stops sending mid-request (a trickling one is
    header_timeout_s's job: test_slowloris.py);
  - max_connections_per_ip: a request on the connection over the limit gets 429
    rate_limited + Retry-After + Connection: close (not a reset; probes exempt), and once
    the others are closed a new one is served (more in test_client_limits.py);
  - log_format text still logs `listening port=N`;
  - max_jobs_per_client: 429 rate_limited + Retry-After beyond it, a deleted job frees its place;
  - max_requests_per_s / request_burst: a burst passes, the next request 429 + Retry-After,
    probes exempt, a token back after a second;
  - retention: job_ttl_s removes a finished job (and its files), upload_expiry_s expires an
    idle tus upload (HEAD/PATCH 404 or 410).
Null model."""
import os
import socket
import subprocess
import time

import harness as H


def check_config(args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("INFVSR_")}
    e.update(env or {})
    p = subprocess.run([H.INFVSRD, "--check-config", *args], capture_output=True, text=True, env=e, timeout=20)
    conf = {}
    for line in p.stdout.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            conf.setdefault(k.strip(), []).append(v.strip())
    return p.returncode, conf, p.stdout + p.stderr


def body(t):
    # ---- precedence -----------------------------------------------------------------------
    cfg = os.path.join(t.work, "infvsrd.conf")
    with open(cfg, "w") as f:
        f.write("# test config\n\nmax_json_bytes = 1000\npeer = x=http://127.0.0.1:1\npeer = y=http://127.0.0.1:2\n"
                "model = null\n")
    rc, conf, out = check_config(["--config", cfg])
    t.eq((rc, conf.get("max_json_bytes")), (0, ["1000"]), "config file value")
    peers = " ".join(v for k, vs in conf.items() if k == "peer" for v in vs)
    t.check("x=http://127.0.0.1:1" in peers and "y=http://127.0.0.1:2" in peers, "repeated peer lines accumulate",
            out[-600:])
    rc, conf, _ = check_config(["--config", cfg], {"INFVSR_MAX_JSON_BYTES": "2000"})
    t.eq(conf.get("max_json_bytes"), ["2000"], "environment beats the file")
    rc, conf, _ = check_config(["--config", cfg, "--max-json-bytes", "3000"], {"INFVSR_MAX_JSON_BYTES": "2000"})
    t.eq(conf.get("max_json_bytes"), ["3000"], "flag beats environment and file")
    rc, conf, _ = check_config(["--model", "null"])
    t.eq(conf.get("max_json_bytes"), ["65536"], "default 65536")
    rc, conf, _ = check_config([], {"INFVSR_CONFIG": cfg})
    t.eq(conf.get("max_json_bytes"), ["1000"], "INFVSR_CONFIG names the config file")
    bad = os.path.join(t.work, "bad.conf")
    with open(bad, "w") as f:
        f.write("model = null\n\n# fine so far\nno_such_directive = 1\n")
    rc, _, out = check_config(["--config", bad])
    t.check(rc == 2 and f"{bad}:4" in out, "unknown directive: exit 2 naming FILE:4", f"rc {rc}: {out[-300:]}")
    rc, _, out = check_config(["--model", "null", "--workers", "two"])
    t.check(rc == 2 and "workers" in out, "bad flag value: exit 2 naming the directive", f"rc {rc}: {out[-300:]}")
    rc, _, out = check_config(["--model", "null", "--no-such-flag", "1"])
    t.eq(rc, 2, "unknown flag: exit 2")
    rc, conf, _ = check_config(["--model", "null"])
    t.eq((conf.get("device"), conf.get("precision")), (["cpu"], ["auto"]), "device cpu, precision auto by default")
    for dev in ("cuda", "cuda:1", "auto", "devsim:2"):
        rc, conf, out = check_config(["--model", "null", "--device", dev])
        t.check(rc == 0 and conf.get("device") == [dev], f"device {dev} accepted", out[-300:])
    for dev in ("gpu", "cuda:", "cuda:x", "cuda:12345", "CPU"):
        rc, _, out = check_config(["--model", "null", "--device", dev])
        t.check(rc == 2 and "device" in out and dev in out, f"device '{dev}': exit 2 naming it", f"rc {rc}: {out[-300:]}")
    rc, _, out = check_config(["--model", "null", "--precision", "fp8"])
    t.check(rc == 2 and "precision" in out, "precision fp8: exit 2", f"rc {rc}: {out[-300:]}")

    # ---- environment settings in a running daemon -----------------------------------------
    d = H.Daemon(t.work, "env", model="null", args=["--retry-after-s", "7", "--max-active-jobs-per-worker", "1",
                                                    "--max-queued-jobs", "1", "--max-awaiting-jobs-per-tenant", "1",
                                                    "--log-format", "text"],
                 env={"INFVSR_MAX_JSON_BYTES": "300", "INFVSR_TOKENS": "tok-a,tok-b"}).start()
    t.check("listening port=" in d.log_text(), "log_format text logs 'listening port=N'")
    ca, cb, cx = t.client(d, token="tok-a"), t.client(d, token="tok-b"), t.client(d, token="tok-c")
    r = ca.create_job({"model": "null"}, expect=None)
    t.eq(r.status, 201, "INFVSR_TOKENS: first token accepted")
    j1 = r.json().get("id")
    r = cx.create_job({}, expect=None)
    t.eq((r.status, r.code()), (401, "unauthorized"), "INFVSR_TOKENS: unknown token 401")
    r = cb.request("POST", "/v1/jobs", body=b'{"model": "' + b"n" * 350 + b'"}',
                   headers={"Content-Type": "application/json"})
    t.eq((r.status, r.code()), (413, "payload_too_large"), "INFVSR_MAX_JSON_BYTES=300: 365-byte body 413")
    r = cb.create_job({}, expect=None)
    t.eq(r.status, 201, "INFVSR_TOKENS: second token accepted")
    j2 = r.json().get("id")
    r = cb.create_job({}, expect=None)  # tok-b's tenant already holds 1 job without input
    t.eq((r.status, r.code(), r.headers.get("retry-after")), (429, "rate_limited", "7"),
         "max_awaiting_jobs_per_tenant 429 carries Retry-After from --retry-after-s 7")
    for j in (j1, j2):
        if j:
            ca.delete(f"/v1/jobs/{j}")
    d.stop()

    # ---- per-client job limit: 429 + Retry-After, released when a job ends -----------------
    d = H.Daemon(t.work, "perclient", model="null", args=["--max-jobs-per-client", "2", "--retry-after-s", "3"]).start()
    c = t.client(d)
    ids = [c.create_job({}).json()["id"] for _ in range(2)]
    r = c.create_job({}, expect=None)
    t.eq((r.status, r.code(), r.headers.get("retry-after")), (429, "rate_limited", "3"),
         "max_jobs_per_client=2: third unfinished job 429 rate_limited + Retry-After")
    t.eq(c.delete(f"/v1/jobs/{ids[0]}").status, 204, "DELETE one of the client's jobs")
    r = c.create_job({}, expect=None)
    t.eq(r.status, 201, "a deleted job no longer counts against max_jobs_per_client")
    for j in [ids[1], r.json().get("id")]:
        if j:
            c.delete(f"/v1/jobs/{j}")
    d.stop()

    # ---- request rate limit (token bucket per client address) ------------------------------
    d = H.Daemon(t.work, "ratelimit", model="null", args=["--max-requests-per-s", "1", "--request-burst", "3"]).start()
    c = t.client(d)
    t0 = time.time()
    t.eq([c.get("/v1/models").status for _ in range(3)], [200, 200, 200], "request_burst 3: three requests at once pass")
    r = c.get("/v1/models")
    t.eq((r.status, r.code(), r.headers.get("retry-after")), (429, "rate_limited", "1"),
         "max_requests_per_s 1: the fourth at once gets 429 rate_limited + Retry-After 1")
    t.eq(c.get("/v1/jobs/local.nosuchjob").status, 429, "every API route counts, also an unknown job")
    t.eq([c.get(p).status for p in ("/healthz", "/readyz", "/metrics")], [200, 200, 200], "probes are exempt")
    time.sleep(1.3)
    t.eq(c.get("/v1/models").status, 200, "one token back after a second")
    r = c.get("/v1/models")
    if time.time() - t0 < 1.9:  # fewer than 2 tokens can have come back since the burst
        t.eq(r.status, 429, "and only one")
    m = c.metrics()
    t.check(m.get('infvsrd_errors_total{code="rate_limited"}', 0) >= 3, "rate_limited counted in infvsrd_errors_total",
            str({k: v for k, v in m.items() if "rate" in k}))
    t.eq(m.get("infvsrd_rate_limit_untracked_total"), 0.0, "every client tracked")
    d.stop()

    # ---- idle timeout and per-IP connection limit ------------------------------------------
    d = H.Daemon(t.work, "conn", model="null", args=["--idle-timeout-s", "2", "--max-connections-per-ip", "4"]).start()
    c = t.client(d)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    t0 = time.time()
    try:
        data = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        data = b""
    dt = time.time() - t0
    s.close()
    t.check(dt < 5 and not data.startswith(b"HTTP/1.1 2"), f"idle_timeout_s 2: a stalled request is closed ({dt:.1f} s)",
            f"{dt:.1f} s, got {data[:80]!r}")
    held = []
    for _ in range(4):
        x = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        x.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        x.recv(4096)
        held.append(x)  # kept alive
    st, hd, b = H.raw_request(d.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    c.rec.add("GET", "/v1/models", st or 0, hd, b, case="5th connection")
    t.eq((st, H.Response(st, hd, b, 0).code() if st else None, hd.get("retry-after")), (429, "rate_limited", "5"),
         "5th connection from one IP (limit 4): 429 rate_limited + Retry-After, not a reset")
    st, _, _ = H.raw_request(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    t.eq(st, 200, "a probe over the limit is answered (probes exempt)")
    for x in held:
        x.close()
    deadline = time.time() + 10
    r = c.get("/v1/models")
    while r.status != 200 and time.time() < deadline:  # the daemon sees the closes asynchronously
        time.sleep(0.1)
        r = c.get("/v1/models")
    t.eq(r.status, 200, "after the 4 connections closed, a new one is served")
    d.stop()

    # ---- retention: job_ttl_s and upload_expiry_s -----------------------------------------
    d = H.Daemon(t.work, "ttl", model="null", args=["--job-ttl-s", "2", "--upload-expiry-s", "2"]).start()
    c = t.client(d)
    clip = open(H.fixture("small.ts"), "rb").read()
    done = c.create_job({}).json()["id"]
    c.put_input(done, clip)
    c.wait_state(done, ("succeeded",), timeout=30)
    tus = c.create_job({}).json()["id"]
    r = c.request("POST", "/v1/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(clip)),
                                                   "Upload-Metadata": f"job_id {H.b64(tus)}"})
    t.eq(r.status, 201, "tus creation 201")
    t.check(bool(r.headers.get("upload-expires")), "tus creation carries Upload-Expires", r.headers)
    r = c.request("PATCH", f"/v1/uploads/{tus}", body=clip[:5000],
                  headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    t.eq(r.status, 204, "tus PATCH 204")
    time.sleep(4.5)
    r = c.get(f"/v1/jobs/{done}")
    t.eq(r.status, 404, "job_ttl_s 2: a finished job is gone 4.5 s after it finished")
    r = c.request("HEAD", f"/v1/uploads/{tus}", headers={"Tus-Resumable": "1.0.0"})
    t.check(r.status in (404, 410), "upload_expiry_s 2: an upload idle for 4.5 s has expired (HEAD 404/410)", r.status)
    r = c.request("PATCH", f"/v1/uploads/{tus}", body=clip[5000:6000],
                  headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "5000", "Content-Type": "application/offset+octet-stream"})
    t.check(r.status in (404, 410), "PATCH to the expired upload 404/410", r.status)
    deadline = time.time() + 60 * H.SLOWDOWN  # a state wait: generous, returns at once
    while d.spool_files() and time.time() < deadline:
        time.sleep(0.1)
    t.eq(d.spool_files(), [], "spool empty once the finished job and the expired upload are gone")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("limits_config"), body)
