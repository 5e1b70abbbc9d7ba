"""Restart-safe jobs (issue 15 item 3, and item 9's spool modes and input freeing), each state
of a job's life set up deterministically, then the daemon killed (-9) or stopped (SIGTERM)
and started again on the same spool.

Daemon 1 (max_active_jobs_per_worker 1), before kill -9:
  A  succeeded (tenant acme, Idempotency-Key)      F  failed: garbage input (its .in is
  W  created, no input                                freed at once, before job_ttl_s)
  T  tus upload, half of the bytes PATCHed (holds  H  PUT started, never finished
     the only worker slot: its decoder waits)      Q  PUT complete, queued behind T
  every spool file is mode 0600; then planted: files of unknown jobs (.in .out .out.part),
  a temporary record, a damaged record, a garbage <Q>.out (an output no record vouches for),
  a file of another instance and an unrelated file.
Daemon 2 (same spool) must show: A succeeded, output byte-identical (also a byte range),
tenant kept (beta gets 404), its Idempotency-Key still answers 200 with A; F failed
(unprocessable_video) with no input file; W accepts its upload and succeeds; T's HEAD
reports the stored half and its PATCH of the rest succeeds; H failed with `interrupted`
(status and output answer the interrupted error); Q is processed again and its output
equals the reference (the planted garbage .out never served); every planted file of this
instance is gone, the other instance's and the unrelated file are not; the
infvsrd_recovered_jobs gauge counts each outcome.
Daemon 2 then gets SIGTERM (drain_timeout_s 0) with H2 (PUT started) holding the slot, Q2
(complete input) queued and W2 (no input): the shutdown's cancellations are not recorded,
so daemon 3 re-runs Q2 to success, fails H2 `interrupted`, and W2 still waits for input.
Daemon 4/5: a tus upload's record written "before a reboot" (its boot_id changed by the
test) with bytes beyond the fdatasync'ed count in the file: HEAD reports the fdatasync'ed
offset, and the upload completes from there.
All outputs are compared with one reference run (y4m/rawvideo: deterministic). Null model."""
import hashlib
import os
import stat
import time

import harness as H

SPEC = {"output": {"container": "y4m", "codec": "rawvideo"}}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tus_hdr(**kw):
    return {"Tus-Resumable": "1.0.0", **kw}


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def read_record(path):
    """The JSON object of a journal record file (the CRC-32C trailer checked)."""
    import json
    raw = open(path, "rb").read()
    body, _, trailer = raw[:-1].rpartition(b"\n")
    assert trailer == b"crc32c=%08x" % crc32c(body + b"\n"), f"bad trailer in {path}"
    return json.loads(body)


def write_record(path, rec):
    import json
    body = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    with open(path, "wb") as f:
        f.write(body + b"crc32c=%08x\n" % crc32c(body))


def wait_log(d, needle, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in d.log_text():
            return True
        time.sleep(0.05)
    return False


def body(t):
    clip = open(H.fixture("small.ts"), "rb").read()
    tokens = os.path.join(t.work, "tokens")
    with open(tokens, "w") as f:
        f.write("tokA acme\ntokB beta\n")
    spool = os.path.join(t.work, "spool")
    args = ["--tokens-file", tokens, "--max-active-jobs-per-worker", "1", "--drain-timeout-s", "0"]
    d1 = H.Daemon(t.work, "run1", model="null", args=args, spool=spool).start()
    c, cb = t.client(d1, token="tokA"), t.client(d1, token="tokB")

    key = {"Idempotency-Key": "restart-key"}
    A = c.create_job(SPEC, headers=key).json()["id"]
    t.eq(c.put_input(A, clip).status, 204, "A: upload")
    t.eq(c.wait_state(A, ("succeeded", "failed"), timeout=60)["state"], "succeeded", "A: succeeded")
    ref = c.get(f"/v1/jobs/{A}/output").body
    t.check(len(ref) > 100000, "reference output", len(ref))

    F = c.create_job(SPEC).json()["id"]
    c.put_input(F, b"not a video at all " * 500)
    jf = c.wait_state(F, ("succeeded", "failed"), timeout=60)
    t.eq((jf["state"], (jf.get("error") or {}).get("code")), ("failed", "unprocessable_video"), "F: failed")
    # The state is the pipeline's; the loop frees the input when it handles the terminal
    # notification, a moment later (under load, not by the first GET): wait for it, far
    # below job_ttl_s.
    deadline = time.time() + 30 * H.SLOWDOWN
    while os.path.exists(os.path.join(spool, F + ".in")) and time.time() < deadline:
        time.sleep(0.05)
    t.check(not os.path.exists(os.path.join(spool, F + ".in")),
            "F: a failed job's input is freed at once (not kept until job_ttl_s)", sorted(os.listdir(spool)))

    W = c.create_job(SPEC).json()["id"]
    T = c.create_job(SPEC).json()["id"]
    r = c.request("POST", "/v1/uploads", headers=tus_hdr(**{"Upload-Length": str(len(clip)),
                                                             "Upload-Metadata": f"job_id {H.b64(T)}"}))
    t.eq(r.status, 201, "T: tus upload created")
    half = len(clip) // 2
    r = c.request("PATCH", f"/v1/uploads/{T}", body=clip[:half],
                  headers=tus_hdr(**{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
    t.eq((r.status, r.headers.get("upload-offset")), (204, str(half)), "T: first half PATCHed")

    Hj = c.create_job(SPEC).json()["id"]
    hold = H.partial_put(d1.port, Hj, b"garbage!" * 512, token="tokA")
    c.wait_state(Hj, ("queued", "running"), timeout=30)
    Q = c.create_job(SPEC).json()["id"]
    t.eq(c.put_input(Q, clip).status, 204, "Q: complete upload while T holds the only slot")
    t.eq(c.job(Q)["state"], "queued", "Q: queued")

    # The daemon may be rewriting a job record right now (<id>.job.tmp, then a rename): a
    # name listed a moment ago can be gone; every file that is there must be 0600.
    modes = {}
    for f in os.listdir(spool):
        try:
            modes[f] = stat.S_IMODE(os.stat(os.path.join(spool, f)).st_mode)
        except FileNotFoundError:
            pass
    t.check(modes and all(m == 0o600 for m in modes.values()), "every spool file the daemon wrote is 0600",
            {f: oct(m) for f, m in modes.items()})
    t.check(any(f.endswith(".out") for f in modes) and any(f.endswith(".in") for f in modes)
            and any(f.endswith(".job") for f in modes), "... inputs, outputs and records among them", sorted(modes))

    inst = A.split(".")[0]
    fake = f"{inst}.ZZZZZZZZZZZZZZZZZZZZZZ"
    damaged = f"{inst}.YYYYYYYYYYYYYYYYYYYYYY"
    planted = [fake + ".in", fake + ".out", fake + ".out.part", A + ".job.tmp", damaged + ".job", damaged + ".in"]
    for name in planted + [Q + ".out"]:  # <Q>.out: never served; Q's re-run writes its own
        with open(os.path.join(spool, name), "wb") as f:
            f.write(b"{\"v\":1,\"id\":\"x\"}\ncrc32c=00000000\n" if name.endswith(".job") else b"garbage" * 100)
    keep = ["other.AAAAAAAAAAAAAAAAAAAAAA.in", "notes.txt"]
    for name in keep:
        with open(os.path.join(spool, name), "wb") as f:
            f.write(b"not ours")

    d1.kill9()
    hold.close()

    # ---- after kill -9 ------------------------------------------------------------------------------
    d2 = H.Daemon(t.work, "run2", model="null", args=args, spool=spool).start(keep_spool=True)
    c, cb = t.client(d2, token="tokA"), t.client(d2, token="tokB")
    ja = c.job(A)
    t.eq(ja["state"], "succeeded", "A: still succeeded after kill -9")
    got = c.get(f"/v1/jobs/{A}/output")
    t.eq((got.status, sha(got.body)), (200, sha(ref)), "A: output served again, byte-identical")
    rr = c.get(f"/v1/jobs/{A}/output", headers={"Range": "bytes=10-99"})
    t.eq((rr.status, rr.body, rr.headers.get("content-range")), (206, ref[10:100], f"bytes 10-99/{len(ref)}"),
         "A: byte ranges after the restart")
    t.eq((ja["frames_out"], ja["output"]["bytes"]), (48, len(ref)), "A: status metadata kept")
    t.eq(cb.get(f"/v1/jobs/{A}").status, 404, "A: still invisible to another tenant")
    r = c.create_job(SPEC, headers=key, expect=None)
    t.eq((r.status, r.json().get("id")), (200, A), "A: its Idempotency-Key survived the restart")

    jf = c.job(F)
    t.eq((jf["state"], (jf.get("error") or {}).get("code")), ("failed", "unprocessable_video"), "F: still failed")

    t.eq(c.job(W)["state"], "created", "W: still waiting for input")
    t.eq(c.put_input(W, clip).status, 204, "W: upload after the restart")

    r = c.request("HEAD", f"/v1/uploads/{T}", headers=tus_hdr())
    t.eq((r.status, r.headers.get("upload-offset"), r.headers.get("upload-length")), (200, str(half), str(len(clip))),
         "T: HEAD reports the stored offset after kill -9")
    r = c.request("PATCH", f"/v1/uploads/{T}", body=clip[half:],
                  headers=tus_hdr(**{"Upload-Offset": str(half), "Content-Type": "application/offset+octet-stream"}))
    t.eq(r.status, 204, "T: PATCH continues from there")

    jh = c.job(Hj)
    t.eq((jh["state"], (jh.get("error") or {}).get("code")), ("failed", "interrupted"),
         "H: an incomplete PUT fails with code interrupted")
    ro = c.get(f"/v1/jobs/{Hj}/output")
    t.eq((ro.status, ro.code()), (500, "interrupted"), "H: its output answers the interrupted error")

    for name, jid in (("Q (re-run)", Q), ("W", W), ("T", T)):
        j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=60)
        o = c.get(f"/v1/jobs/{jid}/output")
        t.eq((j["state"], o.status, sha(o.body)), ("succeeded", 200, sha(ref)),
             f"{name}: succeeded, output equals the reference")

    left = set(os.listdir(spool))
    t.eq(sorted(n for n in planted if n in left), [], "every planted orphan of this instance is removed")
    t.eq(sorted(n for n in keep if n in left), sorted(keep), "another instance's file and an unknown file are left alone")
    t.check(not os.path.exists(os.path.join(spool, Hj + ".in")), "H: its input is gone")
    m = c.metrics()
    rec = {o: m.get(f'infvsrd_recovered_jobs{{outcome="{o}"}}') for o in
           ("restored", "awaiting_input", "rerun", "interrupted", "dropped")}
    t.eq(rec, {"restored": 2.0, "awaiting_input": 2.0, "rerun": 1.0, "interrupted": 1.0, "dropped": 0.0},
         "infvsrd_recovered_jobs by outcome")
    t.check(m.get("infvsrd_spool_orphans_removed", 0) >= 6, "infvsrd_spool_orphans_removed counts the sweep",
            m.get("infvsrd_spool_orphans_removed"))

    # ---- a clean SIGTERM: the shutdown's cancellations are not the client's -------------------------
    H2 = c.create_job(SPEC).json()["id"]
    hold = H.partial_put(d2.port, H2, b"garbage!" * 512, token="tokA")
    c.wait_state(H2, ("queued", "running"), timeout=30)
    Q2 = c.create_job(SPEC).json()["id"]
    t.eq(c.put_input(Q2, clip).status, 204, "Q2: complete upload, queued")
    W2 = c.create_job(SPEC).json()["id"]
    d2.signal(15)
    t.check(wait_log(d2, "cancelling", 20 * H.SLOWDOWN), "SIGTERM with drain_timeout_s 0 cancels the running jobs")
    hold.close()
    t.eq(d2.wait(30 * H.SLOWDOWN), 0, "daemon 2 exits 0 after SIGTERM")
    d3 = H.Daemon(t.work, "run3", model="null", args=args, spool=spool).start(keep_spool=True)
    c = t.client(d3, token="tokA")
    j = c.wait_state(Q2, ("succeeded", "failed", "cancelled"), timeout=60)
    o = c.get(f"/v1/jobs/{Q2}/output")
    t.eq((j["state"], sha(o.body)), ("succeeded", sha(ref)), "Q2: cancelled by the shutdown, re-run after it")
    jh = c.job(H2)
    t.eq((jh["state"], (jh.get("error") or {}).get("code")), ("failed", "interrupted"), "H2: interrupted")
    t.eq(c.job(W2)["state"], "created", "W2: still waiting for input after SIGTERM")
    t.eq(c.job(A)["state"], "succeeded", "A: survives a second restart")
    for jid in (A, F, W, T, Hj, Q, H2, Q2, W2):
        c.delete(f"/v1/jobs/{jid}")
    deadline = time.time() + 20 * H.SLOWDOWN  # files go with the job's last reference (asynchronous)
    while [f for f in os.listdir(spool) if f.startswith(inst + ".")] and time.time() < deadline:
        time.sleep(0.05)
    ours = [f for f in os.listdir(spool) if f.startswith(inst + ".")]
    t.eq(ours, [], "after deleting every job the spool holds none of this instance's files")
    d3.stop()

    # ---- after a reboot only fdatasync'ed input bytes count -------------------------------------
    d4 = H.Daemon(t.work, "run4", model="null", args=args, spool=spool).start(keep_spool=True)
    c = t.client(d4, token="tokA")
    R = c.create_job(SPEC).json()["id"]
    c.request("POST", "/v1/uploads", headers=tus_hdr(**{"Upload-Length": str(len(clip)),
                                                     "Upload-Metadata": f"job_id {H.b64(R)}"}))
    r = c.request("PATCH", f"/v1/uploads/{R}", body=clip[:half],
                  headers=tus_hdr(**{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
    t.eq(r.status, 204, "R: first half PATCHed")
    rec_path = os.path.join(spool, R + ".job")
    deadline = time.time() + 20 * H.SLOWDOWN
    rec = {}
    while time.time() < deadline:
        rec = read_record(rec_path)
        if rec.get("input_synced") == half:
            break
        time.sleep(0.1)
    t.eq((rec.get("state"), rec.get("input_bytes"), rec.get("input_synced")), ("uploading", half, half),
         "R: the tus checkpoint record vouches for the fdatasync'ed half")
    d4.kill9()
    with open(os.path.join(spool, R + ".in"), "ab") as f:
        f.write(clip[half:half + 1000])  # bytes the page cache had but a power loss would not keep
    rec["boot_id"] = "00000000-0000-0000-0000-000000000000"  # "written before a reboot"
    write_record(rec_path, rec)
    d5 = H.Daemon(t.work, "run5", model="null", args=args, spool=spool).start(keep_spool=True)
    c = t.client(d5, token="tokA")
    r = c.request("HEAD", f"/v1/uploads/{R}", headers=tus_hdr())
    t.eq((r.status, r.headers.get("upload-offset")), (200, str(half)),
         "R: after a reboot HEAD reports the fdatasync'ed offset, not the file's size")
    r = c.request("PATCH", f"/v1/uploads/{R}", body=clip[half:],
                  headers=tus_hdr(**{"Upload-Offset": str(half), "Content-Type": "application/offset+octet-stream"}))
    t.eq(r.status, 204, "R: PATCH from there")
    j = c.wait_state(R, ("succeeded", "failed"), timeout=60)
    t.eq((j["state"], sha(c.get(f"/v1/jobs/{R}/output").body)), ("succeeded", sha(ref)), "R: output equals the reference")
    d5.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("restart"), body)
