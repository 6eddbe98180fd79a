// A Higress SDK plugin that does nothing: the SDK's own per-request cost, for the benchmarks and the
// conformance table (what every wasm-go plugin calls before any plugin code runs).
package main

import (
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

func init() {
	wrapper.SetCtx("go-noop",
		wrapper.ParseConfig(func(gjson.Result, *struct{}) error { return nil }),
		wrapper.ProcessRequestHeaders(func(wrapper.HttpContext, struct{}) types.Action { return types.ActionContinue }),
	)
}
