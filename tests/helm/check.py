#!/usr/bin/python3
"""Checks the Helm charts (helm/fs-gateway, helm/fs-server) and the Grafana dashboard without a
helm binary, against the real programs of the build.

Usage: tests/helm/check.py BIN_DIR   (BIN_DIR holds fs-gateway, fs-server and fs-devtoken)

1. values.yaml validates against values.schema.json; every file in tests/helm/bad/CHART/ (merged
   over values.yaml as `helm -f` would) is refused, by the schema or, where it says
   "expect: grace", by the chart's grace rule that the schema cannot express; every file in
   tests/helm/good/CHART/ is accepted by both.
2. Every .Values.a.b path a template names exists in values.yaml; template actions are balanced
   (each if/with/range/define has its end), every include names a template the chart defines
   and every .Files.Get a file of the chart.
3. Every FSG_* variable and every setting the chart writes to the config file is a real setting
   of the program (its --settings-markdown), every other setting is in the schema's `config`
   (or deliberately left out) with the program's type and bounds, secret settings only ever
   come from mounted files, the workloads keep the restrictive security context, Chart.yaml's
   appVersion is the program's version, and the values' `config` is accepted by the real
   program: it is written as the ConfigMap writes it and the program is started with it
   (values.yaml and each good file).
4. The dashboard parses; its PromQL names only metric families and labels the running
   fs-gateway's /metrics shows, rates counters and never gauges, and covers every family; the
   metric list of docs/gateway.md names exactly those families.
5. terminationGracePeriodSeconds > preStop.sleepSeconds + drainGraceSeconds in values.yaml, and
   the templates refuse to render otherwise.
"""
import copy
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELM = os.path.join(ROOT, "helm")
TESTS = os.path.join(ROOT, "tests", "helm")

CHARTS = {
    "fs-gateway": {
        "program": "fs-gateway",
        "prefix": "FSG_GATEWAY",
        "workload": "deployment.yaml",
        "conf": "gateway.conf",
        # settings the chart neither sets nor offers
        "left_out": set(),
    },
    "fs-server": {
        "program": "fs-server",
        "prefix": "FSG_SERVER",
        "workload": "statefulset.yaml",
        "conf": "server.conf",
        # benchmarks only, never in production (docs/server.md)
        "left_out": {"bench_discard"},
    },
}

# Labels Prometheus adds to every scraped sample; a dashboard may select on them.
TARGET_LABELS = {"job", "instance", "namespace", "pod"}

# What the workload templates must say for the restrictive security context.
SECURITY_LINES = [
    "runAsNonRoot: true",
    "readOnlyRootFilesystem: true",
    "allowPrivilegeEscalation: false",
    'drop: ["ALL"]',
    "type: RuntimeDefault",
    "enableServiceLinks: false",
    "automountServiceAccountToken: false",
]

GRACE_RULE = "must be longer than preStop.sleepSeconds + drainGraceSeconds"

failures = []
passes = 0


def check(ok, what):
    global passes
    if ok:
        passes += 1
        print(f"ok   {what}")
    else:
        failures.append(what)
        print(f"FAIL {what}")
    return ok


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def merge(base, over):
    """helm -f semantics: maps merge key by key, a null removes the key, the rest replaces."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def grace_ok(values):
    stop = values["preStop"]["sleepSeconds"] + values["drainGraceSeconds"]
    return values["terminationGracePeriodSeconds"] > stop


def schema_errors(schema, values):
    v = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in v.iter_errors(values)]


def templates(chart):
    d = os.path.join(HELM, chart, "templates")
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), encoding="utf-8") as f:
            out[name] = f.read()
    return out


def settings(bin_dir, program):
    """The program's settings table: name -> {env, type}."""
    out = subprocess.run([os.path.join(bin_dir, program), "--settings-markdown"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    rows = {}
    for line in out.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = {"env": cells[1].strip("`"), "type": cells[2]}
    if not rows:
        raise SystemExit(f"{program} --settings-markdown printed no settings")
    return rows


def schema_fits(prop, kind):
    """Whether a schema property describes a setting of this --settings-markdown type."""
    types = prop.get("type")
    types = set(types) if isinstance(types, list) else {types}
    m = re.match(r"integer, (-?\d+) to (-?\d+)$", kind)
    if m:
        return (types == {"integer"} and prop.get("minimum") == int(m.group(1))
                and prop.get("maximum") == int(m.group(2)))
    m = re.match(r"one of (.*)$", kind)
    if m:
        return types == {"string"} and prop.get("enum") == m.group(1).split("|")
    if kind.startswith("duration"):
        pattern = prop.get("pattern", "")
        return (types == {"string"} and re.search(pattern, "30s") and re.search(pattern, "1500ms")
                and not re.search(pattern, "30"))
    if kind.startswith("size"):
        pattern = prop.get("pattern", "")
        return ("string" in types and types <= {"string", "integer"} and re.search(pattern, "4G")
                and not re.search(pattern, "4GB"))
    if kind == "boolean":
        return types == {"boolean"}
    return types == {"string"} and kind in ("string", "path")


def schema_patterns(node):
    """Every "pattern" of a schema."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "pattern" and isinstance(v, str):
                yield v
            else:
                yield from schema_patterns(v)
    elif isinstance(node, list):
        for v in node:
            yield from schema_patterns(v)


def conf_value(v):
    """A value as the charts' confValue helper writes it (Helm prints whole floats as ints)."""
    if isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, float) and v.is_integer():
        s = str(int(v))
    else:
        s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- 1 and 5: schema, bad and good values, grace ----------------------------------------------

def check_values(chart):
    cdir = os.path.join(HELM, chart)
    with open(os.path.join(cdir, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    values = load_yaml(os.path.join(cdir, "values.yaml"))
    check(not list(jsonschema.Draft7Validator(jsonschema.Draft7Validator.META_SCHEMA)
                   .iter_errors(schema)), f"{chart}: values.schema.json is a draft-07 schema")
    # Helm checks patterns with Go's regexp (RE2): no \u escapes, lookaround or backreferences.
    patterns = list(schema_patterns(schema))
    bad = [p for p in patterns if re.search(r"\\u|\(\?[=!<]|\\[1-9]", p)]
    check(not bad, f"{chart}: {len(patterns)} schema patterns use only RE2 syntax {bad}")
    errs = schema_errors(schema, values)
    check(not errs, f"{chart}: values.yaml validates against values.schema.json {errs[:3]}")
    check(grace_ok(values), f"{chart}: values.yaml: terminationGracePeriodSeconds "
          f"{values['terminationGracePeriodSeconds']} > preStop {values['preStop']['sleepSeconds']}"
          f" + drain {values['drainGraceSeconds']}")
    helpers = templates(chart)["_helpers.tpl"]
    workload = templates(chart)[CHARTS[chart]["workload"]]
    check(GRACE_RULE in helpers and 'include "%s.validate"' % chart in workload
          and re.search(r"if le \(int \.Values\.terminationGracePeriodSeconds\) \$stop", helpers),
          f"{chart}: the templates fail a render whose grace period is not longer than the stop")

    for kind in ("bad", "good"):
        d = os.path.join(TESTS, kind, chart)
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            with open(path, encoding="utf-8") as f:
                head = f.readline()
            merged = merge(values, load_yaml(path))
            errs = schema_errors(schema, merged)
            grace = "preStop" in merged and "drainGraceSeconds" in merged and grace_ok(merged)
            if kind == "good":
                check(not errs and grace, f"{chart}: good/{name} is accepted {errs[:3]}")
                continue
            m = re.match(r"# expect: (schema|grace)\b", head)
            if not check(m, f"{chart}: bad/{name} says what should refuse it"):
                continue
            if m.group(1) == "schema":
                check(errs, f"{chart}: bad/{name} is refused by the schema "
                      f"({errs[0] if errs else 'accepted'})")
            else:
                check(not errs and not grace,
                      f"{chart}: bad/{name} passes the schema but is refused by the grace rule")
    return values


# ---- 2: .Values references --------------------------------------------------------------------

def check_references(chart, values):
    missing = []
    count = 0
    for name, text in templates(chart).items():
        for m in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            count += 1
            node = values
            for key in m.group(1).split(".")[1:]:
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{name}: .Values{m.group(1)}")
                    break
                node = node[key]
    check(count > 0 and not missing,
          f"{chart}: all {count} .Values references exist in values.yaml {sorted(set(missing))}")


def check_structure(chart):
    """Without Go's parser: every {{ }} closes, every if/with/range/define has its end, every
    include names a template the chart defines, every .Files.Get names a file of the chart."""
    problems = []
    defined = set()
    included = set()
    for name, text in templates(chart).items():
        stack = []
        rest = text
        while "{{" in rest:
            start = rest.index("{{")
            end = rest.find("}}", start)
            if end < 0:
                problems.append(f"{name}: {{{{ without }}}}")
                break
            action = rest[start + 2:end].strip("- \n\t")
            rest = rest[end + 2:]
            if action.startswith("/*"):
                continue
            word = (action.split() or [""])[0]
            if word in ("if", "with", "range", "define", "block"):
                stack.append(word)
            elif word == "else" and not (stack and stack[-1] in ("if", "with", "range")):
                problems.append(f"{name}: else outside if/with/range")
            elif word == "end":
                if not stack:
                    problems.append(f"{name}: end without a block")
                else:
                    stack.pop()
            defined.update(re.findall(r'^define "([^"]+)"', action))
            included.update(re.findall(r'\binclude "([^"]+)"', action))
            for f in re.findall(r'\.Files\.Get "([^"]+)"', action):
                if not os.path.isfile(os.path.join(HELM, chart, f)):
                    problems.append(f"{name}: .Files.Get {f}: no such file")
        if "}}" in rest:
            problems.append(f"{name}: }}}} without {{{{")
        if stack:
            problems.append(f"{name}: {stack} not ended")
    problems += [f"include {t}: not defined" for t in sorted(included - defined)]
    check(not problems, f"{chart}: template actions are balanced, includes and files exist "
          f"({len(defined)} defines) {problems[:5]}")


# ---- 3: settings, environment, secrets, the real program --------------------------------------

def chart_settings(chart, table):
    """Checks the chart's use of the settings of its program (table: name -> env, type)."""
    c = CHARTS[chart]
    tpl = templates(chart)
    allt = "\n".join(tpl.values())
    with open(os.path.join(HELM, chart, "values.schema.json"), encoding="utf-8") as f:
        props = json.load(f)["properties"]["config"]["properties"]
    schema_config = set(props)
    envs = set(re.findall(r"\b(FSG_[A-Z0-9_]*[A-Z0-9])\b", allt))
    by_env = {s["env"]: n for n, s in table.items()}
    wrong = sorted(e for e in envs if e != c["prefix"] + "_CONFIG" and e not in by_env)
    check(envs and not wrong, f"{chart}: every FSG_* variable in the templates is a setting of "
          f"{c['program']} or {c['prefix']}_CONFIG ({len(envs)} used) {wrong}")
    # The settings the workload's environment sets (comments may name others).
    env_set = {by_env[e] for e in re.findall(r"- name: (FSG_\w+)", allt) if e in by_env}

    conf = tpl["configmap.yaml"]
    block = conf[conf.index(c["conf"] + ": |"):]
    managed = set(re.findall(r"^ {4}([a-z_]+) = ", block, re.M))
    unknown = sorted((managed | schema_config) - set(table))
    check(managed and not unknown, f"{chart}: the {len(managed)} settings the ConfigMap writes "
          f"and the {len(schema_config)} of the schema's config are settings of "
          f"{c['program']} {unknown}")
    both = sorted(managed & schema_config) + sorted(env_set & (managed | schema_config))
    check(not both, f"{chart}: no setting is both set by the chart and offered in config {both}")
    uncovered = sorted(set(table) - managed - schema_config - env_set - c["left_out"])
    check(not uncovered, f"{chart}: every setting of {c['program']} is set by the chart or "
          f"offered in the schema's config {uncovered}")
    mismatch = sorted(n for n in set(props) & set(table)
                      if not schema_fits(props[n], table[n]["type"]))
    check(not mismatch, f"{chart}: the schema's config types and bounds are the program's "
          f"{mismatch}")
    secret = {n for n, s in table.items() if "secret file" in s["type"]}
    offered = sorted(secret & (schema_config | env_set))
    check(not offered, f"{chart}: secret settings are only set by the chart, to mounted "
          f"files {offered}")

    workload = tpl[c["workload"]]
    mounts = set(re.findall(r"mountPath: (\S+)", workload))
    paths = re.findall(r'^ {4}[a-z_]+ = "(/[^"]+)"', block, re.M)
    outside = sorted(p for p in paths if os.path.dirname(p) not in mounts
                     and os.path.dirname(os.path.dirname(p)) not in mounts)
    check(paths and not outside, f"{chart}: the {len(paths)} files the config names are in "
          f"mounted volumes {outside}")
    check("secretKeyRef:" not in allt and "subPath:" not in allt,
          f"{chart}: no secret in an environment value, no subPath mount")
    absent = [line for line in SECURITY_LINES if line not in workload]
    check(not absent and re.search(r"runAsUser: \{\{ \.Values\.securityContext\.runAsUser",
                                   workload),
          f"{chart}: {c['workload']} has the restrictive security context {absent}")


def free_port():
    """A loopback port free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Program:
    """One run of a program from BIN_DIR with a config file, in its own directory."""

    def __init__(self, bin_dir, program, prefix, conf_lines, env, workdir):
        self.port = free_port()
        conf_lines = [f"port = {conf_value(self.port)}"] + conf_lines
        self.conf = os.path.join(workdir, "program.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("\n".join(conf_lines) + "\n")
        self.log = os.path.join(workdir, "program.log")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    prefix + "_CONFIG": self.conf}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if k in os.environ:
                full_env[k] = os.environ[k]
        full_env.update(env)
        with open(self.log, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen([os.path.join(bin_dir, program)], env=full_env,
                                         stdout=subprocess.DEVNULL, stderr=log, cwd=workdir)

    def text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def why(self):
        """The lines that say why it did not start: errors, or its first lines."""
        lines = self.text().splitlines()
        errors = [x for x in lines if '"level":"error"' in x or not x.startswith("{")]
        return ": " + " | ".join((errors or lines)[:3])

    def wait_listening(self, timeout=10.0):
        """Waits until the port accepts connections (the config may set a quiet log level)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self, timeout=15.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def start(bin_dir, program, prefix, conf_lines, env, workdir):
    """Starts a Program; returns it and whether it listens. Tries another port (3 times at most)
    when the free port was taken meanwhile by another test."""
    for _ in range(3):
        p = Program(bin_dir, program, prefix, conf_lines, env, workdir)
        if p.wait_listening():
            return p, True
        if "Address already in use" not in p.text():
            break
        p.stop()
    return p, False


def fetch(url, context=None):
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def secret_file(path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def gateway_files(bin_dir, d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    os.path.join(d, "tls.key"), "-out", os.path.join(d, "tls.crt")],
                   check=True, capture_output=True, timeout=60)
    subprocess.run([os.path.join(bin_dir, "fs-devtoken"), "keygen", d], check=True,
                   capture_output=True, timeout=60)
    return {"tls_cert_file": os.path.join(d, "tls.crt"),
            "tls_key_file": os.path.join(d, "tls.key"),
            "jwks_file": os.path.join(d, "dev-jwks.json"),
            "route_key_file": secret_file(os.path.join(d, "route.key")),
            "server_secret_file": secret_file(os.path.join(d, "server.secret"))}


def local_redis(config):
    """Redis on a loopback port nothing listens on, unless the values name (loopback)
    sentinels, which the test keeps as they are."""
    if config.get("redis_sentinels"):
        return {}
    return {"redis_host": "127.0.0.1", "redis_port": 1}


def run_gateway(bin_dir, values, label, d, want_metrics):
    """Starts fs-gateway with the values' config; returns its /metrics text (or None)."""
    files = gateway_files(bin_dir, d)
    config = dict(values["config"])
    # Test-only: loopback, a free port, a Redis nothing listens on, the required texts.
    config.update(local_redis(config), listen_address="127.0.0.1",
                  token_issuer=config.get("token_issuer") or "https://idp.test.example/",
                  token_audience=config.get("token_audience") or "fs-gateway-test")
    lines = [f"drain_grace = \"{values['drainGraceSeconds']}s\""]
    lines += [f"{k} = {conf_value(v)}" for k, v in files.items()]
    if config.get("client_certificates", "off") != "off":
        lines.append(f"tls_client_ca_file = {conf_value(files['tls_cert_file'])}")
    lines += [f"{k} = {conf_value(v)}" for k, v in sorted(config.items()) if v is not None]
    p, up = start(bin_dir, "fs-gateway", "FSG_GATEWAY", lines, {}, d)
    metrics = None
    try:
        check(up, f"fs-gateway: starts with the config of {label}" + ("" if up else p.why()))
        if up and want_metrics:
            ctx = ssl.create_default_context(cafile=files["tls_cert_file"])
            base = f"https://127.0.0.1:{p.port}"
            check(fetch(base + "/healthz", ctx)[0] == 200, "fs-gateway: /healthz answers 200")
            # An API request without a token, so that requests_total has a status sample.
            check(fetch(base + "/v1/jobs", ctx)[0] == 401, "fs-gateway: /v1/jobs answers 401")
            status, metrics = fetch(base + "/metrics", ctx)
            check(status == 200 and "# TYPE" in metrics, "fs-gateway: /metrics answers 200")
    finally:
        rc = p.stop()
    check(rc == 0, f"fs-gateway: stops with status 0 on SIGTERM ({label}; status {rc})")
    return metrics


def run_server(bin_dir, values, label, d):
    spool = os.path.join(d, "spool")
    config = dict(values["config"])
    config.update(local_redis(config), listen_address="127.0.0.1")
    lines = [f"spool_dir = {conf_value(spool)}",
             f"drain_grace = \"{values['drainGraceSeconds']}s\"",
             f"gateway_secret_file = {conf_value(secret_file(os.path.join(d, 'gw.secret')))}"]
    lines += [f"{k} = {conf_value(v)}" for k, v in sorted(config.items()) if v is not None]
    # As the StatefulSet does: identity and url from the environment.
    env = {"FSG_SERVER_SERVER_ID": "fs-server-0", "FSG_SERVER_URL": "http://127.0.0.1:8480"}
    p, up = start(bin_dir, "fs-server", "FSG_SERVER", lines, env, d)
    try:
        check(up, f"fs-server: starts with the config of {label}" + ("" if up else p.why()))
        if up:
            status = fetch(f"http://127.0.0.1:{p.port}/healthz")[0]
            check(200 <= status < 300, f"fs-server: /healthz answers 2xx ({status})")
    finally:
        rc = p.stop()
    check(rc == 0, f"fs-server: stops with status 0 on SIGTERM ({label}; status {rc})")


# ---- 4: dashboard and docs ---------------------------------------------------------------------

def metric_families(text):
    """{family: (type, label names)} from Prometheus text."""
    fams = {m.group(1): (m.group(2), set())
            for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M)}
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} ", text, re.M):
        if m.group(1) in fams:
            fams[m.group(1)][1].update(re.findall(r'([a-zA-Z_]\w*)="', m.group(2)))
    return fams


def dashboard_exprs(dash):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), t.get("expr", "")))
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query":
            out.append((f"variable {v['name']}", q["query"] if isinstance(q, dict) else q))
    return out


def check_dashboard(fams):
    path = os.path.join(HELM, "fs-gateway", "dashboards", "fs-gateway.json")
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except ValueError as e:
        check(False, f"dashboard: {path} parses as JSON ({e})")
        return
    check(True, "dashboard: parses as JSON")
    ds = [v for v in dash["templating"]["list"] if v.get("type") == "datasource"]
    check(ds and ds[0].get("query") == "prometheus", "dashboard: has a Prometheus datasource "
          "variable")
    uids = set()

    def walk(panels):
        for p in panels:
            if p.get("type") != "row":
                uids.add(json.dumps(p.get("datasource")))
                uids.update(json.dumps(t.get("datasource")) for t in p.get("targets", []))
            walk(p.get("panels", []))
    walk(dash["panels"])
    check(uids == {json.dumps({"type": "prometheus", "uid": "${datasource}"})},
          f"dashboard: every panel and query uses the datasource variable {sorted(uids)}")

    used = set()
    problems = []
    exprs = dashboard_exprs(dash)
    for title, expr in exprs:
        names = list(re.finditer(r"\bfsg_[a-z0-9_]+", expr))
        if not names:
            problems.append(f"{title}: no fsg_ metric in {expr!r}")
        labels_ok = set(TARGET_LABELS)
        for m in names:
            name = m.group(0)
            if name not in fams:
                problems.append(f"{title}: {name} is not in /metrics")
                continue
            used.add(name)
            kind, labels = fams[name]
            labels_ok |= labels
            in_rate = re.search(r"\b(rate|irate|increase)\(\s*$", expr[:m.start()])
            if kind == "counter" and not in_rate:
                problems.append(f"{title}: counter {name} outside rate()/increase()")
            if kind != "counter" and in_rate:
                problems.append(f"{title}: {kind} {name} inside rate()")
            sel = re.match(r"\{([^}]*)\}", expr[m.end():])
            for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)",
                                    sel.group(1) if sel else ""):
                if label not in labels | TARGET_LABELS:
                    problems.append(f"{title}: {name} has no label {label}")
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in re.findall(r"[a-zA-Z_]\w*", group):
                if label not in labels_ok:
                    problems.append(f"{title}: no label {label} to group by")
    check(not problems, f"dashboard: the {len(exprs)} PromQL expressions name only families and "
          f"labels of the real /metrics, counters in rate() and gauges not {problems[:5]}")
    unused = sorted(set(fams) - used)
    check(not unused, f"dashboard: shows all {len(fams)} metric families {unused}")

    with open(os.path.join(ROOT, "docs", "gateway.md"), encoding="utf-8") as f:
        doc = f.read()
    m = re.search(r"^## Operations\n(.*?)(?=^## )", doc, re.M | re.S)
    named = set(re.findall(r"\bfsg_gateway_[a-z0-9_]+", m.group(1) if m else ""))
    check(named == set(fams), "docs/gateway.md: the Operations section lists exactly the metric "
          f"families of /metrics (missing {sorted(set(fams) - named)}, "
          f"unknown {sorted(named - set(fams))})")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    bin_dir = os.path.abspath(sys.argv[1])
    values = {}
    for chart in CHARTS:
        values[chart] = check_values(chart)
        check_references(chart, values[chart])
        check_structure(chart)
        table = settings(bin_dir, CHARTS[chart]["program"])
        chart_settings(chart, table)
        meta = load_yaml(os.path.join(HELM, chart, "Chart.yaml"))
        version = subprocess.run([os.path.join(bin_dir, CHARTS[chart]["program"]), "--version"],
                                 capture_output=True, text=True, timeout=30).stdout.split()
        check(meta.get("apiVersion") == "v2" and meta.get("name") == chart
              and version[-1:] == [meta.get("appVersion")],
              f"{chart}: Chart.yaml names the chart, apiVersion v2, appVersion "
              f"{meta.get('appVersion')} = the program's version {version[-1:]}")

    with tempfile.TemporaryDirectory(prefix="fsg-helm-") as tmp:
        runs = [("values.yaml", values["fs-gateway"], True)]
        for name in sorted(os.listdir(os.path.join(TESTS, "good", "fs-gateway"))):
            over = load_yaml(os.path.join(TESTS, "good", "fs-gateway", name))
            runs.append((f"good/{name}", merge(values["fs-gateway"], over), False))
        metrics = None
        for i, (label, v, want) in enumerate(runs):
            d = os.path.join(tmp, f"gateway-{i}")
            os.mkdir(d)
            text = run_gateway(bin_dir, v, label, d, want)
            metrics = metrics or text
        for i, name in enumerate(["values.yaml"] +
                                 sorted(os.listdir(os.path.join(TESTS, "good", "fs-server")))):
            v = values["fs-server"]
            if name != "values.yaml":
                v = merge(v, load_yaml(os.path.join(TESTS, "good", "fs-server", name)))
                name = f"good/{name}"
            d = os.path.join(tmp, f"server-{i}")
            os.mkdir(d)
            run_server(bin_dir, v, name, d)
        if check(metrics is not None, "fs-gateway: /metrics text was read"):
            fams = metric_families(metrics)
            check(len(fams) >= 10, f"fs-gateway: /metrics has {len(fams)} metric families")
            check_dashboard(fams)

    print(f"{passes} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
