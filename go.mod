module github.com/smc-go/smc

go 1.26.0

require (
	github.com/cilium/ebpf v0.22.0
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
