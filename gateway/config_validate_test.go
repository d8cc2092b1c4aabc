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
