// A Higress SDK plugin for ticks and shared data as the SDK exposes them. parseConfig registers two tick
// functions (wrapper.RegisterTickFunc; the SDK then sets a 100 ms tick period and runs each function when its
// own period has passed) that count their runs in shared data. Requests under /shared/ read and write shared
// data with the CAS value the client passes, so CAS can be exercised across requests. With `refresh_fqdn`, one
// more tick calls that service's /token from the root context and stores the answer under "token".
//
//	/shared/get?key=K                 200 x-shared-value, x-shared-cas; 404 when the key does not exist
//	/shared/set?key=K&value=V&cas=N   200 x-shared-result: ok; 409 with the host's error (cas mismatch)
//	/shared/incr?key=K                a get/set-with-cas retry loop; 200 x-shared-value, x-shared-retries
package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm"
	"github.com/higress-group/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/higress-group/wasm-go/pkg/log"
	"github.com/higress-group/wasm-go/pkg/wrapper"
	"github.com/tidwall/gjson"
)

func main() {}

type config struct{}

func init() {
	wrapper.SetCtx("sdk-shared",
		wrapper.ParseConfig(parseConfig),
		wrapper.ProcessRequestHeaders(onRequestHeaders),
	)
}

func parseConfig(json gjson.Result, _ *config) error {
	prefix := json.Get("tick_prefix").String()
	fast := json.Get("fast_ms").Int()
	slow := json.Get("slow_ms").Int()
	if prefix == "" || fast <= 0 || slow <= 0 {
		return errors.New("tick_prefix, fast_ms and slow_ms are required")
	}
	wrapper.RegisterTickFunc(fast, func() { tickCount(prefix + ".fast") })
	wrapper.RegisterTickFunc(slow, func() { tickCount(prefix + ".slow") })
	if fqdn := json.Get("refresh_fqdn").String(); fqdn != "" {
		registerRefresh(wrapper.NewClusterClient(wrapper.FQDNCluster{FQDN: fqdn, Port: json.Get("refresh_port").Int()}))
	}
	return nil
}

// registerRefresh: a tick that calls out from the root context (no HTTP stream), as plugins that refresh a
// token or a rule set do, and stores what it got in shared data for every request (and VM) to read.
func registerRefresh(client wrapper.HttpClient) {
	inFlight := false
	wrapper.RegisterTickFunc(200, func() {
		if inFlight {
			return
		}
		inFlight = true
		err := client.Get("/token", nil, func(code int, _ http.Header, body []byte) {
			inFlight = false
			if code != 200 {
				log.Warnf("refresh answered %d", code)
				return
			}
			if err := proxywasm.SetSharedData("token", body, 0); err != nil {
				log.Errorf("store token: %v", err)
			}
		}, 2000)
		if err != nil {
			inFlight = false
			log.Errorf("refresh refused: %v", err)
		}
	})
}

func tickCount(key string) {
	if _, _, err := incr(key); err != nil {
		log.Errorf("tick %s: %v", key, err)
	}
}

// incr adds one to a decimal counter with compare-and-swap, retrying when another VM wrote in between.
func incr(key string) (value uint64, retries int, err error) {
	for retries = 0; retries < 1000; retries++ {
		data, cas, getErr := proxywasm.GetSharedData(key)
		var n uint64
		switch {
		case getErr == nil:
			if n, err = strconv.ParseUint(string(data), 10, 64); err != nil {
				return 0, retries, fmt.Errorf("%s holds %q: %w", key, data, err)
			}
		case errors.Is(getErr, types.ErrorStatusNotFound):
		default:
			return 0, retries, getErr
		}
		setErr := proxywasm.SetSharedData(key, []byte(strconv.FormatUint(n+1, 10)), cas)
		if setErr == nil {
			return n + 1, retries, nil
		}
		if !errors.Is(setErr, types.ErrorStatusCasMismatch) {
			return 0, retries, setErr
		}
	}
	return 0, retries, fmt.Errorf("%s: still contended after %d retries", key, retries)
}

func reply(status uint32, headers [][2]string) types.Action {
	_ = proxywasm.SendHttpResponseWithDetail(status, "sdk-shared", headers, nil, -1)
	return types.ActionPause
}

func onRequestHeaders(ctx wrapper.HttpContext, _ config) types.Action {
	u, err := url.Parse(ctx.Path())
	if err != nil || !strings.HasPrefix(u.Path, "/shared/") {
		return types.ActionContinue
	}
	q := u.Query()
	key := q.Get("key")
	switch strings.TrimPrefix(u.Path, "/shared/") {
	case "get":
		data, cas, err := proxywasm.GetSharedData(key)
		if err != nil {
			return reply(404, [][2]string{{"x-shared-error", err.Error()}, {"x-shared-cas", fmt.Sprint(cas)}})
		}
		return reply(200, [][2]string{{"x-shared-value", string(data)}, {"x-shared-cas", fmt.Sprint(cas)}})
	case "set":
		cas, _ := strconv.ParseUint(q.Get("cas"), 10, 32)
		if err := proxywasm.SetSharedData(key, []byte(q.Get("value")), uint32(cas)); err != nil {
			return reply(409, [][2]string{{"x-shared-result", err.Error()}})
		}
		return reply(200, [][2]string{{"x-shared-result", "ok"}})
	case "incr":
		n, retries, err := incr(key)
		if err != nil {
			return reply(500, [][2]string{{"x-shared-result", err.Error()}})
		}
		return reply(200, [][2]string{{"x-shared-value", fmt.Sprint(n)}, {"x-shared-retries", fmt.Sprint(retries)}})
	}
	return reply(404, nil)
}
