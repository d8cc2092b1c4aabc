package gateway

import (
	"strings"
	"testing"
	"time"
)

// A timeout that is not positive is named, with its value: serve passes
// the message on for --read-timeout, --write-timeout and --idle-timeout.
func TestValidateNamesTheTimeout(t *testing.T) {
	f := func(set func(*Config), want string) {
		t.Helper()
		c := DefaultConfig()
		set(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: got %v; want an error containing %q", err, want)
		}
	}
	f(func(c *Config) { c.ReadTimeout = -time.Second }, "read timeout -1s must be positive")
	f(func(c *Config) { c.WriteTimeout = 0 }, "write timeout 0s must be positive")
	f(func(c *Config) { c.IdleTimeout = -time.Minute }, "idle timeout -1m0s must be positive")
}

// A response cache budget beyond the machine's memory is refused by
// Validate, so that serve --dry-run says so, rather than the server
// crashing out of memory (or panicking, near 2^63) as it starts.
func TestValidateRefusesCacheBeyondMemory(t *testing.T) {
	c := DefaultConfig()
	c.CacheBytes = 1 << 62
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("Validate with CacheBytes 2^62: got %v; want an error that names the machine's memory", err)
	}
}
