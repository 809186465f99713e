package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	gammabackend "github.com/smi-operator/smi-operator/controllers/backends/gamma"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	"github.com/smi-operator/smi-operator/test/testenv"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
)

// TestGammaBackendWithoutTCPRoute: on a cluster whose Gateway API serves HTTPRoute and GRPCRoute
// but not TCPRoute (a release before TCPRoute v1 was standard), the gamma backend runs: the HTTP
// split is programmed, and a split of a TCP port reports Programmed=False TCPRouteNotServed,
// saying what to install. Once TCPRoute is served, the backend picks it up (within
// smioperator.UnavailableRetry): the TCP split's TCPRoute is written and the split programmed.
func TestGammaBackendWithoutTCPRoute(t *testing.T) {
	g := NewWithT(t)
	run := runOperator(t, g, nil)
	c, ctx, split, env := run.c, run.ctx, run.split, run.env
	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard, "httproutes", "grpcroutes")).To(Succeed())
	for _, name := range []string{"db", "db-v1", "db-v2"} {
		g.Expect(c.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: runShopNS, Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}},
		})).To(Succeed())
	}
	db := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: runShopNS, Name: "db"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "db", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "db-v1", Weight: 50}, {Service: "db-v2", Weight: 50},
		}},
	}
	g.Expect(c.Create(ctx, db)).To(Succeed())
	op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}, Spec: v1alpha1.SMIOperatorSpec{Backend: gammabackend.Name}}
	g.Expect(c.Create(ctx, op)).To(Succeed())

	g.Eventually(activeBackend(ctx, g, c), 30*time.Second).Should(Equal(gammabackend.Name))
	g.Eventually(splitCondition(ctx, g, c, split, smi.ConditionProgrammed), 30*time.Second).Should(HaveField("Status", metav1.ConditionTrue))
	dbProgrammed := splitCondition(ctx, g, c, db, smi.ConditionProgrammed)
	g.Eventually(dbProgrammed, 30*time.Second).Should(And(HaveField("Status", metav1.ConditionFalse),
		HaveField("Reason", gammatranslator.ReasonTCPRouteNotServed),
		HaveField("Message", And(ContainSubstring("does not serve TCPRoute"), ContainSubstring("port 5432"), ContainSubstring("v1.6")))))

	g.Expect(testenv.InstallGatewayAPICRDs(env.Config, testenv.GatewayAPIStandard)).To(Succeed())
	g.Eventually(func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: runShopNS, Name: "db-5432"}, &gatewayv1.TCPRoute{})
	}, smioperator.UnavailableRetry+30*time.Second).Should(Succeed())
	g.Eventually(dbProgrammed, 30*time.Second).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(activeBackend(ctx, g, c), 30*time.Second).Should(Equal(gammabackend.Name))
}
