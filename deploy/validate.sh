#!/usr/bin/env bash
# Offline validation of the deployment files: docker-compose.yml, the Dockerfiles and the
# Kubernetes manifests in deploy/k8s. Needs no Docker engine and no cluster.
#
# Tools are taken from PATH (nothing is installed here):
#   docker-compose        Compose v1 (Debian: apt-get install docker-compose), or set
#                         COMPOSE="docker compose" to use the v2 plugin
#   kubernetes-validate   pip install kubernetes-validate
#   python3 with PyYAML   (kubernetes-validate depends on PyYAML, so its venv's python3 works)
# Knobs: K8S_VERSION (default 1.33.0), COMPOSE, PYTHON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

K8S_VERSION="${K8S_VERSION:-1.33.0}"
COMPOSE="${COMPOSE:-docker-compose}"
PYTHON="${PYTHON:-python3}"
K8S_DIR="deploy/k8s"
# Custom resources (KEDA CRDs) kubernetes-validate has no schema for: checked separately below.
CRD_FILES=("$K8S_DIR/keda-scaledobject.yaml" "$K8S_DIR/nats/keda-scaledobject.yaml")

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "FAIL: '$1' not found on PATH ($2)" >&2; exit 2; }
}
need "${COMPOSE%% *}" "install docker-compose"
need kubernetes-validate "pip install kubernetes-validate"
need "$PYTHON" "python3 with PyYAML"
"$PYTHON" -c 'import yaml' 2>/dev/null || { echo "FAIL: $PYTHON cannot import yaml (PyYAML)" >&2; exit 2; }

echo "== tools"
echo "compose:             $($COMPOSE version --short 2>/dev/null || $COMPOSE version | head -n1)"
echo "kubernetes-validate: $(kubernetes-validate --version) (schemas: Kubernetes $K8S_VERSION, --strict)"
echo "python:              $(command -v "$PYTHON") ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"

echo
echo "== docker-compose.yml"
$COMPOSE -f docker-compose.yml config -q
echo "OK   $COMPOSE -f docker-compose.yml config -q"
$COMPOSE -f docker-compose.yml config | "$PYTHON" -c '
import sys, yaml
cfg = yaml.safe_load(sys.stdin)
svcs = cfg["services"]
missing = {"redis", "rabbitmq", "s3", "server", "worker", "video-worker", "webhook-worker"} - set(svcs)
assert not missing, f"missing services: {sorted(missing)}"
for name in ("server", "worker", "video-worker"):
    s = svcs[name]
    in_bucket = s.get("environment", {}).get("THUMBNAILIFY_BACKENDS_FILES") == "s3"
    for dep in ("redis", "rabbitmq", "s3") if in_bucket else ("redis", "rabbitmq"):
        cond = s.get("depends_on", {}).get(dep, {}).get("condition")
        assert cond == "service_healthy", f"{name}: depends_on {dep} is {cond!r}, want service_healthy"
    assert "healthcheck" in s, f"{name}: no healthcheck"
    mounted = "media:/data/media" in " ".join(map(str, s.get("volumes", [])))
    # Media in a bucket: no shared directory at all; else the shared volume at /data/media.
    assert mounted != in_bucket, f"{name}: media volume at /data/media: {mounted}, media in a bucket: {in_bucket}"
    for key in ("THUMBNAILIFY_BACKENDS_STORE", "THUMBNAILIFY_BACKENDS_QUEUE", "THUMBNAILIFY_BACKENDS_FILES"):
        assert key in s.get("environment", {}), f"{name}: {key} not set"
    if in_bucket:
        for key in ("THUMBNAILIFY_S3_ENDPOINT_URL", "THUMBNAILIFY_S3_BUCKET"):
            assert key in s["environment"], f"{name}: {key} not set"
for name in ("redis", "rabbitmq", "s3"):
    assert "healthcheck" in svcs[name], f"{name}: no healthcheck"
assert "-ip.bind=0.0.0.0" in svcs["s3"]["command"] and "-master.telemetry=false" in svcs["s3"]["command"], \
    "s3: must listen inside the compose network with telemetry off"
assert svcs["worker"].get("deploy", {}).get("replicas") == 2, "worker: deploy.replicas is not 2"
# The metrics thread answers while a worker hangs: only /health tells the main loop is alive.
assert "/health" in " ".join(svcs["worker"]["healthcheck"]["test"]), "worker: healthcheck does not ask /health"
assert svcs["worker"].get("restart") in ("always", "unless-stopped"), "worker: no restart policy"
video = svcs["video-worker"]
assert video.get("command", [])[-2:] == ["--kind", "video"], "video-worker: command is not python -m thumbnailify.worker --kind video"
assert video.get("image") == svcs["worker"].get("image"), "video-worker: not the worker image"
assert "/health" in " ".join(video["healthcheck"]["test"]), "video-worker: healthcheck does not ask /health"
assert video.get("restart") in ("always", "unless-stopped"), "video-worker: no restart policy"
hooks = svcs["webhook-worker"]
assert hooks.get("command", [])[-2:] == ["--kind", "webhook"], "webhook-worker: command is not python -m thumbnailify.worker --kind webhook"
assert "THUMBNAILIFY_WEBHOOKS_SECRET" in hooks.get("environment", {}), "webhook-worker: no webhooks.secret"
assert "/health" in " ".join(hooks["healthcheck"]["test"]), "webhook-worker: healthcheck does not ask /health"
assert hooks.get("restart") in ("always", "unless-stopped"), "webhook-worker: no restart policy"
assert {"s3-data", "redis-data", "rabbitmq-data"} <= set(cfg.get("volumes") or {}), "named volumes missing"
print("OK   compose services", ", ".join(sorted(svcs)), "| depends_on healthy | worker replicas=2 | video-worker --kind video | webhook-worker --kind webhook | named volumes")
'

echo
echo "== docker-compose.nats.yml (the NATS family)"
$COMPOSE -f docker-compose.nats.yml config -q
$COMPOSE -f docker-compose.nats.yml config | "$PYTHON" -c '
import sys, yaml
cfg = yaml.safe_load(sys.stdin)
svcs = cfg["services"]
assert {"nats", "s3", "server", "worker", "video-worker", "webhook-worker"} <= set(svcs), sorted(svcs)
assert not {"redis", "rabbitmq"} & set(svcs), "the NATS variant runs no Redis or RabbitMQ"
assert "-js" in svcs["nats"]["command"] and "healthcheck" in svcs["nats"], "nats: JetStream and a healthcheck"
for name in ("server", "worker", "video-worker", "webhook-worker"):
    env = svcs[name]["environment"]
    assert env["THUMBNAILIFY_BACKENDS_STORE"] == env["THUMBNAILIFY_BACKENDS_QUEUE"] == "nats", name
    assert env["THUMBNAILIFY_NATS_SERVERS"] == "nats://nats:4222", name
    assert svcs[name]["depends_on"]["nats"]["condition"] == "service_healthy", name
print("OK   docker-compose.nats.yml: nats (JetStream) instead of redis + rabbitmq, every process on it")
'

echo
echo "== Dockerfiles (static checks; building them needs a Docker engine)"
"$PYTHON" - Dockerfile.server Dockerfile.worker <<'PY'
import re, sys
for path in sys.argv[1:]:
    text = open(path).read()
    lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.lstrip().startswith("#")]
    instr = [l.split(None, 1)[0].upper() for l in lines]
    def has(pattern):
        return any(re.search(pattern, l) for l in lines)
    problems = []
    if not lines or not re.match(r"FROM\s+python:3\.11-slim-bookworm\b", lines[0]): problems.append("base is not python:3.11-slim-bookworm")
    for ins in ("WORKDIR", "USER", "HEALTHCHECK", "STOPSIGNAL", "CMD"):
        if ins not in instr: problems.append(f"no {ins}")
    if not has(r"^USER\s+10001"): problems.append("USER is not 10001")
    extra = "worker" if "worker" in path else "server"
    if not has(rf'pip install --no-cache-dir --constraint /src/requirements\.txt "/src\[{extra}\]"'):
        problems.append(f"the package's [{extra}] extra is not installed with pip --no-cache-dir at the pinned versions")
    if not has(r"PYTHONUNBUFFERED=1"): problems.append("PYTHONUNBUFFERED=1 not set")
    if not has(r"chown 10001:10001 /data/media"): problems.append("/data/media not owned by 10001")
    for l in lines:
        if "apt-get install" in l and ("--no-install-recommends" not in l or "rm -rf /var/lib/apt/lists/*" not in l):
            problems.append("apt-get install without --no-install-recommends / list cleanup in the same layer")
    if "worker" in path:
        if not has(r"libmagickwand-6\.q16-6"): problems.append("libmagickwand-6.q16-6 not installed")
        if not has(r"COPY\s+worker/imagemagick/policy\.xml\s+/etc/ImageMagick-6/policy\.xml"): problems.append("policy.xml not installed")
        if not has(r'CMD \["python", "-m", "thumbnailify.worker"\]'): problems.append("CMD is not python -m thumbnailify.worker")
        if not has(r"^HEALTHCHECK .*:9100/health"): problems.append("HEALTHCHECK does not ask :9100/health")
    else:
        if has(r"magick"): problems.append("server image should not install ImageMagick")
        if not has(r'CMD \["python", "-m", "thumbnailify.server"\]'): problems.append("CMD is not python -m thumbnailify.server")
    if problems:
        sys.exit(f"FAIL {path}: " + "; ".join(problems))
    print(f"OK   {path}")
PY

echo
echo "== Kubernetes manifests (kubernetes-validate --strict -k $K8S_VERSION)"
manifests=()
# shared-volume/pvc.yaml: the ReadWriteMany volume for backends.files: filesystem (its patch is no object);
# nats/nats.yaml: the NATS cluster for backends.store and queue: nats (config-patch.yaml is no object).
for f in "$K8S_DIR"/*.yaml "$K8S_DIR"/shared-volume/pvc.yaml "$K8S_DIR"/nats/nats.yaml; do
    skip=0
    for c in "${CRD_FILES[@]}"; do [[ "$f" == "$c" ]] && skip=1; done
    (( skip )) || manifests+=("$f")
done
out="$(kubernetes-validate --strict -k "$K8S_VERSION" "${manifests[@]}" 2>&1)" && rc=0 || rc=$?
echo "$out"
# kubernetes-validate only WARNs (exit 0) when it has no schema for a kind/apiVersion, which
# would let a typo'd apiVersion through unvalidated: treat any WARN as a failure here.
if (( rc != 0 )) || grep -q '^WARN' <<<"$out"; then
    echo "FAIL kubernetes-validate (rc=$rc)" >&2
    exit 1
fi
echo "OK   ${#manifests[@]} files validated against Kubernetes $K8S_VERSION schemas"

echo
echo "== KEDA custom resources + cross-references (inline python; no CRD schemas offline)"
"$PYTHON" - "$K8S_DIR" "${CRD_FILES[@]}" <<'PY'
import glob, os, sys, yaml

k8s_dir, crd_files = sys.argv[1], sys.argv[2:]
docs = {}
for path in sorted(glob.glob(os.path.join(k8s_dir, "*.yaml"))):
    for d in yaml.safe_load_all(open(path)):
        if d:
            docs[(d["kind"], d["metadata"]["name"])] = (path, d)

def get(d, dotted, where):
    cur = d
    for part in dotted.split("."):
        if isinstance(cur, list):
            cur = cur[int(part)] if part.isdigit() and int(part) < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            cur = None
        if cur is None:
            sys.exit(f"FAIL {where}: missing required key {dotted}")
    return cur

def names(kind):
    return {n for (k, n) in docs if k == kind}

# The NATS family's objects, apart: its StatefulSet's Services select no Deployment.
nats = {}
for path in (os.path.join(k8s_dir, "nats", "nats.yaml"), os.path.join(k8s_dir, "nats", "config-patch.yaml")):
    for d in yaml.safe_load_all(open(path)):
        if d:
            nats[d.get("kind", "patch")] = d if "kind" not in d else nats.get(d["kind"], []) + [d]
nats_stream = nats["patch"]["data"]["THUMBNAILIFY_NATS_STREAM"]
nats_ports = {p["port"] for svc in nats["Service"] if svc["metadata"]["name"] == "thumbnailify-nats"
              for p in svc["spec"]["ports"]}

# Per trigger type: the normal lane's queue or consumer of each worker Deployment, the trigger's key
# naming it, and every lane's and light part's name made from it.
LANE_NAMES = {
    "rabbitmq": ({"thumbnailify-worker": "task_queue", "thumbnailify-video-worker": "task_queue.video"},
                 "metadata.queueName",
                 lambda b: {b, f"{b}.high", f"{b}.bulk", f"{b}.light", f"{b}.high.light", f"{b}.bulk.light"}),
    "nats-jetstream": ({"thumbnailify-worker": "jobs-image", "thumbnailify-video-worker": "jobs-video"},
                       "metadata.consumer",
                       lambda b: {b, f"{b}-high", f"{b}-bulk", f"{b}-normal-light", f"{b}-high-light",
                                  f"{b}-bulk-light"}),
}

def check_rabbitmq(trig, target, w):
    if trig["metadata"].get("mode") not in ("QueueLength", "MessageRate"):
        sys.exit(f"FAIL {w}: mode must be QueueLength or MessageRate")
    if not isinstance(get(trig, "metadata.value", w), str):
        sys.exit(f"FAIL {w}: metadata.value must be a string")
    auth = get(trig, "authenticationRef.name", w)
    if auth not in names("TriggerAuthentication"):
        sys.exit(f"FAIL {w}: TriggerAuthentication {auth} not defined")

def check_nats_jetstream(trig, target, w):
    # The consumers are of the stream config-patch.yaml names, their lag read from the monitoring port.
    if get(trig, "metadata.stream", w) != nats_stream:
        sys.exit(f"FAIL {w}: stream is not {nats_stream} (THUMBNAILIFY_NATS_STREAM in nats/config-patch.yaml)")
    host, _, port = get(trig, "metadata.natsServerMonitoringEndpoint", w).rpartition(":")
    if not host.startswith("thumbnailify-nats.") or not port.isdigit() or int(port) not in nats_ports:
        sys.exit(f"FAIL {w}: natsServerMonitoringEndpoint must be a port of the Service thumbnailify-nats")
    if not isinstance(get(trig, "metadata.account", w), str):
        sys.exit(f"FAIL {w}: metadata.account must be a string")
    if not get(trig, "metadata.lagThreshold", w).isdigit():
        sys.exit(f"FAIL {w}: metadata.lagThreshold must be a whole number in a string")

TRIGGERS = {"rabbitmq": check_rabbitmq, "nats-jetstream": check_nats_jetstream}

# 1. KEDA objects: well-formed, required keys, references resolve.
for path in crd_files:
    kinds = []
    for d in yaml.safe_load_all(open(path)):
        if not d:
            continue
        where = f"{path} {d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("apiVersion") != "keda.sh/v1alpha1":
            sys.exit(f"FAIL {where}: apiVersion must be keda.sh/v1alpha1")
        kinds.append(d["kind"])
        if d["kind"] == "TriggerAuthentication":
            for ref in get(d, "spec.secretTargetRef", where):
                secret, key = ref["name"], ref["key"]
                assert ref.get("parameter"), f"{where}: secretTargetRef without parameter"
                if secret not in names("Secret"):
                    sys.exit(f"FAIL {where}: Secret {secret} not defined in {k8s_dir}")
                sdata = docs[("Secret", secret)][1].get("stringData") or docs[("Secret", secret)][1].get("data") or {}
                if key not in sdata:
                    sys.exit(f"FAIL {where}: Secret {secret} has no key {key}")
        elif d["kind"] == "ScaledObject":
            target = get(d, "spec.scaleTargetRef.name", where)
            if target not in names("Deployment"):
                sys.exit(f"FAIL {where}: scaleTargetRef {target} is not a Deployment in {k8s_dir}")
            lo, hi = d["spec"].get("minReplicaCount", 0), d["spec"].get("maxReplicaCount", 100)
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                sys.exit(f"FAIL {where}: bad min/maxReplicaCount {lo}/{hi}")
            # Each file is one family's: its triggers all of one type. Each kind of worker scales on
            # its own queues (RabbitMQ, thumbnailify/kinds.py) or durable consumers (NATS,
            # thumbnailify/backends/nats/layout.py: job_sources), two per priority lane, summed by a
            # scaling modifier whose formula names every trigger.
            want_type = "nats-jetstream" if os.sep + "nats" + os.sep in path else "rabbitmq"
            bases, key, every_lane = LANE_NAMES[want_type]
            base = bases.get(target)
            triggers = get(d, "spec.triggers", where)
            lanes = {get(trig, key, where) for trig in triggers}
            if base and lanes != every_lane(base):
                sys.exit(f"FAIL {where}: {target} must scale on {sorted(every_lane(base))}, not {sorted(lanes)}")
            formula = get(d, "spec.advanced.scalingModifiers.formula", where)
            if len(triggers) > 1 and {t.strip() for t in formula.split("+")} != {t.get("name") for t in triggers}:
                sys.exit(f"FAIL {where}: scalingModifiers.formula must add up every trigger by name")
            for i, trig in enumerate(triggers):
                w = f"{where} triggers[{i}]"
                if trig.get("type") != want_type:
                    sys.exit(f"FAIL {w}: type must be {want_type}")
                TRIGGERS[want_type](trig, target, w)
        else:
            sys.exit(f"FAIL {where}: unexpected kind")
    print(f"OK   {path}: {', '.join(kinds)} (keda.sh/v1alpha1; required keys; references resolve)")

# 2. Cross-references between the plain manifests.
for (kind, name), (path, d) in sorted(docs.items()):
    if kind != "Deployment":
        continue
    spec = d["spec"]["template"]["spec"]
    for c in spec["containers"]:
        for src in c.get("envFrom", []):
            for ref_kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in src and src[key]["name"] not in names(ref_kind):
                    sys.exit(f"FAIL {path}: {ref_kind} {src[key]['name']} not defined")
    if name in ("thumbnailify-worker", "thumbnailify-video-worker", "thumbnailify-webhook-worker"):
        probe = spec["containers"][0].get("livenessProbe", {}).get("httpGet", {}).get("path")
        if probe != "/health":
            sys.exit(f"FAIL {path}: worker liveness probe asks {probe!r}, want /health (the main loop's progress)")
    if name == "thumbnailify-video-worker" and spec["containers"][0].get("args", [])[-2:] != ["--kind", "video"]:
        sys.exit(f"FAIL {path}: the video worker does not run python -m thumbnailify.worker --kind video")
    if name == "thumbnailify-webhook-worker" and spec["containers"][0].get("args", [])[-2:] != ["--kind", "webhook"]:
        sys.exit(f"FAIL {path}: the webhook worker does not run python -m thumbnailify.worker --kind webhook")
    for v in spec.get("volumes", []):
        claim = v.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in names("PersistentVolumeClaim"):
            sys.exit(f"FAIL {path}: PVC {claim} not defined")
    print(f"OK   {path}: envFrom / PVC references resolve")
for (kind, name), (path, d) in sorted(docs.items()):
    if kind != "Service":
        continue
    sel = d["spec"]["selector"].items()
    if not any(k == "Deployment" and sel <= dd["spec"]["template"]["metadata"]["labels"].items()
               for (k, _), (_, dd) in docs.items()):
        sys.exit(f"FAIL {path}: selector matches no Deployment pod template")
    print(f"OK   {path}: selector matches a Deployment")
PY

echo
echo "ALL CHECKS PASSED"
