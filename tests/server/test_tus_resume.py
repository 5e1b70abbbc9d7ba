"""tus 1.0.0 with the real tus-js-client (npm), issue 7 acceptance:
  cut:     the PATCH carrying the file dies mid-body (a TCP proxy closes the connection
           after 45% of the bytes); tus-js-client retries: HEAD must report the bytes the
           server kept (0 < offset < length) and the next PATCH starts exactly there;
  silent:  the same cut, but the daemon's side of the dead connection stays open and quiet
           (a mobile/NAT link that died without FIN): tus-js-client retries for 7.7 s and
           must get through (a new HEAD/PATCH has to take over from the dead PATCH, as
           tusd's locks do), not be refused with 409 until the daemon's own timeouts fire;
  restart: 8 KiB chunks, the client aborts after two chunks, a new Upload object given
           only the upload URL HEADs (offset 16384) and finishes from there.
  cwu:     creation-with-upload (advertised): the POST carries the first 16 KiB.
Clip: small.ts (32x24, 48 frames, 35 KB). The result must be correct: the job succeeds
with 48 frames at 128x96, and its output is
byte-identical to the output of the same clip uploaded with a plain PUT (deterministic
pipeline). Every response tus-js-client saw is checked against the OpenAPI document.
Tiny model."""
import json
import os
import shutil
import subprocess
import sys

import harness as H


def run_node(t, mode, d, jid, clip):
    env = dict(os.environ, NODE_PATH=H.NODE_MODULES)
    node = shutil.which("node")
    p = subprocess.run([node, os.path.join(H.SERVER_SRC, "tus_upload.mjs"), mode, d.url, jid, clip, t.rec.path],
                       capture_output=True, text=True, env=env, timeout=120)
    H.log(p.stderr[-2000:])
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": f"node exit {p.returncode}: {p.stdout[-500:]} {p.stderr[-500:]}"}


def body(t):
    if not H.NODE_MODULES or not os.path.isdir(os.path.join(H.NODE_MODULES, "tus-js-client")):
        t.check(False, "tus-js-client installed", f"{H.NODE_MODULES} (run server.npm_setup)")
        return
    clip = H.fixture("small.ts")
    size = os.path.getsize(clip)
    d = H.Daemon(t.work, "tus", model="tiny", args=["--threads", "2"]).start()
    c = t.client(d)

    r = c.request("OPTIONS", "/v1/uploads")
    t.eq(r.status, 204, "OPTIONS /v1/uploads 204")
    t.eq(r.headers.get("tus-version"), "1.0.0", "Tus-Version 1.0.0")
    t.check("creation" in r.headers.get("tus-extension", "") and "termination" in r.headers.get("tus-extension", ""),
            "Tus-Extension lists creation and termination", r.headers.get("tus-extension"))

    ref = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
    c.put_input(ref, open(clip, "rb").read())
    c.wait_state(ref, ("succeeded", "failed", "cancelled"), timeout=120)
    ref_out, _ = c.read_output(ref)

    for mode in [m for m in MODES if m != "cwu"]:
        jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
        res = run_node(t, mode, d, jid, clip)
        H.log(json.dumps(res)[:3000])
        t.check(res.get("ok"), f"{mode}: tus-js-client finished the upload", res.get("error"))
        if not res.get("ok"):
            for e in res.get("events", []):
                H.log(f"  {mode} event: {e}")
            c.delete(f"/v1/jobs/{jid}")
            continue
        evs = res.get("events", [])
        t.check(str(res.get("url", "")).endswith(f"/v1/uploads/{jid}"), f"{mode}: upload URL is /v1/uploads/<job id>",
                res.get("url"))
        marker = "abort" if mode == "restart" else "cut"
        idx = next((i for i, e in enumerate(evs) if e["what"] == marker), None)
        t.check(idx is not None, f"{mode}: the {marker} happened mid-upload", [e["what"] for e in evs])
        if idx is None:
            continue
        after = evs[idx + 1:]
        head = next((e for e in after if e["what"] == "response" and e["method"] == "HEAD"), None)
        t.check(head is not None and head["status"] == 200, f"{mode}: resume starts with HEAD -> 200", head)
        if head is None:
            continue
        off = int(head["offset"] or -1)
        if mode in ("cut", "silent"):
            cut_at = evs[idx]["forwarded"]
            t.check(off <= cut_at, f"{mode}: server offset {off} <= bytes that reached it ({cut_at})")
        if mode == "cut":
            t.check(0 < off < size, f"cut: server kept part of the broken PATCH (0 < offset {off} < {size})")
        elif mode == "restart":
            t.eq(off, 16384, "restart: HEAD offset = two acknowledged 8 KiB chunks")
        nxt = next((e for e in evs[evs.index(head) + 1:] if e["what"] == "request" and e["method"] == "PATCH"), None)
        t.check(nxt is not None and str(nxt["offset"]) == str(off), f"{mode}: next PATCH continues at the server's offset",
                nxt)
        last = [e for e in evs if e["what"] == "response" and e["method"] == "PATCH"][-1:]
        t.check(last and last[0]["status"] == 204 and str(last[0]["offset"]) == str(size),
                f"{mode}: final PATCH 204 with Upload-Offset = {size}", last)
        r = c.request("HEAD", f"/v1/uploads/{jid}", headers={"Tus-Resumable": "1.0.0"})
        t.eq((r.status, r.headers.get("upload-offset"), r.headers.get("upload-length")), (200, str(size), str(size)),
             f"{mode}: HEAD after completion")
        j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=120)
        t.eq(j["state"], "succeeded", f"{mode}: job succeeded")
        t.eq(j.get("input", {}).get("bytes_received"), size, f"{mode}: bytes_received = file size")
        out, _ = c.read_output(jid)
        p = H.ffprobe_video(out.body, t.work)
        t.eq((p.get("width"), p.get("height"), p.get("frames")), (128, 96, 48), f"{mode}: output 128x96, 48 frames")
        t.check(out.body == ref_out.body, f"{mode}: output identical to the PUT-uploaded job's output",
                f"{len(out.body)} vs {len(ref_out.body)} bytes")
        c.delete(f"/v1/jobs/{jid}")
    # creation-with-upload, advertised in Tus-Extension: the POST carries the first 16 KiB
    if "cwu" in MODES and "creation-with-upload" in c.request("OPTIONS", "/v1/uploads").headers.get("tus-extension", ""):
        jid = c.create_job({"output": {"container": "mpegts"}}).json()["id"]
        res = run_node(t, "cwu", d, jid, clip)
        evs = res.get("events", [])
        t.check(res.get("ok"), "cwu: tus-js-client finished the upload", res.get("error"))
        post = [e for e in evs if e["what"] == "response" and e["method"] == "POST"]
        t.check(post and post[0]["status"] == 201 and str(post[0]["offset"]) == "16384",
                "cwu: POST with data -> 201, Upload-Offset 16384", post)
        first_patch = next((e for e in evs if e["what"] == "request" and e["method"] == "PATCH"), None)
        t.check(first_patch is not None and str(first_patch["offset"]) == "16384", "cwu: first PATCH at 16384", first_patch)
        j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=120)
        out, _ = c.read_output(jid)
        t.check(j["state"] == "succeeded" and out.body == ref_out.body,
                "cwu: job succeeded, output identical to the PUT-uploaded job's", j["state"])
        c.delete(f"/v1/jobs/{jid}")
    c.delete(f"/v1/jobs/{ref}")
    d.stop()


# test_tus_resume.py [MODE,MODE...]: ctest runs "cut,restart,cwu" (server.tus_resume) and
# "silent" (server.tus_silent_disconnect) separately, so a failure names its scenario.
MODES = (sys.argv[1] if len(sys.argv) > 1 else "cut,restart,cwu").split(",")

if __name__ == "__main__":
    H.run_main(H.Suite("tus_" + "_".join(MODES)), body)
