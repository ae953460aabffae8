#!/usr/bin/env python3
"""test/chaos/check.py — the bucket-side invariants of scripts/chaos, read through the shared
gateway (never through the fault proxy). Credentials and endpoint: AWS_* and KCMDR_S3_ENDPOINT.

    check.py snap   BUCKET PREFIX OUT              every key under PREFIX/ -> "size etag", as JSON
    check.py files  BUCKET PREFIX NAME PHASE       a backup's folder against its phase
    check.py diff   BEFORE AFTER [--allow P]... [--removable P]...
                                                   keys changed between two snaps

files: a backup that has velero-backup.json (Completed, PartiallyFailed: the ones another cluster
would sync and restore) must have its checksums file and every file it lists, with the listed
size; a Completed backup must have velero-backup.json; a Failed or FailedValidation backup must
have none. diff: a key added, removed or changed is allowed under an --allow prefix (the round's
own folders); a removal only, under a --removable prefix (earlier failed backups, whose leftover
files a leader may clean up); anything else is a violation.
Prints one "VIOLATION: ..." line per violation and exits 1 when there is one; exit 2 is an error
of the checker itself (the gateway unreachable, a bad argument): a harness error, not a verdict.
"""
import json
import os
import sys

import boto3
import botocore.config


def client():
    return boto3.client("s3", endpoint_url=os.environ["KCMDR_S3_ENDPOINT"],
                        config=botocore.config.Config(retries={"max_attempts": 8, "mode": "standard"},
                                                      connect_timeout=10, read_timeout=60))


def listing(s3, bucket, prefix):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = "%d %s" % (o["Size"], o["ETag"].strip('"'))
    return out


def cmd_snap(bucket, prefix, out):
    got = listing(client(), bucket, prefix.rstrip("/") + "/")
    with open(out + ".tmp", "w") as f:
        json.dump(got, f, sort_keys=True, indent=0)
    os.rename(out + ".tmp", out)
    return []


def cmd_files(bucket, prefix, name, phase):
    s3 = client()
    d = "%s/backups/%s/" % (prefix.rstrip("/"), name)
    have = {k[len(d):]: int(v.split()[0]) for k, v in listing(s3, bucket, d).items()}
    v = []
    meta = "velero-backup.json" in have
    if phase in ("Failed", "FailedValidation"):
        if meta:
            v.append("backup %s is %s but its folder has velero-backup.json (files: %s)" % (name, phase, sorted(have)))
        return v
    if phase == "Completed" and not meta:
        v.append("backup %s is Completed but has no velero-backup.json (files: %s)" % (name, sorted(have)))
    if not meta:
        return v
    ck = "%s-checksums.json" % name
    if ck not in have:
        v.append("backup %s (%s) has velero-backup.json but no %s (files: %s)" % (name, phase, ck, sorted(have)))
        return v
    doc = json.loads(s3.get_object(Bucket=bucket, Key=d + ck)["Body"].read())
    files = doc.get("files")
    if not isinstance(files, dict) or not files:
        v.append("backup %s: %s lists no files" % (name, ck))
        return v
    for key, ent in sorted(files.items()):
        base = key.rsplit("/", 1)[-1]
        if base not in have:
            v.append("backup %s (%s): %s listed in %s is missing" % (name, phase, key, ck))
        elif have[base] != ent.get("size"):
            v.append("backup %s (%s): %s is %d bytes, %s says %s" % (name, phase, key, have[base], ck, ent.get("size")))
    return v


def cmd_diff(before, after, allow, removable):
    a = json.load(open(before))
    b = json.load(open(after))
    v = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k) or any(k.startswith(p) for p in allow):
            continue
        what = "added" if k not in a else "removed" if k not in b else "changed (%s -> %s)" % (a[k], b[k])
        if what == "removed" and any(k.startswith(p) for p in removable):
            print("note: %s removed (an earlier failed backup's leftover)" % k)
            continue
        v.append("%s %s outside the round's own folders" % (k, what))
    return v


def main(argv):
    try:
        if len(argv) == 4 and argv[0] == "snap":
            v = cmd_snap(*argv[1:])
        elif len(argv) == 5 and argv[0] == "files":
            v = cmd_files(*argv[1:])
        elif len(argv) >= 3 and argv[0] == "diff":
            allow, removable, rest = [], [], argv[3:]
            while rest:
                if len(rest) < 2 or rest[0] not in ("--allow", "--removable"):
                    raise ValueError("bad arguments: %s" % rest)
                (allow if rest[0] == "--allow" else removable).append(rest[1])
                rest = rest[2:]
            v = cmd_diff(argv[1], argv[2], allow, removable)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # the checker failed: not a verdict on the product
        print("check.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 2
    for line in v:
        print("VIOLATION: " + line)
    return 1 if v else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
