package mesh

// A standby route names the Services a split may route to that no other route of the split names
// with a weight (zero-weight backends, the apex while requests do not go there), for a call no
// client makes: the gRPC method StandbyService/StandbyMethod, whose HTTP path is StandbyPath.
// grpc-go (v1.84) applies new routes before its balancer holds a cluster it did not hold, and
// fails the calls picked in between ("unknown cluster selected for RPC"); it keeps every cluster
// a route names with a positive weight. A mesh handing its proxyless clients a standby route keeps
// those clusters held, so a weight change, or the split's removal, moves calls onto clusters the
// clients already have. The gamma and Istio translators write such a route for StandbyPath; the
// xDS translator, whose server hands out its routes as they are, names those Services on a route
// after the catch-all instead.
const (
	StandbyService = "smioperator.standby.v1.Standby"
	StandbyMethod  = "Never"
	StandbyPath    = "/" + StandbyService + "/" + StandbyMethod
)
