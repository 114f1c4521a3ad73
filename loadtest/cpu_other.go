//go:build !unix

package loadtest

func processCPUSeconds() float64 { return 0 }
