package auth

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/metadata"
)

// TokenFromContext returns the bearer token of a gRPC call: the incoming metadata
// "authorization: Bearer <token>". The error wraps [ErrUnauthenticated] and says what is wrong
// when there is no such header, more than one, or it is not a bearer token.
func TokenFromContext(ctx context.Context) (string, error) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", fmt.Errorf("%w: the call carries no metadata", ErrUnauthenticated)
	}
	values := md.Get("authorization")
	switch len(values) {
	case 0:
		return "", fmt.Errorf(`%w: no "authorization" header: send "authorization: Bearer <ServiceAccount token>"`, ErrUnauthenticated)
	case 1:
	default:
		return "", fmt.Errorf(`%w: %d "authorization" headers, want one`, ErrUnauthenticated, len(values))
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	// The scheme is case-insensitive (RFC 9110 11.1).
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf(`%w: the "authorization" header is not "Bearer <token>"`, ErrUnauthenticated)
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf(`%w: the "authorization" header's bearer token is empty or contains spaces`, ErrUnauthenticated)
	}
	return token, nil
}
