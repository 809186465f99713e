package ca

import (
	"strings"
	"testing"
)

func TestParseSPIFFEID(t *testing.T) {
	const td = "cluster.local"
	tests := []struct {
		id      string
		ns, sa  string
		wantErr string // substring of the error; "" means valid
	}{
		{id: "spiffe://cluster.local/ns/default/sa/bookbuyer", ns: "default", sa: "bookbuyer"},
		{id: "spiffe://cluster.local/ns/a-b/sa/x.y-z", ns: "a-b", sa: "x.y-z"},
		{id: "", wantErr: `must start with "spiffe://"`},
		{id: "https://cluster.local/ns/default/sa/x", wantErr: `must start with "spiffe://"`},
		{id: "SPIFFE://cluster.local/ns/default/sa/x", wantErr: `must start with "spiffe://"`},
		{id: "spiffe:cluster.local/ns/default/sa/x", wantErr: `must start with "spiffe://"`},
		{id: "spiffe://other.domain/ns/default/sa/x", wantErr: `trust domain "other.domain" is not "cluster.local"`},
		{id: "spiffe://Cluster.local/ns/default/sa/x", wantErr: `trust domain "Cluster.local"`},
		{id: "spiffe:///ns/default/sa/x", wantErr: `trust domain "" is not`},
		{id: "spiffe://cluster.local:8080/ns/default/sa/x", wantErr: "a port is not allowed"},
		{id: "spiffe://cluster.local:/ns/default/sa/x", wantErr: "a port is not allowed"},
		{id: "spiffe://user@cluster.local/ns/default/sa/x", wantErr: "user info"},
		{id: "spiffe://cluster.local/ns/default/sa/x?a=b", wantErr: "query"},
		{id: "spiffe://cluster.local/ns/default/sa/x#frag", wantErr: "fragment"},
		{id: "spiffe://cluster.local/ns/default/sa/x%2Fy", wantErr: "percent-encoding"},
		{id: "spiffe://cluster.local", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/ns/default", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/ns/default/sa", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/ns/default/sa/x/", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/ns/default/sa/x/y", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/sa/x/ns/default", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/ns/default/serviceaccount/x", wantErr: "the path must be"},
		{id: "spiffe://cluster.local//ns/default/sa/x", wantErr: "the path must be"},
		{id: "spiffe://cluster.local/ns//sa/x", wantErr: `namespace ""`},
		{id: "spiffe://cluster.local/ns/default/sa/", wantErr: `service account ""`},
		{id: "spiffe://cluster.local/ns/Default/sa/x", wantErr: `namespace "Default"`},
		{id: "spiffe://cluster.local/ns/a.b/sa/x", wantErr: `namespace "a.b"`},
		{id: "spiffe://cluster.local/ns/" + strings.Repeat("a", 64) + "/sa/x", wantErr: "namespace"},
		{id: "spiffe://cluster.local/ns/default/sa/X", wantErr: `service account "X"`},
		{id: "spiffe://cluster.local/ns/default/sa/a_b", wantErr: `service account "a_b"`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			ns, sa, err := ParseSPIFFEID(tt.id, td)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if ns != tt.ns || sa != tt.sa {
					t.Fatalf("got %s/%s, want %s/%s", ns, sa, tt.ns, tt.sa)
				}
				if got := SPIFFEID(td, ns, sa); got != tt.id {
					t.Fatalf("SPIFFEID round trip: got %q, want %q", got, tt.id)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %s/%s, want an error containing %q", ns, sa, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "invalid SPIFFE ID") {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateTrustDomain(t *testing.T) {
	for td, ok := range map[string]bool{
		"cluster.local":          true,
		"my_domain-1.example":    true,
		"":                       false,
		"Cluster.local":          false,
		"cluster.local:443":      false,
		"cluster.local/x":        false,
		strings.Repeat("a", 255): true,
		strings.Repeat("a", 256): false,
	} {
		if err := validateTrustDomain(td); (err == nil) != ok {
			t.Errorf("validateTrustDomain(%q) = %v, want ok=%v", td, err, ok)
		}
	}
}
