package smi

// HTTPMethods are the methods an HTTPRouteGroup match may list: RFC 7231's plus PATCH (RFC 5789),
// as smi-sdk-go lists them, and "*" for any. The webhook refuses any other, and the mesh model
// makes a match listing one match nothing, so backends only get these: the xDS backend's regex for
// all nine ("GET|HEAD|…") is an RE2 program of 46 instructions, within Envoy's default limit
// (MaxRegexProgramSize), which a list of arbitrary methods would not be.
var HTTPMethods = []string{"*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
