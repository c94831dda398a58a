#!/usr/bin/env bash
# Make a private CA, a server certificate (localhost, 127.0.0.1 and any extra names given) and a client
# certificate for TLS/mTLS between our services. For development and tests; in production use your PKI.
#   scripts/dev_certs.sh DIR [NAME...]   ->  DIR/ca.pem server.pem server.key client.pem client.key
set -euo pipefail
dir=${1:?usage: scripts/dev_certs.sh DIR [EXTRA_DNS_NAME...]}
shift
mkdir -p "$dir"
cd "$dir"
san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do san="$san,DNS:$name"; done
quiet() { "$@" 2>/dev/null; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=seedasr dev CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
issue() {  # NAME CN EXTENSIONS
  quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -out "$1.pem" -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
issue server localhost "subjectAltName=$san
extendedKeyUsage=serverAuth"
issue client seedasr-client "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
echo "wrote $dir/{ca.pem,server.pem,server.key,client.pem,client.key}"
