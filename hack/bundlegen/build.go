package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/lib/version"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// webhookCertDir is where OLM mounts the webhook serving certificate (tls.crt, tls.key) in the
// operator's pods, and where the webhook server reads it (main.go's --webhook-cert-dir default).
const webhookCertDir = "/tmp/k8s-webhook-server/serving-certs"

// certRotationOnly are the resources the operator reads and writes only to issue its own webhook
// certificate and inject its CA (controllers/certs.go). Under OLM it runs with
// --cert-rotation=false, so the CSV does not ask for them: OLM injects the CA itself, and a CSV
// that can patch CRDs is flagged by OLM's good-practice checks.
var certRotationOnly = []schema.GroupResource{
	{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
	{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
}

// sampleWorkloadLabel marks the workloads and Services the samples act on (config/samples/
// bookstore.yaml): applied with the samples, never part of the bundle.
const sampleWorkloadLabel = "smi-operator.io/sample"

// conversionWebhookName names the CSV's one conversion webhook definition.
const conversionWebhookName = "convert.smi-operator.io"

// bundle is what bundlegen writes.
type bundle struct {
	csv     *operatorsv1alpha1.ClusterServiceVersion
	crds    []*apiextensionsv1.CustomResourceDefinition
	others  []*unstructured.Unstructured // written into manifests/ as they are
	samples []*unstructured.Unstructured
	opts    Options
}

// readObjects decodes a multi-document YAML stream.
func readObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func convert[T any](u *unstructured.Unstructured) (*T, error) {
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return out, nil
}

// inputs sorts the kustomize output by what becomes of it.
type inputs struct {
	csv          *operatorsv1alpha1.ClusterServiceVersion
	crds         []*apiextensionsv1.CustomResourceDefinition
	deployment   *appsv1.Deployment
	services     []*unstructured.Unstructured
	secrets      []*unstructured.Unstructured
	roles        map[string]*rbacv1.Role
	clusterRoles map[string]*rbacv1.ClusterRole
	bindings     []*rbacv1.RoleBinding
	cBindings    []*rbacv1.ClusterRoleBinding
	webhooks     []admissionregistrationv1.ValidatingWebhook
	mutating     []admissionregistrationv1.MutatingWebhook
	rest         []*unstructured.Unstructured // neither of the above, nor a sample
}

func sortInputs(objs []*unstructured.Unstructured) (*inputs, error) {
	in := &inputs{roles: map[string]*rbacv1.Role{}, clusterRoles: map[string]*rbacv1.ClusterRole{}}
	var err error
	for _, u := range objs {
		if _, ok := u.GetLabels()[sampleWorkloadLabel]; ok {
			continue // what the samples act on is the user's, not the operator's
		}
		switch u.GroupVersionKind().GroupKind() {
		case schema.GroupKind{Group: "operators.coreos.com", Kind: "ClusterServiceVersion"}:
			if in.csv != nil {
				return nil, errors.New("more than one ClusterServiceVersion base")
			}
			in.csv, err = convert[operatorsv1alpha1.ClusterServiceVersion](u)
		case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
			var crd *apiextensionsv1.CustomResourceDefinition
			crd, err = convert[apiextensionsv1.CustomResourceDefinition](u)
			in.crds = append(in.crds, crd)
		case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
			if in.deployment != nil {
				return nil, errors.New("more than one Deployment")
			}
			in.deployment, err = convert[appsv1.Deployment](u)
		case schema.GroupKind{Kind: "Service"}:
			in.services = append(in.services, u)
		case schema.GroupKind{Kind: "Secret"}:
			in.secrets = append(in.secrets, u)
		case schema.GroupKind{Kind: "Namespace"}, schema.GroupKind{Kind: "ServiceAccount"}:
			// OLM installs into the namespace the user picks and creates the CSV's ServiceAccounts.
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}:
			var r *rbacv1.Role
			r, err = convert[rbacv1.Role](u)
			if r != nil {
				in.roles[r.Name] = r
			}
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:
			var r *rbacv1.ClusterRole
			r, err = convert[rbacv1.ClusterRole](u)
			if r != nil {
				in.clusterRoles[r.Name] = r
			}
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:
			var b *rbacv1.RoleBinding
			b, err = convert[rbacv1.RoleBinding](u)
			in.bindings = append(in.bindings, b)
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:
			var b *rbacv1.ClusterRoleBinding
			b, err = convert[rbacv1.ClusterRoleBinding](u)
			in.cBindings = append(in.cBindings, b)
		case schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:
			var c *admissionregistrationv1.ValidatingWebhookConfiguration
			c, err = convert[admissionregistrationv1.ValidatingWebhookConfiguration](u)
			if c != nil {
				in.webhooks = append(in.webhooks, c.Webhooks...)
			}
		case schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:
			var c *admissionregistrationv1.MutatingWebhookConfiguration
			c, err = convert[admissionregistrationv1.MutatingWebhookConfiguration](u)
			if c != nil {
				in.mutating = append(in.mutating, c.Webhooks...)
			}
		default:
			in.rest = append(in.rest, u)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case in.csv == nil:
		return nil, errors.New("no ClusterServiceVersion base in the input")
	case in.deployment == nil:
		return nil, errors.New("no Deployment in the input")
	case len(in.crds) == 0:
		return nil, errors.New("no CustomResourceDefinition in the input")
	}
	return in, nil
}

// build turns the kustomize output into the bundle.
func build(objs []*unstructured.Unstructured, icon []byte, opts Options) (*bundle, error) {
	in, err := sortInputs(objs)
	if err != nil {
		return nil, err
	}
	b := &bundle{csv: in.csv, crds: in.crds, opts: opts}
	sort.Slice(b.crds, func(i, j int) bool { return b.crds[i].Name < b.crds[j].Name })

	owned := map[string]bool{}
	for _, crd := range in.crds {
		owned[crd.Spec.Group] = true
	}
	for _, u := range in.rest {
		if owned[u.GroupVersionKind().Group] {
			b.samples = append(b.samples, u)
			continue
		}
		b.others = append(b.others, u)
	}
	if len(b.samples) == 0 {
		return nil, errors.New("no samples of the owned kinds in the input (config/samples)")
	}

	deployment, certSecret, err := olmDeployment(in.deployment, opts.Image)
	if err != nil {
		return nil, err
	}
	webhookSvc, err := webhookService(in)
	if err != nil {
		return nil, err
	}
	for _, s := range in.services {
		if s != webhookSvc {
			b.others = append(b.others, s)
		}
	}
	for _, s := range in.secrets {
		if s.GetName() != certSecret {
			return nil, fmt.Errorf("Secret %s is neither the webhook certificate nor known to bundlegen", s.GetName())
		}
	}
	for _, u := range b.others {
		switch u.GetKind() {
		case "Service", "ClusterRole", "ConfigMap":
		default:
			return nil, fmt.Errorf("%s %s: bundlegen does not know what OLM should do with this kind", u.GetKind(), u.GetName())
		}
		u.SetNamespace("") // OLM creates namespaced objects in the install namespace
	}

	csv := b.csv
	csv.Name = opts.CSVName()
	csv.Namespace = ""
	csv.Spec.Version = version.OperatorVersion{Version: semver.MustParse(opts.Version)}
	csv.Spec.Replaces = opts.Replaces
	if csv.Annotations == nil {
		csv.Annotations = map[string]string{}
	}
	if opts.SkipRange != "" {
		csv.Annotations["olm.skipRange"] = opts.SkipRange
	}
	csv.Annotations["containerImage"] = opts.Image
	csv.Spec.RelatedImages = []operatorsv1alpha1.RelatedImage{{Name: "smi-operator", Image: opts.Image}}
	csv.Spec.Icon = []operatorsv1alpha1.Icon{{Data: base64.StdEncoding.EncodeToString(icon), MediaType: "image/svg+xml"}}

	permissions, clusterPermissions, err := permissionsFor(in, deployment.Spec.Template.Spec.ServiceAccountName)
	if err != nil {
		return nil, err
	}
	csv.Spec.InstallStrategy = operatorsv1alpha1.NamedInstallStrategy{
		StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
		StrategySpec: operatorsv1alpha1.StrategyDetailsDeployment{
			DeploymentSpecs: []operatorsv1alpha1.StrategyDeploymentSpec{{
				Name: deployment.Name, Label: deployment.Labels, Spec: deployment.Spec,
			}},
			Permissions:        permissions,
			ClusterPermissions: clusterPermissions,
		},
	}
	csv.Spec.WebhookDefinitions, err = webhookDefinitions(in, webhookSvc, deployment.Name)
	if err != nil {
		return nil, err
	}
	csv.Spec.CustomResourceDefinitions.Owned, err = ownedCRDs(csv.Spec.CustomResourceDefinitions.Owned, b.crds)
	if err != nil {
		return nil, err
	}
	examples, err := almExamples(b.samples)
	if err != nil {
		return nil, err
	}
	csv.Annotations["alm-examples"] = examples
	return b, nil
}

// olmDeployment is the Deployment as OLM runs it: OLM's certificate instead of the operator's own.
// It returns the name of the Secret the certificate volume mounted, which OLM replaces.
func olmDeployment(d *appsv1.Deployment, image string) (*appsv1.Deployment, string, error) {
	d = d.DeepCopy()
	pod := &d.Spec.Template.Spec
	if pod.ServiceAccountName == "" {
		return nil, "", fmt.Errorf("Deployment %s names no ServiceAccount", d.Name)
	}
	certVolume := ""
	for i := range pod.Containers {
		c := &pod.Containers[i]
		c.Image = image
		if !slices.Contains(c.Args, "--cert-rotation=false") {
			c.Args = append(c.Args, "--cert-rotation=false")
		}
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			if m.MountPath == webhookCertDir {
				certVolume = m.Name
				return true
			}
			return false
		})
	}
	if certVolume == "" {
		return nil, "", fmt.Errorf("Deployment %s mounts nothing at %s; OLM mounts the webhook certificate there", d.Name, webhookCertDir)
	}
	certSecret := ""
	pod.Volumes = slices.DeleteFunc(pod.Volumes, func(v corev1.Volume) bool {
		if v.Name == certVolume && v.Secret != nil {
			certSecret = v.Secret.SecretName
			return true
		}
		return false
	})
	return d, certSecret, nil
}

// webhookService is the Service that the webhooks and the CRDs' conversion call.
func webhookService(in *inputs) (*unstructured.Unstructured, error) {
	names := map[string]bool{}
	clients := map[string]admissionregistrationv1.WebhookClientConfig{}
	for _, w := range in.webhooks {
		clients[w.Name] = w.ClientConfig
	}
	for _, w := range in.mutating {
		clients[w.Name] = w.ClientConfig
	}
	for name, c := range clients {
		if c.Service == nil {
			return nil, fmt.Errorf("webhook %s calls a URL, not a Service", name)
		}
		names[c.Service.Name] = true
	}
	for _, crd := range in.crds {
		if c := crd.Spec.Conversion; c != nil && c.Strategy == apiextensionsv1.WebhookConverter {
			if c.Webhook == nil || c.Webhook.ClientConfig == nil || c.Webhook.ClientConfig.Service == nil {
				return nil, fmt.Errorf("CRD %s converts through a webhook without a Service", crd.Name)
			}
			names[c.Webhook.ClientConfig.Service.Name] = true
		}
	}
	if len(names) != 1 {
		return nil, fmt.Errorf("the webhooks and conversions call %d Services, want one", len(names))
	}
	for _, s := range in.services {
		if names[s.GetName()] {
			return s, nil
		}
	}
	return nil, fmt.Errorf("the webhook Service %v is not in the input", names)
}

// webhookTarget returns the Service's port and the container port it forwards to.
func webhookTarget(svc *unstructured.Unstructured) (int32, intstr.IntOrString, error) {
	s, err := convert[corev1.Service](svc)
	if err != nil {
		return 0, intstr.IntOrString{}, err
	}
	if len(s.Spec.Ports) != 1 {
		return 0, intstr.IntOrString{}, fmt.Errorf("webhook Service %s has %d ports, want one", s.Name, len(s.Spec.Ports))
	}
	return s.Spec.Ports[0].Port, s.Spec.Ports[0].TargetPort, nil
}

func webhookDefinitions(in *inputs, svc *unstructured.Unstructured, deployment string) ([]operatorsv1alpha1.WebhookDescription, error) {
	port, target, err := webhookTarget(svc)
	if err != nil {
		return nil, err
	}
	describe := func(typ operatorsv1alpha1.WebhookAdmissionType, w admissionregistrationv1.ValidatingWebhook) operatorsv1alpha1.WebhookDescription {
		return operatorsv1alpha1.WebhookDescription{
			GenerateName:            w.Name,
			Type:                    typ,
			DeploymentName:          deployment,
			ContainerPort:           port,
			TargetPort:              &target,
			Rules:                   w.Rules,
			FailurePolicy:           w.FailurePolicy,
			MatchPolicy:             w.MatchPolicy,
			ObjectSelector:          w.ObjectSelector,
			SideEffects:             w.SideEffects,
			TimeoutSeconds:          w.TimeoutSeconds,
			AdmissionReviewVersions: w.AdmissionReviewVersions,
			WebhookPath:             w.ClientConfig.Service.Path,
		}
	}
	var out []operatorsv1alpha1.WebhookDescription
	for _, w := range in.webhooks {
		out = append(out, describe(operatorsv1alpha1.ValidatingAdmissionWebhook, w))
	}
	for _, w := range in.mutating {
		// OLM gives a webhook the OperatorGroup's namespaces, not its own namespaceSelector, so a
		// webhook whose failure policy is Fail would hold back every pod of those namespaces
		// while the operator is down, not just those of the namespaces it selects. Such a webhook
		// is left out: the Ignore one reaches the same pods, and its handler reads the namespace
		// label itself (the pod injection webhook's namespace.inject, config/webhook).
		if w.FailurePolicy != nil && *w.FailurePolicy == admissionregistrationv1.Fail && w.NamespaceSelector != nil {
			continue
		}
		// A mutating webhook has a validating one's fields, and one more.
		var common admissionregistrationv1.ValidatingWebhook
		raw, err := json.Marshal(w)
		if err == nil {
			err = json.Unmarshal(raw, &common)
		}
		if err != nil {
			return nil, err
		}
		d := describe(operatorsv1alpha1.MutatingAdmissionWebhook, common)
		d.ReinvocationPolicy = w.ReinvocationPolicy
		out = append(out, d)
	}
	// One conversion webhook definition for every CRD converted through the same path.
	var conversion *operatorsv1alpha1.WebhookDescription
	for _, crd := range in.crds {
		c := crd.Spec.Conversion
		if c == nil || c.Strategy != apiextensionsv1.WebhookConverter {
			continue
		}
		path := c.Webhook.ClientConfig.Service.Path
		if conversion == nil {
			none := admissionregistrationv1.SideEffectClassNone
			conversion = &operatorsv1alpha1.WebhookDescription{
				GenerateName:            conversionWebhookName,
				Type:                    operatorsv1alpha1.ConversionWebhook,
				DeploymentName:          deployment,
				ContainerPort:           port,
				TargetPort:              &target,
				SideEffects:             &none,
				AdmissionReviewVersions: c.Webhook.ConversionReviewVersions,
				WebhookPath:             path,
			}
		}
		if !equalPtr(conversion.WebhookPath, path) || !slices.Equal(conversion.AdmissionReviewVersions, c.Webhook.ConversionReviewVersions) {
			return nil, fmt.Errorf("CRD %s converts through another path or review versions than the others", crd.Name)
		}
		conversion.ConversionCRDs = append(conversion.ConversionCRDs, crd.Name)
	}
	if conversion != nil {
		if !allNamespacesOnly(in.csv.Spec.InstallModes) {
			return nil, errors.New("OLM supports conversion webhooks only for operators installed in AllNamespaces mode alone; fix installModes in the CSV base")
		}
		out = append(out, *conversion)
	}
	return out, nil
}

func equalPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func allNamespacesOnly(modes []operatorsv1alpha1.InstallMode) bool {
	all := false
	for _, m := range modes {
		if m.Supported && m.Type != operatorsv1alpha1.InstallModeTypeAllNamespaces {
			return false
		}
		all = all || (m.Supported && m.Type == operatorsv1alpha1.InstallModeTypeAllNamespaces)
	}
	return all
}

// permissionsFor collects the rules of the Roles and ClusterRoles bound to the ServiceAccount,
// less what only certificate rotation needs.
func permissionsFor(in *inputs, sa string) (perms, clusterPerms []operatorsv1alpha1.StrategyDeploymentPermissions, err error) {
	bound := func(subjects []rbacv1.Subject) bool {
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == sa {
				return true
			}
		}
		return false
	}
	var roleRules, clusterRules []rbacv1.PolicyRule
	for _, b := range in.bindings {
		if !bound(b.Subjects) {
			continue
		}
		switch b.RoleRef.Kind {
		case "Role":
			r, ok := in.roles[b.RoleRef.Name]
			if !ok {
				return nil, nil, fmt.Errorf("RoleBinding %s: Role %s is not in the input", b.Name, b.RoleRef.Name)
			}
			roleRules = append(roleRules, r.Rules...)
		case "ClusterRole":
			// A ClusterRole bound in one namespace grants its rules there only.
			r, ok := in.clusterRoles[b.RoleRef.Name]
			if !ok {
				return nil, nil, fmt.Errorf("RoleBinding %s: ClusterRole %s is not in the input", b.Name, b.RoleRef.Name)
			}
			roleRules = append(roleRules, r.Rules...)
		}
	}
	for _, b := range in.cBindings {
		if !bound(b.Subjects) {
			continue
		}
		r, ok := in.clusterRoles[b.RoleRef.Name]
		if !ok {
			return nil, nil, fmt.Errorf("ClusterRoleBinding %s: ClusterRole %s is not in the input", b.Name, b.RoleRef.Name)
		}
		clusterRules = append(clusterRules, r.Rules...)
	}
	if roleRules, err = withoutCertRotation(roleRules); err != nil {
		return nil, nil, err
	}
	if clusterRules, err = withoutCertRotation(clusterRules); err != nil {
		return nil, nil, err
	}
	if len(roleRules) > 0 {
		perms = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: sa, Rules: roleRules}}
	}
	if len(clusterRules) > 0 {
		clusterPerms = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: sa, Rules: clusterRules}}
	}
	if perms == nil && clusterPerms == nil {
		return nil, nil, fmt.Errorf("no Role or ClusterRole is bound to ServiceAccount %s", sa)
	}
	return perms, clusterPerms, nil
}

func withoutCertRotation(rules []rbacv1.PolicyRule) ([]rbacv1.PolicyRule, error) {
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		only, some := 0, 0
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				some++
				if slices.Contains(certRotationOnly, schema.GroupResource{Group: g, Resource: res}) {
					only++
				}
			}
		}
		switch {
		case only == 0:
			out = append(out, r)
		case only < some:
			return nil, fmt.Errorf("rule %v mixes resources only certificate rotation needs with others; give them their own RBAC markers", r)
		}
	}
	return out, nil
}

// ownedCRDs expands the base's one entry per CRD into one per served version, with descriptors.
func ownedCRDs(base []operatorsv1alpha1.CRDDescription, crds []*apiextensionsv1.CustomResourceDefinition) ([]operatorsv1alpha1.CRDDescription, error) {
	described := map[string]operatorsv1alpha1.CRDDescription{}
	for _, d := range base {
		if d.Description == "" || d.DisplayName == "" {
			return nil, fmt.Errorf("CSV base: owned CRD %s needs a displayName and a description", d.Name)
		}
		described[d.Name] = d
	}
	var out []operatorsv1alpha1.CRDDescription
	for _, crd := range crds {
		d, ok := described[crd.Name]
		if !ok {
			return nil, fmt.Errorf("CRD %s has no entry in the CSV base's owned CRDs", crd.Name)
		}
		delete(described, crd.Name)
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			entry := operatorsv1alpha1.CRDDescription{
				Name: crd.Name, Version: v.Name, Kind: crd.Spec.Names.Kind,
				DisplayName: d.DisplayName, Description: d.Description, Resources: d.Resources,
			}
			entry.SpecDescriptors, entry.StatusDescriptors = descriptors(crd, v)
			out = append(out, entry)
		}
	}
	if len(described) > 0 {
		return nil, fmt.Errorf("the CSV base owns CRDs that are not in the input: %v", keys(described))
	}
	return out, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// almExamples is the samples as a JSON array, the operator's own kind first (OLM's console offers
// the first example of each kind), then by apiVersion, kind and name.
func almExamples(samples []*unstructured.Unstructured) (string, error) {
	sorted := slices.Clone(samples)
	rank := func(u *unstructured.Unstructured) string {
		if u.GroupVersionKind().Group == "smi-operator.io" {
			return "0"
		}
		return "1" + u.GetAPIVersion() + "/" + u.GetKind() + "/" + u.GetName()
	}
	sort.SliceStable(sorted, func(i, j int) bool { return rank(sorted[i]) < rank(sorted[j]) })
	objs := make([]map[string]any, 0, len(sorted))
	for _, u := range sorted {
		objs = append(objs, u.Object)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(objs); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}
