#!/usr/bin/env bash
# Regenerates the identity test fixtures (see README.md). Run from this folder.
set -euo pipefail
days=36500
ext() { printf '%s\n' "$@" > ext.cnf; }
# A CA and an unrelated second CA.
for n in ca other-ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -keyout $n.key -out $n.pem -days $days -sha256 \
    -subj "/O=evgrid test/CN=$n" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
done
# A leaf signed by the CA, with a CN and one SAN of each kind.
openssl req -new -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/O=evgrid test/CN=device-1"
ext "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" \
  "subjectAltName=DNS:device-1.example.com,URI:urn:device:1,IP:10.0.0.7,email:device-1@example.com"
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days $days -sha256 -extfile ext.cnf
# A self-signed leaf.
openssl req -x509 -newkey rsa:2048 -nodes -keyout self.key -out self.pem -days $days -sha256 \
  -subj "/CN=self-1" -addext basicConstraints=CA:FALSE -addext extendedKeyUsage=clientAuth
# The custom JWT issuer: an RSA 2048 key (PKCS#8) and its self-signed certificate.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out jwt.key
openssl req -x509 -key jwt.key -out jwt.pem -days $days -sha256 -subj "/CN=jwt issuer"
openssl pkcs8 -topk8 -nocrypt -in jwt.key -outform DER -out jwt.pk8
# A second issuer key (a token signed by it must fail).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out jwt-other.key
openssl pkcs8 -topk8 -nocrypt -in jwt-other.key -outform DER -out jwt-other.pk8
# A CA valid 10 days (expired at the tests' NOW) and a 100-year leaf it signed.
openssl req -x509 -newkey rsa:2048 -nodes -keyout short-ca.key -out short-ca.pem -days 10 -sha256 \
  -subj "/O=evgrid test/CN=short-ca" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req -new -newkey rsa:2048 -nodes -keyout short-leaf.key -out short-leaf.csr -subj "/CN=device-1"
ext "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
openssl x509 -req -in short-leaf.csr -CA short-ca.pem -CAkey short-ca.key -CAcreateserial -out short-leaf.pem -days $days -sha256 -extfile ext.cnf
# A v3 certificate without basicConstraints (not a CA), and a v1 certificate (may be one).
ext "keyUsage=critical,keyCertSign"
openssl req -new -newkey rsa:2048 -nodes -keyout nobc.key -out nobc.csr -subj "/CN=no-bc"
openssl x509 -req -in nobc.csr -signkey nobc.key -out v3-no-bc.pem -days $days -sha256 -extfile ext.cnf
openssl x509 -req -in nobc.csr -signkey nobc.key -out v1.pem -days $days -sha256
rm -f ext.cnf leaf.csr short-leaf.csr nobc.csr ca.srl short-ca.srl *.key
