package grpcxds

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/smi-operator/smi-operator/xds/ca"
)

// IssuePEMFiles issues a certificate of the SPIFFE identity from authority and writes its chain,
// its private key and the trust bundle to files in dir, as a workload's certificate provider
// (file_watcher) reads them.
func IssuePEMFiles(dir string, authority *ca.Authority, spiffeID string) (PEMFiles, error) {
	cert, err := authority.Issue(spiffeID)
	if err != nil {
		return PEMFiles{}, err
	}
	files := PEMFiles{
		CertificateFile:   filepath.Join(dir, "cert.pem"),
		PrivateKeyFile:    filepath.Join(dir, "key.pem"),
		CACertificateFile: filepath.Join(dir, "ca.pem"),
	}
	for path, data := range map[string][]byte{
		files.CertificateFile: cert.CertChainPEM, files.PrivateKeyFile: cert.PrivateKeyPEM, files.CACertificateFile: cert.TrustBundlePEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return PEMFiles{}, err
		}
	}
	return files, nil
}

// CertificateURIs returns the URI SANs of the leaf certificates in SDS secrets (what identity an
// Envoy sidecar was given).
func CertificateURIs(secrets []*anypb.Any) ([]string, error) {
	var out []string
	for _, a := range secrets {
		secret := &tlsv3.Secret{}
		if err := a.UnmarshalTo(secret); err != nil {
			return nil, err
		}
		chain := secret.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
		if chain == nil {
			continue
		}
		block, _ := pem.Decode(chain)
		if block == nil {
			return nil, fmt.Errorf("secret %s: no PEM certificate", secret.Name)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		for _, u := range cert.URIs {
			out = append(out, u.String())
		}
	}
	return out, nil
}
