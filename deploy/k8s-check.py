#!/usr/bin/python3
"""deploy/k8s-check.py - an offline check of the Kubernetes manifests (deploy/k8s) and of the
Compose configuration, run by deploy/k8s-check.sh. No cluster is needed: `kubectl apply
--dry-run=client` still asks an API server for its schemas, and CI has none.

    k8s-check.py RENDERED.yaml [--compose MERGED.yaml] [--bin-dir BUILD_DIR]

RENDERED.yaml is `kubectl kustomize deploy/k8s` (or the kustomization's resources one after the
other). What is checked, each problem named by kind/name and field:
  - every document has a known apiVersion and kind, a metadata.name that is a DNS-1123 label;
  - workloads: the selector matches the pod template's labels; containers have a name, an image
    and an exec-form command; env values are strings; a probe's named port is a container port;
    each volumeMount names a volume of the pod (or a volumeClaimTemplate); a Job restarts
    OnFailure or Never; CPU requests where an autoscaler scales on CPU;
  - references: every ConfigMap, Secret and PersistentVolumeClaim a pod mounts, the workload an
    autoscaler scales and the pods a Service selects exist, and a Service's named targetPort is
    a port of those pods;
  - with --bin-dir: every environment variable a container (Kubernetes or Compose) sets is one
    its program reads (`<program> --help` lists each option's variable; `oaif VERB --help` for
    the CLI, whose connection variables every container may set for `oaif status` inside it),
    so that a misspelt variable, silently ignored at run time, fails here.
Exit 0 and a summary when all is well; 1 with every problem found otherwise.
"""
import os
import re
import subprocess
import sys

import yaml

KINDS = {
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Read by every program whatever its options: the run file, logging, OpenMP, `oaif health`; and
# the bus's three endpoints, which the manifests give every container alike (the run file's `bus`
# section is shared too), a program using those it needs.
GLOBAL_ENV = {"OAIF_CONFIG", "LOG_LEVEL", "LOG_FILE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
              "OAIF_HEALTH_URL", "BUS_CLIENTS_ENDPOINT", "BUS_WORKERS_ENDPOINT",
              "BUS_EVENTS_ENDPOINT"}
PROGRAMS = {"ledger", "sampler", "annotator-proxy", "reward-scorer", "strength-estimator",
            "evaluator", "trainer", "oaif"}

problems = []
checks = 0


def check(ok, where, what):
    global checks
    checks += 1
    if not ok:
        problems.append("%s: %s" % (where, what))
    return ok


def help_vars(bin_dir, cmd):
    """The environment variables `cmd --help` lists (cmd: the container's command words)."""
    prog = cmd[0]
    path = os.path.join(bin_dir, "services", prog, prog)
    args = [path] + ([cmd[1]] if prog == "oaif" and len(cmd) > 1 else []) + ["--help"]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    return set(re.findall(r"\$([A-Z][A-Z0-9_]*)", out))


def env_known(bin_dir, cache, cmd, name):
    if name in GLOBAL_ENV:
        return True
    if not cmd or cmd[0] not in PROGRAMS:
        return True  # not ours: nothing to compare with
    key = tuple(cmd[:2]) if cmd[0] == "oaif" else (cmd[0],)
    if key not in cache:
        cache[key] = help_vars(bin_dir, list(key))
    cli = ("oaif", "status")
    if cli not in cache:
        cache[cli] = help_vars(bin_dir, list(cli))
    known = cache[key] | cache[cli]
    # a secret option's VAR_FILE form (cfg: "<VAR>_FILE")
    return name in known or (name.endswith("_FILE") and name[:-5] in known)


def pod_of(doc):
    spec = doc.get("spec", {})
    return spec.get("template", {})


def check_pod(where, doc, names, bin_dir, cache):
    tmpl = pod_of(doc)
    pod = tmpl.get("spec", {})
    labels = tmpl.get("metadata", {}).get("labels", {}) or {}
    if doc["kind"] != "Job":
        sel = doc.get("spec", {}).get("selector", {}).get("matchLabels", {}) or {}
        check(sel and all(labels.get(k) == v for k, v in sel.items()), where,
              "spec.selector.matchLabels %s does not match the template's labels %s" % (sel, labels))
    else:
        check(pod.get("restartPolicy") in ("OnFailure", "Never"), where,
              "a Job's restartPolicy must be OnFailure or Never")
    volumes = {v.get("name"): v for v in pod.get("volumes", []) or []}
    for t in doc.get("spec", {}).get("volumeClaimTemplates", []) or []:
        volumes[t.get("metadata", {}).get("name")] = {"claimTemplate": True}
    for v in volumes.values():
        if "configMap" in v:
            check(("ConfigMap", v["configMap"].get("name")) in names, where,
                  "volume %s: no ConfigMap %s" % (v["name"], v["configMap"].get("name")))
        if "secret" in v:
            check(("Secret", v["secret"].get("secretName")) in names, where,
                  "volume %s: no Secret %s" % (v["name"], v["secret"].get("secretName")))
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"].get("claimName")
            check(("PersistentVolumeClaim", claim) in names, where,
                  "volume %s: no PersistentVolumeClaim %s" % (v["name"], claim))
    containers = (pod.get("initContainers", []) or []) + (pod.get("containers", []) or [])
    check(pod.get("containers"), where, "no containers")
    for c in containers:
        cw = "%s container %s" % (where, c.get("name"))
        check(c.get("name") and DNS1123.match(c["name"]), cw, "a container needs a DNS-1123 name")
        check(isinstance(c.get("image"), str) and c["image"], cw, "no image")
        cmd = c.get("command")
        check(isinstance(cmd, list) and cmd and all(isinstance(w, str) for w in cmd), cw,
              "command must be a list of strings (exec form)")
        ports = {p.get("name") for p in c.get("ports", []) or [] if p.get("name")}
        for p in c.get("ports", []) or []:
            check(isinstance(p.get("containerPort"), int), cw, "containerPort must be an integer")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = (c.get(probe) or {}).get("httpGet", {}).get("port")
            if isinstance(port, str):
                check(port in ports, cw, "%s: no container port named %s" % (probe, port))
        for e in c.get("env", []) or []:
            if "value" in e:
                check(isinstance(e["value"], str), cw,
                      "env %s: value must be a string, not %r" % (e.get("name"), e["value"]))
            if bin_dir and isinstance(cmd, list) and cmd:
                check(env_known(bin_dir, cache, cmd, e.get("name", "")), cw,
                      "env %s: %s does not read this variable" % (e.get("name"), " ".join(cmd[:2])))
        for m in c.get("volumeMounts", []) or []:
            check(m.get("name") in volumes, cw, "volumeMount %s: no such volume" % m.get("name"))
    return labels, containers


def main(argv):
    rendered, compose, bin_dir = argv[1], None, None
    rest = argv[2:]
    while rest:
        if rest[0] == "--compose":
            compose, rest = rest[1], rest[2:]
        elif rest[0] == "--bin-dir":
            bin_dir, rest = rest[1], rest[2:]
        else:
            sys.exit("k8s-check.py: unknown argument %s" % rest[0])
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    names = set()
    for d in docs:
        where = "%s/%s" % (d.get("kind"), (d.get("metadata") or {}).get("name"))
        check((d.get("apiVersion"), d.get("kind")) in KINDS, where,
              "unknown apiVersion/kind %s/%s" % (d.get("apiVersion"), d.get("kind")))
        name = (d.get("metadata") or {}).get("name", "")
        check(DNS1123.match(name or ""), where, "metadata.name must be a DNS-1123 label")
        names.add((d.get("kind"), name))
    cache = {}
    pods = {}
    for d in docs:
        where = "%s/%s" % (d["kind"], d["metadata"]["name"])
        if d["kind"] in WORKLOADS:
            pods[(d["kind"], d["metadata"]["name"])] = check_pod(where, d, names, bin_dir, cache)
    for d in docs:
        where = "%s/%s" % (d["kind"], d["metadata"]["name"])
        spec = d.get("spec", {})
        if d["kind"] == "Service":
            sel = spec.get("selector", {})
            matched = [(lab, cs) for (lab, cs) in pods.values()
                       if sel and all(lab.get(k) == v for k, v in sel.items())]
            if check(matched, where, "selector %s matches no pod template" % sel):
                ports = {p.get("name") for _, cs in matched for c in cs
                         for p in c.get("ports", []) or []}
                for p in spec.get("ports", []):
                    if isinstance(p.get("targetPort"), str):
                        check(p["targetPort"] in ports, where,
                              "port %s: no pod port named %s" % (p.get("name"), p["targetPort"]))
        if d["kind"] == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef", {})
            target = (ref.get("kind"), ref.get("name"))
            if check(target in pods, where, "scaleTargetRef %s/%s does not exist" % target):
                cpu = any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", []))
                if cpu:
                    for c in pods[target][1]:
                        check(((c.get("resources") or {}).get("requests") or {}).get("cpu"), where,
                              "scales on CPU but container %s requests none" % c.get("name"))
            check(0 < spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0), where,
                  "needs 0 < minReplicas <= maxReplicas")
    n_compose = 0
    if compose and bin_dir:
        conf = yaml.safe_load(open(compose))
        for name, svc in (conf.get("services") or {}).items():
            cmd = svc.get("command") or []
            if isinstance(cmd, str):
                cmd = cmd.split()
            for var in (svc.get("environment") or {}):
                n_compose += 1
                check(env_known(bin_dir, cache, cmd, var), "compose service %s" % name,
                      "environment %s: %s does not read this variable" % (var, " ".join(cmd[:2])))
    if problems:
        for p in problems:
            print("k8s-check: %s" % p, file=sys.stderr)
        print("k8s-check: %d problems in %d checks" % (len(problems), checks), file=sys.stderr)
        return 1
    print("k8s-check: %d documents, %d compose variables, %d checks: all passed" %
          (len(docs), n_compose, checks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
