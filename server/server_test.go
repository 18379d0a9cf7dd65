package server_test

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	iserver "github.com/parleyhq/parley/internal/server"
	"github.com/parleyhq/parley/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sameType reports whether a public field type mirrors an internal one:
// the same type, or structs with the same fields, or interfaces with the
// same methods (server.Quotas and server.Clock have internal twins).
func sameType(a, b reflect.Type) bool {
	if a == b {
		return true
	}
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Struct:
		if a.NumField() != b.NumField() {
			return false
		}
		for i := range a.NumField() {
			fa, fb := a.Field(i), b.Field(i)
			if fa.Name != fb.Name || !sameType(fa.Type, fb.Type) {
				return false
			}
		}
		return true
	case reflect.Interface:
		if a.NumMethod() != b.NumMethod() {
			return false
		}
		for i := range a.NumMethod() {
			ma, mb := a.Method(i), b.Method(i)
			if ma.Name != mb.Name || ma.Type != mb.Type {
				return false
			}
		}
		return true
	}
	return false
}

// TestConfigMirrorsInternal: server.Config and the internal Config have
// the same fields, in the same order, of the same types, so that a field
// added to one and not the other fails here. The internal one has one
// more, last: ICENet, which only this module's tests set.
func TestConfigMirrorsInternal(t *testing.T) {
	pub, in := reflect.TypeFor[server.Config](), reflect.TypeFor[iserver.Config]()
	require.Equal(t, pub.NumField()+1, in.NumField(), "the internal Config has the public fields and ICENet")
	require.Equal(t, "ICENet", in.Field(in.NumField()-1).Name)
	for i := range pub.NumField() {
		fp, fi := pub.Field(i), in.Field(i)
		require.Equal(t, fp.Name, fi.Name, "field %d", i)
		require.True(t, sameType(fp.Type, fi.Type), "field %s: %v and %v", fp.Name, fp.Type, fi.Type)
	}
	require.True(t, reflect.TypeFor[server.Quotas]().ConvertibleTo(reflect.TypeFor[iserver.Quotas]()))
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestMetricsListen: /metrics is on the listen address by default, and
// only on Config.MetricsListen when that is set.
func TestMetricsListen(t *testing.T) {
	apps := map[string]string{"0123456789abcdef01234567": "key"}
	for _, tc := range []struct {
		name    string
		metrics string
	}{{"default", ""}, {"moved", "127.0.0.1:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := server.New(server.Config{Listen: "127.0.0.1:0", MetricsListen: tc.metrics, Apps: apps, LoopbackOnly: true})
			require.NoError(t, err)
			require.NoError(t, srv.Start())
			defer func() { require.NoError(t, srv.Shutdown(context.Background())) }()
			main := "http://" + srv.Addr().String()

			code, body := get(t, "http://"+srv.MetricsAddr().String()+"/metrics")
			require.Equal(t, http.StatusOK, code)
			require.True(t, strings.Contains(body, "\nparley_sessions "), "metrics served")
			code, _ = get(t, main+"/healthz")
			require.Equal(t, http.StatusOK, code)
			if tc.metrics == "" {
				require.Equal(t, srv.Addr(), srv.MetricsAddr())
				return
			}
			require.NotEqual(t, srv.Addr().String(), srv.MetricsAddr().String())
			code, _ = get(t, main+"/metrics")
			require.Equal(t, http.StatusNotFound, code, "not on the listen address")
			code, _ = get(t, "http://"+srv.MetricsAddr().String()+"/healthz")
			require.Equal(t, http.StatusNotFound, code, "the metrics address serves only /metrics")
		})
	}
	_, err := server.New(server.Config{Apps: apps, MetricsListen: "nowhere"})
	require.ErrorContains(t, err, "metrics listen address")
}
