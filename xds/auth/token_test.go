package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestTokenFromContext(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ctx     context.Context
		want    string
		wantErr string
	}{
		{"bearer", incoming("authorization", "Bearer abc.def.ghi"), "abc.def.ghi", ""},
		{"scheme in lower case", incoming("authorization", "bearer abc"), "abc", ""},
		{"header name in any case", incoming("Authorization", "Bearer abc"), "abc", ""},
		{"extra spaces", incoming("authorization", "  Bearer   abc  "), "abc", ""},
		{"no metadata", context.Background(), "", "carries no metadata"},
		{"outgoing metadata only", metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", "Bearer abc")), "", "carries no metadata"},
		{"no header", incoming("x-other", "Bearer abc"), "", `no "authorization" header`},
		{"two headers", incoming("authorization", "Bearer a", "authorization", "Bearer b"), "", `2 "authorization" headers`},
		{"basic", incoming("authorization", "Basic dXNlcjpwYXNz"), "", `is not "Bearer <token>"`},
		{"token only", incoming("authorization", "abc"), "", `is not "Bearer <token>"`},
		{"scheme only", incoming("authorization", "Bearer"), "", `is not "Bearer <token>"`},
		{"empty", incoming("authorization", ""), "", `is not "Bearer <token>"`},
		{"two tokens", incoming("authorization", "Bearer a b"), "", "empty or contains spaces"},
		{"tab inside", incoming("authorization", "Bearer a\tb"), "", "empty or contains spaces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TokenFromContext(tt.ctx)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("got %q, %v; want an ErrUnauthenticated error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

func incoming(kv ...string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
}
