#!/usr/bin/env bash
# Checks deploy/kubernetes/ against a real Kubernetes API server (v1.20.2, built offline and
# run on loopback by ../shared/tools/kube-control-plane.sh; no kubelet, so pods stay Pending):
#   1. every manifest is accepted by `kubectl apply --dry-run=server` (real validation and
#      admission),
#   2. applied for real,
#   3. the DaemonSet controller creates the fcx pod and the scheduler binds it to the
#      registered node.
# Not part of .ci/run (the control plane takes ~4 min to build once). Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'k8s-check: FAILED: %s\n' "$*" >&2; exit 1; }
KCP=${KCP:-$(cd .. && pwd)/shared/tools/kube-control-plane.sh}
[ -f "$KCP" ] || KCP=/work/shared/tools/kube-control-plane.sh
[ -f "$KCP" ] || die "kube-control-plane.sh not found (set KCP=path)"
command -v kubectl >/dev/null || die "kubectl missing (apt-get install kubernetes-client)"

DIR=$(mktemp -d /tmp/fcx-k8s.XXXXXX)
cleanup() { bash "$KCP" stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
bash "$KCP" build
bash "$KCP" start "$DIR"
export KUBECONFIG=$DIR/kubeconfig
for _ in $(seq 1 60); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 1; done
kubectl get nodes

say "server-side dry run of the namespace, then of every manifest in it"
# A server-side dry run of a namespaced object needs its namespace to exist (a dry run of
# the Namespace creates nothing), so the namespace goes first, for real.
kubectl apply --dry-run=server -f deploy/kubernetes/namespace.yaml
kubectl apply -f deploy/kubernetes/namespace.yaml
kubectl apply --dry-run=server -k deploy/kubernetes
say "applying for real"
kubectl apply -k deploy/kubernetes

say "waiting for the DaemonSet's pod to be created and scheduled"
node=""
for _ in $(seq 1 90); do
  node=$(kubectl -n fcx get pods -l app=fcx -o jsonpath='{.items[*].spec.nodeName}' 2>/dev/null || true)
  [ -n "$node" ] && break
  sleep 1
done
kubectl -n fcx get daemonset,pods,service,secret -o wide
[ -n "$node" ] || die "no fcx pod was scheduled onto a node"
desired=$(kubectl -n fcx get daemonset fcx -o jsonpath='{.status.desiredNumberScheduled}')
nodes=$(kubectl get nodes --no-headers | wc -l)
[ "$desired" = "$nodes" ] || die "DaemonSet wants $desired pods for $nodes nodes"
caps=$(kubectl -n fcx get daemonset fcx -o jsonpath='{.spec.template.spec.containers[0].securityContext.capabilities.add}')
priv=$(kubectl -n fcx get daemonset fcx -o jsonpath='{.spec.template.spec.containers[0].securityContext.privileged}')
[ "$priv" != "true" ] || die "the DaemonSet must not be privileged"
say "OK: manifests accepted, DaemonSet pod created and scheduled onto node $node (capabilities $caps)"
