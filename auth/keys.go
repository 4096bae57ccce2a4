package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits is the smallest RSA modulus accepted for token verification.
const minRSABits = 2048

// keySet holds the JWT verification keys by kind. Each kind allows only its
// own algorithms, so a token can never pick how a key is used: an HS256
// token is checked against the secret alone, never against a public key's
// bytes.
type keySet struct {
	secret []byte                        // HS256/384/512
	rsa    []*rsa.PublicKey              // RS* and PS*
	ec     map[string][]*ecdsa.PublicKey // by alg: ES256 (P-256), ES384 (P-384), ES512 (P-521)
	ed     []ed25519.PublicKey           // EdDSA
}

// empty reports whether no token could ever verify.
func (k *keySet) empty() bool {
	return len(k.secret) == 0 && len(k.rsa) == 0 && len(k.ec) == 0 && len(k.ed) == 0
}

// methods returns the algorithms the configured keys allow. It never returns
// nil, because jwt.WithValidMethods(nil) would allow every algorithm.
func (k *keySet) methods() []string {
	m := []string{}
	if len(k.secret) > 0 {
		m = append(m, "HS256", "HS384", "HS512")
	}
	if len(k.rsa) > 0 {
		m = append(m, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	}
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		if len(k.ec[alg]) > 0 {
			m = append(m, alg)
		}
	}
	if len(k.ed) > 0 {
		m = append(m, "EdDSA")
	}
	return m
}

// forAlg returns every key that may verify a token signed with alg.
func (k *keySet) forAlg(alg string) []jwt.VerificationKey {
	var keys []jwt.VerificationKey
	switch {
	case strings.HasPrefix(alg, "HS") && len(k.secret) > 0:
		keys = append(keys, k.secret)
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		for _, key := range k.rsa {
			keys = append(keys, key)
		}
	case strings.HasPrefix(alg, "ES"):
		for _, key := range k.ec[alg] {
			keys = append(keys, key)
		}
	case alg == "EdDSA":
		for _, key := range k.ed {
			keys = append(keys, key)
		}
	}
	return keys
}

// add files key under its kind, refusing kinds and sizes that are unsafe or
// that no JWT algorithm uses.
func (k *keySet) add(key crypto.PublicKey) error {
	switch key := key.(type) {
	case *rsa.PublicKey:
		if bits := key.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("RSA key has %d bits; at least %d are required", bits, minRSABits)
		}
		k.rsa = append(k.rsa, key)
	case *ecdsa.PublicKey:
		alg, ok := curveAlg(key.Curve)
		if !ok {
			return fmt.Errorf("ECDSA curve %s is not used by JWT; use P-256, P-384 or P-521", key.Curve.Params().Name)
		}
		if k.ec == nil {
			k.ec = make(map[string][]*ecdsa.PublicKey)
		}
		k.ec[alg] = append(k.ec[alg], key)
	case ed25519.PublicKey:
		k.ed = append(k.ed, key)
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// curveAlg pins each ECDSA curve to the one algorithm defined for it.
func curveAlg(c elliptic.Curve) (string, bool) {
	switch c {
	case elliptic.P256():
		return "ES256", true
	case elliptic.P384():
		return "ES384", true
	case elliptic.P521():
		return "ES512", true
	}
	return "", false
}

// loadKeyFile adds every key in the PEM file at path.
func (k *keySet) loadKeyFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		key, err := parsePEMKey(block)
		if err == nil {
			err = k.add(key)
		}
		if err != nil {
			return fmt.Errorf("PEM block %d: %w", n, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("no PEM block found")
	}
	return nil
}

// parsePEMKey returns the public key in one PEM block.
func parsePEMKey(block *pem.Block) (crypto.PublicKey, error) {
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		// A verifier never needs the private key; refusing it keeps
		// signing material off the sidecar.
		return nil, fmt.Errorf("%q block: give the public key only, never the private key", block.Type)
	}
	return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
}
