package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/devapp"
	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/token"
	"github.com/parleyhq/parley/web"
)

// The browser SDK and its demo, embedded from web/ (docs/web.md):
//
//	GET /sdk/parley.js     the ES module
//	GET /sdk/parley.d.ts   its TypeScript declarations
//	GET /sdk/              a short page that names them (tests load the SDK from it)
//	GET /demo/             the chat demo
//	GET /demo/token        tokens for the demo, only for the development app
//
// A page served here may connect to /rtc whatever AllowedOrigins says: see
// sameOrigin.

// demoTokenTTL is how long a demo token lasts.
const demoTokenTTL = 24 * time.Hour

// registerWeb adds the SDK's and the demo's routes to mux.
func (s *Server) registerWeb(mux *http.ServeMux) {
	mux.Handle("GET /sdk/parley.js", staticFile(web.SDK(), "text/javascript; charset=utf-8"))
	mux.Handle("GET /sdk/parley.d.ts", staticFile(web.Types(), "application/typescript; charset=utf-8"))
	mux.Handle("GET /sdk/{$}", staticFile([]byte(sdkIndex), "text/html; charset=utf-8"))
	demo := http.FileServerFS(web.Demo())
	mux.Handle("GET /demo/", http.StripPrefix("/demo", securePage(demo)))
	mux.HandleFunc("GET /demo/token", s.serveDemoToken)
}

// sdkIndex is /sdk/: a blank page of the server's origin that says where
// the module is.
const sdkIndex = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley browser SDK</title></head>
<body><p>Parley browser SDK: <code>import { createEngine, events } from '/sdk/parley.js'</code>
(<a href="/sdk/parley.js">parley.js</a>, <a href="/sdk/parley.d.ts">parley.d.ts</a>,
<a href="/demo/">demo</a>).</p></body></html>
`

// staticFile serves one embedded file, with an ETag so that a browser
// revalidates it instead of keeping a bundle of an older server.
func staticFile(body []byte, contentType string) http.Handler {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return securePage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(body)
	}))
}

// securePage adds the headers every page and file here carries: no MIME
// sniffing, no framing by other sites, and a policy that lets a page load
// scripts from this server only and connect to it only ('self' covers
// ws: and wss: to the same host).
func securePage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether a browser request comes from a page this
// server served: its Origin names the host the request was sent to. The
// browser sets Origin, and a page of another site cannot make it name
// this host, so such a page may connect whatever AllowedOrigins says.
func sameOrigin(r *http.Request) bool {
	o, err := url.Parse(r.Header.Get("Origin"))
	if err != nil || (o.Scheme != "http" && o.Scheme != "https") {
		return false
	}
	return o.Host != "" && strings.EqualFold(o.Host, r.Host)
}

// serveDemoToken mints, for the demo page, a room token and a login token
// for the room and user asked: only for the development app (its key is
// public, so the tokens give nothing that `parleyd token` does not), only
// when the server is configured with that app and its public key (parleyd
// does so only on a loopback address), and only to a request whose Host
// is a loopback name or address. The last check stops DNS rebinding: a
// page of another site whose name resolves to 127.0.0.1 sends its own
// host name, not a loopback one. Any other server answers 404.
func (s *Server) serveDemoToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Apps[devapp.ID] != devapp.Key || !loopbackHost(r.Host) {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	room, user := q.Get("room"), q.Get("user")
	if ids.Check("room ID", room) != nil || ids.Check("user ID", user) != nil {
		http.Error(w, "room and user must match ^[a-zA-Z0-9_@\\-.]{1,128}$", http.StatusBadRequest)
		return
	}
	expire := s.cfg.Clock.Now().Add(demoTokenTTL)
	roomToken, err1 := mintDev(room, user, expire)
	loginToken, err2 := mintDev("", user, expire)
	if err1 != nil || err2 != nil {
		http.Error(w, "token: cannot sign", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"appId":      devapp.ID,
		"token":      roomToken,
		"loginToken": loginToken,
	})
}

// mintDev is a token of the development app.
func mintDev(room, user string, expire time.Time) (string, error) {
	t := token.New(devapp.ID, devapp.Key, room, user)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	return t.Serialize()
}

// loopbackHost reports whether a Host header names this machine by a
// loopback address or "localhost".
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
