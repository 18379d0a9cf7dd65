package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// The server's DTLS certificate is one for all its PeerConnections, made
// when first needed and made again a day before it expires (pion's last a
// month): a PeerConnection made with its own would spend a key generation
// on every client's setup. Clients check a certificate by the fingerprint
// in the SDP answer, which each PeerConnection carries.

// certRenew is how long before its expiry a certificate is replaced.
const certRenew = 24 * time.Hour

// certs holds the server's current DTLS certificate.
type certs struct {
	mu   sync.Mutex
	cert *webrtc.Certificate // guarded by mu; nil until first needed
}

// current returns the certificate to give a new PeerConnection.
func (c *certs) current() (webrtc.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil || time.Until(c.cert.Expires()) < certRenew {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return webrtc.Certificate{}, fmt.Errorf("DTLS key: %w", err)
		}
		cert, err := webrtc.GenerateCertificate(key)
		if err != nil {
			return webrtc.Certificate{}, fmt.Errorf("DTLS certificate: %w", err)
		}
		c.cert = cert
	}
	return *c.cert, nil
}
