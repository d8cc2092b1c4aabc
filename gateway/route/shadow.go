package route

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// DefaultTolerance is a Shadow's Tolerance when it gives none.
const DefaultTolerance = 1e-3

// Shadow sends a copy of a sample of a model's requests to another
// version, whose answers are compared with the ones the clients got and
// never returned.
type Shadow struct {
	// Version is the version that gets the copies.
	Version int64 `json:"version"`
	// Percent is the share of the model's requests copied, in (0, 100].
	Percent float64 `json:"percent"`
	// Tolerance is the largest absolute difference between two output
	// values that still counts as agreement; 0 means DefaultTolerance.
	Tolerance float64 `json:"tolerance,omitempty"`
}

// Validate reports what is wrong with s, in words that say what to fix;
// it does not look at which versions exist.
func (s *Shadow) Validate() error {
	if s == nil {
		return errors.New("the shadow is missing")
	}
	if s.Version < 1 {
		return fmt.Errorf("version %d; name the version that gets the copies (1 or more)", s.Version)
	}
	if !(s.Percent > 0 && s.Percent <= 100) {
		return fmt.Errorf("percent %v is out of range; want more than 0 and at most 100", s.Percent)
	}
	if !(s.Tolerance >= 0 && s.Tolerance <= 1e300) {
		return fmt.Errorf("tolerance %v is out of range; want 0 (the default, %v) or more", s.Tolerance, DefaultTolerance)
	}
	return nil
}

// Clone returns a copy of s; s may be nil.
func (s *Shadow) Clone() *Shadow {
	if s == nil {
		return nil
	}
	c := *s
	return &c
}

// Equal reports whether s and o are the same; either may be nil.
func (s *Shadow) Equal(o *Shadow) bool {
	if s == nil || o == nil {
		return s == o
	}
	return *s == *o
}

// Limit returns the tolerance in effect.
func (s *Shadow) Limit() float64 {
	if s.Tolerance == 0 {
		return DefaultTolerance
	}
	return s.Tolerance
}

// Sample reports, at random, whether a request gets copied.
func (s *Shadow) Sample() bool {
	return s.Percent >= 100 || rand.Float64()*100 < s.Percent
}

// String renders s on one line.
func (s *Shadow) String() string {
	return fmt.Sprintf("version %d gets a copy of %s%% of the requests (tolerance %s)",
		s.Version, strconv.FormatFloat(s.Percent, 'f', -1, 64), strconv.FormatFloat(s.Limit(), 'g', -1, 64))
}
