package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/internal/devapp"
	"github.com/parleyhq/parley/token"
	"github.com/parleyhq/parley/web"
)

// get fetches path from s with the given Host header ("" keeps the
// listen address) and returns the response with its body read.
func get(t *testing.T, s *Server, path, host string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr().String()+path, nil)
	require.NoError(t, err)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func TestWebServesSDKAndDemo(t *testing.T) {
	s := startLimited(t, Config{})
	for _, c := range []struct {
		path, contentType string
		body              []byte // nil: only non-empty
		contains          string
	}{
		{"/sdk/parley.js", "text/javascript; charset=utf-8", web.SDK(), "createEngine"},
		{"/sdk/parley.d.ts", "application/typescript; charset=utf-8", web.Types(), "export declare function createEngine"},
		{"/sdk/", "text/html; charset=utf-8", nil, "/sdk/parley.js"},
		{"/demo/", "text/html; charset=utf-8", nil, `src="demo.js"`},
		{"/demo/demo.js", "text/javascript; charset=utf-8", nil, `from "/sdk/parley.js"`},
	} {
		t.Run(c.path, func(t *testing.T) {
			resp, body := get(t, s, c.path, "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, c.contentType, resp.Header.Get("Content-Type"))
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
			if c.body != nil {
				require.True(t, bytes.Equal(c.body, body), "the embedded file")
			}
			require.Contains(t, string(body), c.contains)
		})
	}
	t.Run("revalidation", func(t *testing.T) {
		resp, _ := get(t, s, "/sdk/parley.js", "")
		etag := resp.Header.Get("ETag")
		require.NotEmpty(t, etag)
		req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr().String()+"/sdk/parley.js", nil)
		require.NoError(t, err)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotModified, resp.StatusCode)
	})
}

func TestWebSameOriginMayConnect(t *testing.T) {
	// No origin is allowed, yet a page of the server itself connects.
	s := startLimited(t, Config{})
	host := s.Addr().String()
	for _, origin := range []string{"http://" + host, "https://" + host, "HTTP://" + strings.ToUpper(host)} {
		_, _, err := dialRaw(t, s, http.Header{"Origin": {origin}})
		require.NoError(t, err, origin)
	}
	// Another port, another host, or a scheme that is not the web's is another origin.
	for _, origin := range []string{"http://127.0.0.1:1", "http://localhost.evil.example", "ws://" + host, "null", "http://" + host + ".evil.example"} {
		_, resp, err := dialRaw(t, s, http.Header{"Origin": {origin}})
		require.Error(t, err, origin)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, origin)
	}
}

func TestWebDemoToken(t *testing.T) {
	t.Run("development app", func(t *testing.T) {
		s := startLimited(t, Config{})
		s.cfg.Apps = map[string]string{devapp.ID: devapp.Key} // as parleyd serve with no app sets it
		resp, body := get(t, s, "/demo/token?room=lobby&user=alice", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var got struct{ AppID, Token, LoginToken string }
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, devapp.ID, got.AppID)
		for _, c := range []struct{ raw, room string }{{got.Token, "lobby"}, {got.LoginToken, ""}} {
			tk, err := token.Parse(c.raw)
			require.NoError(t, err)
			require.True(t, tk.Verify(devapp.Key))
			require.Equal(t, c.room, tk.RoomID)
			require.Equal(t, "alice", tk.UserID)
		}
		resp, _ = get(t, s, "/demo/token?room=a%20b&user=alice", "")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		// DNS rebinding: a page of another site resolved to 127.0.0.1 sends its own host.
		resp, _ = get(t, s, "/demo/token?room=lobby&user=alice", "evil.example:"+listenPort(s))
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, _ = get(t, s, "/demo/token?room=lobby&user=alice", "localhost:"+listenPort(s))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("other apps", func(t *testing.T) {
		for _, apps := range []map[string]string{
			{"012345678901234567890123": "k"},
			{devapp.ID: "a-real-secret"}, // the development ID with a key of its own
		} {
			s := startLimited(t, Config{})
			s.cfg.Apps = apps
			resp, _ := get(t, s, "/demo/token?room=lobby&user=alice", "")
			require.Equal(t, http.StatusNotFound, resp.StatusCode)
		}
	})
}

func listenPort(s *Server) string {
	a := s.Addr().String()
	return a[strings.LastIndexByte(a, ':')+1:]
}
