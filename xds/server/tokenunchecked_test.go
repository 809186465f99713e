package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// TestTokenUncheckedLogsOnlyTheAPIServersFailures: a token that could not be checked is answered
// so that the caller retries, and only the API server's failure is logged: the reviews at their
// bound, or the caller gone, are the caller's doing, and a flood of them must not flood the log.
func TestTokenUncheckedLogsOnlyTheAPIServersFailures(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx    context.Context
		err    error
		reason string
		code   codes.Code
		logged bool
	}{
		{context.Background(), fmt.Errorf("auth: %w (32): try again later", auth.ErrTooManyReviews), "reviews-busy", codes.Unavailable, false},
		{cancelled, fmt.Errorf("auth: reviewing the token: %w", context.Canceled), "cancelled", codes.Canceled, false},
		{context.Background(), errors.New("auth: reviewing the token: etcd is away"), "review-failed", codes.Unavailable, true},
	} {
		reason, st, logged := tokenUnchecked(tc.ctx, tc.err)
		if reason != tc.reason || status.Code(st) != tc.code || logged != tc.logged {
			t.Errorf("%v: %s, %v, logged %v; want %s, %v, logged %v", tc.err, reason, status.Code(st), logged, tc.reason, tc.code, tc.logged)
		}
	}
}
