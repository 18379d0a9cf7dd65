package browsertest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives its tests: the
// servers, Engines, browsers and proxies they start are all stopped by
// then.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
