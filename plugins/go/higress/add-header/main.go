// A Higress SDK plugin that adds a request and a response header named by its configuration, with no log
// calls: the benchmark's "Go header plugin" row and the simplest end-to-end check of the Go SDK path.
package main

import (
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	requestHeader  string
	responseHeader string
	value          string
}

func init() {
	wrapper.SetCtx("go-add-header",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
	)
}

func parseConfig(json gjson.Result, c *config) error {
	c.requestHeader = json.Get("request_header").String()
	c.responseHeader = json.Get("response_header").String()
	c.value = json.Get("value").String()
	if c.requestHeader == "" {
		c.requestHeader = "x-go-request"
	}
	if c.responseHeader == "" {
		c.responseHeader = "x-go-response"
	}
	return nil
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	_ = proxywasm.AddHttpRequestHeader(c.requestHeader, c.value)
	return types.ActionContinue
}

func onResponseHeaders(ctx wrapper.HttpContext, c config) types.Action {
	_ = proxywasm.AddHttpResponseHeader(c.responseHeader, c.value)
	return types.ActionContinue
}
