// A plugin on the upstream proxy-wasm-go-sdk with a plugin context and configuration: buffers the whole
// request body (ActionPause until end of stream), replaces a configured word in it, and logs at info.
package main

import (
	"bytes"
	"strconv"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetPluginContext(func(uint32) types.PluginContext { return &plugin{} })
}

type plugin struct {
	types.DefaultPluginContext
	from, to []byte
}

// The configuration is "from=to" (plain text, as the upstream SDK's examples read theirs).
func (p *plugin) OnPluginStart(size int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCriticalf("up-body: no configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	parts := bytes.SplitN(data, []byte("="), 2)
	if len(parts) != 2 || len(parts[0]) == 0 {
		proxywasm.LogCriticalf("up-body: configuration must be from=to, got %q", string(data))
		return types.OnPluginStartStatusFailed
	}
	p.from, p.to = parts[0], parts[1]
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &body{plugin: p} }

type body struct {
	types.DefaultHttpContext
	plugin *plugin
}

func (b *body) OnHttpRequestHeaders(int, bool) types.Action {
	_ = proxywasm.RemoveHttpRequestHeader("content-length")
	return types.ActionContinue
}

func (b *body) OnHttpRequestBody(size int, end bool) types.Action {
	if !end {
		return types.ActionPause
	}
	data, err := proxywasm.GetHttpRequestBody(0, size)
	if err != nil {
		proxywasm.LogErrorf("up-body: read body: %v", err)
		return types.ActionContinue
	}
	out := bytes.ReplaceAll(data, b.plugin.from, b.plugin.to)
	if err := proxywasm.ReplaceHttpRequestBody(out); err != nil {
		proxywasm.LogErrorf("up-body: replace body: %v", err)
	}
	proxywasm.LogInfof("up-body: rewrote %d bytes into %s", size, strconv.Itoa(len(out)))
	return types.ActionContinue
}
