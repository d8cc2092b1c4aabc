package gateway

// CacheReserved reports whether s's response cache has taken its memory;
// for the tests of package gateway_test.
func CacheReserved(s *Server) bool { return s.cache != nil && s.cache.Reserved() }

// HelpTexts gives the external tests (alert_rules_test.go) the families
// /metrics may carry, serve's own (TLS, disk) among them, which no
// in-process test server exports.
var HelpTexts = helpTexts
