// A network (L4) filter on the upstream proxy-wasm-go-sdk, modelled on the SDK's examples/network: it logs each
// connection's events and data in both directions, reads the upstream's address (property upstream.address) and
// the cluster's `location` metadata, and counts finished connections in the counter
// proxy_wasm_go.connection_counter.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetPluginContext(func(uint32) types.PluginContext {
		return &plugin{connections: proxywasm.DefineCounterMetric("proxy_wasm_go.connection_counter")}
	})
}

type plugin struct {
	types.DefaultPluginContext
	connections proxywasm.MetricCounter
}

func (p *plugin) NewTcpContext(uint32) types.TcpContext {
	return &connection{connections: p.connections}
}

type connection struct {
	types.DefaultTcpContext
	connections proxywasm.MetricCounter
}

func (c *connection) OnNewConnection() types.Action {
	proxywasm.LogInfo("tcp-network: new connection")
	return types.ActionContinue
}

func (c *connection) OnDownstreamData(size int, endOfStream bool) types.Action {
	if size == 0 {
		return types.ActionContinue
	}
	data, err := proxywasm.GetDownstreamData(0, size)
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCriticalf("tcp-network: read downstream data: %v", err)
		return types.ActionContinue
	}
	proxywasm.LogInfof("tcp-network: downstream data: %s", string(data))
	return types.ActionContinue
}

func (c *connection) OnDownstreamClose(peer types.PeerType) {
	proxywasm.LogInfof("tcp-network: downstream close (peer %d)", peer)
}

func (c *connection) OnUpstreamData(size int, endOfStream bool) types.Action {
	if size == 0 {
		return types.ActionContinue
	}
	address, err := proxywasm.GetProperty([]string{"upstream", "address"})
	if err != nil {
		proxywasm.LogWarnf("tcp-network: no upstream address: %v", err)
	}
	proxywasm.LogInfof("tcp-network: upstream address: %s", string(address))
	location, err := proxywasm.GetPropertyMap([]string{"cluster_metadata", "filter_metadata", "location"})
	if err != nil {
		proxywasm.LogWarnf("tcp-network: no cluster location metadata: %v", err)
	}
	for _, kv := range location {
		proxywasm.LogInfof("tcp-network: cluster location %s=%s", kv[0], kv[1])
	}
	data, err := proxywasm.GetUpstreamData(0, size)
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCritical(err.Error())
	}
	proxywasm.LogInfof("tcp-network: upstream data: %s", string(data))
	return types.ActionContinue
}

func (c *connection) OnStreamDone() {
	c.connections.Increment(1)
	proxywasm.LogInfo("tcp-network: connection complete")
}
