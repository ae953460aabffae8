#!/usr/bin/env python3
"""mktar.py KIND — write to stdout a gzip tarball shaped like a Velero backup (format 1.1.0).

KIND velero: written the way Velero's Go code writes one: objects as Go's encoding/json prints a
map (sorted keys, '<', '>', '&' as \\u003c \\u003e \\u0026), at the plain and the
<version>-preferredversion path, PAX headers for long names, mode 0755, Go's "./" free paths.
Every other KIND is hostile or damaged; each first holds a valid namespace and ConfigMap, so a
restore that creates anything before it has read the whole archive is caught:
traversal absolute symlink device huge truncated badjson namemismatch.
"""
import gzip
import io
import json
import sys
import tarfile


def go_json(obj):
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def add(tf, path, data, **kw):
    ti = tarfile.TarInfo(path)
    ti.size = len(data)
    ti.mode = 0o755
    ti.mtime = 1700000000
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data))


def add_object(tf, gr, ns, obj):
    name = obj["metadata"]["name"]
    where = "namespaces/%s" % ns if ns else "cluster"
    data = go_json(obj)
    add(tf, "resources/%s/%s/%s.json" % (gr, where, name), data)
    add(tf, "resources/%s/v1-preferredversion/%s/%s.json" % (gr, where, name), data)


def cm(ns, name, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns,
            "uid": "0b8d", "resourceVersion": "42", "creationTimestamp": "2025-01-01T00:00:00Z"}, "data": data}


def main():
    kind = sys.argv[1]
    raw = io.BytesIO()
    tf = tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT)
    add(tf, "metadata/version", b"1.1.0\n")
    if kind == "velero":
        ns = "velero-ns"
        add_object(tf, "namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": ns, "labels": {"team": "x"}}, "spec": {"finalizers": ["kubernetes"]},
                                            "status": {"phase": "Active"}})
        add_object(tf, "configmaps", ns, cm(ns, "escaped", {"html": '<b>&"quoted"'}))
        add_object(tf, "configmaps", ns, cm(ns, "l" * 120, {"long": "name"}))
        add_object(tf, "secrets", ns, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                       "metadata": {"name": "s", "namespace": ns}, "data": {"k": "dmFsdWU="}})
    else:
        ns = "evil-ns"
        add_object(tf, "namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        add_object(tf, "configmaps", ns, cm(ns, "first", {"a": "b"}))
        if kind == "traversal":
            add(tf, "resources/configmaps/namespaces/evil-ns/../../../../../tmp/kcmdr-evil-escape", b"{}")
        elif kind == "absolute":
            add(tf, "/tmp/kcmdr-evil-escape", b"{}")
        elif kind == "symlink":
            add(tf, "resources/configmaps/namespaces/evil-ns/link.json", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "device":
            add(tf, "resources/configmaps/namespaces/evil-ns/dev.json", b"", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        elif kind == "huge":
            ti = tarfile.TarInfo("resources/configmaps/namespaces/evil-ns/huge.json")
            ti.size = 2 << 30  # the header claims 2 GiB; only a few bytes follow
            ti.mode = 0o755
            tf.fileobj.write(ti.tobuf(tarfile.PAX_FORMAT))
            tf.fileobj.write(b"{" + b" " * 511)
            tf.offset += 1024
        elif kind == "badjson":
            add(tf, "resources/configmaps/namespaces/evil-ns/bad.json", b'{"apiVersion":"v1","kind":"ConfigMap",')
        elif kind == "namemismatch":
            add(tf, "resources/configmaps/namespaces/evil-ns/x.json", go_json(cm(ns, "y", {})))
        elif kind != "truncated":
            sys.exit("unknown kind " + kind)
        for i in range(40):  # bulk, so that a cut stream is cut inside the entries
            add_object(tf, "configmaps", ns, cm(ns, "bulk-%d" % i, {"v": "x" * 200 * (i % 7)}))
    if kind != "huge":
        tf.close()
    data = gzip.compress(raw.getvalue(), mtime=0)
    if kind == "truncated":
        data = data[: len(data) * 2 // 3]
    sys.stdout.buffer.write(data)


main()
