"""Deterministic fuzzing of the daemon's inputs (seeded, so a failure reproduces):
  1. 300 mutated job specs (wrong types, out-of-range and huge numbers, unknown and nested
     fields, unicode, deep nesting, duplicate keys): every answer is 201 or 400 with a
     schema-valid body (no 5xx), and the created jobs are deleted;
  2. 24 corrupted MPEG-TS uploads (bit flips, truncation, spliced garbage, shuffled 188-byte
     packets) of the 32x24 clip: every job ends succeeded or failed with
     unprocessable_video (never stuck, never internal), the output of a succeeded job is
     decodable with 128x96 frames;
the daemon survives all of it (healthz 200, exits 0 on SIGTERM, no sanitizer report) and
leaves nothing in the spool. Null model."""
import json
import os
import random
import time

import harness as H

SEED = 20261124


def mutate_spec(rng):
    base = {"model": "null", "scale": 4, "input": {"format": "mpegts", "max_frames": 10},
            "output": {"container": "matroska", "codec": "h264", "crf": 15, "pixel_format": "auto",
                       "copy_audio": True},
            "scenes": {"detect": True, "threshold": 27.0, "reference_threshold": 27.0}}
    weird = [None, True, False, 0, -1, 1, 2**31, 2**63, -2**63, 1e308, -0.0, 0.5, "", "x" * 1000, "4", "null",
             "\u00e9\u4e2d\U0001f600", [], [1, 2], {}, {"a": {"b": {"c": {}}}}, "matroska", "h264", 51, 52, 8, 9]
    s = json.loads(json.dumps(base))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        sect = rng.choice([None, "input", "output", "scenes"])
        tgt = s if sect is None or not isinstance(s.get(sect), dict) else s[sect]
        keys = list(tgt.keys())
        if op == 0 and keys:
            tgt[rng.choice(keys)] = rng.choice(weird)
        elif op == 1 and keys:
            del tgt[rng.choice(keys)]
        elif op == 2:
            tgt[rng.choice(["extra", "Scale", "model ", "codec", "crf", "__proto__"])] = rng.choice(weird)
        elif op == 3:
            s[rng.choice(["input", "output", "scenes"])] = rng.choice(weird)
        else:
            pass  # valid spec variations are fine too
    return s


def corrupt(rng, data):
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 200)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        b = b[:rng.randrange(188, len(b))]
    elif kind == 2:  # spliced garbage
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    else:  # shuffled packets
        pk = [bytes(b[i:i + 188]) for i in range(0, len(b) - len(b) % 188, 188)]
        j = rng.randrange(len(pk))
        seg = pk[j:j + 40]
        rng.shuffle(seg)
        pk[j:j + 40] = seg
        b = bytearray(b"".join(pk))
    return bytes(b), ["bitflip", "truncate", "splice", "shuffle"][kind]


def body(t):
    rng = random.Random(SEED)
    d = H.Daemon(t.work, "fuzz", model="null", args=["--max-queued-jobs", "64"]).start()
    c = t.client(d)
    statuses = {}
    bad = []
    for i in range(300):
        spec = mutate_spec(rng)
        raw = json.dumps(spec)
        if rng.random() < 0.1:  # duplicate key
            raw = raw[:-1] + ', "scale": 4}'
        r = c.request("POST", "/v1/jobs", body=raw.encode(), headers={"Content-Type": "application/json"},
                      case=f"spec fuzz {i}")
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.status not in (201, 400):
            bad.append((i, r.status, raw[:200], r.body[:200]))
        if r.status == 201:
            c.delete(f"/v1/jobs/{r.json()['id']}")
    H.log(f"spec fuzz statuses: {statuses}")
    t.check(not bad, "300 mutated specs: only 201 or 400", bad[:5])
    t.check(statuses.get(201, 0) > 10 and statuses.get(400, 0) > 10, "the mutations produced both outcomes", statuses)

    clip = open(H.fixture("small.ts"), "rb").read()
    outcomes = {}
    for i in range(24):
        data, kind = corrupt(rng, clip)
        # kept until the job ended as expected: a crash of the daemon leaves the input behind
        keep = os.path.join(t.work, f"fuzz-input-{i}-{kind}.ts")
        with open(keep, "wb") as f:
            f.write(data)
        jid = c.create_job({"input": {"format": "mpegts"}, "output": {"container": "mpegts"}}).json()["id"]
        r = c.put_input(jid, data, case=f"ts fuzz {i} {kind}")
        try:
            j = c.wait_state(jid, ("succeeded", "failed", "cancelled"), timeout=30)
        except AssertionError as e:
            t.check(False, f"corrupted upload {i} ({kind}): job ended", f"{repr(e)[:300]}; input kept as {keep}")
            continue
        e = j.get("error") or {}
        code = e.get("code") or (e.get("error") or {}).get("code")
        outcomes[(kind, j["state"], code)] = outcomes.get((kind, j["state"], code), 0) + 1
        ok = (j["state"] == "succeeded" and r.status == 204) or \
             (j["state"] == "failed" and code == "unprocessable_video" and r.status in (204, 422))
        if ok:
            os.unlink(keep)
        t.check(ok, f"corrupted upload {i} ({kind}): PUT {r.status}, job {j['state']} {code or ''}",
                f"expected succeeded, or failed with unprocessable_video; got {j['state']} {code} {e}"
                + ("" if ok else f"; input kept as {keep}"))
        if j["state"] == "succeeded":
            out, _ = c.read_output(jid)
            p = H.ffprobe_video(out.body, t.work)
            t.check((p.get("width"), p.get("height")) == (128, 96) and p.get("frames", 0) == j.get("frames_out"),
                    f"corrupted upload {i} ({kind}): output decodable, 128x96, frames = frames_out", (p, j.get("frames_out")))
        c.delete(f"/v1/jobs/{jid}")
    H.log(f"corrupted uploads: {outcomes}")
    t.eq(c.get("/healthz").status, 200, "daemon alive after the fuzzing")
    t.eq(H.gauges_settled(c), (0.0, 0.0, 0.0), "gauges 0")
    deadline = time.time() + 60 * H.SLOWDOWN  # a state wait: generous, returns at once
    while d.spool_files() and time.time() < deadline:
        time.sleep(0.1)
    t.eq(d.spool_files(), [], "spool empty")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("fuzz"), body)
