package grpcxds

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// CallCredsEnv is grpc-go's switch for bootstrap call_creds (gRFC A97): without it grpc-go
// ignores a bootstrap's jwt_token_file and its xDS streams carry no token. It is read once, when
// grpc-go initialises.
const CallCredsEnv = "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS"

// RunWithCallCreds runs run in a process whose grpc-go sends bootstrap call_creds: this one when
// CallCredsEnv is set, else the same program started again in its place with it set. A TestMain
// calls it, so that the package's proxyless clients prove their identity with a token, as
// injected workloads do.
func RunWithCallCreds(run func() int) int {
	// grpc-go reads it case-insensitively.
	if strings.EqualFold(os.Getenv(CallCredsEnv), "true") {
		return run()
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "grpcxds: cannot find this program to start it with %s=true: %v\n", CallCredsEnv, err)
		return 1
	}
	// Set, not appended: a value already there would come first, and the program would start
	// itself again without end.
	if err := os.Setenv(CallCredsEnv, "true"); err != nil {
		fmt.Fprintf(os.Stderr, "grpcxds: %v\n", err)
		return 1
	}
	err = syscall.Exec(self, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "grpcxds: cannot start this program again with %s=true: %v\n", CallCredsEnv, err)
	return 1
}
