// A Higress SDK plugin that drives wrapper.RedisClusterClient end to end, for the sidecar's Redis tests.
//
// Its configuration lists clients; each is built from one of the SDK's cluster types (so the upstream cluster
// name is the one the SDK derives) and initialised with username, password, timeout and database, either while
// the configuration is parsed (as real plugins do) or on the first request (RouteCluster needs the request's
// route to know its name). Each init is logged and reported by `GET /init`.
//
// `GET /ops` runs the operations of the `x-redis-ops` header (JSON: [{"op":"HSet","args":["h","f","v"]}, ...])
// one after the other, each in the previous one's callback, on the client named by `x-redis-client`, and answers
// with a local reply whose JSON body holds what the plugin saw for each: the SDK's synchronous error, or the
// resp.Value its callback received. An op is a RedisClient method name (args in the method's order; maps as
// JSON objects), or "RedisCall" for the package-level wrapper.RedisCall on the client's cluster.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
	"github.com/tidwall/resp"
)

func main() {}

func init() {
	wrapper.SetCtx("redis-client",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
	)
}

type initReport struct {
	Name string `json:"name"`
	// The cluster name the SDK derived (ClusterName()), without the init parameters.
	Cluster string `json:"cluster"`
	// "config" or "request": when Init ran.
	Phase string `json:"phase"`
	// What Init returned, "" for nil.
	Err   string `json:"err"`
	Ready bool   `json:"ready"`
	Done  bool   `json:"done"`
}

type client struct {
	spec    gjson.Result
	redis   wrapper.RedisClient
	cluster wrapper.Cluster
	report  initReport
}

type config struct {
	clients map[string]*client
	order   []string
}

func parseConfig(json gjson.Result, c *config) error {
	c.clients = map[string]*client{}
	for _, spec := range json.Get("clients").Array() {
		name := spec.Get("name").String()
		if name == "" {
			return fmt.Errorf("a client has no name")
		}
		if _, dup := c.clients[name]; dup {
			return fmt.Errorf("client %q is listed twice", name)
		}
		cluster, err := newCluster(spec.Get("cluster"))
		if err != nil {
			return fmt.Errorf("client %q: %v", name, err)
		}
		cl := &client{spec: spec, redis: newClient(cluster), cluster: cluster, report: initReport{Name: name}}
		c.clients[name] = cl
		c.order = append(c.order, name)
		if spec.Get("init").String() != "request" {
			cl.initialise("config")
		}
	}
	return nil
}

// newCluster builds the SDK cluster type the configuration names.
func newCluster(c gjson.Result) (wrapper.Cluster, error) {
	port := c.Get("port").Int()
	switch t := c.Get("type").String(); t {
	case "fqdn":
		return wrapper.FQDNCluster{FQDN: c.Get("fqdn").String(), Host: c.Get("host").String(), Port: port}, nil
	case "k8s":
		return wrapper.K8sCluster{ServiceName: c.Get("service").String(), Namespace: c.Get("namespace").String(),
			Port: port, Version: c.Get("version").String()}, nil
	case "static":
		return wrapper.StaticIpCluster{ServiceName: c.Get("service").String(), Port: port}, nil
	case "dns":
		return wrapper.DnsCluster{ServiceName: c.Get("service").String(), Domain: c.Get("domain").String(), Port: port}, nil
	case "nacos":
		return wrapper.NacosCluster{ServiceName: c.Get("service").String(), Group: c.Get("group").String(),
			NamespaceID: c.Get("namespace_id").String(), Port: port, IsExtRegistry: c.Get("ext_registry").Bool(),
			Version: c.Get("version").String()}, nil
	case "consul":
		return wrapper.ConsulCluster{ServiceName: c.Get("service").String(), Datacenter: c.Get("datacenter").String(), Port: port}, nil
	case "target":
		return wrapper.TargetCluster{Cluster: c.Get("cluster").String(), Host: c.Get("host").String()}, nil
	case "route":
		return wrapper.RouteCluster{}, nil
	default:
		return nil, fmt.Errorf("unknown cluster type %q", t)
	}
}

// newClient instantiates RedisClusterClient with the concrete cluster type, as a plugin written for one
// cluster type would (the client is generic over it).
func newClient(c wrapper.Cluster) wrapper.RedisClient {
	switch t := c.(type) {
	case wrapper.FQDNCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.K8sCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.StaticIpCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.DnsCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.NacosCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.ConsulCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.TargetCluster:
		return wrapper.NewRedisClusterClient(t)
	case wrapper.RouteCluster:
		return wrapper.NewRedisClusterClient(t)
	default:
		return wrapper.NewRedisClusterClient(c)
	}
}

func (cl *client) initialise(phase string) {
	s := cl.spec
	err := cl.redis.Init(s.Get("username").String(), s.Get("password").String(), s.Get("timeout").Int(),
		wrapper.WithDataBase(int(s.Get("database").Int())))
	cl.report.Cluster = cl.cluster.ClusterName()
	cl.report.Phase = phase
	cl.report.Err = errString(err)
	cl.report.Ready = cl.redis.Ready()
	cl.report.Done = true
	proxywasm.LogInfof("redis-client init name=%s cluster=%s phase=%s ready=%t err=%s",
		cl.report.Name, cl.report.Cluster, phase, cl.report.Ready, cl.report.Err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// value is a resp.Value as JSON: what the callback received, type by type.
type value struct {
	Type  string  `json:"type"`
	Str   string  `json:"str,omitempty"`
	Int   *int    `json:"int,omitempty"`
	Null  bool    `json:"null,omitempty"`
	Err   string  `json:"err,omitempty"`
	Array []value `json:"array,omitempty"`
}

func toValue(v resp.Value) value {
	out := value{Type: v.Type().String(), Null: v.IsNull()}
	switch v.Type() {
	case resp.Integer:
		n := v.Integer()
		out.Int = &n
	case resp.Error:
		out.Err = v.Error().Error()
	case resp.Array:
		out.Array = []value{}
		for _, e := range v.Array() {
			out.Array = append(out.Array, toValue(e))
		}
	default:
		out.Str = v.String()
	}
	return out
}

type result struct {
	Op string `json:"op"`
	// The error the SDK method returned (nothing was sent, no callback follows).
	DispatchErr string `json:"dispatch_err,omitempty"`
	Reply       *value `json:"reply,omitempty"`
}

type run struct {
	client  *client
	ops     []gjson.Result
	results []result
	replied bool
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	path := ctx.Path()
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	name, _ := proxywasm.GetHttpRequestHeader("x-redis-client")
	if strings.HasSuffix(path, "/init") {
		reports := make([]initReport, 0, len(c.order))
		for _, n := range c.order {
			reports = append(reports, c.clients[n].report)
		}
		return reply(200, reports)
	}
	cl := c.clients[name]
	if cl == nil {
		return reply(404, map[string]string{"error": fmt.Sprintf("no client %q", name)})
	}
	if !cl.report.Done {
		cl.initialise("request")
	}
	if !strings.HasSuffix(path, "/ops") {
		return reply(200, cl.report)
	}
	raw, _ := proxywasm.GetHttpRequestHeader("x-redis-ops")
	ops := gjson.Parse(raw)
	if !ops.IsArray() {
		return reply(400, map[string]string{"error": "x-redis-ops is not a JSON array"})
	}
	r := &run{client: cl, ops: ops.Array()}
	r.next()
	return types.ActionPause
}

// next issues the next operation; its callback calls next again. Every path ends in one local reply.
func (r *run) next() {
	for len(r.results) < len(r.ops) {
		op := r.ops[len(r.results)]
		idx := len(r.results)
		r.results = append(r.results, result{Op: op.Get("op").String()})
		err := dispatch(r.client, op, func(v resp.Value) {
			rv := toValue(v)
			r.results[idx].Reply = &rv
			r.next()
		})
		if err == nil {
			return // the callback continues
		}
		r.results[idx].DispatchErr = err.Error()
	}
	if !r.replied {
		r.replied = true
		reply(200, map[string]interface{}{"client": r.client.report, "results": r.results})
	}
}

func reply(status uint32, body interface{}) types.Action {
	b, _ := json.Marshal(body)
	_ = proxywasm.SendHttpResponseWithDetail(status, "redis-client", [][2]string{{"content-type", "application/json"}}, b, -1)
	return types.ActionPause
}

// dispatch calls the SDK method named by op with its JSON args.
func dispatch(cl *client, op gjson.Result, cb wrapper.RedisResponseCallback) error {
	c := cl.redis
	a := op.Get("args").Array()
	s := func(i int) string { return arg(a, i).String() }
	n := func(i int) int { return int(arg(a, i).Int()) }
	v := func(i int) interface{} { return arg(a, i).Value() }
	strs := func(i int) []string {
		out := []string{}
		for _, e := range arg(a, i).Array() {
			out = append(out, e.String())
		}
		return out
	}
	list := func(i int) []interface{} {
		out := []interface{}{}
		for _, e := range arg(a, i).Array() {
			out = append(out, e.Value())
		}
		return out
	}
	kv := func(i int) map[string]interface{} {
		out := map[string]interface{}{}
		arg(a, i).ForEach(func(k, e gjson.Result) bool {
			out[k.String()] = e.Value()
			return true
		})
		return out
	}
	switch name := op.Get("op").String(); name {
	case "RedisCall":
		// The package-level call: no client, no ready check, no NOAUTH retry; the query is encoded here.
		return wrapper.RedisCall(cl.cluster, encode(list(0)), cb)
	case "Command":
		return c.Command(list(0), cb)
	case "Eval":
		return c.Eval(s(0), n(1), list(2), list(3), cb)
	case "Del":
		return c.Del(s(0), cb)
	case "Exists":
		return c.Exists(s(0), cb)
	case "Expire":
		return c.Expire(s(0), n(1), cb)
	case "Persist":
		return c.Persist(s(0), cb)
	case "Get":
		return c.Get(s(0), cb)
	case "Set":
		return c.Set(s(0), v(1), cb)
	case "SetEx":
		return c.SetEx(s(0), v(1), n(2), cb)
	case "SetNX":
		return c.SetNX(s(0), v(1), n(2), cb)
	case "MGet":
		return c.MGet(strs(0), cb)
	case "MSet":
		return c.MSet(kv(0), cb)
	case "Incr":
		return c.Incr(s(0), cb)
	case "Decr":
		return c.Decr(s(0), cb)
	case "IncrBy":
		return c.IncrBy(s(0), n(1), cb)
	case "DecrBy":
		return c.DecrBy(s(0), n(1), cb)
	case "LLen":
		return c.LLen(s(0), cb)
	case "RPush":
		return c.RPush(s(0), list(1), cb)
	case "RPop":
		return c.RPop(s(0), cb)
	case "LPush":
		return c.LPush(s(0), list(1), cb)
	case "LPop":
		return c.LPop(s(0), cb)
	case "LIndex":
		return c.LIndex(s(0), n(1), cb)
	case "LRange":
		return c.LRange(s(0), n(1), n(2), cb)
	case "LRem":
		return c.LRem(s(0), n(1), v(2), cb)
	case "LInsertBefore":
		return c.LInsertBefore(s(0), v(1), v(2), cb)
	case "LInsertAfter":
		return c.LInsertAfter(s(0), v(1), v(2), cb)
	case "HExists":
		return c.HExists(s(0), s(1), cb)
	case "HDel":
		return c.HDel(s(0), strs(1), cb)
	case "HLen":
		return c.HLen(s(0), cb)
	case "HGet":
		return c.HGet(s(0), s(1), cb)
	case "HSet":
		return c.HSet(s(0), s(1), v(2), cb)
	case "HMGet":
		return c.HMGet(s(0), strs(1), cb)
	case "HMSet":
		return c.HMSet(s(0), kv(1), cb)
	case "HKeys":
		return c.HKeys(s(0), cb)
	case "HVals":
		return c.HVals(s(0), cb)
	case "HGetAll":
		return c.HGetAll(s(0), cb)
	case "HIncrBy":
		return c.HIncrBy(s(0), s(1), n(2), cb)
	case "HIncrByFloat":
		return c.HIncrByFloat(s(0), s(1), arg(a, 2).Float(), cb)
	case "SCard":
		return c.SCard(s(0), cb)
	case "SAdd":
		return c.SAdd(s(0), list(1), cb)
	case "SRem":
		return c.SRem(s(0), list(1), cb)
	case "SIsMember":
		return c.SIsMember(s(0), v(1), cb)
	case "SMembers":
		return c.SMembers(s(0), cb)
	case "SDiff":
		return c.SDiff(s(0), s(1), cb)
	case "SDiffStore":
		return c.SDiffStore(s(0), s(1), s(2), cb)
	case "SInter":
		return c.SInter(s(0), s(1), cb)
	case "SInterStore":
		return c.SInterStore(s(0), s(1), s(2), cb)
	case "SUnion":
		return c.SUnion(s(0), s(1), cb)
	case "SUnionStore":
		return c.SUnionStore(s(0), s(1), s(2), cb)
	case "ZCard":
		return c.ZCard(s(0), cb)
	case "ZAdd":
		return c.ZAdd(s(0), kv(1), cb)
	case "ZCount":
		return c.ZCount(s(0), v(1), v(2), cb)
	case "ZIncrBy":
		return c.ZIncrBy(s(0), s(1), v(2), cb)
	case "ZScore":
		return c.ZScore(s(0), s(1), cb)
	case "ZRank":
		return c.ZRank(s(0), s(1), cb)
	case "ZRevRank":
		return c.ZRevRank(s(0), s(1), cb)
	case "ZRem":
		return c.ZRem(s(0), strs(1), cb)
	case "ZRange":
		return c.ZRange(s(0), n(1), n(2), cb)
	case "ZRevRange":
		return c.ZRevRange(s(0), n(1), n(2), cb)
	default:
		return fmt.Errorf("unknown op %q", name)
	}
}

// encode writes args as wasm-go does: a RESP array of bulk strings, each fmt.Sprint-ed.
func encode(args []interface{}) []byte {
	var buf bytes.Buffer
	vals := make([]resp.Value, 0, len(args))
	for _, a := range args {
		vals = append(vals, resp.StringValue(fmt.Sprint(a)))
	}
	_ = resp.NewWriter(&buf).WriteArray(vals)
	return buf.Bytes()
}

func arg(a []gjson.Result, i int) gjson.Result {
	if i < len(a) {
		return a[i]
	}
	return gjson.Result{}
}
