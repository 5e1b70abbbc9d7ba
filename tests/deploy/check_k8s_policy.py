#!/usr/bin/python3
"""Checks the rendered Kubernetes objects (base and every overlay) against the daemon.

For each rendering (RENDER_DIR/<name>.yaml from render_k8s.py):
  - StatefulSet + headless Service (clusterIP None, publishNotReadyAddresses, serviceName)
    + ClusterIP Service, both selecting the pod template's labels, ports on the daemon's
    listen port;
  - probes: liveness GET /healthz, readiness GET /readyz, a startup probe allowing >= 10
    minutes, all on the daemon's port; the paths are routes of proto/openapi.yaml;
  - nvidia.com/gpu limit 1 (absent only in the cpu overlay);
  - preStop sleep + drain_timeout_s (of the ConfigMap's config file) + the daemon's exit
    deadline after the drain < terminationGracePeriodSeconds;
  - INFVSR_INSTANCE from metadata.name, INFVSR_PEER_URL_TEMPLATE naming the headless
    Service, INFVSR_CONFIG on the mounted ConfigMap key, INFVSR_TOKENS_FILE on the Secret;
  - model and spool volumes on model_dir/spool_dir; non-root, read-only root filesystem;
  - HPA (autoscaling/v2) on the StatefulSet with the Pods metric infvsrd_jobs_queued, no
    fixed replicas; a PodDisruptionBudget selecting the pods;
  - with the infvsrd binary: the ConfigMap's file plus the pod's environment, given to
    `infvsrd --check-config`, parse, and the effective listen port, model_dir, spool_dir,
    instance and peer URL are the ones the manifests assume.
Usage: check_k8s_policy.py REPO RENDER_DIR [--infvsrd PATH]
"""
import glob
import os
import re
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import deploy_defaults  # noqa: E402

passed = failed = 0
METRIC = "infvsrd_jobs_queued"


def ok(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}{': ' + str(detail) if detail else ''}")
    return bool(cond)


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_map(container):
    return {e["name"]: e for e in container.get("env") or []}


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def prestop_seconds(container):
    pre = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre:
        return int(pre["sleep"].get("seconds", 0))
    cmd = (pre.get("exec") or {}).get("command") or []
    if len(cmd) == 2 and os.path.basename(cmd[0]) == "sleep" and str(cmd[1]).isdigit():
        return int(cmd[1])
    return 0 if not pre else None


def check_rendering(name, objs, defaults, paths, infvsrd):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    sts_list = by_kind.get("StatefulSet", [])
    if not ok(len(sts_list) == 1, f"{name}: one StatefulSet", len(sts_list)):
        return
    sts = sts_list[0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels") or {}
    ok(selects(spec["selector"].get("matchLabels"), labels), f"{name}: StatefulSet selector matches its pod labels")
    ok("replicas" not in spec, f"{name}: StatefulSet leaves replicas to the HPA")
    containers = pod["containers"]
    c = next((x for x in containers if x["name"] == "infvsrd"), containers[0])

    # ---- config the pod will run with
    cm_vol = next((v for v in pod.get("volumes", []) if "configMap" in v), None)
    cm = next((o for o in by_kind.get("ConfigMap", []) if cm_vol and o["metadata"]["name"] == cm_vol["configMap"]["name"]), None)
    ok(cm is not None, f"{name}: the config volume's ConfigMap is part of the rendering")
    env = env_map(c)
    conf_path = (env.get("INFVSR_CONFIG") or {}).get("value")
    mount = next((m for m in c.get("volumeMounts", []) if cm_vol and m["name"] == cm_vol["name"]), None)
    conf_text = ""
    if ok(conf_path and mount, f"{name}: INFVSR_CONFIG set and the ConfigMap mounted", f"{conf_path}, {mount}"):
        key = mount.get("subPath") or os.path.relpath(conf_path, mount["mountPath"])
        target = mount["mountPath"] if mount.get("subPath") else os.path.join(mount["mountPath"], key)
        ok(target == conf_path and cm and key in cm.get("data", {}),
           f"{name}: INFVSR_CONFIG {conf_path} is ConfigMap key '{key}'")
        conf_text = (cm or {}).get("data", {}).get(key, "")
    conf = dict(defaults)
    conf.update(deploy_defaults.parse_conf_text(conf_text))
    port = int(conf["listen"].rpartition(":")[2])
    drain = int(conf["drain_timeout_s"])

    # ---- ports, services
    cports = [p["containerPort"] for p in c.get("ports") or []]
    ok(port in cports, f"{name}: container port {port} (listen {conf['listen']})", cports)
    ok(port == defaults["port"], f"{name}: pods listen on the daemon's default port {defaults['port']}")
    services = by_kind.get("Service", [])
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    regular = [s for s in services if s["spec"].get("clusterIP") != "None"]
    hs = next((s for s in headless if s["metadata"]["name"] == spec.get("serviceName")), None)
    ok(hs is not None, f"{name}: serviceName {spec.get('serviceName')} is a headless Service")
    ok(hs and hs["spec"].get("publishNotReadyAddresses") is True,
       f"{name}: headless Service publishes not-ready pods (draining pods keep their DNS name)")
    ok(len(regular) >= 1, f"{name}: a ClusterIP Service for job creation")
    for s in services:
        ok(selects(s["spec"].get("selector"), labels), f"{name}: Service {s['metadata']['name']} selects the pods")
        for p in s["spec"].get("ports", []):
            ok(resolve_port(c, p.get("targetPort", p["port"])) == port and p["port"] == port,
               f"{name}: Service {s['metadata']['name']} port {p['port']} -> container port {port}")

    # ---- probes
    for probe, want in (("livenessProbe", paths["liveness"]), ("readinessProbe", paths["readiness"])):
        pr = c.get(probe) or {}
        hg = pr.get("httpGet") or {}
        ok(hg.get("path") == want and resolve_port(c, hg.get("port")) == port,
           f"{name}: {probe} GET {want} on port {port}", hg)
    sp = c.get("startupProbe") or {}
    hg = sp.get("httpGet") or {}
    budget = sp.get("failureThreshold", 3) * sp.get("periodSeconds", 10)
    ok(hg.get("path") in (paths["liveness"], paths["readiness"]) and resolve_port(c, hg.get("port")) == port,
       f"{name}: startupProbe GET {hg.get('path')} on port {port}")
    ok(budget >= 600, f"{name}: startupProbe allows {budget} s >= 10 min for model loading")

    # ---- GPU
    limits = (c.get("resources") or {}).get("limits") or {}
    if name == "cpu":
        ok("nvidia.com/gpu" not in str(sts), f"{name}: no GPU limit or toleration")
    else:
        ok(str(limits.get("nvidia.com/gpu")) == "1", f"{name}: nvidia.com/gpu limit 1", limits)

    # ---- shutdown
    pre = prestop_seconds(c)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    ok(pre is not None and pre > 0, f"{name}: preStop sleep ({pre} s)")
    slack = deploy_defaults.DRAIN_EXIT_SLACK_S
    ok(pre is not None and grace > pre + drain + slack,
       f"{name}: terminationGracePeriodSeconds {grace} > preStop {pre} + drain_timeout_s {drain} "
       f"+ exit deadline {slack}")

    # ---- identity and routing
    inst = (env.get("INFVSR_INSTANCE") or {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    ok(inst == "metadata.name", f"{name}: INFVSR_INSTANCE from the pod name (downward API)")
    tmpl = (env.get("INFVSR_PEER_URL_TEMPLATE") or {}).get("value", "")
    ok(hs and re.fullmatch(rf"http://\{{instance\}}\.{re.escape(hs['metadata']['name'])}\.\$\(POD_NAMESPACE\)"
                           rf"\.svc\.cluster\.local:{port}", tmpl),
       f"{name}: INFVSR_PEER_URL_TEMPLATE names the headless Service and port", tmpl)
    names = [e["name"] for e in c.get("env") or []]
    ok("POD_NAMESPACE" in names and names.index("POD_NAMESPACE") < names.index("INFVSR_PEER_URL_TEMPLATE"),
       f"{name}: POD_NAMESPACE is defined before the variable that expands it")

    # ---- tokens
    tok = (env.get("INFVSR_TOKENS_FILE") or {}).get("value")
    sec_vol = next((v for v in pod.get("volumes", []) if "secret" in v), None)
    sec_mount = next((m for m in c.get("volumeMounts", []) if sec_vol and m["name"] == sec_vol["name"]), None)
    ok(tok and sec_mount and os.path.dirname(tok) == sec_mount["mountPath"],
       f"{name}: INFVSR_TOKENS_FILE {tok} is in the Secret's mount")
    secrets = [o["metadata"]["name"] for o in by_kind.get("Secret", [])]
    sname = sec_vol["secret"]["secretName"] if sec_vol else None
    ok(sname in secrets or sname == "infvsrd-tokens",
       f"{name}: token Secret {sname} {'rendered' if sname in secrets else 'created by the operator (docs)'}")

    # ---- volumes
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    ok(conf["model_dir"] in mounts and mounts[conf["model_dir"]].get("readOnly"),
       f"{name}: model_dir {conf['model_dir']} mounted read-only")
    ok(conf["spool_dir"] in mounts and not mounts[conf["spool_dir"]].get("readOnly"),
       f"{name}: spool_dir {conf['spool_dir']} mounted writable")
    vol_names = {v["name"] for v in pod.get("volumes", [])}
    ok(all(m["name"] in vol_names for m in c.get("volumeMounts", [])), f"{name}: every volumeMount has a volume")
    pvcs = [v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
    rendered_pvcs = {o["metadata"]["name"] for o in by_kind.get("PersistentVolumeClaim", [])}
    ok(all(p in rendered_pvcs for p in pvcs), f"{name}: claimed PVCs are rendered", pvcs)

    # ---- security
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    ok(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, f"{name}: pod runs as non-root")
    ok(csc.get("allowPrivilegeEscalation") is False and "ALL" in (csc.get("capabilities") or {}).get("drop", []),
       f"{name}: no privilege escalation, all capabilities dropped")
    if csc.get("readOnlyRootFilesystem"):
        ok("/tmp" in mounts, f"{name}: read-only root filesystem with a writable /tmp")
    ann = spec["template"]["metadata"].get("annotations") or {}
    if "prometheus.io/port" in ann:
        ok(ann["prometheus.io/port"] == str(port) and ann.get("prometheus.io/path") == paths["metrics"],
           f"{name}: scrape annotations on port {port} {paths['metrics']}")

    # ---- HPA, PDB
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if ok(len(hpas) == 1 and hpas[0]["apiVersion"] == "autoscaling/v2", f"{name}: one autoscaling/v2 HPA"):
        h = hpas[0]["spec"]
        ref = h["scaleTargetRef"]
        ok(ref["kind"] == "StatefulSet" and ref["name"] == sts["metadata"]["name"] and ref.get("apiVersion") == "apps/v1",
           f"{name}: HPA scales the StatefulSet")
        ms = [m for m in h.get("metrics", []) if m["type"] == "Pods" and m["pods"]["metric"]["name"] == METRIC]
        ok(ms, f"{name}: HPA on the Pods metric {METRIC}")
        ok(1 <= h.get("minReplicas", 1) <= h["maxReplicas"], f"{name}: HPA {h.get('minReplicas', 1)}..{h['maxReplicas']} replicas")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    ok(pdbs and selects(pdbs[0]["spec"]["selector"].get("matchLabels"), labels), f"{name}: a PDB selects the pods")

    # ---- the real parser on the real config
    if infvsrd:
        with tempfile.TemporaryDirectory() as tmp:
            cpath = os.path.join(tmp, "infvsrd.conf")
            with open(cpath, "w") as f:
                f.write(conf_text)
            tpath = os.path.join(tmp, "tokens")
            with open(tpath, "w") as f:
                f.write("test-token\n")
            pod_name = f"{sts['metadata']['name']}-0"
            ns = sts["metadata"].get("namespace", "default")
            extra = {}
            for e in c.get("env") or []:
                if not e["name"].startswith("INFVSR_"):
                    continue
                if e["name"] == "INFVSR_CONFIG":
                    extra[e["name"]] = cpath
                elif e["name"] == "INFVSR_TOKENS_FILE":
                    extra[e["name"]] = tpath
                elif "valueFrom" in e:
                    extra[e["name"]] = pod_name
                else:
                    extra[e["name"]] = e["value"].replace("$(POD_NAMESPACE)", ns)
            rc, out, err = deploy_defaults.run_check_config(infvsrd, env_extra=extra)
            if ok(rc == 0, f"{name}: infvsrd --check-config accepts the ConfigMap's file and the pod's environment",
                  err.strip()):
                eff = deploy_defaults.parse_conf_text(out)
                want = {"listen": conf["listen"], "instance": pod_name, "model_dir": conf["model_dir"],
                        "spool_dir": conf["spool_dir"], "drain_timeout_s": str(drain), "tokens_file": tpath,
                        "peer_url_template": f"http://{{instance}}.{spec['serviceName']}.{ns}.svc.cluster.local:{port}"}
                bad = {k: (eff.get(k), v) for k, v in want.items() if eff.get(k) != v}
                ok(not bad, f"{name}: effective config is what the manifests assume", bad)


def main(argv):
    if len(argv) < 3:
        print("usage: check_k8s_policy.py REPO RENDER_DIR [--infvsrd PATH]", file=sys.stderr)
        return 2
    repo, render_dir = argv[1], argv[2]
    infvsrd = argv[argv.index("--infvsrd") + 1] if "--infvsrd" in argv else None
    if infvsrd and not os.path.isfile(infvsrd):
        print(f"note: {infvsrd} is not built; defaults come from config/infvsrd.conf only")
        infvsrd = None
    try:
        defaults, _src = deploy_defaults.load(repo, infvsrd)
        paths = deploy_defaults.health_paths(repo)
    except deploy_defaults.DefaultsError as e:
        ok(False, "daemon defaults", e)
        print(f"{passed} passed, {failed} failed")
        return 1
    overlays = sorted(os.listdir(os.path.join(repo, "deploy/k8s/overlays")))
    files = sorted(glob.glob(os.path.join(render_dir, "*.yaml")))
    rendered = {os.path.splitext(os.path.basename(f))[0] for f in files}
    ok(rendered == set(overlays) | {"base"}, "a rendering for the base and every overlay", sorted(rendered))
    for f in files:
        with open(f) as fh:
            objs = [o for o in yaml.safe_load_all(fh) if o]
        check_rendering(os.path.splitext(os.path.basename(f))[0], objs, defaults, paths, infvsrd)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
