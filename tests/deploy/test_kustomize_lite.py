#!/usr/bin/python3
"""The kustomize subset renderer against hand-written expected output.

kustomize_cases/<case>/expected.yaml: the objects (in kustomize's output order) that the
kustomization in the same directory (or in <case>/top) must render to, compared as parsed
YAML. kustomize_cases/errors/<case>/expected_error.txt: a text the renderer's error message
must contain. Prints "N passed, N failed"; exit 1 on any failure.
"""
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize_lite  # noqa: E402

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kustomize_cases")


def first_difference(a, b, path=""):
    if type(a) is not type(b):
        return f"{path or '/'}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}/{k}: only in {'expected' if k in b else 'rendered'}"
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} elements rendered, {len(b)} expected"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}/{i}")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def main():
    passed = failed = 0
    for root, _dirs, files in sorted(os.walk(CASES)):
        name = os.path.relpath(root, CASES)
        if "expected.yaml" in files:
            with open(os.path.join(root, "expected.yaml")) as f:
                expected = [d for d in yaml.safe_load_all(f) if d is not None]
            try:
                got = kustomize_lite.render(root)
            except kustomize_lite.KustomizeError as e:
                print(f"FAIL {name}: {e}")
                failed += 1
                continue
            diff = first_difference(got, expected)
            if diff is None:
                # The YAML text must read back to the same objects.
                diff = first_difference(list(yaml.safe_load_all(kustomize_lite.dump(got))), expected)
            if diff:
                print(f"FAIL {name}: {diff}")
                failed += 1
            else:
                print(f"ok   {name} ({len(got)} objects)")
                passed += 1
        elif "expected_error.txt" in files:
            with open(os.path.join(root, "expected_error.txt")) as f:
                want = f.read().strip()
            try:
                kustomize_lite.render(root)
                print(f"FAIL {name}: rendered, expected an error containing {want!r}")
                failed += 1
            except kustomize_lite.KustomizeError as e:
                if want in str(e):
                    print(f"ok   {name}: {e}")
                    passed += 1
                else:
                    print(f"FAIL {name}: error {str(e)!r} lacks {want!r}")
                    failed += 1
    if passed + failed < 10:
        print(f"FAIL: only {passed + failed} cases found under {CASES}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
