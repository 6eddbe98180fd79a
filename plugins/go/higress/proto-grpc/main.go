// A plugin on the Higress proxy-wasm-go-sdk that watches gRPC through the proxy: it reads the request's gRPC
// headers (content-type, te, :path) and request.protocol, the response headers, and the response trailers
// (grpc-status, grpc-message), and reports what it saw in a response trailer, x-proto-grpc-saw, that the gRPC
// client reads from the call's trailing metadata (in the headers of a trailers-only response). It also answers local replies to gRPC calls on demand:
//   .../DenyExplicit  -> 403 with grpc_status 7 (PERMISSION_DENIED) passed to proxy_send_local_response
//   .../DenyMapped    -> 429 with grpc_status -1: the host maps the HTTP code (UNAVAILABLE)
// Configuration is unused.
package main

import (
	"strings"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetHttpContext(func(uint32) types.HttpContext { return &grpcWatch{} })
}

type grpcWatch struct {
	types.DefaultHttpContext
	saw []string
}

func (g *grpcWatch) note(k, v string) {
	g.saw = append(g.saw, k+"="+v)
}

func header(name string) string {
	v, err := proxywasm.GetHttpRequestHeader(name)
	if err != nil {
		return "-"
	}
	return v
}

func (g *grpcWatch) OnHttpRequestHeaders(int, bool) types.Action {
	path := header(":path")
	g.note("path", path)
	g.note("ct", header("content-type"))
	g.note("te", header("te"))
	if proto, err := proxywasm.GetProperty([]string{"request", "protocol"}); err == nil {
		g.note("proto", string(proto))
	}
	switch {
	case strings.HasSuffix(path, "/DenyExplicit"):
		_ = proxywasm.SendHttpResponseWithDetail(403, "proto_grpc_denied", [][2]string{{"x-denied-by", "proto-grpc"}}, []byte("denied by proto-grpc\n"), 7)
		return types.ActionPause
	case strings.HasSuffix(path, "/DenyMapped"):
		_ = proxywasm.SendHttpResponseWithDetail(429, "proto_grpc_throttled", nil, []byte("slow down: 100%"), -1)
		return types.ActionPause
	}
	return types.ActionContinue
}

func (g *grpcWatch) OnHttpResponseHeaders(_ int, endOfStream bool) types.Action {
	if ct, err := proxywasm.GetHttpResponseHeader("content-type"); err == nil {
		g.note("resp-ct", ct)
	}
	// A trailers-only response (a gRPC error without messages): the status is in these headers and no
	// trailers follow, so the report goes out with them.
	if endOfStream {
		if status, err := proxywasm.GetHttpResponseHeader("grpc-status"); err == nil {
			g.note("grpc-status", status)
		}
		if msg, err := proxywasm.GetHttpResponseHeader("grpc-message"); err == nil {
			g.note("grpc-message", msg)
		}
		g.note("trailers-only", "true")
		_ = proxywasm.AddHttpResponseHeader("x-proto-grpc-saw", strings.Join(g.saw, ";"))
	}
	return types.ActionContinue
}

func (g *grpcWatch) OnHttpResponseTrailers(int) types.Action {
	status, err := proxywasm.GetHttpResponseTrailer("grpc-status")
	if err != nil {
		status = "-"
	}
	g.note("grpc-status", status)
	if msg, err := proxywasm.GetHttpResponseTrailer("grpc-message"); err == nil {
		g.note("grpc-message", msg)
	}
	_ = proxywasm.AddHttpResponseTrailer("x-proto-grpc-saw", strings.Join(g.saw, ";"))
	return types.ActionContinue
}
