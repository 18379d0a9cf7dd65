package transport_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives its tests: the
// servers, Engines and sockets they open are all closed by then.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
