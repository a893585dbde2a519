#!/usr/bin/env bash
# Writes the front door's Caddyfiles for Kubernetes with `minqing frontdoor`, which reads the
# routes from the services' own OpenAPI documents (never edit them by hand; run this again
# after a route changed, with the same minqing as the image's):
#   base/Caddyfile                  plain HTTP on :8080, for behind a load balancer or ingress
#   overlays/production/Caddyfile   HTTPS on :8443 with the certificate of the Secret
#                                   minqing-frontdoor-tls (HSTS), for a LoadBalancer Service
# Each service is reached by its Service's name and port (base/<service>.yaml).
# Usage: deploy/k8s/frontdoor.sh [OUTDIR]  (default: beside this script); `minqing` from PATH.
# tests/deploy/unit/test_kubernetes_manifests.py fails when the files are stale.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
upstreams=(
  --upstream intake=minqing-intake:8081
  --upstream assignment=minqing-assignment:8082
  --upstream followup=minqing-followup:8083
  --upstream projection=minqing-projection:8084
)
# No MINQING_* variable of this shell may change what is written.
clean=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}")
mkdir -p "$out/base" "$out/overlays/production"
"${clean[@]}" minqing frontdoor --listen :8080 "${upstreams[@]}" --output "$out/base/Caddyfile"
"${clean[@]}" minqing frontdoor --listen :8443 "${upstreams[@]}" \
  --tls-cert /etc/minqing/tls/tls.crt --tls-key /etc/minqing/tls/tls.key \
  --output "$out/overlays/production/Caddyfile"
