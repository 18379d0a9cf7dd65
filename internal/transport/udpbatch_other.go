//go:build !(linux && (amd64 || arm64))

package transport

import (
	"net"

	"github.com/pion/transport/v5"
	"go.uber.org/zap"
)

// newBatchUDP is conn itself where sendmmsg and recvmmsg are not used.
func newBatchUDP(conn *net.UDPConn, _ *zap.Logger) transport.UDPConn { return conn }
