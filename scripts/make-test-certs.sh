#!/usr/bin/env bash
# Make a throwaway CA, a server certificate for localhost / 127.0.0.1 / ::1,
# a client certificate, and a second unrelated CA, for tests and examples.
#   scripts/make-test-certs.sh DIR
# Never use these keys for anything real.
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=30
quiet() { "$@" >/dev/null 2>&1 || { "$@"; exit 1; }; }

make_ca() { # name
    quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.pem" -days $days -subj "/CN=Tao-C test $1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

make_leaf() { # name cn ext
    quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
    printf '%s\n' "$3" > "$1.ext"
    quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$1.pem" -days $days -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
}

make_ca ca
make_ca other-ca
make_leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
make_leaf client tao-client "extendedKeyUsage=clientAuth"
echo "$dir: ca.pem server.pem server.key client.pem client.key other-ca.pem"
