// A Higress SDK plugin that calls out over HTTP through the SDK's cluster clients before letting a request
// through, as ext-auth style Higress plugins do: onHttpRequestHeaders dispatches the callout and pauses the
// request (HeaderStopAllIterationAndWatermark); the callback adds the callout's status and body to the request
// and resumes it, or answers the client with a local reply when the callout did not return 2xx. The first path
// segment picks the cluster client, so one plugin covers each cluster kind:
//
//	/fqdn/...    FQDNCluster{FQDN, Port}             -> outbound|<port>||<fqdn>
//	/k8s/...     K8sCluster{ServiceName, Namespace}  -> outbound|<port>||<svc>.<ns>.svc.cluster.local
//	/static/...  StaticIpCluster{ServiceName, Port}  -> outbound|<port>||<svc>.static
//	/dns/...     DnsCluster{ServiceName, Domain}     -> outbound|<port>||<svc>.dns
//	/route/...   RouteCluster{Host}                  -> the current route's cluster_name
//	/post/...    FQDNCluster, Post with a body (and a wrong content-length header)
//	/svc/<name>/ FQDNCluster{<name>.<namespace>.svc.cluster.local}: a cluster that does not exist (dispatch
//	             fails at once), has no endpoints or a dead one
//	/slow/...    FQDNCluster with the short timeout
package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/log"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct {
	service        string
	namespace      string
	port           int64
	staticPort     int64
	dnsDomain      string
	timeoutMs      uint32
	shortTimeoutMs uint32
}

func init() {
	wrapper.SetCtx("sdk-callout",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
	)
}

func parseConfig(json gjson.Result, c *config) error {
	c.service = json.Get("service").String()
	c.namespace = json.Get("namespace").String()
	c.port = json.Get("port").Int()
	c.staticPort = json.Get("static_port").Int()
	c.dnsDomain = json.Get("dns_domain").String()
	c.timeoutMs = uint32(json.Get("timeout_ms").Uint())
	c.shortTimeoutMs = uint32(json.Get("short_timeout_ms").Uint())
	if c.service == "" || c.namespace == "" || c.port == 0 {
		return fmt.Errorf("service, namespace and port are required")
	}
	return nil
}

func (c config) fqdn() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", c.service, c.namespace)
}

func onRequestHeaders(ctx wrapper.HttpContext, c config) types.Action {
	path := ctx.Path()
	segments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	kind := segments[0]
	headers := [][2]string{{"x-callout-from", kind}, {"x-original-path", path}}
	target := "/check?kind=" + kind
	timeout := c.timeoutMs
	var client wrapper.HttpClient
	switch kind {
	case "fqdn", "post":
		client = wrapper.NewClusterClient(wrapper.FQDNCluster{FQDN: c.fqdn(), Port: c.port})
	case "k8s":
		client = wrapper.NewClusterClient(wrapper.K8sCluster{ServiceName: c.service, Namespace: c.namespace, Port: c.port})
	case "static":
		client = wrapper.NewClusterClient(wrapper.StaticIpCluster{ServiceName: c.service, Port: c.staticPort})
	case "dns":
		client = wrapper.NewClusterClient(wrapper.DnsCluster{ServiceName: c.service, Domain: c.dnsDomain, Port: c.port})
	case "route":
		client = wrapper.NewClusterClient(wrapper.RouteCluster{Host: "route-callout.internal"})
	case "svc":
		if len(segments) < 2 {
			return types.ActionContinue
		}
		client = wrapper.NewClusterClient(wrapper.FQDNCluster{FQDN: segments[1] + "." + c.namespace + ".svc.cluster.local", Port: c.port})
	case "slow":
		client = wrapper.NewClusterClient(wrapper.FQDNCluster{FQDN: c.fqdn(), Port: c.port})
		target = "/slow"
		timeout = c.shortTimeoutMs
	default:
		return types.ActionContinue
	}
	cb := func(code int, respHeaders http.Header, body []byte) {
		if code < 200 || code >= 300 {
			log.Warnf("callout via %s answered %d", client.ClusterName(), code)
			_ = proxywasm.SendHttpResponseWithDetail(uint32(code), "sdk-callout.denied", [][2]string{{"x-callout-cluster", client.ClusterName()}},
				[]byte(fmt.Sprintf("callout answered %d: %s", code, body)), -1)
			return
		}
		_ = proxywasm.AddHttpRequestHeader("x-callout-status", fmt.Sprint(code))
		_ = proxywasm.AddHttpRequestHeader("x-callout-body", string(body))
		_ = proxywasm.AddHttpRequestHeader("x-callout-cluster", client.ClusterName())
		_ = proxywasm.AddHttpRequestHeader("x-callout-reply-header", respHeaders.Get("x-auth-reply"))
		_ = proxywasm.ResumeHttpRequest()
	}
	var err error
	if kind == "post" {
		// A wrong length from the plugin: the host sets the body's own (Envoy's Context::httpCall).
		headers = append(headers, [2]string{"content-length", "999"})
		err = client.Post(target, headers, []byte("posted for "+path), cb, timeout)
	} else {
		err = client.Get(target, headers, cb, timeout)
	}
	if err != nil {
		// The host refused the call (unknown cluster: BadArgument): nothing is pending, answer now.
		log.Errorf("callout via %s refused: %v", client.ClusterName(), err)
		_ = proxywasm.SendHttpResponseWithDetail(500, "sdk-callout.refused", [][2]string{{"x-callout-cluster", client.ClusterName()}},
			[]byte("callout refused: "+err.Error()), -1)
		return types.ActionPause
	}
	return types.HeaderStopAllIterationAndWatermark
}
