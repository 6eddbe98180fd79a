// A Higress SDK plugin that reports Envoy attributes back to the test, the way real plugins read them:
// proxywasm.GetProperty with path segments, and wrapper.IsResponseFromUpstream() (response.code_details ==
// "via_upstream"). Configuration: {"properties": [["segment", ...], ...], "deny_header": "x-deny"}.
// Property i read during the request headers is returned as response header x-req-<i>, read during the response
// headers as x-resp-<i>: the hex of the raw bytes, or "!<error>". A request carrying deny_header is answered
// 403 by the plugin itself (details "denied by test"), so the same plugin also sees a local reply.
package main

import (
	"encoding/hex"
	"strconv"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	properties [][]string
	denyHeader string
}

func init() {
	wrapper.SetCtx("host-attrs",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
	)
}

func parseConfig(json gjson.Result, c *config) error {
	for _, p := range json.Get("properties").Array() {
		var path []string
		for _, seg := range p.Array() {
			path = append(path, seg.String())
		}
		c.properties = append(c.properties, path)
	}
	c.denyHeader = json.Get("deny_header").String()
	return nil
}

func read(path []string) string {
	v, err := proxywasm.GetProperty(path)
	if err != nil {
		return "!" + err.Error()
	}
	return hex.EncodeToString(v)
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	values := make([]string, len(c.properties))
	for i, p := range c.properties {
		values[i] = read(p)
	}
	ctx.SetContext("req", values)
	if c.denyHeader != "" {
		if _, err := proxywasm.GetHttpRequestHeader(c.denyHeader); err == nil {
			_ = proxywasm.SendHttpResponseWithDetail(403, "denied by test", nil, []byte("denied"), -1)
			return types.ActionPause
		}
	}
	return types.ActionContinue
}

func onResponseHeaders(ctx wrapper.HttpContext, c config) types.Action {
	if values, ok := ctx.GetContext("req").([]string); ok {
		for i, v := range values {
			_ = proxywasm.AddHttpResponseHeader("x-req-"+strconv.Itoa(i), v)
		}
	}
	for i, p := range c.properties {
		_ = proxywasm.AddHttpResponseHeader("x-resp-"+strconv.Itoa(i), read(p))
	}
	_ = proxywasm.AddHttpResponseHeader("x-from-upstream", strconv.FormatBool(wrapper.IsResponseFromUpstream()))
	return types.ActionContinue
}
