#!/usr/bin/env bash
# deploy/ renders offline with Debian 12's kubectl (1.20, kustomize v2.0.3) and with any newer
# kubectl on PATH to the same objects, and what it renders is a deployment that can work: RBAC
# for Nodes, a DaemonSet with NODE_NAME from the downward API, probes and resources, peers from
# the Node objects (PeerSource = kubernetes, no peer files), and a cluster-wide node file that bulwark itself accepts (no Name: NODE_NAME).
# deploy/keyservice renders once make-secrets.sh made its secrets (0600, never overwritten).
# Runs on the host; no cluster is needed. Reads YAML with Debian's python3-yaml.
. "$(dirname "$0")/../lib.sh"
top=$BULWARK_TOP
TMP=$(mktemp -d) && at_exit "rm -rf $TMP"
in_ci() { [ "${CI:-}" = true ]; }
py=/usr/bin/python3
$py -c 'import yaml' 2> /dev/null || { in_ci && die "python3-yaml missing"; skip "python3-yaml missing: run scripts/install-deps.sh"; }

debian_kubectl=
for k in "${BULWARK_KUBECTL:-}" /usr/local/lib/bulwark/kubernetes-client/usr/bin/kubectl "$(command -v kubectl)"; do
  [ -n "$k" ] && [ -x "$k" ] || continue
  if "$k" version --client 2> /dev/null | grep -q 'GitVersion:"v1\.20\.'; then debian_kubectl=$k; break; fi
done
if [ -z "$debian_kubectl" ]; then
  in_ci && die "Debian's kubectl 1.20 (kubernetes-client) missing"
  skip "Debian's kubectl 1.20 missing: run scripts/install-deps.sh"
fi
echo "# kubectl 1.20: $debian_kubectl"

"$debian_kubectl" kustomize "$top/deploy" > "$TMP/deploy.yaml" 2> "$TMP/err"
check "kubectl 1.20 kustomize deploy/ renders" test $? -eq 0
cat "$TMP/err"
if command -v kubectl > /dev/null && [ "$(command -v kubectl)" != "$debian_kubectl" ]; then
  kubectl kustomize "$top/deploy" > "$TMP/deploy-new.yaml" 2> /dev/null
  check "$(kubectl version --client 2>/dev/null | head -1 | tr -d '\n') renders it too" test $? -eq 0
  check "...to the same objects" $py -c '
import sys, yaml
a, b = (sorted(map(repr, yaml.safe_load_all(open(f)))) for f in sys.argv[1:])
sys.exit(a != b)' "$TMP/deploy.yaml" "$TMP/deploy-new.yaml"
fi

# What the rendered objects say.
$py - "$TMP/deploy.yaml" "$TMP/node.conf" > "$TMP/facts" <<'PY'
import sys, yaml
objs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(open(sys.argv[1]))}
def fact(name, ok): print(("ok " if ok else "FAIL ") + name)
sa = objs.get(("ServiceAccount", "bulwarkd"))
fact("ServiceAccount bulwarkd in kube-system", sa and sa["metadata"].get("namespace") == "kube-system")
cr = objs.get(("ClusterRole", "bulwarkd"), {})
verbs = {v for r in cr.get("rules", []) if "nodes" in r.get("resources", []) and r.get("apiGroups") == [""] for v in r["verbs"]}
fact("ClusterRole: get list watch patch on nodes", {"get", "list", "watch", "patch"} <= verbs)
fact("ClusterRole: nothing else", all(set(r.get("resources", [])) <= {"nodes"} for r in cr.get("rules", [])))
crb = objs.get(("ClusterRoleBinding", "bulwarkd"), {})
fact("ClusterRoleBinding: the role to the ServiceAccount",
     crb.get("roleRef", {}).get("name") == "bulwarkd" and
     {"kind": "ServiceAccount", "name": "bulwarkd", "namespace": "kube-system"} in crb.get("subjects", []))
ds = objs.get(("DaemonSet", "bulwarkd"), {})
pod = ds.get("spec", {}).get("template", {}).get("spec", {})
c = (pod.get("containers") or [{}])[0]
fact("DaemonSet runs as the ServiceAccount", pod.get("serviceAccountName") == "bulwarkd")
fact("DaemonSet: host network", pod.get("hostNetwork") is True)
env = {e["name"]: e for e in c.get("env", [])}
fact("DaemonSet: NODE_NAME from spec.nodeName",
     env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName")
fact("DaemonSet: readiness and liveness probes", "readinessProbe" in c and "livenessProbe" in c)
res = c.get("resources", {})
fact("DaemonSet: resource requests and a memory limit", "cpu" in res.get("requests", {}) and "memory" in res.get("limits", {}))
mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}
fact("DaemonSet: bpffs from the host", vols.get("bpffs", {}).get("hostPath", {}).get("path") == "/sys/fs/bpf"
     and mounts.get("bpffs", {}).get("mountPath") == "/sys/fs/bpf")
node_cm = objs.get(("ConfigMap", "bulwark-node-config"), {})
conf = node_cm.get("data", {}).get("bulwark.conf", "")
open(sys.argv[2], "w").write(conf)
peers_dir = [l.split("=", 1)[1].strip() for l in conf.splitlines() if l.strip().lower().startswith("peersdir")]
cfg_mount = [m for m in mounts.values() if vols.get(m["name"], {}).get("configMap", {}).get("name") == "bulwark-node-config"]
peer_mount = [m for m in mounts.values() if peers_dir and m["mountPath"] == peers_dir[0]]
fact("node file: one for the whole cluster, no Name (NODE_NAME gives it)",
     conf and not any(l.strip().lower().startswith("name") for l in conf.splitlines()))
fact("node file mounted where bulwarkd reads it",
     cfg_mount and "/etc/bulwark/bulwark.conf" in " ".join(c.get("command", [])) and cfg_mount[0]["mountPath"] == "/etc/bulwark")
keys = {l.split("=", 1)[0].strip().lower(): l.split("=", 1)[1].strip() for l in conf.splitlines() if "=" in l}
fact("node file: PeerSource = kubernetes, no PeersDir, no peer files mounted (peers come from the Nodes)",
     keys.get("peersource") == "kubernetes" and "peersdir" not in keys and not peer_mount
     and not any(v.get("configMap", {}).get("name") == "bulwark-peers" for v in vols.values()))
PY
while read -r st what; do
  if [ "$st" = ok ]; then ok "$what"; else not_ok "$what"; fi
done < "$TMP/facts"
check "every rendered fact was checked" test "$(wc -l < "$TMP/facts")" -eq 13

# bulwark accepts the rendered node file as an agent would read it (NODE_NAME set).
check "bulwark parses the rendered node file with NODE_NAME set" env NODE_NAME=node-1 bulwark net showconf --config "$TMP/node.conf"
check "...and refuses a NODE_NAME that is no node name" fails env NODE_NAME=bad/name bulwark net showconf --config "$TMP/node.conf"
check "...without NODE_NAME it takes the host name" \
  env -u NODE_NAME unshare --uts sh -c "hostname node-2 && exec bulwark net showconf --config '$TMP/node.conf'"

# The key service: secrets first (never in git), then it renders.
cp -r "$top/deploy/keyservice" "$TMP/ks"
rm -rf "$TMP/ks/secrets"
check "deploy/keyservice does not render without its secrets" fails "$debian_kubectl" kustomize "$TMP/ks"
"$TMP/ks/make-secrets.sh" keys.example.test 198.18.0.10 > /dev/null
check "make-secrets.sh writes every file 0600" test -z "$(find "$TMP/ks/secrets" -type f ! -perm 0600)"
check "...the TLS certificate names the service" sh -c "openssl x509 -in '$TMP/ks/secrets/tls.crt' -noout -ext subjectAltName | grep -q 'DNS:keys.example.test, IP Address:198.18.0.10'"
check "...and it is signed by the CA the nodes get" openssl verify -CAfile "$TMP/ks/secrets/ca.crt" "$TMP/ks/secrets/tls.crt"
sum=$(sha256sum "$TMP/ks/secrets/master")
"$TMP/ks/make-secrets.sh" other.name > /dev/null
check "...and never overwrites the master secret" test "$(sha256sum "$TMP/ks/secrets/master")" = "$sum"
"$debian_kubectl" kustomize "$TMP/ks" > "$TMP/ks.yaml" 2> "$TMP/err"
check "kubectl 1.20 kustomize deploy/keyservice renders" test $? -eq 0
$py - "$TMP/ks.yaml" > "$TMP/facts" <<'PY'
import sys, yaml
objs = list(yaml.safe_load_all(open(sys.argv[1])))
def fact(name, ok): print(("ok " if ok else "FAIL ") + name)
kinds = {o["kind"] for o in objs}
fact("key service: Namespace, Secrets, ConfigMap, Deployment, Service",
     {"Namespace", "Secret", "ConfigMap", "Deployment", "Service"} <= kinds)
fact("key service: everything in namespace bulwark-keys",
     all(o["metadata"].get("namespace") == "bulwark-keys" for o in objs if o["kind"] != "Namespace"))
sec = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Secret"}
fact("key service: the master secret, salt and signing key in a Secret",
     any({"master", "salt", "es256.pem"} <= set(s.get("data", {})) for s in sec.values()))
fact("key service: a kubernetes.io/tls Secret", any(s.get("type") == "kubernetes.io/tls" for s in sec.values()))
dep = [o for o in objs if o["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
vols = {v["name"]: v for v in dep["volumes"]}
fact("key service: secret volumes are 0600 and name the generated Secrets",
     all(v["secret"].get("defaultMode") == 0o600 and v["secret"]["secretName"] in sec for v in vols.values() if "secret" in v))
svc = [o for o in objs if o["kind"] == "Service"][0]
fact("key service: a Service on 8443", any(p["port"] == 8443 for p in svc["spec"]["ports"]))
PY
while read -r st what; do
  if [ "$st" = ok ]; then ok "$what"; else not_ok "$what"; fi
done < "$TMP/facts"
finish
