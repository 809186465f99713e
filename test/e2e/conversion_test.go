package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/conversion"
	"github.com/smi-operator/smi-operator/apis/smi/validation"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// samples reads every object under config/samples.
func samples() []*unstructured.Unstructured {
	root, err := testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.smi-spec.io_*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(files).NotTo(BeEmpty())
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		data, err = yaml.YAMLToJSON(data)
		Expect(err).NotTo(HaveOccurred(), f)
		u := &unstructured.Unstructured{}
		// Unstructured's JSON decoding keeps integers as int64, as objects read from the API server have them.
		Expect(u.UnmarshalJSON(data)).To(Succeed(), f)
		objs = append(objs, u)
	}
	return objs
}

// servedVersions asks the API server which versions the kind's CRD serves.
func servedVersions(ctx context.Context, gvk schema.GroupVersionKind) []string {
	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	Expect(k8sClient.List(ctx, crds)).To(Succeed())
	for _, crd := range crds.Items {
		if crd.Spec.Group == gvk.Group && crd.Spec.Names.Kind == gvk.Kind {
			var versions []string
			for _, v := range crd.Spec.Versions {
				if v.Served {
					versions = append(versions, v.Name)
				}
			}
			return versions
		}
	}
	Fail("no CRD serves " + gvk.String())
	return nil
}

// sdkScheme maps every SMI version to its smi-sdk-go type (the manager's scheme maps hub versions
// to the operator's own types with status).
var sdkScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(smi.AddToScheme(s))
	return s
}()

// typed decodes u into its smi-sdk-go type (through JSON: the SDK's header lists have custom codecs).
func typed(u *unstructured.Unstructured) runtime.Object {
	obj, err := sdkScheme.New(u.GroupVersionKind())
	Expect(err).NotTo(HaveOccurred())
	data, err := json.Marshal(u.Object)
	Expect(err).NotTo(HaveOccurred())
	Expect(json.Unmarshal(data, obj)).To(Succeed())
	return obj
}

// content is the object without its metadata and status: what a version's schema describes.
func content(u *unstructured.Unstructured) map[string]any {
	out := map[string]any{}
	for k, v := range u.Object {
		if k != "metadata" && k != "status" {
			out[k] = v
		}
	}
	return out
}

// hubOf converts an object of any version to the hub type, so objects read as different versions
// can be compared for meaning (header lists become maps: their order carries no meaning).
func hubOf(u *unstructured.Unstructured) runtime.Object {
	h, err := conversion.ToHub(typed(u))
	Expect(err).NotTo(HaveOccurred())
	return h
}

// sameMeaning compares two hub objects apart from their metadata.
func sameMeaning(a, b runtime.Object) string {
	return cmp.Diff(a, b, cmpopts.IgnoreTypes(metav1.TypeMeta{}, metav1.ObjectMeta{}))
}

func getAs(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	Expect(k8sClient.Get(ctx, key, u)).To(Succeed())
	return u
}

func newNamespace(ctx context.Context) string {
	return newLabelledNamespace(ctx, nil)
}

// newLabelledNamespace creates a namespace with labels, deleted when the spec ends.
func newLabelledNamespace(ctx context.Context, labels map[string]string) string {
	ns := &corev1.Namespace{}
	ns.GenerateName = "e2e-"
	ns.Labels = labels
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, ns)).To(Succeed()) })
	return ns.Name
}

var _ = Describe("SMI CRD conversion through the API server and the conversion webhook", func() {
	for _, sample := range samples() {
		gvk := sample.GroupVersionKind()
		It("serves "+gvk.Kind+" "+gvk.Version+" sample "+sample.GetName()+" as every served version, losslessly", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			original := sample.DeepCopy()
			original.SetNamespace(ns)
			Expect(k8sClient.Create(ctx, original.DeepCopy())).To(Succeed())
			key := client.ObjectKeyFromObject(original)

			// The status subresource exists in every version and survives conversion.
			hubGV, _ := smi.HubFor(gvk.Group)
			// (The controllers write status too: retry on conflicts.)
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				hub := getAs(ctx, hubGV.WithKind(gvk.Kind), key)
				Expect(unstructured.SetNestedField(hub.Object, int64(1), "status", "observedGeneration")).To(Succeed())
				return k8sClient.Status().Update(ctx, hub)
			})).To(Succeed())

			versions := servedVersions(ctx, gvk)
			Expect(len(versions)).To(BeNumerically(">=", 1))
			for _, version := range versions {
				By("reading it as " + version)
				as := getAs(ctx, gvk.GroupVersion().WithKind(gvk.Kind).GroupKind().WithVersion(version), key)
				Expect(as.GetAPIVersion()).To(Equal(gvk.Group + "/" + version))
				raw, err := json.Marshal(as.Object)
				Expect(err).NotTo(HaveOccurred())
				errs, err := validation.ValidateJSON(as.GroupVersionKind(), raw)
				Expect(err).NotTo(HaveOccurred())
				Expect(errs).To(BeEmpty(), "converted object must be valid in %s", version)
				Expect(sameMeaning(hubOf(as), hubOf(original))).To(BeEmpty(), "%s must mean the same as the sample", version)
				generation, _, _ := unstructured.NestedInt64(as.Object, "status", "observedGeneration")
				Expect(generation).To(Equal(int64(1)), "status must survive conversion to %s", version)

				By("writing it back through " + version + " with a label added")
				Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
					as := getAs(ctx, gvk.GroupKind().WithVersion(version), key)
					labels := as.GetLabels()
					if labels == nil {
						labels = map[string]string{}
					}
					labels["written-through"] = version
					as.SetLabels(labels)
					return k8sClient.Update(ctx, as)
				})).To(Succeed())

				back := getAs(ctx, gvk, key)
				Expect(content(back)).To(Equal(content(original)), "a round trip through %s must lose nothing", version)
				Expect(back.GetLabels()).To(HaveKeyWithValue("written-through", version))
				Expect(back.GetAnnotations()).NotTo(HaveKey(smi.ConversionDataAnnotation),
					"conversion data is consumed when the original version is read")
			}
		})
	}

	It("reads a v1alpha1 split of 1 and 500m as 2:1 in every newer version", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		var split *unstructured.Unstructured
		for _, s := range samples() {
			if s.GetKind() == smi.TrafficSplitKind && strings.HasSuffix(s.GetAPIVersion(), "/v1alpha1") {
				split = s.DeepCopy()
			}
		}
		Expect(split).NotTo(BeNil())
		split.SetNamespace(ns)
		Expect(k8sClient.Create(ctx, split)).To(Succeed())
		for _, version := range []string{"v1alpha2", "v1alpha3", "v1alpha4"} {
			as := getAs(ctx, schema.GroupVersionKind{Group: smi.SplitGroup, Version: version, Kind: smi.TrafficSplitKind}, client.ObjectKeyFromObject(split))
			backends, _, _ := unstructured.NestedSlice(as.Object, "spec", "backends")
			Expect(backends).To(HaveLen(2))
			w1 := backends[0].(map[string]any)["weight"].(int64)
			w2 := backends[1].(map[string]any)["weight"].(int64)
			Expect(w1).To(Equal(2*w2), "%s weights %d:%d", version, w1, w2)
		}
	})
})
