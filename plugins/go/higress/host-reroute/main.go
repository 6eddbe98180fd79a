// A Higress SDK plugin that rewrites a request header the route table matches on, to show Envoy's route cache:
// the change clears the cache and the router selects again, unless the plugin called ctx.DisableReroute()
// (Higress's clear_route_cache=off). Configuration: {"header": "x-target", "value": "b", "disable_reroute": false}.
package main

import (
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	header         string
	value          string
	disableReroute bool
}

func init() {
	wrapper.SetCtx("host-reroute",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
	)
}

func parseConfig(json gjson.Result, c *config) error {
	c.header = json.Get("header").String()
	c.value = json.Get("value").String()
	c.disableReroute = json.Get("disable_reroute").Bool()
	return nil
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	if c.disableReroute {
		ctx.DisableReroute()
	}
	_ = proxywasm.ReplaceHttpRequestHeader(c.header, c.value)
	return types.ActionContinue
}
