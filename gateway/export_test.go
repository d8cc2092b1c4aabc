package gateway

// CacheReserved reports whether s's response cache has taken its memory;
// for the tests of package gateway_test.
func CacheReserved(s *Server) bool { return s.cache != nil && s.cache.Reserved() }
