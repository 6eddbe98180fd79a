// A Higress SDK plugin that logs one line at each level through wasm-go's pkg/log for every request. The SDK's
// DefaultLog asks the host for its level (foreign function get_log_level) before each line and makes no
// proxy_log call for a line below it; it prefixes lines with "[<SetCtx name>] [<_plugin_id_>] [<x-request-id>]".
// The level the host answered goes back to the client as x-host-log-level, so a test can tell the SDK's
// filtering from the host's.
package main

import (
	"encoding/binary"
	"fmt"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/log"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct{}

func init() {
	wrapper.SetCtx("sdk-log",
		wrapper.ParseConfig(func(gjson.Result, *config) error { return nil }),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
	)
}

func hostLogLevel() string {
	v, err := proxywasm.CallForeignFunction("get_log_level", nil)
	if err != nil {
		return "error: " + err.Error()
	}
	if len(v) != 4 {
		return fmt.Sprintf("bad length %d", len(v))
	}
	return fmt.Sprint(binary.LittleEndian.Uint32(v))
}

func onRequestHeaders(ctx wrapper.HttpContext, _ config) types.Action {
	p := ctx.Path()
	log.Tracef("trace-mark %s", p)
	log.Debugf("debug-mark %s", p)
	log.Infof("info-mark %s", p)
	log.Warnf("warn-mark %s", p)
	log.Errorf("error-mark %s", p)
	log.Criticalf("critical-mark %s", p)
	ctx.SetContext("level", hostLogLevel())
	return types.ActionContinue
}

func onResponseHeaders(ctx wrapper.HttpContext, _ config) types.Action {
	_ = proxywasm.AddHttpResponseHeader("x-host-log-level", ctx.GetStringContext("level", ""))
	return types.ActionContinue
}
