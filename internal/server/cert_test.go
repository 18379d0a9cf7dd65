package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// TestCertsReusedThenRenewed: every PeerConnection gets the same DTLS
// certificate until it is a day from expiry; then a new one.
func TestCertsReusedThenRenewed(t *testing.T) {
	var c certs
	first, err := c.current()
	require.NoError(t, err)
	again, err := c.current()
	require.NoError(t, err)
	require.True(t, first.Equals(again), "a second PeerConnection gets the same certificate")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	soon, err := webrtc.NewCertificate(key, x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certRenew / 2),
	})
	require.NoError(t, err)
	c.mu.Lock()
	c.cert = soon
	c.mu.Unlock()
	next, err := c.current()
	require.NoError(t, err)
	require.False(t, next.Equals(*soon), "a certificate a day from expiry is replaced")
	require.Greater(t, time.Until(next.Expires()), certRenew)
}
