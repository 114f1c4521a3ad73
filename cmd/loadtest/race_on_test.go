//go:build race

package main

// raceBuild: the tests run under -race, so gateway binaries they build use -race too (and
// reuse the race-instrumented packages the test build compiled).
const raceBuild = true
