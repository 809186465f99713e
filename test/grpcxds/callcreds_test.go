package grpcxds_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

// callCredsEnv: grpc-go reads it once, when its package initialises, so a test can only flip it
// by starting a new process.
const callCredsEnv = grpcxds.CallCredsEnv

// TestBootstrapCallCreds: can a grpc-go xDS client present a bearer token to the management
// server? Yes, with bootstrap call_creds [{type: jwt_token_file, config: {jwt_token_file: …}}],
// but only when the process starts with GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true and the
// channel credentials are "tls": every ADS stream then carries "authorization: Bearer <token>".
// Without the variable the field is ignored (the stream carries no authorization, nothing fails).
// With the variable and "insecure" channel credentials the xDS channel cannot be made at all
// (the JWT credentials require transport security) and RPCs fail.
//
// This process checks the variable-unset half, then runs this test again in a child process with
// the variable set for the other half.
func TestBootstrapCallCreds(t *testing.T) {
	netns.Require(t)
	ctx := testContext(t)
	enabled := os.Getenv(callCredsEnv) == "true"

	ca := newCA(t)
	adsFiles := ca.issue(t, "ads", "", netns.Addr(1)) // verified against the server_uri's IP
	cert, err := tls.LoadX509KeyPair(adsFiles.CertificateFile, adsFiles.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cp := startControlPlane(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	token := fakeJWT(t, time.Now().Add(time.Hour))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	b := backend(t, "behind-auth", netns.HostPort(11, 0))
	const target = "auth.ns.svc.cluster.local:80"
	cp.set(t, "client",
		apiListener(target, "auth"),
		routeConfig("auth", "*", route(prefix("/"), weighted{"auth", 1})),
		edsCluster("auth", nil), endpoints(t, "auth", b.Addr))

	bootstrap := cp.bootstrap("client")
	bootstrap.ServerTLS = &grpcxds.PEMFiles{CACertificateFile: ca.caFile}
	bootstrap.JWTTokenFile = tokenFile
	if err := grpcxds.WaitFor(ctx, dial(t, target, bootstrap), grpcxds.FromBackend("behind-auth")); err != nil {
		t.Fatalf("over TLS with call_creds (%s=%v): %v", callCredsEnv, enabled, err)
	}
	auth := cp.authorizations()
	if len(auth) == 0 {
		t.Fatal("the management server saw no stream")
	}

	if !enabled {
		if slices.ContainsFunc(auth, func(a string) bool { return a != "" }) {
			t.Fatalf("without %s the ADS streams carried authorization %q", callCredsEnv, auth)
		}
		child(t)
		return
	}

	for _, a := range auth {
		if a != "Bearer "+token {
			t.Fatalf("ADS stream authorization %q, want Bearer <token file contents>", a)
		}
	}
	// The same over plaintext: fine without call_creds, impossible with them.
	plain := startControlPlane(t)
	plain.set(t, "client",
		apiListener(target, "auth"),
		routeConfig("auth", "*", route(prefix("/"), weighted{"auth", 1})),
		edsCluster("auth", nil), endpoints(t, "auth", b.Addr))
	if err := grpcxds.WaitFor(ctx, dial(t, target, plain.bootstrap("client")), grpcxds.FromBackend("behind-auth")); err != nil {
		t.Fatalf("over plaintext without call_creds: %v", err)
	}
	insecureWithToken := plain.bootstrap("client")
	insecureWithToken.JWTTokenFile = tokenFile
	shortCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = grpcxds.Call(shortCtx, dial(t, target, insecureWithToken))
	t.Logf("insecure channel creds with call_creds: %v", err)
	if err == nil {
		t.Fatal("an insecure xDS channel with JWT call credentials worked")
	}
}

// child runs TestBootstrapCallCreds again in a new process with callCredsEnv=true.
func child(t *testing.T) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestBootstrapCallCreds$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), callCredsEnv+"=true")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestBootstrapCallCreds") {
		t.Fatalf("with %s=true: %v\n%s", callCredsEnv, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "callcreds_test.go") {
			t.Log("child:", strings.TrimSpace(line))
		}
	}
}

// fakeJWT is an unsigned JWT expiring at exp: grpc-go reads only the exp claim.
func fakeJWT(t *testing.T, exp time.Time) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":"client","exp":%d}`, exp.Unix())) + "." + enc([]byte("unsigned"))
}
