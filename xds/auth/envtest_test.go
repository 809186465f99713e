package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/xds/auth"
)

const (
	audience = "smi-operator-xds"
	// apiAudience is the API server's own audience (--api-audiences), which tokens without an
	// explicit audience and static tokens are bound to.
	apiAudience = "kube-apiserver-test"
	// staticToken authenticates the user alice through --token-auth-file: a real authenticated
	// user that is not a ServiceAccount.
	staticToken = "alice-static-token"
)

// controlPlane is started by the first test that needs it: envtest's kube-apiserver signs and
// verifies ServiceAccount tokens (controller-runtime sets --service-account-issuer, -key-file and
// -signing-key-file), so TokenRequest and TokenReview work without a controller manager.
var (
	controlPlane = testenv.Lazy{Options: func() (testenv.Options, error) {
		tokensFile = filepath.Join(os.TempDir(), fmt.Sprintf("xds-auth-tokens-%d.csv", os.Getpid()))
		if err := os.WriteFile(tokensFile, []byte(staticToken+",alice,alice-uid\n"), 0o600); err != nil {
			return testenv.Options{}, err
		}
		return testenv.Options{APIServerFlags: map[string]string{
			"token-auth-file": tokensFile,
			"api-audiences":   apiAudience,
		}}, nil
	}}
	tokensFile string
)

func TestMain(m *testing.M) {
	code := controlPlane.Run(m)
	if tokensFile != "" {
		_ = os.Remove(tokensFile)
	}
	os.Exit(code)
}

func kube(t *testing.T) kubernetes.Interface {
	t.Helper()
	env := controlPlane.Get(t)
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createNamespace creates a namespace of the test's own.
func createNamespace(t *testing.T, c kubernetes.Interface) *corev1.Namespace {
	t.Helper()
	ns, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "xds-auth-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func createServiceAccount(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// token asks the TokenRequest API for a token of ns/sa, bound to audiences (none: the API
// server's own audience).
func token(t *testing.T, c kubernetes.Interface, ns, sa string, audiences ...string) string {
	t.Helper()
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

func TestTokenReviewOnAPIServer(t *testing.T) {
	c := kube(t)
	ctx := context.Background()
	ns := createNamespace(t, c)
	createServiceAccount(t, c, ns.Name, "bookbuyer")
	createServiceAccount(t, c, ns.Name, "doomed")

	clk := clocktesting.NewFakeClock(time.Now())
	a, err := auth.New(c, auth.Options{Audiences: []string{audience}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	good := token(t, c, ns.Name, "bookbuyer", audience)
	caller, err := a.Authenticate(ctx, good)
	if err != nil {
		t.Fatalf("a token of %s/bookbuyer for %q: %v", ns.Name, audience, err)
	}
	// A TokenRequest that names no pod gives a token bound to none.
	if want := (auth.Caller{Identity: auth.Identity{Namespace: ns.Name, ServiceAccount: "bookbuyer"}}); caller != want {
		t.Fatalf("caller %+v, want %+v", caller, want)
	}

	// Every refusal is ErrUnauthenticated and says why; none is cached.
	refused := func(name, token, why string) {
		t.Helper()
		for range 2 {
			_, err := a.Authenticate(ctx, token)
			t.Logf("%s: %v", name, err)
			if err == nil || !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), why) {
				t.Errorf("%s: %v, want an ErrUnauthenticated error containing %q", name, err, why)
			}
		}
	}
	// The API server itself refuses a token for another audience when asked for ours.
	refused("another audience", token(t, c, ns.Name, "bookbuyer", "someone-else"), `token audiences ["someone-else"] is invalid for the target audiences ["smi-operator-xds"]`)
	refused("the API server's audience", token(t, c, ns.Name, "bookbuyer"), `token audiences ["kube-apiserver-test"] is invalid`)
	refused("garbage", "not-a-token", "invalid bearer token")
	refused("a token of this API server signed by no one", strings.Join(strings.Split(good, ".")[:2], ".")+".AAAA", "invalid bearer token")

	// A token of a deleted ServiceAccount: still accepted from our cache (at most CacheTTL), then
	// refused: bound tokens name the ServiceAccount's UID, and the API server looks it up. The API
	// server has caches of its own: it keeps successful token authentications for 10 seconds
	// (kube-apiserver's TokenSuccessCacheTTL, no flag) and looks ServiceAccounts up in an informer,
	// so the refusal comes within about 10 seconds of the deletion, not at once.
	doomed := token(t, c, ns.Name, "doomed", audience)
	if _, err := a.Authenticate(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().ServiceAccounts(ns.Name).Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, doomed); err != nil {
		t.Fatalf("within the cache TTL: %v", err)
	}
	deleted := time.Now()
	for {
		clk.Step(auth.DefaultCacheTTL) // past our cache: every attempt asks the API server
		_, err := a.Authenticate(ctx, doomed)
		if err != nil {
			t.Logf("the API server refused the token of the deleted ServiceAccount %s after the deletion", time.Since(deleted).Round(100*time.Millisecond))
			break
		}
		if time.Since(deleted) > time.Minute {
			t.Fatal("a token of a deleted ServiceAccount is still accepted a minute after the deletion")
		}
		time.Sleep(500 * time.Millisecond)
	}
	refused("a deleted ServiceAccount", doomed, `serviceaccounts "doomed" not found`)
	// Re-created under the same name, it has a new UID: once the API server knows the new
	// ServiceAccount (a fresh token of it passes), the old token stays refused.
	createServiceAccount(t, c, ns.Name, "doomed")
	fresh := token(t, c, ns.Name, "doomed", audience)
	for {
		clk.Step(auth.DefaultCacheTTL)
		if _, err := a.Authenticate(ctx, fresh); err == nil {
			break
		} else if time.Since(deleted) > 2*time.Minute {
			t.Fatalf("a token of the re-created ServiceAccount is refused: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	refused("a re-created ServiceAccount", doomed, "does not match claim")

	// A real user that is not a ServiceAccount is refused by us, not by the API server: with its
	// audience accepted too, the review of alice's static token succeeds.
	refused("a static token, for our audience", staticToken, "invalid bearer token")
	lax, err := auth.New(c, auth.Options{Audiences: []string{audience, apiAudience}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lax.Authenticate(ctx, staticToken); err == nil || !errors.Is(err, auth.ErrUnauthenticated) ||
		!strings.Contains(err.Error(), `user "alice" is not a ServiceAccount`) {
		t.Errorf("alice's static token: %v, want refused as not a ServiceAccount", err)
	}

	// A token of another namespace's ServiceAccount of the same name is that identity.
	createServiceAccount(t, c, "default", "bookbuyer")
	caller, err = a.Authenticate(ctx, token(t, c, "default", "bookbuyer", audience))
	if err != nil || caller.Identity != (auth.Identity{Namespace: "default", ServiceAccount: "bookbuyer"}) {
		t.Fatalf("a token of default/bookbuyer: %+v, %v", caller, err)
	}
}

// TestPodBoundTokenNamesItsPod: a token bound to a pod, as kubelet projects them, proves that pod
// as well as its ServiceAccount (the review's user.extra has its UID), for each of two pods of one
// ServiceAccount.
func TestPodBoundTokenNamesItsPod(t *testing.T) {
	c := kube(t)
	ctx := context.Background()
	ns := createNamespace(t, c)
	createServiceAccount(t, c, ns.Name, "web")
	a, err := auth.New(c, auth.Options{Audiences: []string{audience}})
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Identity{Namespace: ns.Name, ServiceAccount: "web"}
	for _, name := range []string{"web-1", "web-2"} {
		pod, err := c.CoreV1().Pods(ns.Name).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := c.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, "web", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:      []string{audience},
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest bound to pod %s: %v", name, err)
		}
		caller, err := a.Authenticate(ctx, tr.Status.Token)
		if err != nil {
			t.Fatalf("the token of pod %s: %v", name, err)
		}
		if caller.Identity != want || caller.Pod != pod.UID || pod.UID == "" {
			t.Errorf("the token of pod %s (UID %q) proves %+v, want %v and that pod", name, pod.UID, caller, want)
		}
	}
}
