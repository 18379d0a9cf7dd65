package server

import clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"

// Logins across nodes: to be built (duplicate login, outside-room
// messages, online status).

func (s *Server) onLoginMessage(app string, env *clusterpb.Envelope) {}

func (s *Server) loginsNodeDown(node string, graceful bool) {}

func (s *Server) loginsBack() {}
