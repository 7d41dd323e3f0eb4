#!/usr/bin/env bash
# Install the Debian packages chaosmesh_istio needs, only those missing.
#   kubectl     (kubernetes-client) drives the control plane in tests, as users do
#   openssl     makes the local control plane's TLS certificates
#   prometheus  the local mesh's metrics server
#   chromium    renders report.html headless in tests (no script runs, charts show)
# With "bench", also what `make bench` compares against:
#   wrk         an HTTP load generator in C (Locust vs wrk, proxy throughput)
#   nginx       a reverse proxy to compare the data plane's throughput with
set -euo pipefail

missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${1:-}" = "bench" ]; then
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]}; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
