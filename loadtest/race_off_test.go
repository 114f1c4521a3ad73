//go:build !race

package loadtest

const raceBuild = false
