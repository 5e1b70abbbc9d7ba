#!/usr/bin/python3
"""Renders deploy/k8s/base and every deploy/k8s/overlays/<name> with kustomize_lite into
OUT_DIR/base.yaml and OUT_DIR/<name>.yaml (the inputs of the schema and policy checks).
Usage: render_k8s.py REPO OUT_DIR"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize_lite  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print("usage: render_k8s.py REPO OUT_DIR", file=sys.stderr)
        return 2
    repo, out = argv[1], argv[2]
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old.endswith(".yaml"):
            os.remove(os.path.join(out, old))
    k8s = os.path.join(repo, "deploy", "k8s")
    targets = {"base": os.path.join(k8s, "base")}
    for name in sorted(os.listdir(os.path.join(k8s, "overlays"))):
        targets[name] = os.path.join(k8s, "overlays", name)
    failed = 0
    for name, d in targets.items():
        try:
            objs = kustomize_lite.render(d)
        except kustomize_lite.KustomizeError as e:
            print(f"FAIL {name}: {e}")
            failed += 1
            continue
        with open(os.path.join(out, f"{name}.yaml"), "w") as f:
            f.write(kustomize_lite.dump(objs))
        print(f"ok   {name}: {len(objs)} objects: " + ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objs))
    print(f"{len(targets) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
