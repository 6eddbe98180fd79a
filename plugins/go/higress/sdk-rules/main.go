// A Higress SDK plugin whose configuration uses `_rules_` (wasm-go pkg/matcher): a global config plus rules
// matched by `_match_route_`, `_match_domain_` and `_match_service_`, each rule parsed over the global one
// (ParseOverrideConfig). The matched config's name and tag go to the upstream (request headers) and back to
// the client (response headers), with the route_name / cluster_name / :authority the matcher read, so a test
// can tell which rule matched and why.
package main

import (
	"errors"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	name string
	tag  string
}

func init() {
	wrapper.SetCtx("sdk-rules",
		wrapper.ParseOverrideConfig(parseGlobal, parseRule),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
	)
}

func parseGlobal(json gjson.Result, c *config) error {
	c.name = json.Get("name").String()
	c.tag = json.Get("tag").String()
	if c.name == "" {
		return errors.New("name is required")
	}
	return nil
}

// A rule inherits the global config and overrides what it names.
func parseRule(json gjson.Result, global config, c *config) error {
	*c = global
	if v := json.Get("name"); v.Exists() {
		c.name = v.String()
	}
	if v := json.Get("tag"); v.Exists() {
		c.tag = v.String()
	}
	if c.name == "" {
		return errors.New("name is required")
	}
	return nil
}

// property reads a string property as the matcher does, telling NOT_FOUND apart from an empty value.
func property(path ...string) string {
	v, err := proxywasm.GetProperty(path)
	if errors.Is(err, types.ErrorStatusNotFound) {
		return "<not-found>"
	}
	if err != nil {
		return "<error: " + err.Error() + ">"
	}
	return string(v)
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	_ = proxywasm.AddHttpRequestHeader("x-sdk-rule", c.name)
	_ = proxywasm.AddHttpRequestHeader("x-sdk-tag", c.tag)
	ctx.SetContext("route_name", property("route_name"))
	ctx.SetContext("cluster_name", property("cluster_name"))
	ctx.SetContext("authority", ctx.Host())
	return types.ActionContinue
}

func onResponseHeaders(ctx wrapper.HttpContext, c config) types.Action {
	_ = proxywasm.AddHttpResponseHeader("x-sdk-rule", c.name)
	_ = proxywasm.AddHttpResponseHeader("x-sdk-tag", c.tag)
	_ = proxywasm.AddHttpResponseHeader("x-seen-route-name", ctx.GetStringContext("route_name", ""))
	_ = proxywasm.AddHttpResponseHeader("x-seen-cluster-name", ctx.GetStringContext("cluster_name", ""))
	_ = proxywasm.AddHttpResponseHeader("x-seen-authority", ctx.GetStringContext("authority", ""))
	return types.ActionContinue
}
