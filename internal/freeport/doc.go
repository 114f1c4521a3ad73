// Package freeport finds loopback TCP ports for the servers that tests and the load suite
// start (gateways, redis-server): ports outside the kernel's ephemeral range, so that none of
// the tens of thousands of outgoing connections a load run makes can take one between the
// check and the server's bind.
package freeport
