package parley

import "github.com/parleyhq/parley/internal/transport"

// NewEngineOnNetForTest is NewEngine with the Engine's WebRTC traffic on n
// (a pion vnet) instead of the host's network; signaling still dials
// EngineConfig.ServerURL over the host's. It is declared in a _test.go
// file, so only this module's tests (package parley_test included) see it.
//
// It rebuilds the pion API NewEngine made, with the same options plus n:
// NewEngine does no I/O and starts nothing that uses the API, so nothing
// has seen the first one. Keep the Options here in step with NewEngine's.
func NewEngineOnNetForTest(cfg EngineConfig, h EngineEventHandler, n transport.Net, opts ...Option) (*Engine, error) {
	e, err := NewEngine(cfg, h, opts...)
	if err != nil {
		return nil, err
	}
	e.api = transport.NewAPI(transport.Options{Logger: e.opts.logger, LoopbackOnly: e.opts.loopbackOnly, Net: n})
	return e, nil
}
