#!/bin/sh
# Development certificates for deploy/nats/nats-tls.conf: a CA, a server certificate
# valid for the names NATS is reached by (localhost, nats, the Kubernetes service and
# pod names), and one client certificate for lockstep processes (mutual TLS).
# For production use your own CA (cert-manager, Vault...); the file names are the contract.
#
#   deploy/nats/gen-dev-certs.sh [OUT_DIR] [EXTRA_DNS_NAME ...]
#
# Writes OUT_DIR (default deploy/nats/certs): ca.pem ca-key.pem server-cert.pem
# server-key.pem client-cert.pem client-key.pem. Keys are mode 0600.
set -eu

out="${1:-$(dirname "$0")/certs}"
[ "$#" -gt 0 ] && shift
days="${LOCKSTEP_CERT_DAYS:-365}"
ns="${LOCKSTEP_NAMESPACE:-lockstep}"

mkdir -p "$out"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

san="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:nats,DNS:nats.$ns,DNS:nats.$ns.svc,DNS:nats.$ns.svc.cluster.local"
san="$san,DNS:*.nats-headless,DNS:*.nats-headless.$ns,DNS:*.nats-headless.$ns.svc,DNS:*.nats-headless.$ns.svc.cluster.local"
for name in "$@"; do san="$san,DNS:$name"; done

# CA
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -keyout "$out/ca-key.pem" -out "$out/ca.pem" -subj "/CN=lockstep dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# server (also used for routes between cluster members, hence clientAuth too)
openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$out/server-key.pem" -out "$tmp/server.csr" \
  -subj "/CN=nats" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" > "$tmp/server.ext"
openssl x509 -req -sha256 -days "$days" -in "$tmp/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
  -CAcreateserial -CAserial "$tmp/ca.srl" -extfile "$tmp/server.ext" -out "$out/server-cert.pem" 2>/dev/null

# client
openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$out/client-key.pem" -out "$tmp/client.csr" \
  -subj "/CN=lockstep-client" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$tmp/client.ext"
openssl x509 -req -sha256 -days "$days" -in "$tmp/client.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
  -CAserial "$tmp/ca.srl" -extfile "$tmp/client.ext" -out "$out/client-cert.pem" 2>/dev/null

chmod 600 "$out"/*-key.pem
chmod 644 "$out/ca.pem" "$out/server-cert.pem" "$out/client-cert.pem"
openssl verify -CAfile "$out/ca.pem" "$out/server-cert.pem" "$out/client-cert.pem" >/dev/null
echo "wrote $out: ca.pem server-cert.pem server-key.pem client-cert.pem client-key.pem" >&2
