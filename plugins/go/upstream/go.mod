module github.com/proxy-wasm-sidecar/plugins/go/upstream

go 1.24

require github.com/proxy-wasm/proxy-wasm-go-sdk v0.0.0-20250212164326-ab4161dcf924
