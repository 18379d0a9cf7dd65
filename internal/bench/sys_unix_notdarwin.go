//go:build unix && !darwin

package bench

const maxRSSUnit = 1024 // ru_maxrss is in kilobytes
