#!/usr/bin/env bash
# deploy/k8s-check.sh - checks deploy/k8s offline (no cluster), and the environment variables of
# compose.yaml: deploy/k8s-check.py says what is checked. The manifests are rendered with
# `kubectl kustomize` where kubectl is installed (it needs no API server for that), else read as
# the kustomization lists them. The variables are compared with the programs' own --help, from
# the plain build (BUILD_DIR, default build/). deploy/test.sh runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bin_dir=$here/${BUILD_DIR:-build}
# Debian's python3 with PyYAML (docker-compose depends on it too).
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml \
        >/dev/null
fi
out=$(mktemp -d /tmp/oaif-k8s-check.XXXXXX)
trap 'rm -rf "$out"' EXIT
if command -v kubectl >/dev/null; then
    kubectl kustomize deploy/k8s >"$out/k8s.yaml"
    how="kubectl kustomize"
else
    /usr/bin/python3 - >"$out/k8s.yaml" <<'PY'
import yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
for r in k["resources"]:
    print("---")
    print(open("deploy/k8s/" + r).read())
PY
    how="the kustomization's resources (no kubectl)"
fi
args=("$out/k8s.yaml" --bin-dir "$bin_dir")
if command -v docker-compose >/dev/null; then
    docker-compose -f compose.yaml -f deploy/compose.curve.yaml config >"$out/compose.yaml"
    args+=(--compose "$out/compose.yaml")
else
    echo "k8s-check: no docker-compose: compose.yaml's variables are not checked"
fi
echo "k8s-check: deploy/k8s rendered by $how"
/usr/bin/python3 deploy/k8s-check.py "${args[@]}"
