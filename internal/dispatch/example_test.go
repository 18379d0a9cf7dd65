package dispatch_test

import (
	"fmt"

	"github.com/parleyhq/parley/internal/dispatch"
)

func Example() {
	q := dispatch.New(0)

	// Network goroutines queue closures; the dispatcher runs them in order.
	q.Control(func() { fmt.Println("state: connected") })
	q.Message(func() { fmt.Println("message: hello") })
	q.Control(func() { fmt.Println("result: 200") })

	q.Close()  // queued events still run
	<-q.Done() // the last one has run and the goroutine has exited

	// Output:
	// state: connected
	// message: hello
	// result: 200
}
