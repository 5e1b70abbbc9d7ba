"""Idempotency-Key on POST /v1/jobs (proto/openapi.yaml): the same key with the same spec
returns the existing job (200, same id, same body shape), a different spec under the key is
409 conflict, another key creates a new job, keys are per job (after DELETE the key may be
used again: 201 with a new id), and concurrent creations with one key yield ONE job.
Null model (no processing needed)."""
import threading

import harness as H


def body(t):
    d = H.Daemon(t.work, "idem", model="null").start()
    c = t.client(d)
    spec = {"output": {"container": "mpegts", "crf": 20}}
    k = {"Idempotency-Key": "client-key_1.A"}
    r1 = c.create_job(spec, headers=k)
    t.eq(r1.status, 201, "first create with a key 201")
    j1 = r1.json()
    r2 = c.create_job(spec, headers=k, expect=None)
    t.eq(r2.status, 200, "same key + same spec 200")
    t.eq(r2.json().get("id"), j1["id"], "same key + same spec returns the same job")
    r3 = c.create_job({"output": {"container": "mpegts", "crf": 21}}, headers=k, expect=None)
    t.eq((r3.status, r3.code()), (409, "conflict"), "same key + different spec 409 conflict")
    r4 = c.create_job(spec, headers={"Idempotency-Key": "client-key_2"}, expect=None)
    t.eq(r4.status, 201, "another key 201")
    t.check(r4.json().get("id") != j1["id"], "another key makes another job")
    r5 = c.create_job(spec, expect=None)
    t.eq(r5.status, 201, "no key: new job")
    # the key survives progress: upload the first job, then repeat the creation
    t.eq(c.put_input(j1["id"], open(H.fixture("clip.ts"), "rb").read()).status, 204, "upload to the keyed job")
    r6 = c.create_job(spec, headers=k, expect=None)
    t.eq((r6.status, r6.json().get("id")), (200, j1["id"]), "repeat after upload still returns the job (200)")
    t.check(r6.json().get("input", {}).get("bytes_received", 0) > 0 or r6.json()["state"] != "created",
            "the repeated creation shows the job's current status", r6.json())
    for jid in (j1["id"], r4.json()["id"], r5.json()["id"]):
        t.eq(c.delete(f"/v1/jobs/{jid}").status, 204, f"DELETE {jid}")
    r7 = c.create_job(spec, headers=k, expect=None)
    t.eq(r7.status, 201, "after DELETE the key makes a new job (201)")
    t.check(r7.json().get("id") != j1["id"], "... with a new id")
    c.delete(f"/v1/jobs/{r7.json()['id']}")

    # concurrent creations with one key: exactly one job
    res = []
    lock = threading.Lock()

    def go():
        r = c.create_job(spec, headers={"Idempotency-Key": "race-key"}, expect=None)
        with lock:
            res.append((r.status, r.json().get("id") if r.status in (200, 201) else None))

    th = [threading.Thread(target=go) for _ in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join(30)
    ids = {i for _, i in res if i}
    t.eq(sorted(s for s, _ in res), [200] * 7 + [201], "8 racing creations: one 201, seven 200")
    t.eq(len(ids), 1, "8 racing creations with one key made one job")
    for i in ids:
        c.delete(f"/v1/jobs/{i}")
    m = c.metrics()
    t.eq(H.gauges_settled(c), (0.0, 0.0, 0.0), "gauges 0")
    d.stop()


if __name__ == "__main__":
    H.run_main(H.Suite("idempotency"), body)
