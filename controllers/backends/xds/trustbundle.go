package xds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	applycorev1 "k8s.io/client-go/applyconfigurations/core/v1"
	applymetav1 "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/xds/bootstrap"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;patch

// managedByLabel marks what the operator writes.
const managedByLabel = "app.kubernetes.io/managed-by"

// TrustBundles keeps, in every namespace it is told of, the ConfigMap bootstrap.TrustBundleConfigMap
// whose key bootstrap.TrustBundleKey is the CA's trust bundle (PEM): what pod agents verify the
// xDS server with before they have a certificate, as Istio's istio-ca-root-cert. Each ConfigMap is
// controlled by its Namespace, so it goes with it, and written with server-side apply under the
// operator's field manager; a ConfigMap of that name the operator does not control is never
// touched (logged). It remembers what it wrote, so a namespace reconciled again costs nothing
// unless the bundle changed; Republish writes the current bundle everywhere (the root rotated).
// It reads and writes through a clientset, not the cache: caching ConfigMaps would mean watching
// every ConfigMap of the cluster.
type TrustBundles struct {
	client kubernetes.Interface
	bundle func() []byte
	log    logr.Logger

	mu sync.Mutex
	// written holds, by namespace, its UID and the bundle last written there.
	written map[string]published
}

type published struct {
	uid    types.UID
	bundle []byte
}

// NewTrustBundles publishes what bundle returns, through client.
func NewTrustBundles(client kubernetes.Interface, bundle func() []byte, log logr.Logger) *TrustBundles {
	return &TrustBundles{client: client, bundle: bundle, log: log, written: map[string]published{}}
}

// SetNamespace writes the bundle in ns unless it is there already.
func (t *TrustBundles) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	bundle := t.bundle()
	if len(bundle) == 0 {
		return nil
	}
	t.mu.Lock()
	done := t.written[ns.Name]
	t.mu.Unlock()
	if done.uid == ns.UID && bytes.Equal(done.bundle, bundle) {
		return nil
	}
	if err := t.write(ctx, ns.Name, ns.UID, bundle); err != nil {
		return err
	}
	t.mu.Lock()
	t.written[ns.Name] = published{uid: ns.UID, bundle: bundle}
	t.mu.Unlock()
	return nil
}

// DeleteNamespace forgets the namespace: its ConfigMap goes with it.
func (t *TrustBundles) DeleteNamespace(name string) {
	t.mu.Lock()
	delete(t.written, name)
	t.mu.Unlock()
}

// Republish writes the current bundle in every namespace written before.
func (t *TrustBundles) Republish(ctx context.Context) error {
	t.mu.Lock()
	namespaces := make(map[string]types.UID, len(t.written))
	for name, p := range t.written {
		namespaces[name] = p.uid
	}
	t.mu.Unlock()
	var errs []error
	for name, uid := range namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid}}
		errs = append(errs, t.SetNamespace(ctx, ns))
	}
	return errors.Join(errs...)
}

func (t *TrustBundles) write(ctx context.Context, namespace string, uid types.UID, bundle []byte) error {
	configMaps := t.client.CoreV1().ConfigMaps(namespace)
	existing, err := configMaps.Get(ctx, bootstrap.TrustBundleConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, bootstrap.TrustBundleConfigMap, err)
	default:
		if ref := metav1.GetControllerOf(existing); ref == nil || ref.UID != uid {
			t.log.Info("the trust bundle is not published in this namespace: a ConfigMap the operator does not control holds its name",
				"namespace", namespace, "configMap", bootstrap.TrustBundleConfigMap)
			return nil
		}
	}
	cm := applycorev1.ConfigMap(bootstrap.TrustBundleConfigMap, namespace).
		WithLabels(map[string]string{managedByLabel: "smi-operator"}).
		WithOwnerReferences(applymetav1.OwnerReference().
			WithAPIVersion("v1").WithKind("Namespace").WithName(namespace).WithUID(uid).
			WithController(true).WithBlockOwnerDeletion(true)).
		WithData(map[string]string{bootstrap.TrustBundleKey: string(bundle)})
	if _, err := configMaps.Apply(ctx, cm, metav1.ApplyOptions{FieldManager: owned.FieldManager, Force: true}); err != nil {
		return fmt.Errorf("writing ConfigMap %s/%s: %w", namespace, bootstrap.TrustBundleConfigMap, err)
	}
	return nil
}
