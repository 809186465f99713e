package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smi-operator/smi-operator/xds/auth"
	"github.com/smi-operator/smi-operator/xds/server"
)

// identityToken is a token identityTokens takes as proof of id: an unsigned JWT naming the
// ServiceAccount as its subject (as the API server's tokens do), valid for an hour, which grpc-go's
// jwt_token_file call credentials accept.
func identityToken(id auth.Identity) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{
		"sub": "system:serviceaccount:" + id.Namespace + ":" + id.ServiceAccount,
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte("unsigned"))
}

// identityTokenFile writes identityToken(id) to a file in dir, for a bootstrap's JWTTokenFile.
func identityTokenFile(dir string, id auth.Identity) (string, error) {
	path := filepath.Join(dir, "token-"+id.Namespace+"-"+id.ServiceAccount)
	return path, os.WriteFile(path, []byte(identityToken(id)), 0o600)
}

// identityTokens is an xDS server Authenticator for these tests, which have no API server: it takes an
// identityToken as proof of the identity it names, and hands any other token to Next (refused
// when Next is nil).
type identityTokens struct {
	Next server.Authenticator
}

func (t identityTokens) Authenticate(ctx context.Context, token string) (auth.Caller, error) {
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
	return auth.Caller{}, fmt.Errorf("%w: unknown token", auth.ErrUnauthenticated)
}
