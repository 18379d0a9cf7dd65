// Package browsertest runs the browser SDK (web/, served at /sdk/parley.js)
// in a real headless Chromium, driven from Go with chromedp, against a
// parleytest server and Go Engines: the two SDKs in one room, outside
// rooms, across a dropped WebSocket, and the demo page. It has no code
// besides its tests.
//
// The tests need Debian's chromium (or another Chromium or Chrome on PATH,
// or at $PARLEY_CHROMIUM). Without one they skip, saying so in one line;
// with PARLEY_REQUIRE_BROWSER=1 (CI sets it) they fail instead.
//
// PARLEY_WRITE_SCREENSHOT=1 makes TestDemoScreenshot write docs/web-demo.png.
package browsertest
