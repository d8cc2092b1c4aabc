package oip

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestHalfToFloat32(t *testing.T) {
	f := func(h uint16, want float32) {
		t.Helper()
		got := halfToFloat32(h)
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("halfToFloat32(%#04x) = %v; want %v", h, got, want)
		}
	}
	f(0x0000, 0)
	f(0x8000, float32(math.Copysign(0, -1)))
	f(0x3c00, 1)
	f(0xc000, -2)
	f(0x3555, 0.333251953125)
	f(0x7bff, 65504)
	f(0x0400, 0x1p-14)
	f(0x0001, 0x1p-24)
	f(0x03ff, 1023*0x1p-24)
	f(0x7c00, float32(math.Inf(1)))
	f(0xfc00, float32(math.Inf(-1)))
}

// TestHalfRoundTrips checks every half: float32 and back, and decimal text
// and back.
func TestHalfRoundTrips(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := halfToFloat32(h)
		if halfIsNaN(h) {
			if !math.IsNaN(float64(f)) || !halfIsNaN(halfFromFloat32(f)) {
				t.Fatalf("NaN %#04x does not stay NaN", h)
			}
			continue
		}
		if got := halfFromFloat32(f); got != h {
			t.Fatalf("halfFromFloat32(halfToFloat32(%#04x)) = %#04x", h, got)
		}
		if h&0x7c00 == 0x7c00 {
			continue // infinities are written as strings
		}
		text := appendHalf(nil, h)
		s := scanner{buf: text}
		n, err := s.scanNumber()
		if err != nil {
			t.Fatalf("appendHalf(%#04x) = %q: %s", h, text, err)
		}
		if got, ok := s.parseFloat16(n); !ok || got != h {
			t.Fatalf("appendHalf(%#04x) = %q parses to %#04x, %v", h, text, got, ok)
		}
		if len(text) > 12 {
			t.Fatalf("appendHalf(%#04x) = %q is not short", h, text)
		}
	}
	if got := string(appendHalf(nil, 0x2e66)); got != "0.1" {
		t.Fatalf("appendHalf(0.1) = %q; want \"0.1\"", got)
	}
}

// halfValue returns the exact value of the non-negative finite half h, or
// 65536 for infinity, where rounding to nearest puts the overflow edge.
func halfValue(h uint16) *big.Rat {
	if h == halfInf {
		return new(big.Rat).SetInt64(65536)
	}
	return new(big.Rat).SetFloat64(float64(halfToFloat32(h)))
}

// nearestHalf rounds the exact decimal text to a half, ties to even: the
// reference for parseFloat16. ok is false when it overflows.
func nearestHalf(text string) (uint16, bool) {
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		panic("bad test number " + text)
	}
	var sign uint16
	if r.Sign() < 0 {
		sign = halfSignMask
		r.Neg(r)
	}
	lo, hi := uint16(0), uint16(halfInf) // value(lo) <= r < value(hi)
	if r.Cmp(halfValue(halfInf)) >= 0 {
		return 0, false
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if halfValue(mid).Cmp(r) <= 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	midpoint := new(big.Rat).Add(halfValue(lo), halfValue(hi))
	midpoint.Quo(midpoint, big.NewRat(2, 1))
	h := lo
	if c := r.Cmp(midpoint); c > 0 || (c == 0 && lo&1 == 1) {
		h = hi
	}
	if h == halfInf {
		return 0, false
	}
	return sign | h, true
}

func TestParseFloat16(t *testing.T) {
	check := func(text string) {
		t.Helper()
		s := scanner{buf: []byte(text)}
		n, err := s.scanNumber()
		if err != nil {
			t.Fatalf("scanNumber(%q): %s", text, err)
		}
		got, ok := s.parseFloat16(n)
		want, wantOK := nearestHalf(text)
		if ok != wantOK || (ok && got != want && !(got&0x7fff == 0 && want&0x7fff == 0)) {
			t.Fatalf("parseFloat16(%q) = %#04x, %v; want %#04x, %v", text, got, ok, want, wantOK)
		}
	}
	for _, text := range []string{
		"0", "-0", "1", "65504", "65519", "65519.999999999999999999999", "65520", "1e5",
		"5.960464477539063e-8", "2.98023223876953125e-8", "2.98023223876953125000000000001e-8",
		"2.9802322387695312e-8", "1e-30", "0.1", "-2.5",
	} {
		check(text)
	}
	// Midpoints of neighbouring halves, exactly and nudged by a digit far
	// beyond what float64 keeps: rounding through float64 alone gets the
	// nudged ones wrong.
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		h := uint16(r.IntN(0x7bff))
		mid := new(big.Rat).Add(halfValue(h), halfValue(h+1))
		mid.Quo(mid, big.NewRat(2, 1))
		exact := mid.FloatString(40)
		check(exact)
		check(exact + "0000000000001")
		below := new(big.Rat).Sub(mid, big.NewRat(1, 1e18))
		below.Sub(below, big.NewRat(1, 1e18))
		check(below.FloatString(45))
		check("-" + exact + "1")
	}
	for range 20000 {
		check(strconv.FormatFloat(r.Float64()*70000, 'g', r.IntN(20)+1, 64))
		check(strconv.FormatFloat(r.Float64()*1e-4, 'e', r.IntN(30), 64))
	}
}
