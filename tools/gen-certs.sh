#!/usr/bin/env bash
# Development PKI for EdgeCache, made with the openssl CLI.
#
#   tools/gen-certs.sh DIR TENANT...
#
# Writes DIR/ca.crt|.key, DIR/origin.crt|.key (role origin, node origin; hosts localhost,
# 127.0.0.1) and, per tenant, DIR/edge-TENANT.crt|.key (role edge, node edge-TENANT: the edge's
# client certificate to the origin and the server certificate of its API) and
# DIR/client-TENANT.crt|.key (role client: a clinical app of that tenant; names no host).
#
# How a certificate names its holder (docs/OPERATIONS.md, "Certificates"): URI subject
# alternative names urn:edgecache:tenant:TENANT, urn:edgecache:role:edge|client|origin and
# urn:edgecache:node:NODE. Keys are ECDSA P-256. Never use this PKI in production.
# EDGECACHE_ORIGIN_SANS adds names to the origin's certificate (e.g. IP:10.231.0.2 for the drills'
# network namespace). EDGECACHE_EDGE_SANS sets the host names of the edge certificates: only the
# names the edge's own apps use to reach its API (default DNS:localhost,IP:127.0.0.1, for an
# edge and its apps on one host, as in the demo); an edge needs no other host name, and the
# origin's host names belong on the origin's certificate only. EDGECACHE_CERT_DAYS sets the
# validity (default 825 days).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 DIR TENANT..." >&2
    exit 2
fi
dir=$1
shift
for tenant in "$@"; do
    if ! [[ "$tenant" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]]; then
        echo "gen-certs: tenant '$tenant' must be lowercase letters, digits and dashes" >&2
        exit 2
    fi
done
edge_sans=${EDGECACHE_EDGE_SANS:-DNS:localhost,IP:127.0.0.1}
if ! [[ "$edge_sans" =~ ^((DNS|IP):[A-Za-z0-9.:*-]+)(,(DNS|IP):[A-Za-z0-9.:*-]+)*$ ]]; then
    echo "gen-certs: EDGECACHE_EDGE_SANS must be DNS:NAME and IP:ADDRESS entries separated by commas" >&2
    exit 2
fi
command -v openssl >/dev/null || { echo "gen-certs: openssl is required" >&2; exit 1; }
mkdir -p "$dir"
umask 077
days=${EDGECACHE_CERT_DAYS:-825}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f "$dir/ca.key" ]; then
    newkey "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/O=EdgeCache Development/CN=EdgeCache Dev CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.crt" 2>/dev/null
fi

# issue NAME CN EXTENSIONS
issue() {
    local name=$1 cn=$2 ext=$3
    newkey "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/O=EdgeCache Development/CN=$cn" -out "$work/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" > "$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -CAserial "$work/ca.srl" -days "$days" -sha256 -extfile "$work/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

common="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment"

issue origin origin "$common
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1${EDGECACHE_ORIGIN_SANS:+,$EDGECACHE_ORIGIN_SANS},URI:urn:edgecache:role:origin,URI:urn:edgecache:node:origin"

for tenant in "$@"; do
    issue "edge-$tenant" "edge-$tenant" "$common
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$edge_sans,URI:urn:edgecache:tenant:$tenant,URI:urn:edgecache:role:edge,URI:urn:edgecache:node:edge-$tenant"
    issue "client-$tenant" "client-$tenant" "$common
extendedKeyUsage=clientAuth
subjectAltName=URI:urn:edgecache:tenant:$tenant,URI:urn:edgecache:role:client"
done
chmod 600 "$dir"/*.key
chmod 644 "$dir"/*.crt
echo "gen-certs: wrote CA, origin and edge/client certificates for: $*" >&2
