// A Higress SDK plugin that buffers whole bodies (ProcessRequestBody / ProcessResponseBody: the wrapper returns
// ActionPause, Envoy's StopIterationAndBuffer, until the end of stream) and may set the stream's buffer limit
// with ctx.SetRequestBodyBufferLimit / SetResponseBodyBufferLimit (Higress's set_decoder/encoder_buffer_limit).
// Configuration: {"request_limit": 0, "response_limit": 0}; 0 leaves the listener's limit in place.
// The buffered request body's length goes upstream as x-buffered-request; the response's comes back as
// x-buffered-response.
package main

import (
	"strconv"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	requestLimit  uint32
	responseLimit uint32
}

func init() {
	wrapper.SetCtx("host-buffer",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
		wrapper.ProcessRequestBody(onRequestBody),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
		wrapper.ProcessResponseBody(onResponseBody),
	)
}

func parseConfig(json gjson.Result, c *config) error {
	c.requestLimit = uint32(json.Get("request_limit").Uint())
	c.responseLimit = uint32(json.Get("response_limit").Uint())
	return nil
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	if c.requestLimit > 0 {
		ctx.SetRequestBodyBufferLimit(c.requestLimit)
	}
	// Headers wait for the body, so the body's length can still be added to them.
	return types.HeaderStopIteration
}

func onRequestBody(ctx wrapper.HttpContext, c config, body []byte) types.Action {
	_ = proxywasm.AddHttpRequestHeader("x-buffered-request", strconv.Itoa(len(body)))
	return types.ActionContinue
}

func onResponseHeaders(ctx wrapper.HttpContext, c config) types.Action {
	if c.responseLimit > 0 {
		ctx.SetResponseBodyBufferLimit(c.responseLimit)
	}
	_ = proxywasm.RemoveHttpResponseHeader("content-length")
	return types.HeaderStopIteration
}

func onResponseBody(ctx wrapper.HttpContext, c config, body []byte) types.Action {
	_ = proxywasm.AddHttpResponseHeader("x-buffered-response", strconv.Itoa(len(body)))
	return types.ActionContinue
}
