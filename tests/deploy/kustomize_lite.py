#!/usr/bin/python3
"""A renderer for the subset of kustomize that deploy/k8s uses.

kustomize is not packaged for Debian 12, so CI renders the base and the overlays with this
file (python3-yaml only). It follows kustomize v5 for the fields below and refuses every
other kustomization field, so a new field in deploy/k8s fails the test instead of being
silently ignored. Where kustomize (or `kubectl kustomize`) is installed,
tests/deploy/check_kustomize_crosscheck.py compares the two renderings.

Supported kustomization fields:
  resources            files (one or more YAML documents) and directories (a kustomization)
  namespace            sets metadata.namespace of every object
  images               name -> newName / newTag / digest in containers and initContainers
  labels               pairs, includeSelectors: false only, includeTemplates
  configMapGenerator   files (KEY=PATH or PATH), literals (KEY=VALUE), behavior
  secretGenerator      create/merge/replace, type; generatorOptions: disableNameSuffixHash,
                       labels, annotations
  patches              path or inline patch, with or without target (group, version, kind,
                       name, namespace); a YAML list is a JSON6902 patch (add, remove,
                       replace, test), a mapping a strategic-merge patch (merge keys for the
                       pod-spec lists, null deletes, $patch: delete / replace)
Generated ConfigMaps and Secrets get kustomize's content hash suffix, and references to
them from pod specs (volumes, env, envFrom, imagePullSecrets) follow the new name.

Usage: kustomize_lite.py DIR [-o OUT.yaml]     (exit 1 with a message on any error)
"""
import base64
import copy
import hashlib
import json
import os
import sys

import yaml


class KustomizeError(Exception):
    pass


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "labels",
                    "configMapGenerator", "secretGenerator", "generatorOptions", "patches"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Resource:
    """One object plus what kustomize remembers about it while building."""

    def __init__(self, obj, generated=False, hash_suffix=False):
        self.obj = obj
        self.generated = generated
        self.hash_suffix = hash_suffix

    @property
    def kind(self):
        return self.obj.get("kind", "")

    @property
    def name(self):
        return self.obj.get("metadata", {}).get("name", "")

    @property
    def namespace(self):
        return self.obj.get("metadata", {}).get("namespace", "")

    def group_version(self):
        api = self.obj.get("apiVersion", "")
        return tuple(api.split("/", 1)) if "/" in api else ("", api)


# ---- loading ---------------------------------------------------------------------------

def load_yaml_documents(path):
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except OSError as e:
        raise KustomizeError(f"{path}: {e.strerror}")
    except yaml.YAMLError as e:
        raise KustomizeError(f"{path}: YAML error: {e}")
    for d in docs:
        if not isinstance(d, dict):
            raise KustomizeError(f"{path}: a document is not a mapping")
    return docs


def find_kustomization(directory):
    for name in KUSTOMIZATION_FILES:
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    raise KustomizeError(f"{directory}: no kustomization.yaml")


def inside(root, path):
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


def local_file(directory, rel, what):
    path = os.path.normpath(os.path.join(directory, rel))
    if not inside(directory, path):
        # kustomize's load restrictor: files must be under the kustomization root.
        raise KustomizeError(f"{what} {rel!r}: outside the kustomization directory {directory}")
    if not os.path.isfile(path):
        raise KustomizeError(f"{what} {rel!r}: no such file in {directory}")
    return path


# ---- generators ------------------------------------------------------------------------

def generator_data(directory, spec, kind):
    data = {}
    for item in spec.get("files", []) or []:
        key, _, rel = item.partition("=")
        if not rel:
            key, rel = os.path.basename(item), item
        path = local_file(directory, rel, f"{kind} file")
        with open(path, encoding="utf-8") as f:
            data[key] = f.read()
    for item in spec.get("literals", []) or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise KustomizeError(f"{kind} literal {item!r}: expected KEY=VALUE")
        data[key] = value.strip("\"'") if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value
    for unknown in set(spec) - {"name", "namespace", "behavior", "files", "literals", "type", "options"}:
        raise KustomizeError(f"{kind} {spec.get('name')!r}: unsupported field {unknown!r}")
    return data


def make_generated(directory, spec, kind, options):
    name = spec.get("name")
    if not name:
        raise KustomizeError(f"{kind}: a generator without a name")
    data = generator_data(directory, spec, kind)
    meta = {"name": name}
    if spec.get("namespace"):
        meta["namespace"] = spec["namespace"]
    opts = dict(options or {})
    opts.update(spec.get("options") or {})
    if opts.get("labels"):
        meta["labels"] = dict(opts["labels"])
    if opts.get("annotations"):
        meta["annotations"] = dict(opts["annotations"])
    if kind == "ConfigMap":
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    else:
        enc = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
               "type": spec.get("type", "Opaque"), "data": enc}
    return Resource(obj, generated=True, hash_suffix=not opts.get("disableNameSuffixHash", False))


def go_json(value):
    """json.Marshal as Go writes it: sorted keys, no spaces, <>& escaped."""
    s = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def content_hash(res):
    """kustomize's api/hasher: sha256 of the JSON encoding, first 10 hex chars with
    0,1,3,a,e mapped to g,h,k,m,t (so the suffix never spells a word). kustomize v5 reads
    "name" from the object's top level, where there is none: the name hashed is always ""
    (checked against kubectl kustomize v5.5.0), so equal contents give equal suffixes."""
    o = res.obj
    if o["kind"] == "ConfigMap":
        m = {"kind": "ConfigMap", "name": "", "data": o.get("data", {})}
        if o.get("binaryData"):
            m["binaryData"] = o["binaryData"]
    else:
        m = {"kind": "Secret", "type": o.get("type", ""), "name": "", "data": o.get("data", {})}
    digest = hashlib.sha256(go_json(m).encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def apply_generator(resources, new, behavior):
    existing = [r for r in resources if r.kind == new.kind and r.name == new.name
                and r.namespace == new.namespace]
    behavior = behavior or "create"
    if behavior == "create":
        if existing:
            raise KustomizeError(f"{new.kind} {new.name!r} already exists (use behavior: merge or replace)")
        resources.append(new)
        return
    if not existing:
        raise KustomizeError(f"{new.kind} {new.name!r}: behavior {behavior} but no such generated object")
    old = existing[0]
    if behavior == "replace":
        old.obj["data"] = new.obj["data"]
    elif behavior == "merge":
        old.obj.setdefault("data", {}).update(new.obj["data"])
    else:
        raise KustomizeError(f"{new.kind} {new.name!r}: unknown behavior {behavior!r}")
    for key in ("labels", "annotations"):
        if new.obj["metadata"].get(key):
            old.obj["metadata"].setdefault(key, {}).update(new.obj["metadata"][key])
    old.hash_suffix = new.hash_suffix


# ---- images, labels, namespace ---------------------------------------------------------

def pod_specs(obj):
    """The pod specs of a workload (or a Pod), as (spec, template metadata) pairs."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return [(spec, obj.setdefault("metadata", {}))]
    if kind in WORKLOAD_KINDS:
        t = spec.get("template")
        return [(t.setdefault("spec", {}), t.setdefault("metadata", {}))] if t else []
    if kind == "CronJob":
        t = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        return [(t.setdefault("spec", {}), t.setdefault("metadata", {}))] if t else []
    return []


def split_image(image):
    """'repo/name:tag@sha256:x' -> ('repo/name', ':tag' or '@sha256:x' or '')."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def apply_images(resources, images):
    for entry in images:
        if "name" not in entry:
            raise KustomizeError("images: an entry without a name")
        for unknown in set(entry) - {"name", "newName", "newTag", "digest"}:
            raise KustomizeError(f"images {entry['name']!r}: unsupported field {unknown!r}")
        for res in resources:
            for spec, _ in pod_specs(res.obj):
                for key in ("initContainers", "containers"):
                    for c in spec.get(key) or []:
                        name, tag = split_image(c.get("image", ""))
                        if name != entry["name"]:
                            continue
                        if "digest" in entry:
                            tag = "@" + entry["digest"]
                        elif "newTag" in entry:
                            tag = ":" + str(entry["newTag"])
                        c["image"] = entry.get("newName", name) + tag


def apply_labels(resources, label_specs):
    for spec in label_specs:
        for unknown in set(spec) - {"pairs", "includeSelectors", "includeTemplates"}:
            raise KustomizeError(f"labels: unsupported field {unknown!r}")
        if spec.get("includeSelectors"):
            raise KustomizeError("labels: includeSelectors: true is not supported (selectors are immutable)")
        pairs = {k: str(v) for k, v in (spec.get("pairs") or {}).items()}
        for res in resources:
            res.obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if spec.get("includeTemplates"):
                for _, meta in pod_specs(res.obj):
                    if res.kind != "Pod":
                        meta.setdefault("labels", {}).update(pairs)


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass"}


def apply_namespace(resources, namespace):
    for res in resources:
        if res.kind not in CLUSTER_SCOPED:
            res.obj.setdefault("metadata", {})["namespace"] = namespace


# ---- patches ---------------------------------------------------------------------------

def matches_target(res, target):
    for unknown in set(target) - {"group", "version", "kind", "name", "namespace"}:
        raise KustomizeError(f"patch target: unsupported field {unknown!r}")
    group, version = res.group_version()
    checks = {"group": group, "version": version, "kind": res.kind, "name": res.name,
              "namespace": res.namespace}
    return all(str(target[k]) == checks[k] for k in target)


def json_pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise KustomizeError(f"JSON6902 path {path!r} does not start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def walk(doc, parts, path):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise KustomizeError(f"JSON6902 path {path!r}: no element {p!r}")
        elif isinstance(cur, dict):
            if p not in cur:
                raise KustomizeError(f"JSON6902 path {path!r}: no member {p!r}")
            cur = cur[p]
        else:
            raise KustomizeError(f"JSON6902 path {path!r}: {p!r} is below a scalar")
    return cur


def apply_json6902(obj, ops, where):
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise KustomizeError(f"{where}: a JSON6902 operation needs op and path")
        parts = json_pointer(op["path"])
        if not parts:
            raise KustomizeError(f"{where}: operations on the whole document are not supported")
        parent = walk(obj, parts[:-1], op["path"])
        last = parts[-1]
        kind = op["op"]
        if kind not in ("add", "remove", "replace", "test"):
            raise KustomizeError(f"{where}: JSON6902 op {kind!r} is not supported")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise KustomizeError(f"{where}: {kind} {op['path']} needs a value")
        value = copy.deepcopy(op.get("value"))
        if isinstance(parent, list):
            if kind == "add" and last == "-":
                parent.append(value)
                continue
            try:
                i = int(last)
            except ValueError:
                raise KustomizeError(f"{where}: {op['path']}: {last!r} is not a list index")
            if kind == "add":
                if not 0 <= i <= len(parent):
                    raise KustomizeError(f"{where}: {op['path']}: index out of range")
                parent.insert(i, value)
                continue
            if not 0 <= i < len(parent):
                raise KustomizeError(f"{where}: {op['path']}: index out of range")
            if kind == "remove":
                del parent[i]
            elif kind == "replace":
                parent[i] = value
            elif parent[i] != value:
                raise KustomizeError(f"{where}: test {op['path']} failed")
        elif isinstance(parent, dict):
            if kind in ("remove", "replace", "test") and last not in parent:
                raise KustomizeError(f"{where}: {kind} {op['path']}: no such member")
            if kind == "remove":
                del parent[last]
            elif kind == "test":
                if parent[last] != value:
                    raise KustomizeError(f"{where}: test {op['path']} failed")
            else:
                parent[last] = value
        else:
            raise KustomizeError(f"{where}: {op['path']}: parent is a scalar")


# Merge keys of the lists the strategic-merge patches here may touch (from the Kubernetes
# OpenAPI x-kubernetes-patch-merge-key); every other list is replaced, as kustomize does.
def merge_key(field, parent_path):
    if field in ("containers", "initContainers", "ephemeralContainers", "volumes", "env",
                 "imagePullSecrets", "volumeClaimTemplates_"):
        return "name"
    if field == "volumeMounts":
        return "mountPath"
    if field == "ports":
        in_container = any(p in ("containers", "initContainers") for p in parent_path)
        return "containerPort" if in_container else "port"
    return None


def strategic_merge(base, patch, path=()):
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(base)
    for key, value in patch.items():
        if key == "$patch":
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = strategic_merge(out[key], value, path + (key,))
        elif isinstance(value, list) and isinstance(out.get(key), list) and merge_key(key, path):
            out[key] = merge_list(out[key], value, merge_key(key, path), path + (key,))
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_list(base, patch, key, path):
    """kustomize (kyaml merge2) order: the patch's elements first, in patch order (merged
    with the original element of the same key), then the untouched original elements."""
    first, deleted = [], set()
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise KustomizeError(f"strategic merge {'/'.join(path)}: an element without {key!r}")
        orig = next((x for x in base if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            deleted.add(item[key])
        elif orig is None:
            first.append({k: copy.deepcopy(v) for k, v in item.items() if v is not None})
        else:
            first.append(strategic_merge(orig, item, path))
    touched = {x[key] for x in first} | deleted
    rest = [copy.deepcopy(x) for x in base if not (isinstance(x, dict) and x.get(key) in touched)]
    return first + rest


def apply_patch(resources, directory, entry):
    for unknown in set(entry) - {"path", "patch", "target", "options"}:
        raise KustomizeError(f"patches: unsupported field {unknown!r}")
    if ("path" in entry) == ("patch" in entry):
        raise KustomizeError("patches: an entry needs exactly one of path and patch")
    if "path" in entry:
        where = entry["path"]
        docs = load_yaml_list_or_docs(local_file(directory, entry["path"], "patch"))
    else:
        where = "inline patch"
        try:
            docs = [d for d in yaml.safe_load_all(entry["patch"]) if d is not None]
        except yaml.YAMLError as e:
            raise KustomizeError(f"inline patch: YAML error: {e}")
    target = entry.get("target")
    for doc in docs:
        if isinstance(doc, list):
            if not target:
                raise KustomizeError(f"{where}: a JSON6902 patch needs a target")
            hits = [r for r in resources if matches_target(r, target)]
            if not hits:
                raise KustomizeError(f"{where}: no object matches target {target}")
            for r in hits:
                apply_json6902(r.obj, doc, where)
            continue
        if not isinstance(doc, dict):
            raise KustomizeError(f"{where}: a patch is neither a list nor a mapping")
        if target:
            hits = [r for r in resources if matches_target(r, target)]
        else:
            meta = doc.get("metadata") or {}
            hits = [r for r in resources if r.kind == doc.get("kind") and r.name == meta.get("name")
                    and (not meta.get("namespace") or r.namespace == meta["namespace"])]
        if not hits:
            raise KustomizeError(f"{where}: no object matches {doc.get('kind')} "
                                 f"{(doc.get('metadata') or {}).get('name')!r}")
        for r in hits:
            if doc.get("$patch") == "delete":
                resources.remove(r)
                continue
            patch = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
            if target:
                patch.get("metadata", {}).pop("name", None)
            r.obj = strategic_merge(r.obj, patch)


def load_yaml_list_or_docs(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        raise KustomizeError(f"{path}: YAML error: {e}")


# ---- name references -------------------------------------------------------------------

def rename_references(resources, kind, old, new, namespace):
    for res in resources:
        if res.namespace != namespace:
            continue
        for spec, _ in pod_specs(res.obj):
            for v in spec.get("volumes") or []:
                if kind == "ConfigMap" and (v.get("configMap") or {}).get("name") == old:
                    v["configMap"]["name"] = new
                if kind == "Secret" and (v.get("secret") or {}).get("secretName") == old:
                    v["secret"]["secretName"] = new
                for src in (v.get("projected") or {}).get("sources") or []:
                    ref = src.get("configMap" if kind == "ConfigMap" else "secret")
                    if ref and ref.get("name") == old:
                        ref["name"] = new
            if kind == "Secret":
                for ps in spec.get("imagePullSecrets") or []:
                    if ps.get("name") == old:
                        ps["name"] = new
            for key in ("initContainers", "containers"):
                for c in spec.get(key) or []:
                    for e in c.get("env") or []:
                        ref = (e.get("valueFrom") or {}).get(
                            "configMapKeyRef" if kind == "ConfigMap" else "secretKeyRef")
                        if ref and ref.get("name") == old:
                            ref["name"] = new
                    for e in c.get("envFrom") or []:
                        ref = e.get("configMapRef" if kind == "ConfigMap" else "secretRef")
                        if ref and ref.get("name") == old:
                            ref["name"] = new


def finish(resources):
    for res in resources:
        if res.generated and res.hash_suffix:
            old = res.name
            new = f"{old}-{content_hash(res)}"
            res.obj["metadata"]["name"] = new
            rename_references(resources, res.kind, old, new, res.namespace)
    return [r.obj for r in sorted(resources, key=legacy_order)]


ORDER_FIRST = ["Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
               "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
               "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service", "LimitRange",
               "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment",
               "StatefulSet", "CronJob", "PodDisruptionBudget"]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


def legacy_order(res):
    """kustomize's default ("legacy") output order: kinds in a fixed order, then by
    group/version/kind, namespace and name."""
    if res.kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(res.kind)
    elif res.kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(res.kind)
    else:
        rank = len(ORDER_FIRST)
    group, version = res.group_version()
    return (rank, f"{group}_{version}_{res.kind}", res.namespace, res.name)


# ---- build -----------------------------------------------------------------------------

def build(directory, stack=()):
    directory = os.path.realpath(directory)
    if directory in stack:
        raise KustomizeError(f"{directory}: cycle in resources")
    kpath = find_kustomization(directory)
    docs = load_yaml_documents(kpath)
    if len(docs) != 1:
        raise KustomizeError(f"{kpath}: expected one document")
    k = docs[0]
    unknown = sorted(set(k) - SUPPORTED_FIELDS)
    if unknown:
        raise KustomizeError(f"{kpath}: unsupported kustomization field(s) {', '.join(unknown)}")
    if k.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{kpath}: kind must be Kustomization")

    resources = []
    for entry in k.get("resources") or []:
        path = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(path):
            resources.extend(build(path, stack + (directory,)))
        elif os.path.isfile(path):
            if not inside(directory, path):
                raise KustomizeError(f"{kpath}: resource file {entry!r} is outside the kustomization")
            for obj in load_yaml_documents(path):
                if "kind" not in obj or "metadata" not in obj or "name" not in obj["metadata"]:
                    raise KustomizeError(f"{path}: an object without kind or metadata.name")
                resources.append(Resource(obj))
        else:
            raise KustomizeError(f"{kpath}: resource {entry!r} not found")

    options = k.get("generatorOptions") or {}
    for unknown in set(options) - {"disableNameSuffixHash", "labels", "annotations"}:
        raise KustomizeError(f"{kpath}: generatorOptions: unsupported field {unknown!r}")
    for field, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for spec in k.get(field) or []:
            new = make_generated(directory, spec, kind, options)
            # (the kustomization's namespace is applied to every object below, this too)
            apply_generator(resources, new, spec.get("behavior"))

    for entry in k.get("patches") or []:
        apply_patch(resources, directory, entry)
    if k.get("namespace"):
        apply_namespace(resources, k["namespace"])
    if k.get("images"):
        apply_images(resources, k["images"])
    if k.get("labels"):
        apply_labels(resources, k["labels"])
    seen = set()
    for r in resources:
        key = (r.kind, r.namespace, r.name)
        if key in seen:
            raise KustomizeError(f"{kpath}: two objects {r.kind} {r.namespace}/{r.name}")
        seen.add(key)
    return resources


def render(directory):
    return finish(build(directory))


def dump(objs):
    return yaml.safe_dump_all(objs, sort_keys=True, default_flow_style=False)


def main(argv):
    args = list(argv[1:])
    out = None
    if "-o" in args:
        i = args.index("-o")
        if i + 1 >= len(args):
            print("usage: kustomize_lite.py DIR [-o OUT.yaml]", file=sys.stderr)
            return 2
        out = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        print("usage: kustomize_lite.py DIR [-o OUT.yaml]", file=sys.stderr)
        return 2
    try:
        text = dump(render(args[0]))
    except KustomizeError as e:
        print(f"kustomize_lite: {e}", file=sys.stderr)
        return 1
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
