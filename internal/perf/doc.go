// Package perf is the engine of `smc perf`: a lean, iperf-like measurement of the
// same shapes over plain TCP loopback, a Unix socket, smc in SMC mode, and smc
// falling back to TCP on either side, side by side in one run.
//
// A client and a server run as two processes. The server ([Serve]) listens on one
// net.Listen TCP port, one Unix socket and one smc.Listen port, plus a control
// connection over which the client asks where its listeners are, its CPU time and
// the connection states it sampled. The client ([RunClient], or [Run] for the local
// mode, which starts the server as a child process of the same executable) measures
// every shape on every transport once per round, in rotated order, and prints one
// row per shape and transport with medians over rounds, CPU of both processes per
// operation, the mode the smc side actually obtained, and each figure's ratio to
// the tcp row of the same round.
//
// Every benchmark connection starts with a 16-byte header that names its operation:
// echo (request/response of given sizes until EOF) or sink (read to EOF, then
// answer the byte count).
//
// The comparison lab (bench/lab: wrk and nginx, shmipc-go) builds on the same
// server, client and rows. This package imports the smc package and sits beside
// the commands, above the library: nothing in the library imports it.
package perf
