// Command localrun is `make run` without a cluster: it starts a real kube-apiserver and etcd (built
// by hack/control-plane.sh), installs the SMI CRDs and the validating webhook configuration with
// their webhooks pointed at this machine, runs the operator binary against it, and prints the
// kubeconfig to use with kubectl. Ctrl-C stops the operator and the control plane.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/smi-operator/smi-operator/test/testenv"
)

func main() {
	operator := flag.String("operator", "bin/smi-operator", "operator binary to run")
	kubeconfig := flag.String("kubeconfig-out", "", "where to write the kubeconfig (default: <cache>/smi-operator/local/kubeconfig)")
	flag.Parse()
	if err := run(*operator, *kubeconfig, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(1)
	}
}

// operatorNamespace is where config/default installs the operator.
const operatorNamespace = "smi-operator-system"

func run(operator, kubeconfig string, operatorArgs []string) error {
	if kubeconfig == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		kubeconfig = filepath.Join(cache, "smi-operator", "local", "kubeconfig")
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o700); err != nil {
		return err
	}

	fmt.Println("localrun: starting kube-apiserver and etcd, installing CRDs and webhooks")
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "localrun: stopping the control plane:", err)
		}
	}()
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}
	// The operator's own namespace, as config/default makes it: the xDS backend keeps its CA
	// there (POD_NAMESPACE defaults to it outside a cluster).
	clientset, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
	if _, err := clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := append(env.OperatorArgs(kubeconfig),
		"--metrics-bind-address=:8082", "--metrics-secure=false") // :8080 is kubectl's default server
	args = append(args, operatorArgs...)
	cmd := exec.CommandContext(ctx, operator, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Printf(`
localrun: the operator runs against an embedded control plane. In another shell:

    export KUBECONFIG=%s
    kubectl apply -k config/samples      # the SMIOperator "default" (backend istio), the SMI objects and the bookstore app
    kubectl get trafficsplits -o wide
    kubectl patch smioperator default --type merge -p '{"spec":{"backend":"xds"}}'

Ctrl-C stops the operator and the control plane.

`, kubeconfig)
	err = cmd.Wait()
	if ctx.Err() != nil {
		return nil // stopped by the user
	}
	return fmt.Errorf("the operator exited: %w", err)
}
