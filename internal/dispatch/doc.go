// Package dispatch runs an Engine's user callbacks.
//
// Network goroutines never run user code: they hand closures to a [Queue],
// and one goroutine per Queue runs them, one at a time, in the order they were
// queued, with no lock held.
//
// There are two kinds of event and one total order across both:
//
//   - [Queue.Control] queues a control event (a state change, a send result).
//     It never blocks: control events are unbounded, so a producer holding
//     SDK state can always report it.
//   - [Queue.Message] queues a message event. At most maxMessages message
//     events wait to run; past that, the producer waits until the dispatcher
//     starts one. This back-pressures the data-channel reader (and through it
//     SCTP), so no message is dropped and the queue does not grow without
//     bound.
//
// A callback may call Control and Close on its own Queue. It must not call
// Message: when the queue is full that waits for the dispatcher, which is the
// goroutine doing the waiting, and so never returns. Nothing enforces this.
//
// [Queue.Close] is idempotent, never waits and may be called from any
// goroutine, including from a callback. Events queued before it still run, in
// order; then the goroutine exits and [Queue.Done] is closed. After Close,
// Control and Message drop their event and report false, and every producer
// waiting in Message is released with false.
//
// A panic in a callback is not recovered: a handler's bug surfaces as it
// would in the handler's own goroutine.
package dispatch
