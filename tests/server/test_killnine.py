"""Fault injection (issue 15 item 3): kill -9 at random points of jobs' lives, N rounds on
one spool, the daemon restarted after every kill; after each restart every invariant is
checked against what the client was told before the kill.

Each round starts the daemon on the spool the previous one was killed on, verifies, then
starts one action and SIGKILLs the daemon at a random moment of it (seeded):
  create   POST /v1/jobs in flight
  put      a chunked PUT in flight (pieces every few ms)
  tus      tus creation + PATCHes of 8 KiB pieces in flight
  process  PUT complete (204), killed while the job is queued/processed
  complete the client saw `succeeded` and read the output (hash kept), killed right after
  delete   DELETE of an earlier job in flight
Invariants after every restart:
  - a job the client got 201 for exists, unless a DELETE of it got 204 (then 404);
  - no output presented as complete is partial: every job the daemon reports succeeded
    serves an output byte-identical to the reference run (the null model and y4m/rawvideo
    output are deterministic), and every job the client saw succeed still does;
  - a tus upload resumes: HEAD reports at least every byte a PATCH was acknowledged for,
    and PATCHing the rest completes the job;
  - every other interrupted job is processed again to success, or fails with code
    `interrupted` (a PUT cut by the kill);
  - once the jobs settle, the spool holds no orphan: every file names a job the daemon
    knows, `.in` only for unfinished jobs, `.out` only for succeeded ones, no `.out.part`,
    no temporary record or preview; frame previews (`.pvN.lr|sr.png`) only of known jobs;
  - another tenant gets 404 for the jobs (tenants survive).
Counts are printed at the end. Rounds: KILL_ROUNDS (default 60; CMake passes 50 under
sanitizers), seed KILL_SEED. Null model, small.ts (32x24, 48 frames)."""
import hashlib
import os
import random
import threading
import time

import harness as H

SPEC = {"output": {"container": "y4m", "codec": "rawvideo"}}
ACTIONS = ("create", "put", "tus", "process", "complete", "delete")
TERMINAL = ("succeeded", "failed", "cancelled")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tus_hdr(**kw):
    return {"Tus-Resumable": "1.0.0", **kw}


class Job:
    def __init__(self, jid, kind):
        self.id = jid
        self.kind = kind          # put | tus
        self.upload_started = False
        self.upload_done = False  # the client got the final 204
        self.tus_acked = 0        # bytes acknowledged by PATCH 204s
        self.seen_hash = None     # the output the client read after `succeeded`
        self.delete_sent = False
        self.deleted = False      # DELETE answered 204
        self.final = None         # settled state seen after a restart


def body(t):
    rounds = int(os.environ.get("KILL_ROUNDS", "60"))
    seed = int(os.environ.get("KILL_SEED", "15"))
    rng = random.Random(seed)
    clip = open(H.fixture("small.ts"), "rb").read()
    tokens = os.path.join(t.work, "tokens")
    with open(tokens, "w") as f:
        f.write("tokA acme\ntokB beta\n")
    spool = os.path.join(t.work, "spool")
    args = ["--tokens-file", tokens, "--max-active-jobs-per-worker", "2"]
    H.log(f"kill -9 fault injection: {rounds} rounds, seed {seed}")
    jobs = {}
    ref = None
    n = {"kills": 0, "kills_by_action": {a: 0 for a in ACTIONS}, "restarts": 0, "rerun_succeeded": 0,
         "interrupted_failed": 0, "tus_resumed": 0, "outputs_verified": 0, "seen_succeeded_verified": 0,
         "deleted_verified": 0, "unknown_ids_adopted": 0}
    bad = {"lost_jobs": 0, "partial_as_complete": 0, "seen_succeeded_broken": 0, "deleted_came_back": 0,
           "tus_lost_acked_bytes": 0, "bad_failures": 0, "orphan_files": 0, "tenant_leaks": 0, "unsettled": 0}

    def client(d, tok="tokA", timeout=30):
        return t.client(d, token=tok, timeout=timeout)

    def upload_rest_tus(c, j, offset):
        r = c.request("PATCH", f"/v1/uploads/{j.id}", body=clip[offset:],
                      headers=tus_hdr(**{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}))
        return r.status == 204

    def check_output(c, jid, why):
        nonlocal ref
        o = c.get(f"/v1/jobs/{jid}/output", record=False)
        if o.status != 200:
            return None
        n["outputs_verified"] += 1
        h = sha(o.body)
        if ref is not None and h != ref:
            bad["partial_as_complete"] += 1
            H.log(f"  VIOLATION {why}: job {jid} succeeded with an output of {len(o.body)} bytes != reference")
        return h

    def verify(d, full):
        """Resolves every job after a restart, drives unfinished ones to the end, checks."""
        c, cb = client(d), client(d, "tokB")
        pending = []
        for j in list(jobs.values()):
            if j.deleted:
                r = c.get(f"/v1/jobs/{j.id}", record=False)
                if r.status != 404:
                    bad["deleted_came_back"] += 1
                    H.log(f"  VIOLATION job {j.id}: DELETE got 204 but it is back ({r.status})")
                else:
                    n["deleted_verified"] += 1
                del jobs[j.id]
                continue
            r = c.get(f"/v1/jobs/{j.id}", record=False)
            if r.status == 404 and j.delete_sent:
                del jobs[j.id]  # the DELETE reached the daemon before the kill: fine either way
                continue
            if r.status != 200:
                bad["lost_jobs"] += 1
                H.log(f"  VIOLATION job {j.id} ({j.kind}) got 201 but is {r.status} after the restart")
                del jobs[j.id]
                continue
            st = r.json()
            if j.final in TERMINAL and st["state"] != j.final:
                bad["seen_succeeded_broken" if j.final == "succeeded" else "bad_failures"] += 1
                H.log(f"  VIOLATION job {j.id} was {j.final}, now {st['state']}")
            if st["state"] == "created" and j.kind == "put":
                pending.append(j)
                if c.put_input(j.id, clip).status == 204:  # never uploaded (or 0 bytes arrived)
                    j.upload_done = True
            elif j.kind == "tus" and not st["input"]["complete"] and st["state"] not in TERMINAL:
                h = c.request("HEAD", f"/v1/uploads/{j.id}", headers=tus_hdr(), record=False)
                off = int(h.headers.get("upload-offset", "-1")) if h.status == 200 else -1
                if h.status == 404 and j.tus_acked == 0:  # the kill came before the tus creation's 201
                    cr = c.request("POST", "/v1/uploads", record=False, headers=tus_hdr(**{
                        "Upload-Length": str(len(clip)), "Upload-Metadata": f"job_id {H.b64(j.id)}"}))
                    off = 0 if cr.status == 201 else -1
                if off < j.tus_acked:
                    bad["tus_lost_acked_bytes"] += 1
                    H.log(f"  VIOLATION tus {j.id}: HEAD offset {off} < acknowledged {j.tus_acked}")
                elif upload_rest_tus(c, j, off):
                    n["tus_resumed"] += 1
                    j.upload_done = True
                pending.append(j)
            elif st["state"] not in TERMINAL:
                pending.append(j)
            if rng.random() < 0.2 and cb.get(f"/v1/jobs/{j.id}", record=False).status != 404:
                bad["tenant_leaks"] += 1
        for j in pending + [j for j in jobs.values() if j not in pending]:
            if j.id not in jobs:
                continue
            try:
                st = c.wait_state(j.id, TERMINAL, timeout=60 * H.SLOWDOWN, poll=0.02)
            except AssertionError:
                bad["unsettled"] += 1
                H.log(f"  VIOLATION job {j.id} did not settle")
                continue
            was_pending = j in pending
            if st["state"] == "succeeded":
                need = full or was_pending or j.final != "succeeded" or rng.random() < 0.15
                h = check_output(c, j.id, "after restart") if need else j.seen_hash
                if j.seen_hash is not None and h is not None and h != j.seen_hash:
                    bad["seen_succeeded_broken"] += 1
                    H.log(f"  VIOLATION job {j.id}: output differs from what the client read before the kill")
                elif j.seen_hash is not None and need:
                    n["seen_succeeded_verified"] += 1
                if was_pending and j.final is None:
                    n["rerun_succeeded"] += 1
            elif st["state"] == "failed" and (st.get("error") or {}).get("code") == "interrupted":
                if j.final is None:
                    n["interrupted_failed"] += 1
            else:
                bad["bad_failures"] += 1
                H.log(f"  VIOLATION job {j.id}: {st['state']} {st.get('error')}")
            j.final = st["state"]
        # the spool, now that every job is settled
        deadline = time.time() + 10 * H.SLOWDOWN
        while True:
            problems = spool_problems(c)
            if not problems or time.time() > deadline:
                break
            time.sleep(0.05)  # a finished job's input is freed right after its last event
        for p in problems:
            bad["orphan_files"] += 1
            H.log(f"  VIOLATION spool: {p}")

    def spool_problems(c):
        out = []
        for name in sorted(os.listdir(spool)):
            base = name
            for sfx in (".job.tmp", ".out.part", ".job", ".out", ".in", ".png.tmp",
                        ".pv0.lr.png", ".pv0.sr.png", ".pv1.lr.png", ".pv1.sr.png"):
                if name.endswith(sfx):
                    base, suffix = name[: -len(sfx)], sfx
                    break
            else:
                out.append(f"unexpected file {name}")
                continue
            if suffix == ".png.tmp":  # <id>.pvN.xx.png.tmp: a frame preview being written
                base = base[: base.rfind(".pv")] if ".pv" in base else base
            j = jobs.get(base)
            if j is None:
                r = c.get(f"/v1/jobs/{base}", record=False)
                if r.status == 200:  # a creation whose 201 the kill swallowed: a real job
                    jobs[base] = Job(base, "put")
                    n["unknown_ids_adopted"] += 1  # settled by the next round's verify
                    continue
                out.append(f"{name}: no such job ({r.status})")
                continue
            if suffix in (".job.tmp", ".out.part", ".png.tmp"):
                out.append(f"{name}: left over")
            elif suffix == ".in" and j.final in TERMINAL:
                out.append(f"{name}: input of a {j.final} job")
            elif suffix == ".out" and j.final != "succeeded":
                out.append(f"{name}: output of a {j.final} job")
        return out

    # ---- the rounds --------------------------------------------------------------------------------
    t0 = time.time()
    for rnd in range(rounds + 1):
        d = H.Daemon(t.work, f"r{rnd:03d}", model="null", args=args, spool=spool).start(keep_spool=rnd > 0)
        n["restarts"] += rnd > 0
        verify(d, full=rnd == rounds)
        c = client(d)
        if ref is None:
            jid = c.create_job(SPEC).json()["id"]
            c.put_input(jid, clip)
            c.wait_state(jid, ("succeeded",), timeout=60)
            ref = sha(c.get(f"/v1/jobs/{jid}/output").body)
            jobs[jid] = Job(jid, "put")
            jobs[jid].seen_hash, jobs[jid].final, jobs[jid].upload_done = ref, "succeeded", True
        if rnd == rounds:
            d.stop()  # the last daemon: a clean SIGTERM exit, checked by the suite
            break
        action = rng.choice(ACTIONS)
        if action == "delete" and not jobs:
            action = "put"
        delay = rng.random()
        done = threading.Event()
        ctx = {}

        def run(action=action, c=c):
            try:
                if action == "delete":
                    j = ctx["j"]
                    j.delete_sent = True
                    if c.delete(f"/v1/jobs/{j.id}", record=False).status == 204:
                        j.deleted = True
                    return
                r = c.create_job(SPEC, expect=None)
                if r.status != 201:
                    return
                j = Job(r.json()["id"], "tus" if action == "tus" else "put")
                jobs[j.id] = j
                if action == "create":
                    return
                if action == "tus":
                    h = c.request("POST", "/v1/uploads", record=False, headers=tus_hdr(**{
                        "Upload-Length": str(len(clip)), "Upload-Metadata": f"job_id {H.b64(j.id)}"}))
                    if h.status != 201:
                        return
                    off = 0
                    while off < len(clip):
                        piece = clip[off:off + 8192]
                        j.upload_started = True
                        p = c.request("PATCH", f"/v1/uploads/{j.id}", body=piece, record=False, headers=tus_hdr(**{
                            "Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"}))
                        if p.status != 204:
                            return
                        off = int(p.headers["upload-offset"])
                        j.tus_acked = off
                        time.sleep(0.003)
                    j.upload_done = True
                else:
                    j.upload_started = True
                    chunked = action == "put"
                    if c.put_input(j.id, clip, chunked=chunked, chunk_size=4096,
                                   delay=0.004 if chunked else 0).status == 204:
                        j.upload_done = True
                    if action in ("process", "put"):
                        ctx["uploaded"] = time.time()
                        return
                    st = c.wait_state(j.id, TERMINAL, timeout=60, poll=0.01)
                    if st["state"] == "succeeded":
                        j.seen_hash = sha(c.get(f"/v1/jobs/{j.id}/output", record=False).body)
                        j.final = "succeeded"
                        if j.seen_hash != ref:
                            bad["partial_as_complete"] += 1
            except Exception as e:  # noqa: BLE001 - the kill cuts requests: expected
                ctx["error"] = repr(e)
            finally:
                done.set()

        if action == "delete":
            ctx["j"] = rng.choice(list(jobs.values()))
        th = threading.Thread(target=run, daemon=True)
        th.start()
        if action == "process":  # kill during processing: after the upload's 204, within ~0.15 s
            deadline = time.time() + 30
            while "uploaded" not in ctx and not done.is_set() and time.time() < deadline:
                time.sleep(0.001)
            time.sleep(delay * 0.15 * H.SLOWDOWN)
        elif action == "complete":
            done.wait(60)
            time.sleep(delay * 0.005)
        elif action == "create":
            time.sleep(delay * 0.01)
        elif action == "delete":
            time.sleep(delay * 0.01)
        else:  # uploads take ~0.05-0.1 s
            time.sleep(delay * 0.08 * H.SLOWDOWN)
        d.kill9()
        n["kills"] += 1
        n["kills_by_action"][action] += 1
        th.join(30)

    dt = time.time() - t0
    H.log(f"\nkill -9 fault injection, seed {seed}: {n['kills']} kills ({n['kills_by_action']}), "
          f"{n['restarts'] + 1} daemon starts in {dt:.1f} s")
    H.log("  counts: " + ", ".join(f"{k}={v}" for k, v in n.items() if k != "kills_by_action"))
    H.log("  violations: " + ", ".join(f"{k}={v}" for k, v in bad.items()))
    t.check(n["kills"] >= rounds and rounds >= 1, f"{n['kills']} random kill -9s")
    for k, v in bad.items():
        t.eq(v, 0, f"violations: {k}")
    t.check(n["outputs_verified"] > 0 and n["rerun_succeeded"] + n["interrupted_failed"] + n["tus_resumed"] > 0,
            "the kills hit jobs in flight (some re-ran, failed interrupted or resumed)", n)


if __name__ == "__main__":
    H.run_main(H.Suite("killnine"), body)
