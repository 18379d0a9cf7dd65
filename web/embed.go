// Package web holds the browser SDK's built files and the demo page, for
// the server to serve: dist/parley.js and dist/parley.d.ts (built from
// src/ by scripts/gen-web, committed) and demo/. docs/web.md documents the
// SDK.
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist/parley.js dist/parley.d.ts demo
var files embed.FS

// SDK returns the bundle, /sdk/parley.js.
func SDK() []byte { return mustRead("dist/parley.js") }

// Types returns the bundle's TypeScript declarations, /sdk/parley.d.ts.
func Types() []byte { return mustRead("dist/parley.d.ts") }

// Demo is the demo page's files, served under /demo/.
func Demo() fs.FS {
	sub, err := fs.Sub(files, "demo")
	if err != nil {
		panic(err) // "demo" is embedded above
	}
	return sub
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded above
	}
	return b
}
