// Package devapp holds the development app's credentials. They are public:
// `parleyd serve` uses them when no app is configured, and only on a
// loopback address; `parleyd token` defaults to them; the server's demo
// token endpoint mints tokens for this app only, since anyone can mint
// them anyway.
package devapp

const (
	ID  = "parleydevparleydevparley" // 24 characters, as tokens need
	Key = "parley-dev-key-not-secret"
)
