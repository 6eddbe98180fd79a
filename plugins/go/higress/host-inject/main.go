// A Higress SDK plugin that answers with its own body from the response headers phase, as Higress's MCP server
// utilities do: drop content-length, skip the upstream body (DontReadResponseBody), and call the
// inject_encoded_data_to_filter_chain_on_header foreign function with an InjectEncodedDataToFilterChainArguments
// message, falling back to SendHttpResponse when the host refuses. Configuration: {"body": "..."}.
package main

import (
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	body string
}

func init() {
	wrapper.SetCtx("host-inject",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
	)
}

func parseConfig(json gjson.Result, c *config) error {
	c.body = json.Get("body").String()
	return nil
}

// injectArgs is InjectEncodedDataToFilterChainArguments{body: 1, endstream: 2} in protobuf wire format, written
// out because the plugins' module pins no protobuf runtime (wasm-go's pkg/protos marshals the same bytes).
func injectArgs(body string, endStream bool) []byte {
	out := []byte{0x0a}
	n := len(body)
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	out = append(out, byte(n))
	out = append(out, body...)
	if endStream {
		out = append(out, 0x10, 0x01)
	}
	return out
}

func onResponseHeaders(ctx wrapper.HttpContext, c config) types.Action {
	_ = proxywasm.RemoveHttpResponseHeader("content-length")
	_ = proxywasm.ReplaceHttpResponseHeader("content-type", "application/json")
	ctx.DontReadResponseBody()
	if _, err := proxywasm.CallForeignFunction("inject_encoded_data_to_filter_chain_on_header", injectArgs(c.body, true)); err != nil {
		proxywasm.LogWarnf("inject failed (%v), replying directly", err)
		_ = proxywasm.SendHttpResponseWithDetail(200, "inject_fallback", nil, []byte(c.body), -1)
	}
	return types.ActionPause
}
