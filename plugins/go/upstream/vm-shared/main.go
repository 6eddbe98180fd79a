// One module, several roles chosen by each plugin's configuration, for the VM-sharing and Wasm-service tests
// (upstream proxy-wasm-go-sdk). A package-level counter is VM-global: plugins that share one VM (same vm_id,
// code and vm configuration, on one worker) see one counter; plugins on separate VMs see one each.
//
//	counter:<label>        HTTP plugin: each response adds `x-vm-count-<label>: <VM-global count>`.
//	                       A request with `x-trap: <label>` panics in that plugin (fails its VM).
//	service:<tick ms>      Wasm service (bootstrap_extensions): at start adds 1 to shared `svc.instances`,
//	                       registers queue `svc-queue`; on every tick adds 1 to `svc.ticks`; on every queue
//	                       wake-up drains the queue into `svc.dequeued`.
//	reader:<vm_id>         HTTP plugin: enqueues the request path on (<vm_id>, `svc-queue`) and answers
//	                       locally with `instances=<n> ticks=<n> dequeued=<n> starts=<n>`.
//	metrics:<n1>,<n2>...   HTTP plugin: defines a counter of each name; each request adds 1 to every one.
//	                       An entry `h:<name>=<v>` is a histogram instead: each request records <v> in it.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

// VM-global state: one copy per VM instance.
var (
	count     uint64
	vmStarts  uint64
	pluginRun uint64
)

func init() { proxywasm.SetVMContext(&vm{}) }

type vm struct{ types.DefaultVMContext }

// Envoy (cpp-host) calls proxy_on_vm_start once per root context, so this counts root contexts of this VM.
func (*vm) OnVMStart(int) types.OnVMStartStatus {
	vmStarts++
	return types.OnVMStartStatusOK
}

func (*vm) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	role, arg string
	queue     uint32
	counters  []proxywasm.MetricCounter
	hists     []recorded
}

type recorded struct {
	histogram proxywasm.MetricHistogram
	value     uint64
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogCriticalf("vm-shared: no configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	role, arg, _ := strings.Cut(string(data), ":")
	p.role, p.arg = role, arg
	pluginRun++
	switch role {
	case "counter", "reader":
		return types.OnPluginStartStatusOK
	case "metrics":
		for _, name := range strings.Split(arg, ",") {
			if h, ok := strings.CutPrefix(name, "h:"); ok {
				hname, v, _ := strings.Cut(h, "=")
				value, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					proxywasm.LogCriticalf("vm-shared: bad histogram value in %q", name)
					return types.OnPluginStartStatusFailed
				}
				p.hists = append(p.hists, recorded{proxywasm.DefineHistogramMetric(hname), value})
				continue
			}
			p.counters = append(p.counters, proxywasm.DefineCounterMetric(name))
		}
		return types.OnPluginStartStatusOK
	case "service":
		ms, err := strconv.Atoi(arg)
		if err != nil || ms <= 0 {
			proxywasm.LogCriticalf("vm-shared: bad tick period %q", arg)
			return types.OnPluginStartStatusFailed
		}
		add("svc.instances", 1)
		if p.queue, err = proxywasm.RegisterSharedQueue("svc-queue"); err != nil {
			proxywasm.LogCriticalf("vm-shared: register queue: %v", err)
			return types.OnPluginStartStatusFailed
		}
		if err := proxywasm.SetTickPeriodMilliSeconds(uint32(ms)); err != nil {
			proxywasm.LogCriticalf("vm-shared: tick: %v", err)
			return types.OnPluginStartStatusFailed
		}
		return types.OnPluginStartStatusOK
	}
	proxywasm.LogCriticalf("vm-shared: unknown role %q", role)
	return types.OnPluginStartStatusFailed
}

func (p *plugin) OnTick() { add("svc.ticks", 1) }

func (p *plugin) OnQueueReady(id uint32) {
	for {
		_, err := proxywasm.DequeueSharedQueue(id)
		if err != nil {
			return // empty
		}
		add("svc.dequeued", 1)
	}
}

// add increments a shared-data counter with compare-and-swap, retrying on a concurrent writer.
func add(key string, n uint64) {
	for i := 0; i < 100; i++ {
		data, cas, err := proxywasm.GetSharedData(key)
		var v uint64
		if err == nil && len(data) == 8 {
			v = binary.LittleEndian.Uint64(data)
		} else if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
			proxywasm.LogErrorf("vm-shared: get %s: %v", key, err)
			return
		}
		out := make([]byte, 8)
		binary.LittleEndian.PutUint64(out, v+n)
		if err := proxywasm.SetSharedData(key, out, cas); err == nil {
			return
		} else if !errors.Is(err, types.ErrorStatusCasMismatch) {
			proxywasm.LogErrorf("vm-shared: set %s: %v", key, err)
			return
		}
	}
}

func read(key string) uint64 {
	data, _, err := proxywasm.GetSharedData(key)
	if err != nil || len(data) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(data)
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{plugin: p} }

type stream struct {
	types.DefaultHttpContext
	plugin *plugin
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	switch s.plugin.role {
	case "metrics":
		for _, c := range s.plugin.counters {
			c.Increment(1)
		}
		for _, h := range s.plugin.hists {
			h.histogram.Record(h.value)
		}
	case "counter":
		if v, err := proxywasm.GetHttpRequestHeader("x-trap"); err == nil && v == s.plugin.arg {
			panic("vm-shared: trap requested for " + v)
		}
	case "reader":
		path, _ := proxywasm.GetHttpRequestHeader(":path")
		if q, err := proxywasm.ResolveSharedQueue(s.plugin.arg, "svc-queue"); err == nil {
			_ = proxywasm.EnqueueSharedQueue(q, []byte(path))
		}
		body := fmt.Sprintf("instances=%d ticks=%d dequeued=%d starts=%d", read("svc.instances"), read("svc.ticks"), read("svc.dequeued"), vmStarts)
		_ = proxywasm.SendHttpResponse(200, [][2]string{{"content-type", "text/plain"}}, []byte(body), -1)
		return types.ActionPause
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	if s.plugin.role == "counter" {
		count++
		_ = proxywasm.AddHttpResponseHeader("x-vm-count-"+s.plugin.arg, strconv.FormatUint(count, 10))
		_ = proxywasm.AddHttpResponseHeader("x-vm-starts-"+s.plugin.arg, strconv.FormatUint(vmStarts, 10))
	}
	return types.ActionContinue
}
