package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/ca"
)

// CertificateAuthority signs the workload certificates pod agents ask for with a CSR, and rotates
// its root.
type CertificateAuthority interface {
	// Sign signs the CSR's public key as the workload certificate of spiffeID, refusing a CSR that
	// asks for anything else (ca.Authority.Sign).
	Sign(csr *x509.CertificateRequest, spiffeID string) (*ca.Certificate, error)
	TrustBundlePEM() []byte
	TrustDomain() string
	// Rotate moves the root's rotation on when it is due (ca.Authority.Rotate): a new root is in
	// the trust bundle before it signs, and the old one stays there until it expires.
	Rotate(ctx context.Context) (bundleChanged bool, err error)
}

// maxCSRBytes bounds the PEM CSR a caller may send (a P-256 CSR is about 500 bytes; RSA 4096 about
// 1,700).
const maxCSRBytes = 16 << 10

// certificateService is Istio's IstioCertificateService on the xDS server's port: a pod agent
// sends a CSR with its ServiceAccount token and gets the certificate of that ServiceAccount's
// SPIFFE ID. The workload's key never leaves the pod: no response carries a key.
type certificateService struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	s *Server
}

// CreateCertificate checks, in order: the connection is TLS (a token read on the way proves
// nothing, and the certificate would be readable too), the call carries a ServiceAccount token
// the API server accepts for the configured audiences, the CSR parses, its key is strong enough
// and its signature checks out, and its only SAN is the SPIFFE ID of the token's ServiceAccount. Then it signs the CSR's
// key for the configured certificate lifetime (a requested validity_duration is ignored) and
// returns the leaf, then the current root, as Istio's CA does.
func (c *certificateService) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	s := c.s
	authority, authenticator := s.opts.CA, s.opts.Authenticator
	if authority == nil || authenticator == nil {
		return nil, status.Error(codes.Unimplemented, "this xDS server signs no certificates (it has no CA or no token reviews)")
	}
	if p, ok := peer.FromContext(ctx); !ok || !isTLS(p) {
		s.metrics.certificates.WithLabelValues("plaintext").Inc()
		return nil, status.Error(codes.Unauthenticated, "certificates are signed over TLS only: connect to the xDS server with TLS "+
			"(and treat a token sent in plain text as disclosed)")
	}
	token, err := auth.TokenFromContext(ctx)
	if err != nil {
		s.metrics.certificates.WithLabelValues("unauthenticated").Inc()
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	caller, err := authenticator.Authenticate(ctx, token)
	if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
		return nil, tokenUnchecked(ctx, err, s.metrics.certificates, s.opts.Log, "a CSR")
	}
	if err != nil {
		s.metrics.certificates.WithLabelValues("unauthenticated").Inc()
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if limited := s.csrLimits.allow(caller); limited != nil {
		// Counted, not logged: a workload asking without end would fill the log too.
		s.metrics.certificates.WithLabelValues(limited.reason).Inc()
		return nil, status.Error(codes.ResourceExhausted, limited.Error()+": try again later")
	}
	identity := caller.Identity
	csr, err := parseCSR(req.GetCsr())
	if err != nil {
		s.metrics.certificates.WithLabelValues("bad-csr").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := ca.CheckCSRKey(csr); err != nil {
		s.metrics.certificates.WithLabelValues("bad-csr").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	spiffeID := ca.SPIFFEID(authority.TrustDomain(), identity.Namespace, identity.ServiceAccount)
	if err := ca.CheckCSR(csr, spiffeID); err != nil {
		s.metrics.certificates.WithLabelValues("other-identity").Inc()
		s.opts.Log.Info("refused a CSR", "authenticated", identity.String(), "reason", err.Error())
		return nil, status.Error(codes.PermissionDenied, fmt.Sprintf("the token proves ServiceAccount %s: %v", identity, err))
	}
	cert, err := authority.Sign(csr, spiffeID)
	if err != nil {
		s.metrics.certificates.WithLabelValues("sign-failed").Inc()
		s.opts.Log.Error(err, "cannot sign a workload certificate", "identity", identity.String())
		return nil, status.Error(codes.Internal, "cannot sign the certificate: "+err.Error())
	}
	s.metrics.certificates.WithLabelValues("issued").Inc()
	return &securityv1alpha1.IstioCertificateResponse{CertChain: []string{string(cert.CertChainPEM), firstCertificate(cert.TrustBundlePEM)}}, nil
}

func isTLS(p *peer.Peer) bool {
	_, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok
}

// parseCSR reads one PEM "CERTIFICATE REQUEST".
func parseCSR(data string) (*x509.CertificateRequest, error) {
	if len(data) > maxCSRBytes {
		return nil, fmt.Errorf("the CSR is %d bytes, more than %d", len(data), maxCSRBytes)
	}
	block, rest := pem.Decode([]byte(data))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New(`csr must be one PEM "CERTIFICATE REQUEST" block`)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("csr: trailing data after the PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return csr, nil
}

// firstCertificate is the first PEM block of bundle (the current root).
func firstCertificate(bundle []byte) string {
	block, _ := pem.Decode(bundle)
	if block == nil {
		return ""
	}
	return string(pem.EncodeToMemory(block))
}
