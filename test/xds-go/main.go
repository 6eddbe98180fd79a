// Command xds-go is an xDS control plane for the sidecar's tests that shares no code with it: it is
// go-control-plane's own server and snapshot cache (what many real control planes are built on), serving ADS
// (SotW and Delta) and the per-type services. Snapshots come from JSON or YAML files whose resources are
// proto3 JSON Anys, so a test can write what istiod or Higress emit (clusters, endpoints, listeners, routes,
// ECDS Wasm configs) and push new versions at will, valid or not.
//
// Control is line-oriented JSON so a test can drive it without a second protocol:
//
//	stdin:  {"id":1,"cmd":"set","file":"snap.yaml"}   load a snapshot file and serve it to every node
//	        {"id":2,"cmd":"status"}                    per type: last ACKed version, last NACK
//	stdout: {"event":"listening","port":N}
//	        {"event":"set","id":1,"version":"2","at_unix_nanos":N} or {"event":"error","id":1,"message":"..."}
//	        (at_unix_nanos: when the loaded snapshot was handed to the cache, for benches to time pushes from)
//	        {"event":"request"|"response"|"ack"|"nack"|"stream_open"|"stream_closed"|"received", ...}
//	        (a SotW response's at_unix_nanos: when its resources were marshaled, just before it was sent)
//
// ACK and NACK are read from the requests as Envoy sends them: a request carrying a response_nonce acknowledges
// the response with that nonce; with error_detail it rejects it (the version is the one the nonce was sent
// with, since a NACK's version_info is the previously accepted one).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// allNodes serves one snapshot to every node: the tests run one sidecar per control plane.
type allNodes struct{}

func (allNodes) ID(*corev3.Node) string { return "all" }

// out serialises events onto stdout, one JSON object a line.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) emit(ev map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(ev)
}

type typeStatus struct {
	Acked     string `json:"acked"`
	NackedFor string `json:"nacked,omitempty"`
	Error     string `json:"error,omitempty"`
	Acks      int    `json:"acks"`
	Nacks     int    `json:"nacks"`
}

// tracker turns requests into ACK/NACK events, per stream (nonces are per stream).
type tracker struct {
	out *out
	mu  sync.Mutex
	// stream -> nonce -> version of the response sent with it
	sent   map[int64]map[string]string
	status map[string]*typeStatus
}

func newTracker(o *out) *tracker {
	return &tracker{out: o, sent: map[int64]map[string]string{}, status: map[string]*typeStatus{}}
}

func (t *tracker) sentResponse(stream int64, nonce, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.sent[stream]
	if m == nil {
		m = map[string]string{}
		t.sent[stream] = m
	}
	m[nonce] = version
}

func (t *tracker) answer(stream int64, delta bool, typeURL, nonce, versionInfo string, errorDetail string, hasError bool) {
	if nonce == "" {
		return
	}
	t.mu.Lock()
	version, known := t.sent[stream][nonce]
	st := t.status[typeURL]
	if st == nil {
		st = &typeStatus{}
		t.status[typeURL] = st
	}
	if !known && !delta {
		version = versionInfo
	}
	ev := map[string]any{"stream": stream, "delta": delta, "typeUrl": typeURL, "nonce": nonce, "version": version}
	if hasError {
		st.NackedFor, st.Error = version, errorDetail
		st.Nacks++
		ev["event"] = "nack"
		ev["error"] = errorDetail
	} else {
		st.Acked = version
		st.Acks++
		ev["event"] = "ack"
	}
	t.mu.Unlock()
	t.out.emit(ev)
}

func (t *tracker) snapshotStatus() map[string]typeStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := map[string]typeStatus{}
	for k, v := range t.status {
		res[k] = *v
	}
	return res
}

func nodeJSON(n *corev3.Node) any {
	if n == nil {
		return nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(n)
	if err != nil {
		return map[string]any{"id": n.GetId()}
	}
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}

func callbacks(t *tracker, o *out) server.CallbackFuncs {
	return server.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, typ string) error {
			o.emit(map[string]any{"event": "stream_open", "stream": id, "delta": false, "typeUrl": typ})
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) {
			o.emit(map[string]any{"event": "stream_closed", "stream": id, "delta": false})
		},
		DeltaStreamOpenFunc: func(_ context.Context, id int64, typ string) error {
			o.emit(map[string]any{"event": "stream_open", "stream": id, "delta": true, "typeUrl": typ})
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) {
			o.emit(map[string]any{"event": "stream_closed", "stream": id, "delta": true})
		},
		StreamRequestFunc: func(id int64, r *discovery.DiscoveryRequest) error {
			ev := map[string]any{"event": "request", "stream": id, "delta": false, "typeUrl": r.GetTypeUrl(), "versionInfo": r.GetVersionInfo(),
				"responseNonce": r.GetResponseNonce(), "resourceNames": r.GetResourceNames()}
			if r.GetNode() != nil {
				ev["node"] = nodeJSON(r.GetNode())
			}
			if r.GetErrorDetail() != nil {
				ev["error"] = r.GetErrorDetail().GetMessage()
			}
			o.emit(ev)
			t.answer(id, false, r.GetTypeUrl(), r.GetResponseNonce(), r.GetVersionInfo(), r.GetErrorDetail().GetMessage(), r.GetErrorDetail() != nil)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discovery.DiscoveryRequest, r *discovery.DiscoveryResponse) {
			t.sentResponse(id, r.GetNonce(), r.GetVersionInfo())
			// Called with the resources marshaled, just before grpc-go sends the response.
			o.emit(map[string]any{"event": "response", "stream": id, "delta": false, "typeUrl": r.GetTypeUrl(), "version": r.GetVersionInfo(),
				"nonce": r.GetNonce(), "resources": len(r.GetResources()), "at_unix_nanos": time.Now().UnixNano()})
		},
		StreamDeltaRequestFunc: func(id int64, r *discovery.DeltaDiscoveryRequest) error {
			ev := map[string]any{"event": "request", "stream": id, "delta": true, "typeUrl": r.GetTypeUrl(), "responseNonce": r.GetResponseNonce(),
				"resourceNames": r.GetResourceNamesSubscribe(), "unsubscribe": r.GetResourceNamesUnsubscribe()}
			if r.GetNode() != nil {
				ev["node"] = nodeJSON(r.GetNode())
			}
			if r.GetErrorDetail() != nil {
				ev["error"] = r.GetErrorDetail().GetMessage()
			}
			o.emit(ev)
			t.answer(id, true, r.GetTypeUrl(), r.GetResponseNonce(), "", r.GetErrorDetail().GetMessage(), r.GetErrorDetail() != nil)
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
			t.sentResponse(id, r.GetNonce(), r.GetSystemVersionInfo())
			names := make([]string, 0, len(r.GetResources()))
			for _, res := range r.GetResources() {
				names = append(names, res.GetName())
			}
			o.emit(map[string]any{"event": "response", "stream": id, "delta": true, "typeUrl": r.GetTypeUrl(), "version": r.GetSystemVersionInfo(),
				"nonce": r.GetNonce(), "resources": len(names), "names": names, "removed": r.GetRemovedResources()})
		},
	}
}

// wireStream reports whether each request carried a node as received: go-control-plane fills a missing node
// in from the stream's first request before its callbacks run, so they cannot tell.
type wireStream struct {
	grpc.ServerStream
	out *out
}

func (w wireStream) RecvMsg(m any) error {
	err := w.ServerStream.RecvMsg(m)
	if err != nil {
		return err
	}
	switch r := m.(type) {
	case *discovery.DiscoveryRequest:
		w.out.emit(map[string]any{"event": "received", "delta": false, "typeUrl": r.GetTypeUrl(), "node": r.GetNode() != nil})
	case *discovery.DeltaDiscoveryRequest:
		w.out.emit(map[string]any{"event": "received", "delta": true, "typeUrl": r.GetTypeUrl(), "node": r.GetNode() != nil})
	}
	return nil
}

func wireNodes(o *out) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, wireStream{ServerStream: ss, out: o})
	}
}

// snapshotFile is what tests write: one version for every type unless `versions` names a type's own, and the
// resources as proto3 JSON Anys (`@type` decides the xDS type).
type snapshotFile struct {
	Version   string            `json:"version"`
	Versions  map[string]string `json:"versions"`
	Resources []json.RawMessage `json:"resources"`
}

func loadSnapshot(file string) (*cache.Snapshot, string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	if !strings.HasSuffix(file, ".json") {
		if raw, err = yaml.YAMLToJSON(raw); err != nil {
			return nil, "", fmt.Errorf("%s: %w", file, err)
		}
	}
	var doc snapshotFile
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	if doc.Version == "" {
		return nil, "", fmt.Errorf("%s: version is required", file)
	}
	byType := map[resource.Type][]types.Resource{}
	for i, r := range doc.Resources {
		var a anypb.Any
		if err := protojson.Unmarshal(r, &a); err != nil {
			return nil, "", fmt.Errorf("%s: resources[%d]: %w", file, i, err)
		}
		msg, err := a.UnmarshalNew()
		if err != nil {
			return nil, "", fmt.Errorf("%s: resources[%d]: %w", file, i, err)
		}
		res, ok := msg.(types.Resource)
		if !ok {
			return nil, "", fmt.Errorf("%s: resources[%d]: %s is not an xDS resource", file, i, a.GetTypeUrl())
		}
		byType[a.GetTypeUrl()] = append(byType[a.GetTypeUrl()], proto.Clone(res))
	}
	snap, err := cache.NewSnapshot(doc.Version, byType)
	if err != nil {
		return nil, "", err
	}
	for typ, v := range doc.Versions {
		idx := cache.GetResponseType(typ)
		if idx == types.UnknownType {
			return nil, "", fmt.Errorf("%s: versions: unknown type %s", file, typ)
		}
		snap.Resources[idx].Version = v
	}
	return snap, doc.Version, nil
}

type command struct {
	ID   int    `json:"id"`
	Cmd  string `json:"cmd"`
	File string `json:"file"`
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	flag.Parse()
	o := &out{enc: json.NewEncoder(os.Stdout)}
	t := newTracker(o)
	// ads=false: answer a request for some EDS names with those that exist, as istiod does, instead of
	// waiting until every resource in the snapshot has been named.
	snapshots := cache.NewSnapshotCache(false, allNodes{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := server.NewServer(ctx, snapshots, callbacks(t, o))
	g := grpc.NewServer(grpc.StreamInterceptor(wireNodes(o)))
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(g, srv)
	extensionservice.RegisterExtensionConfigDiscoveryServiceServer(g, srv)
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		o.emit(map[string]any{"event": "error", "message": err.Error()})
		os.Exit(1)
	}
	go func() { _ = g.Serve(lis) }()
	o.emit(map[string]any{"event": "listening", "port": lis.Addr().(*net.TCPAddr).Port})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			o.emit(map[string]any{"event": "error", "message": "bad command: " + err.Error()})
			continue
		}
		switch c.Cmd {
		case "set":
			snap, version, err := loadSnapshot(c.File)
			at := time.Now().UnixNano()
			if err == nil {
				err = snapshots.SetSnapshot(ctx, "all", snap)
			}
			if err != nil {
				o.emit(map[string]any{"event": "error", "id": c.ID, "message": err.Error()})
				continue
			}
			o.emit(map[string]any{"event": "set", "id": c.ID, "version": version, "at_unix_nanos": at})
		case "status":
			o.emit(map[string]any{"event": "status", "id": c.ID, "types": t.snapshotStatus()})
		default:
			o.emit(map[string]any{"event": "error", "id": c.ID, "message": "unknown command " + c.Cmd})
		}
	}
	// stdin closed: the test is done with us.
	g.Stop()
}
