// A Higress SDK plugin that rewrites responses only when they came from the upstream, as Higress plugins that
// post-process model or service output do: wrapper.IsResponseFromUpstream() reads the response.code_details
// property and expects "via_upstream" (what Envoy's router sets when upstream headers arrive); a local reply
// (direct_response, no route, upstream connect failure or timeout, another filter's sendLocalReply) carries
// other details and passes through untouched, body included.
package main

import (
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/log"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct{}

func init() {
	wrapper.SetCtx("sdk-upstream-only",
		wrapper.ParseConfig(func(gjson.Result, *config) error { return nil }),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
		wrapper.ProcessResponseBody(onResponseBody),
	)
}

func onResponseHeaders(ctx wrapper.HttpContext, _ config) types.Action {
	details, _ := proxywasm.GetProperty([]string{"response", "code_details"})
	if !wrapper.IsResponseFromUpstream() {
		log.Infof("local reply (%s): left as it is", details)
		ctx.DontReadResponseBody()
		return types.ActionContinue
	}
	log.Infof("upstream response (%s): rewriting", details)
	ctx.SetContext("rewrite", true)
	_ = proxywasm.AddHttpResponseHeader("x-sdk-upstream", "modified")
	_ = proxywasm.RemoveHttpResponseHeader("content-length")
	return types.ActionContinue
}

func onResponseBody(ctx wrapper.HttpContext, _ config, body []byte) types.Action {
	if ctx.GetBoolContext("rewrite", false) {
		_ = proxywasm.ReplaceHttpResponseBody(append([]byte("[sdk] "), body...))
	}
	return types.ActionContinue
}
