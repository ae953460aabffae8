#!/usr/bin/env python3
"""gen.py — seeded cases for t_jsonpatch.sh (one JSON object a line): RFC 6902 and RFC 7386
Appendix A, then random documents with patches aimed at their real paths (so most operations
reach the interesting code) mixed with careless ones: missing members, bad and huge indexes,
"-" where it means nothing, ~ escapes, paths without a leading "/", nulls added and copied and
then walked into or tested, unknown and misspelt operations, non-object documents; merge patches
and create-merge pairs from related documents; Go number formatting; strconv.ParseFloat inputs;
gobwas/glob patterns. Usage: gen.py SEED N > cases.jsonl"""
import json
import random
import sys

seed, N = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(seed)
out = []


def case(**kw):
    out.append(kw)


# ---- RFC 6902 Appendix A
A = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}]),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
]
for doc, patch in A:
    case(t="apply", doc=doc, patch=patch)
# A.13: the duplicate "op" member cannot be written with a dict; a literal line does it
out.append('{"t":"apply","doc":{"foo":"bar"},"patch":[{"op":"add","path":"/baz","value":"qux","op":"remove"}]}')

# ---- RFC 7386 Appendix A
M = [
    ({"a": "b"}, {"a": "c"}), ({"a": "b"}, {"b": "c"}), ({"a": "b"}, {"a": None}),
    ({"a": "b", "b": "c"}, {"a": None}), ({"a": ["b"]}, {"a": "c"}), ({"a": "c"}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}), ({"a": [{"b": "c"}]}, {"a": [1]}),
    (["a", "b"], ["c", "d"]), ({"a": "b"}, ["c"]), ({"a": "foo"}, None), ({"a": "foo"}, "bar"),
    ({"e": None}, {"a": 1}), ([1, 2], {"a": "b", "c": None}), ({}, {"a": {"bb": {"ccc": None}}}),
]
for doc, patch in M:
    case(t="merge", doc=doc, patch=patch)
    case(t="create", a=doc, b=patch)

# ---- random documents
KEYS = ["a", "b", "c", "spec", "metadata", "0", "1", "-", "", "~", "/", "~0", "~1", "a/b", "m~n", "é",
        "<&>", "\u2028", "name", "labels", "10"]  # no NUL: jansson refuses it in keys
STRS = ["", "x", "hello", "1", "true", "null", "<b>&</b>", "é", "\u0000", "tab\there", "\"q\"", "\\", "\u2029", "a/b",
        "~1"]


def scalar():
    r = rnd.random()
    if r < 0.25:
        return rnd.choice(STRS)
    if r < 0.45:
        return rnd.choice([0, 1, -1, 2, 7, 10, 42, 2 ** 53, 2 ** 53 + 1, -(2 ** 63), 2 ** 63 - 1, 1000000, 123456789])
    if r < 0.6:
        return rnd.choice([0.5, 1.0, -0.0, 0.0, 1.5, 1e-7, 1e-6, 1e21, 9e18, 123456.789, 3.14159, -2.5e-8, 1e300,
                           5e-324, 0.1, 2.0 ** 60, 1234567.0, 1e6])
    if r < 0.75:
        return rnd.choice([True, False])
    return None


def value(depth=0):
    r = rnd.random()
    if depth > 3 or r < 0.5:
        return scalar()
    if r < 0.75:
        return {rnd.choice(KEYS): value(depth + 1) for _ in range(rnd.randint(0, 4))}
    return [value(depth + 1) for _ in range(rnd.randint(0, 4))]


def doc():
    r = rnd.random()
    if r < 0.03:
        return rnd.choice([None, 5, "s", True])
    if r < 0.12:
        return [value(1) for _ in range(rnd.randint(0, 4))]
    return {rnd.choice(KEYS): value(1) for _ in range(rnd.randint(0, 6))}


def esc(k):
    return k.replace("~", "~0").replace("/", "~1")


def paths(v, prefix=""):
    """Every path in v, with its value."""
    yield prefix, v
    if isinstance(v, dict):
        for k, e in v.items():
            yield from paths(e, prefix + "/" + esc(k))
    elif isinstance(v, list):
        for i, e in enumerate(v):
            yield from paths(e, prefix + "/" + str(i))


def careless(p):
    r = rnd.random()
    parts = p.split("/")
    if r < 0.08:
        return p + "/" + rnd.choice(["-", "0", "zz", "99", "-1", "+0", "01", "9223372036854775808", "-9223372036854775809"])
    if r < 0.14:
        return p + "/" + rnd.choice(KEYS)
    if r < 0.18 and len(parts) > 1:
        parts[-1] = rnd.choice(["-", "+1", "00", "-1", "-2", "-99", "1e1", " 1", "", "~", "~2", "~01", "1_0"])
        return "/".join(parts)
    if r < 0.21:
        return p.lstrip("/") if p else "x"
    if r < 0.23:
        return rnd.choice(["", "/", "//", "no-slash", "x/y", "/~1", "/~0"])
    if r < 0.26:
        return "q" + p
    return p


def pick_path(d):
    ps = [p for p, _ in paths(d)]
    return careless(rnd.choice(ps)) if rnd.random() < 0.9 else careless("/" + rnd.choice(KEYS))


def op_for(d):
    kind = rnd.choice(["add", "add", "remove", "replace", "move", "copy", "test", "test", "test"])
    ps = list(paths(d))
    o = {"op": kind}
    path, val = rnd.choice(ps)
    if kind == "test" and rnd.random() < 0.6:
        o["path"] = careless(path)
        o["value"] = val if rnd.random() < 0.7 else value(2)
    else:
        o["path"] = pick_path(d)
        if kind in ("add", "replace", "test"):
            o["value"] = value(1) if rnd.random() < 0.85 else None
    if kind in ("move", "copy"):
        o["from"] = pick_path(d)
    r = rnd.random()
    if r < 0.03:
        o.pop("path", None)
    elif r < 0.05:
        o.pop("value", None)
    elif r < 0.06:
        o["path"] = rnd.choice([5, None, ["a"], {"p": 1}])
    elif r < 0.07:
        o["from"] = rnd.choice([5, None])
    elif r < 0.08:
        o["op"] = rnd.choice(["Add", "ADD", "delete", "", None, 1, "test "])
    elif r < 0.09:
        o.pop("op")
    return o


def apply_py(d, o):
    """A rough model, only to let later operations aim at paths that now exist."""
    try:
        import copy
        if o.get("op") not in ("add", "replace") or not isinstance(o.get("path"), str):
            return d
        parts = o["path"].split("/")[1:]
        if not parts:
            return d
        cur = d
        for t in parts[:-1]:
            t = t.replace("~1", "/").replace("~0", "~")
            cur = cur[int(t)] if isinstance(cur, list) else cur[t]
        k = parts[-1].replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict):
            cur[k] = copy.deepcopy(o.get("value"))
        return d
    except Exception:
        return d


for i in range(N):
    d = doc()
    ops = []
    shadow = json.loads(json.dumps(d))
    for _ in range(rnd.randint(1, 5)):
        o = op_for(shadow if isinstance(shadow, (dict, list)) else {})
        ops.append(o)
        shadow = apply_py(shadow, o)
    r = rnd.random()
    patch = ops
    if r < 0.02:
        patch = rnd.choice([None, {}, {"op": "add"}, "x", [1], [ops[0], None], [[]]])
    elif r < 0.04:
        patch = ops + [None]
    case(t="apply", doc=d, patch=patch)

    # merge: a patch built from the document's own members, with nulls and arrays
    def mpatch(v, depth=0):
        if isinstance(v, dict) and depth < 3 and rnd.random() < 0.8:
            p = {}
            for k, e in v.items():
                r = rnd.random()
                if r < 0.2:
                    p[k] = None
                elif r < 0.5:
                    p[k] = mpatch(e, depth + 1)
            for _ in range(rnd.randint(0, 2)):
                p[rnd.choice(KEYS)] = value(depth + 1)
            return p
        return value(depth + 1)
    mp = mpatch(d) if rnd.random() < 0.9 else rnd.choice([None, 3, "s", [None, 1, {"a": None}], []])
    case(t="merge", doc=d, patch=mp)

    # create: a modified copy (members changed, removed, added; numbers nudged)
    def mutate(v, depth=0):
        if isinstance(v, dict):
            w = {}
            for k, e in v.items():
                r = rnd.random()
                if r < 0.15:
                    continue
                w[k] = mutate(e, depth + 1) if r < 0.6 else (value(depth + 1) if r < 0.75 else e)
            if rnd.random() < 0.3:
                w[rnd.choice(KEYS)] = value(depth + 1)
            return w
        if isinstance(v, list):
            return [mutate(e, depth + 1) for e in v] if rnd.random() < 0.8 else v + [scalar()]
        if isinstance(v, int) and not isinstance(v, bool) and rnd.random() < 0.3:
            # float(v) only where Go's text of it reads back (beyond 2^63 jansson refuses it)
            return rnd.choice([v + 1 if v < 2 ** 63 - 1 else v - 1, float(v) if abs(v) < 2 ** 62 else v, v])
        return v if rnd.random() < 0.8 else scalar()
    a = d
    b = mutate(d) if rnd.random() < 0.95 else rnd.choice([None, [], 5, "s"])
    if rnd.random() < 0.05 and isinstance(a, dict):
        a, b = [a, a], [b, a] if rnd.random() < 0.8 else [b]
    case(t="create", a=a, b=b)

# ---- Go's number formatting
for v in [0.0, -0.0, 1.0, 0.1, 1e-7, 1e-6, 9.99e-7, 1e20, 1e21, 1.5e21, 123456789.0, 1234567.0, 100000.0, 1e6,
          2.0 ** 60, 2.0 ** 53 + 2, 5e-324, 1.7976931348623157e308, 3.14159, 1 / 3, 2 / 3, 0.3, 16777217.0,
          3.4028235e38, 3.5e38, 1e-45, 1e-46, 65504.0]:
    case(t="fmt", v=v)
for _ in range(N // 4):
    e = rnd.randint(-330, 307)
    case(t="fmt", v=rnd.uniform(1, 9.9) * 10.0 ** e * (-1) ** rnd.randint(0, 1))

# ---- strconv.ParseFloat
PF = ["1", "1.5", "-0", "+1", "01", ".5", "5.", "1e5", "1E+5", "1e", "1e+", "e5", "1_000", "1__0", "_1", "1_", "1_.5",
      "1._5", "0x10", "0x1p4", "0X1P-2", "0x_1p0", "0x1.8p1", "0x.8p1", "0xp1", "0b101", "0o17", "Inf", "+inf",
      "-Infinity", "infinity", "infin", "nan", "NaN", "+nan", "-nan", "1e400", "-1e400", "1e-400", "0x1p2000",
      "1.7976931348623159e308", "1.7976931348623157e308", " 1", "1 ", "", "-", "+", ".", "1.2.3", "1e0_1", "1e_1",
      "true", "null", "{}", "0.000001", "123456789012345678901234567890", "4e-324", "2e-324"]
for s in PF:
    case(t="pf", s=s)
for _ in range(N // 4):
    s = "".join(rnd.choice("0123456789._eEpPxX+-infaINF") for _ in range(rnd.randint(1, 8)))
    case(t="pf", s=s)

# ---- gobwas/glob, as Velero compiles groupResource (separator '.') and namespaces
GP = ["*", "**", "?", "pods", "*.apps", "deployments.apps", "*.k0rdent.mirantis.com", "managements.*",
      "managements.**", "{pods,secrets}", "{a,b", "a}", "a,b", "[abc]ods", "[!a]ods", "[a-z]ods", "[z-a]", "[]",
      "[!]", "[a-]", "[a-z0-9]", "[ab-z]", "[-a]", "\\*", "a\\", "*s", "s*", "*.*", "**.com", "?ods", "p?ds",
      "{*.apps,pods}", "{}", "{,}", "*{a,b}*", "[", "]", "a]b", "\u00e9*", "\ufffd", "x\u0000y", "*\u0000y",
      "[a\u0000]", "{a\u0000,b}c", "\\\u0000", "{{a,b},c}",
      "**s", "*\\.apps"]
# never "": Velero matches only non-empty group resources and namespaces (gobwas's "?" and "[!a]"
# match "" as if it were U+FFFD, a bug no caller can reach)
GS = ["pods", "secrets", "deployments.apps", "managements.k0rdent.mirantis.com", "a", "b", ".", "a.b", "apps",
      "x\u0000y", "x", "*", "\u00e9t\u00e9", "aods", "zods", "-ods", "a,b", "{a,b", "a}", "]", "a]b", "c", "s.apps"]
for p in GP:
    for s in GS:
        for sep in ("", "."):
            case(t="glob", p=p, s=s, sep=sep)
for _ in range(N // 2):
    p = "".join(rnd.choice(["*", "**", "?", "a", "b", ".", "{", "}", ",", "[", "]", "!", "-", "\\", "c"])
                for _ in range(rnd.randint(0, 7)))
    s = "".join(rnd.choice("abc.-") for _ in range(rnd.randint(1, 6)))
    case(t="glob", p=p, s=s, sep=rnd.choice(["", "."]))

for c in out:
    print(c if isinstance(c, str) else json.dumps(c, ensure_ascii=False))
