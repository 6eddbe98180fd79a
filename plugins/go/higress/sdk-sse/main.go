// A Higress SDK plugin that rewrites bodies chunk by chunk in both directions, as Higress's AI plugins process
// streamed (SSE) model output: wrapper.ProcessStreamingRequestBody and ProcessStreamingResponseBody get each
// chunk as it arrives and return its replacement, so nothing is buffered.
//
//   - request body: every byte upper-cased; the last chunk gets "|END" appended.
//   - text/event-stream response: the values of `data` fields upper-cased (other fields and the framing kept,
//     so the stream stays valid SSE); where the parser is within the current line is kept across chunks, so an
//     event split between chunks is rewritten the same way. The last chunk gets one more event,
//     "data: [SDK-END]". Other responses are not read.
package main

import (
	"bytes"
	"strings"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct{}

func init() {
	wrapper.SetCtx("sdk-sse",
		wrapper.ParseConfig(func(gjson.Result, *config) error { return nil }),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
		wrapper.ProcessStreamingRequestBody(onStreamingRequestBody),
		wrapper.ProcessResponseHeaders(onResponseHeaders),
		wrapper.ProcessStreamingResponseBody(onStreamingResponseBody),
	)
}

func onRequestHeaders(ctx wrapper.HttpContext, _ config) types.Action {
	// The body grows: the upstream must not be told the client's length.
	_ = proxywasm.RemoveHttpRequestHeader("content-length")
	return types.ActionContinue
}

func onStreamingRequestBody(ctx wrapper.HttpContext, _ config, chunk []byte, isLastChunk bool) []byte {
	out := bytes.ToUpper(chunk)
	if isLastChunk {
		out = append(out, "|END"...)
	}
	return out
}

func onResponseHeaders(ctx wrapper.HttpContext, _ config) types.Action {
	contentType, _ := proxywasm.GetHttpResponseHeader("content-type")
	if !strings.HasPrefix(contentType, "text/event-stream") {
		ctx.DontReadResponseBody()
		return types.ActionContinue
	}
	_ = proxywasm.RemoveHttpResponseHeader("content-length")
	_ = proxywasm.AddHttpResponseHeader("x-sdk-sse", "rewritten")
	return types.ActionContinue
}

// Where the SSE parser is within the current line, kept in the HTTP context between chunks.
const (
	fieldKey   = "sse-field"    // the field name read so far on this line
	inValueKey = "sse-in-value" // past the field name's ':'
)

func onStreamingResponseBody(ctx wrapper.HttpContext, _ config, chunk []byte, isLastChunk bool) []byte {
	field := ctx.GetStringContext(fieldKey, "")
	inValue := ctx.GetBoolContext(inValueKey, false)
	out := make([]byte, len(chunk))
	for i, b := range chunk {
		switch {
		case b == '\n' || b == '\r':
			field, inValue = "", false
		case !inValue && b == ':':
			inValue = true
		case !inValue:
			field += string(b)
		case field == "data" && b >= 'a' && b <= 'z':
			b -= 'a' - 'A'
		}
		out[i] = b
	}
	ctx.SetContext(fieldKey, field)
	ctx.SetContext(inValueKey, inValue)
	if isLastChunk {
		out = append(out, "data: [SDK-END]\n\n"...)
	}
	return out
}
