package server

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// TestAllowedURL: a URL is allowed only under a prefix, compared parsed and
// segment by segment, and no path that a target might normalise out of
// the prefix gets through, however it is encoded.
func TestAllowedURL(t *testing.T) {
	s := &Server{cfg: Config{ServerMessageURLPrefixes: []string{
		"http://127.0.0.1:8080/parley/", "https://app.example/hook", "http://plain.example/parley",
		"http://dots.example/a/../b", // never matches: a prefix with a dot segment is ignored
	}}}
	for _, tc := range []struct {
		url  string
		ok   bool
		want string // the URL posted to; "" means url itself
	}{
		{"http://127.0.0.1:8080/parley/", true, ""},
		{"http://127.0.0.1:8080/parley/msg?x=1", true, ""},
		{"HTTP://127.0.0.1:8080/parley/x", true, "http://127.0.0.1:8080/parley/x"},
		{"https://app.example/hook", true, ""},
		{"https://app.example/hook/sub", true, ""},
		{"https://APP.example/hook/sub", true, "https://app.example/hook/sub"},
		{"https://app.example:443/hook/sub", true, ""}, // the default port, explicit
		{"http://127.0.0.1:8080/parley/a%20b", true, ""},
		{"http://127.0.0.1:8080/parley/a..b/.c/c.", true, ""}, // dots, not dot segments
		{"http://plain.example/parley", true, ""},
		{"http://plain.example:80/parley/x", true, ""},
		{"http://plain.example/parleyX", false, ""},
		{"http://plain.example/parley.", false, ""},
		{"http://plain.example:8080/parley", false, ""},
		{"https://plain.example/parley", false, ""},
		{"https://app.example:8443/hook", false, ""},
		{"https://app.example/hooked", false, ""},
		{"http://127.0.0.1:8080/parley", false, ""}, // the prefix is the directory /parley/
		{"http://127.0.0.1:8080/other", false, ""},
		{"http://127.0.0.1:8081/parley/", false, ""},
		{"http://127.0.0.1:8080@10.0.0.1/parley/", false, ""},
		{"http://127.0.0.1:8080.evil.example/parley/", false, ""},
		{"http://user@127.0.0.1:8080/parley/", false, ""},
		{"http://user:pw@127.0.0.1:8080/parley/", false, ""},
		{"http://@127.0.0.1:8080/parley/", false, ""},
		{"https://127.0.0.1:8080/parley/", false, ""},
		{"ftp://127.0.0.1:8080/parley/", false, ""},
		{"http:/parley/", false, ""},
		{"http://:8080/parley/", false, ""},
		{"", false, ""},
		{"::", false, ""},
		// Dot segments and their encodings.
		{"http://127.0.0.1:8080/parley/../admin", false, ""},
		{"http://127.0.0.1:8080/parley/./x", false, ""},
		{"http://127.0.0.1:8080/parley/x/..", false, ""},
		{"http://127.0.0.1:8080/parley/x/.", false, ""},
		{"http://127.0.0.1:8080/parley/%2e%2e/admin", false, ""},
		{"http://127.0.0.1:8080/parley/%2E%2e/admin", false, ""},
		{"http://127.0.0.1:8080/parley/.%2e/admin", false, ""},
		{"http://127.0.0.1:8080/parley/%2e./admin", false, ""},
		{"http://127.0.0.1:8080/parley/%2e/admin", false, ""},
		{"http://127.0.0.1:8080/parley/..;x/admin", false, ""},
		{"http://127.0.0.1:8080/parley/x/../../admin", false, ""},
		{"https://app.example/hook/../admin", false, ""},
		{"https://app.example/hook/..", false, ""},
		// Encoded slashes, backslashes and double encodings.
		{"http://127.0.0.1:8080/parley/..%2fadmin", false, ""},
		{"http://127.0.0.1:8080/parley/..%2Fadmin", false, ""},
		{"http://127.0.0.1:8080/parley/x%2f..%2f..%2fadmin", false, ""},
		{"http://127.0.0.1:8080/parley/..%5cadmin", false, ""},
		{"http://127.0.0.1:8080/parley/..%5Cadmin", false, ""},
		{"http://127.0.0.1:8080/parley/..\\admin", false, ""},
		{"http://127.0.0.1:8080/parley\\..\\admin", false, ""},
		{"http://127.0.0.1:8080/parley/%252e%252e/admin", false, ""},
		{"http://127.0.0.1:8080/parley/%zz", false, ""},
		{"http://dots.example/b/x", false, ""},
		{"http://dots.example/a/../b/x", false, ""},
	} {
		got, ok := s.allowedURL(tc.url)
		if ok != tc.ok {
			t.Errorf("allowedURL(%q) = %v, want %v", tc.url, ok, tc.ok)
			continue
		}
		want := tc.want
		if want == "" && tc.ok {
			want = tc.url
		}
		if got != want {
			t.Errorf("allowedURL(%q) posts to %q, want %q", tc.url, got, want)
		}
	}
}

// TestUnderPath: segment-wise, with and without a trailing slash.
func TestUnderPath(t *testing.T) {
	split := func(p string) []string { tg, ok := parseTarget("http://h" + p); _ = ok; return tg.segs }
	for _, tc := range []struct {
		path, prefix string
		ok           bool
	}{
		{"/a/b", "/a", true},
		{"/a/b", "/a/", true},
		{"/a", "/a", true},
		{"/a/", "/a", true},
		{"/a", "/a/", false},
		{"/ab", "/a", false},
		{"/x", "/", true},
		{"/", "", true},
		{"/b/a", "/a", false},
	} {
		if got := underPath(split(tc.path), split(tc.prefix)); got != tc.ok {
			t.Errorf("underPath(%q, %q) = %v, want %v", tc.path, tc.prefix, got, tc.ok)
		}
	}
}

// FuzzAllowedURL: whatever a client sends, an allowed URL stays under its
// prefix after a target normalises it (decodes it once more, turns
// backslashes into slashes, and resolves dot segments), and allowing is
// idempotent: the URL posted to is allowed and posted as it is.
func FuzzAllowedURL(f *testing.F) {
	for _, seed := range []string{
		"http://127.0.0.1:8080/parley/x", "http://127.0.0.1:8080/parley/../admin",
		"http://127.0.0.1:8080/parley/%2e%2e/admin", "http://127.0.0.1:8080/parley/..%2fadmin",
		"http://127.0.0.1:8080/parley/%2E%2e/admin", "http://127.0.0.1:8080/parley/..;x/a",
		"HTTP://127.0.0.1:80/parley/a%20b?q=1#f", "http://a@127.0.0.1:8080/parley/",
		"http://127.0.0.1:8080/parley\\..\\admin", "http://127.0.0.1:8080/parley/%252e%252e/",
	} {
		f.Add(seed)
	}
	s := &Server{cfg: Config{ServerMessageURLPrefixes: []string{"http://127.0.0.1:8080/parley/"}}}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := s.allowedURL(raw)
		if !ok {
			return
		}
		again, ok := s.allowedURL(got)
		if !ok || again != got {
			t.Fatalf("allowed %q posts to %q, which gives %q, %v", raw, got, again, ok)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("allowed %q: %q does not parse: %v", raw, got, err)
		}
		if u.User != nil || u.Hostname() != "127.0.0.1" || (u.Port() != "8080") || u.Scheme != "http" {
			t.Fatalf("allowed %q: %q goes elsewhere", raw, got)
		}
		// What a lenient target might make of the path.
		p, err := url.PathUnescape(u.EscapedPath())
		if err != nil {
			t.Fatalf("allowed %q: path %q: %v", raw, u.EscapedPath(), err)
		}
		if twice, err := url.PathUnescape(p); err == nil {
			p = twice
		}
		p = strings.ReplaceAll(p, "\\", "/")
		var segs []string
		for _, seg := range strings.Split(p, "/") {
			seg, _, _ = strings.Cut(seg, ";")
			segs = append(segs, seg)
		}
		if clean := path.Clean(strings.Join(segs, "/")); !strings.HasPrefix(clean+"/", "/parley/") {
			t.Fatalf("allowed %q: a target that normalises %q reaches %q", raw, got, clean)
		}
	})
}
