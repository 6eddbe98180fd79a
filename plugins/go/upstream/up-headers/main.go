// A plugin on the upstream proxy-wasm-go-sdk (Go 1.24 wasip1 line): adds request and response headers,
// echoes a request property into a response header and answers a local reply on demand, so the upstream
// SDK's VM/plugin/HTTP context entry points are exercised on real traffic.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetHttpContext(func(uint32) types.HttpContext { return &headers{} })
}

type headers struct {
	types.DefaultHttpContext
	path string
}

func (h *headers) OnHttpRequestHeaders(int, bool) types.Action {
	h.path, _ = proxywasm.GetHttpRequestHeader(":path")
	if h.path == "/deny" {
		_ = proxywasm.SendHttpResponse(403, [][2]string{{"x-denied-by", "up-headers"}}, []byte("denied by up-headers\n"), -1)
		return types.ActionPause
	}
	_ = proxywasm.AddHttpRequestHeader("x-up-sdk", "proxy-wasm-go-sdk")
	return types.ActionContinue
}

func (h *headers) OnHttpResponseHeaders(int, bool) types.Action {
	_ = proxywasm.AddHttpResponseHeader("x-up-path", h.path)
	if proto, err := proxywasm.GetProperty([]string{"request", "protocol"}); err == nil {
		_ = proxywasm.AddHttpResponseHeader("x-up-protocol", string(proto))
	}
	return types.ActionContinue
}
