package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/ids"
	pb "github.com/parleyhq/parley/proto/parley/v1"
	"github.com/parleyhq/parley/token"
)

// LoginErrorCode, LogoutReason, UserOnlineStatus and result values the
// login layer sends.
const (
	loginOK           = 0
	loginInvalidToken = -1000
	loginFailed       = -1001
	loginInvalidUser  = -1002

	logoutDuplicate = 1

	statusOffline     = 0
	statusOnline      = 1
	statusUnreachable = 2

	resultE2BSSendFailed     = 17
	resultE2BSReturnFailed   = 18
	resultNotLogin           = 105
	resultServerParamsNotSet = 106
	serverParamsOK           = 200
)

// maxUnackedOutside bounds the reliable outside-room messages awaiting
// one login's ack: a receiver that never acknowledges cannot grow the
// server's books past it. At the bound a reliable send to that receiver
// fails at once with NoRelayPath and is not delivered; the receiver stays
// logged in, and sends go through again as soon as it acknowledges. (In a
// room the reliable backlog is bounded too, by Config.MemberQueue bytes,
// but a receiver past it is removed as a slow consumer: its backlog holds
// the messages' bytes, for a new PeerConnection. Here the frames are the
// session's, bounded by its replay buffer, and only the book would grow.)
// A receiver that keeps up acknowledges within milliseconds; 4096 covers
// a burst of a second at several thousand messages a second.
const maxUnackedOutside = 4096

// maxPostsInFlight bounds one session's concurrent posts to its
// application server; past it a server message fails at once with
// E2BSSendFailed rather than queueing without bound.
const maxPostsInFlight = 64

// loginKey names a logged-in user: user IDs are per app.
type loginKey struct{ app, user string }

// serverParams are where a session's server messages go.
type serverParams struct {
	signature, url string
}

func (ss *session) frameResult(reqID uint64, body any) {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	ss.frameResultLocked(reqID, body)
}

func (ss *session) frameResultLocked(reqID uint64, body any) {
	f := &pb.ServerFrame{}
	switch b := body.(type) {
	case *pb.LoginResponse:
		f.Body = &pb.ServerFrame_Login{Login: b}
	case *pb.LogoutResponse:
		f.Body = &pb.ServerFrame_Logout{Logout: b}
	case *pb.PeerStatusResponse:
		f.Body = &pb.ServerFrame_PeerStatus{PeerStatus: b}
	case *pb.ServerParamsResponse:
		f.Body = &pb.ServerFrame_ServerParams{ServerParams: b}
	case *pb.Result:
		f.Body = &pb.ServerFrame_Result{Result: b}
		ss.srv.metrics.result(b.Code)
	case *pb.ServerMessageResult:
		f.Body = &pb.ServerFrame_ServerResult{ServerResult: b}
		ss.srv.metrics.result(b.Code)
	}
	ss.sendLocked(reqID, f)
}

// loginState is the session's app and logged-in user ID ("" if none).
func (ss *session) loginState() (app, user string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.app, ss.login
}

func (ss *session) handleLogin(reqID uint64, l *pb.LoginRequest) {
	refuse := func(code int32, format string, args ...any) {
		reason := fmt.Sprintf(format, args...)
		ss.log.Info("login refused", zap.Int32("code", code), zap.String("reason", reason))
		ss.frameResult(reqID, &pb.LoginResponse{Code: code, Reason: reason})
	}
	if err := checkID("user ID", l.UserId); err != nil {
		refuse(loginInvalidUser, "%v", err)
		return
	}
	if je := ss.srv.checkToken(l.Token, l.AppId, "", l.UserId); je != nil {
		ss.log.Info("login refused", zap.Int32("code", loginInvalidToken), zap.String("reason", je.logDetail()))
		ss.frameResult(reqID, &pb.LoginResponse{Code: loginInvalidToken, Reason: je.reason})
		return
	}
	if t, _ := token.Parse(l.Token); t != nil && t.RoomID != "" {
		refuse(loginInvalidToken, "token: a room token (room %s), not a login token", echo(t.RoomID))
		return
	}
	ss.mu.Lock()
	switch {
	case ss.ended:
		ss.mu.Unlock()
		return
	case ss.login != "":
		ss.mu.Unlock()
		refuse(loginFailed, "already logged in as %q on this connection", ss.login)
		return
	case ss.userID != "" && ss.userID != l.UserId:
		ss.mu.Unlock()
		refuse(loginInvalidUser, "this connection is user %q in its rooms, not %q", ss.userID, l.UserId)
		return
	}
	ss.claimUserLocked(l.AppId, l.UserId)
	ss.login, ss.app = l.UserId, l.AppId
	in := &retention{user: l.UserId}
	ss.inbox.Store(in) // before register makes the login visible
	ss.outbox.Store(ss.newOutbox())
	ss.markAuthedLocked()
	ss.mu.Unlock()
	// The login becomes visible and its answer is queued in one step of
	// the session's send order: a status query that sees it comes after
	// the answer, and so does any message sent to the user. In a cluster,
	// the other nodes find it before the answer goes out too.
	ss.sendMu.Lock()
	old := ss.srv.register(loginKey{l.AppId, l.UserId}, ss)
	if ss.srv.cluster != nil {
		ss.srv.clusterLogins.loggedIn(ss, loginKey{l.AppId, l.UserId}, in)
	}
	ss.frameResultLocked(reqID, &pb.LoginResponse{Code: loginOK})
	ss.sendMu.Unlock()
	if old != nil {
		old.log.Info("logged out: the same user logged in elsewhere")
		old.endLogin(loginKey{l.AppId, l.UserId})
		old.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_LoggedOut{LoggedOut: &pb.LoggedOut{Reason: logoutDuplicate}}})
	}
	ss.log.Debug("logged in", zap.String("user", l.UserId))
}

func (ss *session) handleLogout(reqID uint64) {
	app, user := ss.loginState()
	if user != "" {
		k := loginKey{app, user}
		ss.srv.unregister(k, ss)
		ss.endLogin(k)
	}
	ss.frameResult(reqID, &pb.LogoutResponse{})
}

// endLogin clears the session's login; the senders of outside-room
// messages it never acknowledged get NoReceiver, and acks of its own
// messages no longer reach it.
func (ss *session) endLogin(k loginKey) {
	var in *retention
	var out *outbox
	ss.mu.Lock()
	if ss.login == k.user {
		ss.login = ""
		ss.params = nil
		in, out = ss.inbox.Swap(nil), ss.outbox.Swap(nil)
		if len(ss.members) == 0 {
			ss.dropUserLocked()
		}
	}
	ss.mu.Unlock()
	if in != nil && ss.srv.cluster != nil {
		ss.srv.clusterLogins.loggedOut(ss, in)
	}
	if out != nil {
		out.close()
	}
	if in != nil {
		in.failAll(resultNoReceiver)
	}
}

// newOutbox is the outbox of a login's reliable outside-room messages:
// results and acks go to the session.
func (ss *session) newOutbox() *outbox {
	return &outbox{
		result: func(id int64, code int32) { ss.frameResult(0, &pb.Result{MsgId: id, Code: code}) },
		ack: func(peer string, upTo int64) {
			ss.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_Ack{Ack: &pb.Ack{Peer: peer, UpTo: upTo}}})
		},
	}
}

func (ss *session) handlePeerStatus(reqID uint64, p *pb.PeerStatusRequest) {
	app, user := ss.loginState()
	status := int32(statusOffline)
	echoed := p.UserId
	if ids.Check("user ID", echoed) != nil {
		echoed = "" // nobody has it: the answer does not echo what it cannot be
	}
	peer := ss.srv.loggedIn(loginKey{app, p.UserId})
	if user != "" && peer == nil && echoed != "" && ss.srv.cluster != nil {
		ss.srv.clusterLogins.status(ss, reqID, app, p.UserId) // answers when the cluster has
		return
	}
	if user != "" && peer != nil {
		status = peer.onlineStatus()
	}
	ss.frameResult(reqID, &pb.PeerStatusResponse{UserId: echoed, Status: status})
}

// onlineStatus is what GetPeerOnlineStatus says of the session's login:
// online, or unreachable while its connection is in its grace period (it
// may come back).
func (ss *session) onlineStatus() int32 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.link == nil {
		return statusUnreachable
	}
	return statusOnline
}

// handleSend forwards an outside-room message to the receiver's session.
func (ss *session) handleSend(m *pb.OutsideMessage) {
	arrived := ss.srv.metrics.arrived(kindOutside, len(m.Payload))
	app, user := ss.loginState()
	result := func(code int32) { ss.frameResult(0, &pb.Result{MsgId: m.MsgId, Code: code}) }
	switch {
	case user == "":
		result(resultNotLogin)
		return
	case len(m.Payload) > MaxPayload:
		result(resultExceedMaxLength)
		return
	case m.To == "":
		result(resultEmptyUser)
		return
	case !ss.srv.allow(ss.quota.Load().userMessage):
		result(resultExceedQPS)
		return
	}
	to := ss.srv.loggedIn(loginKey{app, m.To})
	if to == nil && ss.srv.cluster != nil {
		ss.srv.clusterLogins.send(ss, app, user, m, arrived) // logged in elsewhere, perhaps
		return
	}
	if to == nil {
		result(resultNoReceiver)
		return
	}
	m.From = user
	f := &pb.ServerFrame{Body: &pb.ServerFrame_Message{Message: m}}
	if m.Reliable {
		// Success comes with the receiver's ack. The message is in the
		// sender's outbox before the receiver can see it (and ack it), and
		// in the receiver login's inbox, unless that login has ended
		// (NoReceiver) or holds maxUnackedOutside messages already.
		out, in := ss.outbox.Load(), to.inbox.Load()
		switch {
		case out == nil: // logged out meanwhile
			result(resultNotLogin)
			return
		case in == nil:
			result(resultNoReceiver)
			return
		case !out.add(m.To, m.MsgId, in):
			result(resultNotLogin)
			return
		}
		switch _, ok, full := in.add(retained{sender: user, from: out, id: m.MsgId, cost: 1}, maxUnackedOutside); {
		case full:
			out.fail(m.To, m.MsgId, in, resultNoRelayPath)
			return
		case !ok:
			out.fail(m.To, m.MsgId, in, resultNoReceiver)
			return
		}
		to.send(0, f)
		ss.srv.metrics.handedOff(kindOutside, arrived)
		return
	}
	to.send(0, f)
	ss.srv.metrics.handedOff(kindOutside, arrived)
	result(resultSuccess)
}

// handleAck settles what the session's login acknowledged and passes the
// ack on to the senders of those messages: to the logins that sent them,
// not whoever has their user ID now, and only for what was delivered to
// this login (see outbox).
func (ss *session) handleAck(a *pb.Ack) {
	if in := ss.inbox.Load(); in != nil {
		in.ack(a.Peer, a.UpTo)
	}
}

func (ss *session) handleServerParams(reqID uint64, p *pb.ServerParamsRequest) {
	_, user := ss.loginState()
	if user == "" {
		ss.frameResult(reqID, &pb.ServerParamsResponse{Code: resultNotLogin, Reason: "not logged in"})
		return
	}
	target, ok := ss.srv.allowedURL(p.Url)
	if !ok {
		ss.log.Info("server params refused: URL not allowed", quoted("url", p.Url))
		ss.mu.Lock()
		ss.params = nil // a refused URL leaves no params set
		ss.mu.Unlock()
		ss.frameResult(reqID, &pb.ServerParamsResponse{Code: resultE2BSSendFailed,
			Reason: "this server is not configured to post to that URL"})
		return
	}
	ss.mu.Lock()
	ss.params = &serverParams{signature: p.Signature, url: target}
	ss.mu.Unlock()
	ss.frameResult(reqID, &pb.ServerParamsResponse{Code: serverParamsOK})
}

// handleServerMessage posts a message to the session's application server
// in the background and reports the answer.
func (ss *session) handleServerMessage(m *pb.ServerMessage) {
	ss.srv.metrics.arrived(kindServer, len(m.Payload))
	result := func(code int32, ack []byte) {
		ss.frameResult(0, &pb.ServerMessageResult{MsgId: m.MsgId, Code: code, Ack: ack})
	}
	ss.mu.Lock()
	app, user, params := ss.app, ss.login, ss.params
	ss.mu.Unlock()
	switch {
	case user == "":
		result(resultNotLogin, nil)
		return
	case params == nil:
		result(resultServerParamsNotSet, nil)
		return
	case len(m.Payload) > MaxPayload:
		result(resultExceedMaxLength, nil)
		return
	case !ss.srv.allow(ss.quota.Load().server):
		result(resultExceedQPS, nil)
		return
	case ss.posts.Add(1) > maxPostsInFlight:
		ss.posts.Add(-1)
		result(resultE2BSSendFailed, nil)
		return
	}
	srv := ss.srv
	srv.wg.Add(1) // the session is alive, so the count is above zero
	go func() {
		defer srv.wg.Done()
		defer ss.posts.Add(-1)
		code, ack := srv.post(params, app, user, m)
		result(code, ack)
	}()
}

// post sends one server message to the application server: 2xx is
// Success with the body as the ack, another status E2BSReturnFailed, no
// answer in time E2BSSendFailed. Redirects are not followed: a redirect
// could lead where the operator did not allow.
func (s *Server) post(p *serverParams, app, user string, m *pb.ServerMessage) (int32, []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ServerMessageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(m.Payload))
	if err != nil {
		return resultE2BSSendFailed, nil
	}
	if m.Binary {
		req.Header.Set("Content-Type", "application/octet-stream")
	} else {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	req.Header.Set("X-Parley-Signature", p.signature)
	req.Header.Set("X-Parley-App-Id", app)
	req.Header.Set("X-Parley-User-Id", user)
	req.Header.Set("X-Parley-Message-Id", strconv.FormatInt(m.MsgId, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Info("server message not delivered", zap.String("url", p.url), zap.Error(err))
		return resultE2BSSendFailed, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPayload+1))
	if err != nil && !errors.Is(err, io.EOF) {
		return resultE2BSReturnFailed, nil
	}
	if len(body) > MaxPayload {
		return resultE2BSReturnFailed, body[:MaxPayload]
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resultE2BSReturnFailed, body
	}
	return resultSuccess, body
}

// allowedURL reports whether the configuration lets server messages go to
// raw, and returns the URL to post to, normalised: an http or https URL
// with no user info whose scheme, host and port (a default port made
// explicit) equal those of one of Config.ServerMessageURLPrefixes and
// whose path lies under that prefix's path, segment by segment. The URLs
// are compared parsed, not as strings: "http://allowed@elsewhere/" and
// "http://allowed.elsewhere/" start with the string "http://allowed" and go
// elsewhere. A path with a dot segment ("." or ".."), in any encoding, or
// an encoded slash, backslash or percent sign is refused outright: a target
// that normalises paths would otherwise be reached outside the prefix
// ("/parley/../admin", "/parley/%2e%2e/admin", "/parley/..%2fadmin").
func (s *Server) allowedURL(raw string) (string, bool) {
	u, ok := parseTarget(raw)
	if !ok {
		return "", false
	}
	for _, p := range s.cfg.ServerMessageURLPrefixes {
		pu, ok := parseTarget(p)
		if !ok {
			continue
		}
		if u.scheme == pu.scheme && u.host == pu.host && u.port == pu.port && underPath(u.segs, pu.segs) {
			return u.url.String(), true
		}
	}
	return "", false
}

// target is a server-message URL, parsed and checked by parseTarget.
type target struct {
	url          *url.URL
	scheme, host string   // lower case
	port         string   // explicit: "80" for http, "443" for https by default
	segs         []string // the path's segments, decoded: "/a/b/" is "", "a", "b", ""
}

// parseTarget parses raw as an absolute http or https URL without user
// info, dot segments or encoded separators (see allowedURL).
func parseTarget(raw string) (target, bool) {
	if strings.ContainsAny(raw, "\\") {
		return target{}, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return target{}, false
	}
	t := target{url: u, scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	switch {
	case t.scheme == "http" && t.port == "":
		t.port = "80"
	case t.scheme == "https" && t.port == "":
		t.port = "443"
	case t.scheme != "http" && t.scheme != "https":
		return target{}, false
	}
	u.Scheme, u.Host = t.scheme, strings.ToLower(u.Host)
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	for _, seg := range strings.Split(p, "/") {
		d, err := url.PathUnescape(seg)
		if err != nil || strings.ContainsAny(d, "/\\%") {
			return target{}, false // an encoded slash, backslash or percent sign
		}
		if name, _, _ := strings.Cut(d, ";"); name == "." || name == ".." {
			return target{}, false // a dot segment, perhaps with parameters ("..;x")
		}
		t.segs = append(t.segs, d)
	}
	return t, true
}

// underPath reports whether path is prefix or lies below it, segment-wise
// (both as parseTarget splits them): "/a/b" is under "/a" and "/a/", "/a"
// is under "/a" but not "/a/", and "/ab" is not under "/a". The prefix "/"
// holds every path.
func underPath(path, prefix []string) bool {
	dir := len(prefix) > 1 && prefix[len(prefix)-1] == ""
	if dir {
		prefix = prefix[:len(prefix)-1]
	}
	if len(path) < len(prefix) || (dir && len(path) == len(prefix)) {
		return false
	}
	for i, seg := range prefix {
		if path[i] != seg {
			return false
		}
	}
	return true
}

// register makes ss the login of k and returns the session it replaces.
func (s *Server) register(k loginKey, ss *session) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.logins[k]
	s.logins[k] = ss
	if old == ss {
		return nil
	}
	return old
}

// unregister removes ss as the login of k, if it still is.
func (s *Server) unregister(k loginKey, ss *session) {
	s.mu.Lock()
	if s.logins[k] == ss {
		delete(s.logins, k)
	}
	s.mu.Unlock()
}

// loggedIn is the session logged in as k, or nil.
func (s *Server) loggedIn(k loginKey) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins[k]
}
