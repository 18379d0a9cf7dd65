package server

import "testing"

func TestAllowedURL(t *testing.T) {
	s := &Server{cfg: Config{ServerMessageURLPrefixes: []string{"http://127.0.0.1:8080/parley/", "https://app.example/hook"}}}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/parley/", true},
		{"http://127.0.0.1:8080/parley/msg?x=1", true},
		{"HTTP://127.0.0.1:8080/parley/x", true},
		{"https://app.example/hook", true},
		{"https://app.example/hook/sub", true},
		{"https://app.example/hooked", false},
		{"http://127.0.0.1:8080/other", false},
		{"http://127.0.0.1:8081/parley/", false},
		{"http://127.0.0.1:8080@10.0.0.1/parley/", false},
		{"http://127.0.0.1:8080.evil.example/parley/", false},
		{"http://user@127.0.0.1:8080/parley/", false},
		{"https://127.0.0.1:8080/parley/", false},
		{"ftp://127.0.0.1:8080/parley/", false},
		{"http:/parley/", false},
		{"", false},
		{"::", false},
	} {
		if got := s.allowedURL(tc.url); got != tc.ok {
			t.Errorf("allowedURL(%q) = %v, want %v", tc.url, got, tc.ok)
		}
	}
}
