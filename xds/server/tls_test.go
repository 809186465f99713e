package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/xds/server"
)

// TestServesADSOverTLS: with a TLS configuration the server speaks TLS only: a client trusting
// its certificate is served, a plain-text one is not.
func TestServesADSOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	f := serve(t, server.Options{Settings: mesh.Settings{Access: mesh.AccessPermissive},
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	ctx := context.Background()

	ask := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(callCtx)
		if err == nil {
			err = stream.Send(&discoveryv3.DiscoveryRequest{Node: node(server.ProxyGRPC, "", ""), TypeUrl: resourcev3.ClusterType})
		}
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	if err := ask(credentials.NewTLS(&tls.Config{RootCAs: pool})); err != nil {
		t.Errorf("over TLS: %v", err)
	}
	if err := ask(insecure.NewCredentials()); err == nil {
		t.Error("a plain-text client was served by a TLS server")
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
