#!/usr/bin/env python3
"""promtool_tests.py — turn scrapes of a real controller's /metrics into a `promtool test rules`
file (test/e2e/t_monitoring.sh).

Usage: promtool_tests.py SPEC.json > tests.yaml   (JSON is YAML; promtool reads it)

SPEC: {"rule_file": PATH, "groups": [{"name", "dir", "hold", "evals": [...]}]}
- dir holds one file per scrape, named by the wall-clock time it was taken (unix seconds):
  T.prom (the exposition text) or T.down (the scrape failed: the controller was gone).
- Promtool time 0 is the group's first scrape. Each second of promtool time gets the value of
  the newest scrape at or before it, as a Prometheus scraping every second would store: '_'
  before a series first appears, 'stale' where it disappears (as Prometheus writes a staleness
  marker when a series or its target goes), and after the last scrape that state is held for
  `hold` seconds (the state stays what it was while nothing changes: that is what the
  time-based alerts and the `for:` clauses are about). A failed last scrape holds nothing.
- Values of *_timestamp_seconds series are wall-clock times: they are shifted by the group's
  first scrape time, so time() in promtool means what it meant when the scrape was taken.
- evals: [{"at": "end+N" | "val:SERIES+N" (N >= 0), "alert": NAME, "exp": [LABELS, ...]}]. "end" is the
  last scrape's promtool time; "val:SERIES" the (shifted) last value of SERIES (a name with
  {k="v",...} labels, matched exactly), e.g. a last-success timestamp. The time is rounded up to
  the next rule evaluation (every EVAL seconds). Expected alerts get the
  rule's own labels and its annotations rendered for their labels, as Prometheus would.
"""
import json
import math
import os
import re
import sys

import yaml

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
TARGET = {"job": "kcmdr", "instance": "kcmdr-controller"}
EVAL = 15  # rule evaluation interval (s): Prometheus' default is 1m; 15 s keeps hours of held state fast


def unescape(v):
    return re.sub(r'\\(.)', lambda m: '\n' if m.group(1) == 'n' else m.group(1), v)


def parse(text):
    """exposition text -> {(name, ((k, v), ...)): float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        m = LINE.match(line)
        if not m:
            raise SystemExit(f"cannot parse scraped line: {line!r}")
        labels = dict(TARGET)
        pos = 0
        body = m.group(3) or ''
        while pos < len(body):
            lm = LABEL.match(body, pos)
            if not lm:
                raise SystemExit(f"cannot parse labels in: {line!r}")
            labels[lm.group(1)] = unescape(lm.group(2))
            pos = lm.end()
        out[(m.group(1), tuple(sorted(labels.items())))] = float(m.group(4))
    return out


def series_text(name, labels):
    esc = lambda v: v.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')
    return name + '{' + ','.join(f'{k}="{esc(v)}"' for k, v in labels) + '}'


def num(v):
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def group_series(d, hold):
    files = sorted(os.listdir(d), key=lambda f: float(f.rsplit('.', 1)[0]))
    if not files:
        raise SystemExit(f"{d}: no scrapes")
    scrapes = []  # (time, {key: value} or None when down)
    for f in files:
        t = float(f.rsplit('.', 1)[0])
        scrapes.append((t, None if f.endswith('.down') else parse(open(os.path.join(d, f)).read())))
    t0 = scrapes[0][0]
    for _, s in scrapes:  # wall-clock timestamps relative to promtool time 0
        for k in list(s or {}):
            if k[0].endswith('_timestamp_seconds'):
                s[k] -= t0
    end = math.ceil(scrapes[-1][0] - t0)
    keys = sorted({k for _, s in scrapes if s for k in s})
    steps = end + 1 + (hold if scrapes[-1][1] is not None else 0)
    vals = {k: [] for k in keys}
    i = -1
    for step in range(steps):
        while i + 1 < len(scrapes) and scrapes[i + 1][0] - t0 <= step:
            i += 1
        cur = scrapes[i][1] if i >= 0 else {}
        for k in keys:
            seq = vals[k]
            if cur is not None and k in cur:
                seq.append(num(cur[k]))
            elif seq and seq[-1] not in ('_', 'stale'):
                seq.append('stale')
            else:
                seq.append('_')
    last = {}
    for k in keys:  # the last value a series had, for "val:" anchors
        for _, s in scrapes:
            if s and k in s:
                last[k] = s[k]
    return end, vals, last


def compress(seq):
    """runs of one number as 'vx(n-1)' (+0 implied: v+0xN is N+1 copies)"""
    out, j = [], 0
    while j < len(seq):
        k = j
        while k + 1 < len(seq) and seq[k + 1] == seq[j]:
            k += 1
        n = k - j + 1
        if seq[j] in ('_', 'stale') or n < 3:
            out.extend(seq[j:k + 1])
        else:
            out.append(f"{seq[j]}+0x{n - 1}")
        j = k + 1
    return ' '.join(out)


def render(tmpl, labels):
    def sub(m):
        if m.group(1) not in labels:
            raise SystemExit(f"annotation uses label {m.group(1)} that the alert does not have: {tmpl}")
        return labels[m.group(1)]
    out = re.sub(r'\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}', sub, tmpl)
    if '{{' in out:
        raise SystemExit(f"annotation template this converter cannot render: {tmpl}")
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    rules = {r['alert']: r for g in yaml.safe_load(open(spec['rule_file']))['groups'] for r in g['rules'] if 'alert' in r}
    tests = []
    for g in spec['groups']:
        end, vals, last = group_series(g['dir'], g.get('hold', 0))
        input_series = [{"series": series_text(k[0], k[1]), "values": compress(v)} for k, v in vals.items()]
        evals = []
        for e in g['evals']:
            anchor, _, plus = e['at'].partition('+')
            if anchor == 'end':
                base = end
            elif anchor.startswith('val:'):
                want = anchor[4:]
                found = [v for k, v in last.items() if series_text(k[0], tuple(x for x in k[1] if x[0] not in TARGET)) == want]
                if len(found) != 1:
                    raise SystemExit(f"group {g['name']}: series {want} not found exactly once in the scrapes")
                base = math.ceil(found[0])
            else:
                raise SystemExit(f"bad anchor {e['at']}")
            at = base + int(plus or 0)
            at = -(-at // EVAL) * EVAL  # rules are evaluated every EVAL seconds: the next evaluation
            rule = rules[e['alert']]
            exp = []
            for labels in e['exp']:
                full = dict(labels)
                full.update(rule.get('labels', {}))
                exp.append({"exp_labels": full,
                            "exp_annotations": {k: render(v, full) for k, v in rule.get('annotations', {}).items()}})
            evals.append({"eval_time": f"{at}s", "alertname": e['alert'], "exp_alerts": exp})
        tests.append({"name": g['name'], "interval": "1s", "input_series": input_series, "alert_rule_test": evals})
    json.dump({"rule_files": [os.path.abspath(spec['rule_file'])], "evaluation_interval": f"{EVAL}s", "tests": tests},
              sys.stdout, indent=1)


if __name__ == '__main__':
    main()
