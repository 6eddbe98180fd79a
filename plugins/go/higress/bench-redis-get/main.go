// A Higress SDK plugin that does one Redis GET per request through wrapper.RedisClusterClient and resumes the
// request when the reply arrives: the benchmark's "Go Redis plugin" row (bench/go/go-bench.ts). The value is
// passed upstream in a request header so the request visibly depends on the reply; a Redis error becomes a
// local 503, which the bench counts as a failed request rather than a fast one.
package main

import (
	"errors"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
	"github.com/tidwall/resp"
)

func main() {}

type config struct {
	client *wrapper.RedisClusterClient[wrapper.FQDNCluster]
	key    string
	header string
}

func init() {
	wrapper.SetCtx("go-bench-redis-get",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
	)
}

// Configuration as Higress plugins take a Redis service: {"service_name", "service_port", "key", ...}; the cluster
// is the FQDN one Higress names outbound|<port>||<service_name>.
func parseConfig(json gjson.Result, c *config) error {
	name := json.Get("service_name").String()
	if name == "" {
		return errors.New("missing service_name")
	}
	port := json.Get("service_port").Int()
	if port == 0 {
		port = 6379
	}
	c.key = json.Get("key").String()
	if c.key == "" {
		return errors.New("missing key")
	}
	c.header = json.Get("header").String()
	if c.header == "" {
		c.header = "x-redis-value"
	}
	timeout := json.Get("timeout").Int()
	if timeout == 0 {
		timeout = 1000
	}
	c.client = wrapper.NewRedisClusterClient(wrapper.FQDNCluster{FQDN: name, Port: port})
	return c.client.Init(json.Get("username").String(), json.Get("password").String(), timeout)
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	err := c.client.Get(c.key, func(reply resp.Value) {
		if reply.Error() != nil {
			_ = proxywasm.SendHttpResponse(503, [][2]string{{"content-type", "text/plain"}}, []byte("redis GET failed\n"), -1)
			return
		}
		_ = proxywasm.ReplaceHttpRequestHeader(c.header, reply.String())
		_ = proxywasm.ResumeHttpRequest()
	})
	if err != nil {
		_ = proxywasm.SendHttpResponse(503, [][2]string{{"content-type", "text/plain"}}, []byte("redis GET not sent\n"), -1)
		return types.ActionPause
	}
	return types.HeaderStopAllIterationAndWatermark
}
