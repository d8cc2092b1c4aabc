package oip

import (
	"math"
	"math/big"
	"strconv"
)

// IEEE 754 half precision (FP16): 1 sign bit, 5 exponent bits, 10 fraction
// bits. Go has no float16, so the codec converts by hand.

const (
	halfSignMask = 0x8000
	halfInf      = 0x7c00
	halfNaN      = 0x7e00
)

// halfToFloat32 returns the float32 equal to the half h; every half is
// exactly a float32.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h&halfSignMask) << 16
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: frac × 2^-24
		f := float32(frac) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f: // infinity or NaN, payload kept
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// halfIsNaN reports whether h is a NaN.
func halfIsNaN(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }

// halfRound splits the rounding of the magnitude a (finite, >= 0) to a half:
// lo is the magnitude bits of the half at or below a, and rest says where a
// lies between lo and the next half: -1 below the midpoint, 0 on it, +1
// above it, or -2 when a is exactly lo. A magnitude of 65536 or more gives
// infinity.
func halfRound(a float64) (lo uint16, rest int) {
	var q float64 // a in units of the last place of its half
	var base uint16
	switch {
	case a >= 65536:
		return halfInf, -2
	case a < 0x1p-14: // subnormal: units of 2^-24
		q = a * 0x1p24
	default: // normal: a = frac × 2^exp, frac in [0.5, 1)
		frac, exp := math.Frexp(a)
		q = frac * 2048
		base = uint16(exp+13) << 10
	}
	ip, fp := math.Modf(q)
	lo = base + uint16(ip)
	switch {
	case fp == 0:
		rest = -2
	case fp < 0.5:
		rest = -1
	case fp == 0.5:
		rest = 0
	default:
		rest = 1
	}
	return lo, rest
}

// halfFromFloat32 rounds f to the nearest half, ties to even; NaNs become
// the quiet NaN with f's sign.
func halfFromFloat32(f float32) uint16 {
	return halfFromFloat64(float64(f))
}

// halfFromFloat64 rounds f to the nearest half, ties to even.
func halfFromFloat64(f float64) uint16 {
	var sign uint16
	if math.Signbit(f) {
		sign = halfSignMask
		f = -f
	}
	switch {
	case math.IsNaN(f):
		return sign | halfNaN
	case math.IsInf(f, 0):
		return sign | halfInf
	}
	lo, rest := halfRound(f)
	if rest > 0 || (rest == 0 && lo&1 == 1) {
		lo++
	}
	return sign | lo
}

// parseFloat16 converts a scanned number to the nearest half. It rounds
// through float64 and then settles the one case where that second rounding
// could differ from rounding the decimal directly: a float64 that lies
// exactly halfway between two halves, which the decimal may miss by less
// than a float64 ulp. ok is false when the number is too large for FP16.
func (s *scanner) parseFloat16(n number) (h uint16, ok bool) {
	f, ok := s.parseFloat64(n)
	if !ok {
		return 0, false
	}
	var sign uint16
	if math.Signbit(f) {
		sign = halfSignMask
		f = -f
	}
	lo, rest := halfRound(f)
	if rest == 0 {
		rest = cmpDecimal(s.buf[n.start:n.end], f)
		if rest == 0 && lo&1 == 1 {
			rest = 1
		}
	}
	if rest > 0 {
		lo++
	}
	if lo >= halfInf {
		return 0, false
	}
	return sign | lo, true
}

// cmpDecimal compares the magnitude of the JSON number text with the
// magnitude of f exactly, returning -1, 0 or +1. It keeps the first 40
// significant digits of text and one sticky digit for the rest, which
// decides every comparison against a value of at most 40 significant
// digits near text, as every midpoint of two halves is (at most 30).
func cmpDecimal(text []byte, f float64) int {
	var digits [48]byte
	nd, exp := 0, 0 // text = digits × 10^exp
	sticky := false
	i := 0
	if i < len(text) && text[i] == '-' {
		i++
	}
	add := func(c byte, frac bool) {
		switch {
		case nd == 0 && c == '0':
			if frac {
				exp--
			}
		case nd < 40:
			digits[nd] = c
			nd++
			if frac {
				exp--
			}
		default:
			if c != '0' {
				sticky = true
			}
			if !frac {
				exp++
			}
		}
	}
	for ; i < len(text) && text[i] >= '0' && text[i] <= '9'; i++ {
		add(text[i], false)
	}
	if i < len(text) && text[i] == '.' {
		for i++; i < len(text) && text[i] >= '0' && text[i] <= '9'; i++ {
			add(text[i], true)
		}
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		e, err := strconv.Atoi(string(text[i+1:]))
		if err != nil {
			// Only an exponent beyond int, which no midpoint of halves
			// can meet.
			if text[i+1] == '-' {
				return -1
			}
			return 1
		}
		exp += e
	}
	if sticky {
		digits[nd] = '1'
		nd++
		exp--
	}
	if nd == 0 {
		return -1 // zero; every f asked about is a midpoint, above zero
	}
	if exp < -400 || exp > 400 {
		// Far outside the range of halves.
		if exp < 0 {
			return -1
		}
		return 1
	}
	r, ok := new(big.Rat).SetString(string(digits[:nd]) + "e" + strconv.Itoa(exp))
	if !ok {
		panic("BUG: cannot parse normalised decimal")
	}
	return r.Cmp(new(big.Rat).SetFloat64(f))
}

// appendHalf appends the shortest decimal that parses back to the finite
// half h.
func appendHalf(dst []byte, h uint16) []byte {
	f := float64(halfToFloat32(h))
	var buf [32]byte
	for prec := 1; prec < 5; prec++ {
		txt := strconv.AppendFloat(buf[:0], f, 'g', prec, 64)
		s := scanner{buf: txt}
		if n, err := s.scanNumber(); err == nil && s.pos == len(txt) {
			if got, ok := s.parseFloat16(n); ok && got == h {
				return append(dst, txt...)
			}
		}
	}
	// Five significant digits always round-trip a half.
	return strconv.AppendFloat(dst, f, 'g', 5, 64)
}
