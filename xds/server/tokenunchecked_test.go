package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/smi-operator/smi-operator/xds/auth"
)

// TestTokenUncheckedLogsOnlyTheAPIServersFailures: a token that could not be checked is answered
// so that the caller retries and counted by reason, and only the API server's failure is logged:
// the reviews at their bound, or the caller gone, are the caller's doing, and a flood of them must
// not flood the log.
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
		{context.Background(), fmt.Errorf("auth: %w (10.0.0.1, 2): try again later", auth.ErrTooManyPeerReviews), "peer-reviews-busy", codes.Unavailable, false},
		{cancelled, fmt.Errorf("auth: reviewing the token: %w", context.Canceled), "cancelled", codes.Canceled, false},
		{context.Background(), errors.New("auth: reviewing the token: etcd is away"), "review-failed", codes.Unavailable, true},
	} {
		counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"reason"})
		logged := false
		log := funcr.New(func(string, string) { logged = true }, funcr.Options{})
		st := tokenUnchecked(tc.ctx, tc.err, counter, log, "a test call")
		count := &dto.Metric{}
		if err := counter.WithLabelValues(tc.reason).Write(count); err != nil {
			t.Fatal(err)
		}
		if status.Code(st) != tc.code || logged != tc.logged || count.GetCounter().GetValue() != 1 {
			t.Errorf("%v: %v, logged %v, counted as %s %v times; want %v, logged %v, counted once",
				tc.err, status.Code(st), logged, tc.reason, count.GetCounter().GetValue(), tc.code, tc.logged)
		}
	}
}
