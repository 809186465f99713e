package grpcxds

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// CallCredsEnv is grpc-go's switch for bootstrap call_creds (gRFC A97): without it grpc-go
// ignores a bootstrap's jwt_token_file and its xDS streams carry no token. It is read once, when
// grpc-go initialises.
const CallCredsEnv = "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS"

// RunWithCallCreds runs run in a process whose grpc-go sends bootstrap call_creds: this one when
// CallCredsEnv is set, else the same program started again in its place with it set. A TestMain
// calls it, so that the package's proxyless clients prove their identity with a token, as
// injected workloads do.
func RunWithCallCreds(run func() int) int {
	if os.Getenv(CallCredsEnv) == "true" {
		return run()
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "grpcxds: cannot find this program to start it with %s=true: %v\n", CallCredsEnv, err)
		return 1
	}
	err = syscall.Exec(self, os.Args, append(os.Environ(), CallCredsEnv+"=true"))
	fmt.Fprintf(os.Stderr, "grpcxds: cannot start this program again with %s=true: %v\n", CallCredsEnv, err)
	return 1
}

// IdentityToken is a token IdentityTokens takes as proof of id: an unsigned JWT naming the
// ServiceAccount as its subject (as the API server's tokens do), valid for an hour, which grpc-go's
// jwt_token_file call credentials accept.
func IdentityToken(id auth.Identity) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{
		"sub": "system:serviceaccount:" + id.Namespace + ":" + id.ServiceAccount,
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte("unsigned"))
}

// IdentityTokenFile writes IdentityToken(id) to a file in dir, for a bootstrap's JWTTokenFile.
func IdentityTokenFile(dir string, id auth.Identity) (string, error) {
	path := filepath.Join(dir, "token-"+id.Namespace+"-"+id.ServiceAccount)
	return path, os.WriteFile(path, []byte(IdentityToken(id)), 0o600)
}

// IdentityTokens is an xDS server Authenticator for tests without an API server: it takes an
// IdentityToken as proof of the identity it names, and hands any other token to Next (refused
// when Next is nil).
type IdentityTokens struct {
	Next interface {
		Authenticate(ctx context.Context, token string) (auth.Caller, error)
	}
}

func (t IdentityTokens) Authenticate(ctx context.Context, token string) (auth.Caller, error) {
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var claims struct {
				Sub string `json:"sub"`
			}
			if json.Unmarshal(payload, &claims) == nil {
				if rest, ok := strings.CutPrefix(claims.Sub, "system:serviceaccount:"); ok {
					if ns, sa, ok := strings.Cut(rest, ":"); ok {
						return auth.Caller{Identity: auth.Identity{Namespace: ns, ServiceAccount: sa}}, nil
					}
				}
			}
		}
	}
	if t.Next != nil {
		return t.Next.Authenticate(ctx, token)
	}
	return auth.Caller{}, errUnknownToken
}
