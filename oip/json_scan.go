package oip

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanner reads strict JSON (RFC 8259) from buf, one token at a time. It is
// the lexer under the decoders of this package: they walk the schema they
// expect and ask it for keys, strings, numbers and literals, so nothing is
// built that the schema does not need.
//
// The zero value is not usable; set buf. A scanner never retains buf beyond
// the call that uses it, and strings it returns alias either buf or scratch:
// they are valid only until the next call that reads a string.
type scanner struct {
	buf   []byte
	pos   int
	depth int
	// scratch holds unescaped strings; the decoders hand it back to the
	// request for reuse.
	scratch []byte
	// inData lets skipValue pass the bare tokens NaN, Infinity and
	// -Infinity: set while it checks tensor data that comes before its
	// datatype, the one place they are taken (see nonFinite).
	inData bool
}

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

// skipSpace moves past whitespace.
func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) && isSpace(s.buf[s.pos]) {
		s.pos++
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

// found describes the byte at s.pos for a message.
func (s *scanner) found() string {
	if s.pos >= len(s.buf) {
		return "the end of the JSON"
	}
	c := s.buf[s.pos]
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// syntaxError reports that the JSON at s.pos is not what want says.
func (s *scanner) syntaxError(want string) error {
	return errorf("invalid JSON at byte %d: expected %s, found %s", s.pos, want, s.found())
}

// kind names the JSON value that starts at s.pos, for messages that say
// what a field holds instead of what it should.
func (s *scanner) kind() string {
	switch s.peek() {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'N', 'I':
		if _, n := s.nonFinite(); n > 0 {
			return "a non-finite number"
		}
		if s.peek() != 'N' && s.peek() != 'I' {
			return "a number"
		}
	}
	return "invalid JSON"
}

// nonFinite returns the value of the bare token NaN, Infinity or
// -Infinity at s.pos, which JSON has not but Triton's clients write (their
// JSON libraries allow them, and Triton reads them), and its length; 0 if
// none is there.
func (s *scanner) nonFinite() (f float64, n int) {
	b := s.buf[s.pos:]
	switch {
	case bytes.HasPrefix(b, nanToken):
		return math.NaN(), len(nanToken)
	case bytes.HasPrefix(b, infToken):
		return math.Inf(1), len(infToken)
	case len(b) > 1 && b[0] == '-' && bytes.HasPrefix(b[1:], infToken):
		return math.Inf(-1), 1 + len(infToken)
	}
	return 0, 0
}

var (
	nanToken = []byte("NaN")
	infToken = []byte("Infinity")
)

// enter counts one more level of nesting, refusing more than MaxDepth.
func (s *scanner) enter() error {
	s.depth++
	if s.depth > MaxDepth {
		return errorf("invalid JSON at byte %d: arrays and objects nest deeper than %d levels", s.pos, MaxDepth)
	}
	return nil
}

// openObject consumes the '{' at the next position; w names the value
// for the message when there is none.
func (s *scanner) openObject(w *where) error {
	if s.peek() != '{' {
		if s.kind() == "invalid JSON" {
			return s.syntaxError("an object")
		}
		return errorf("%s must be an object, not %s", w.String(), s.kind())
	}
	s.pos++
	return s.enter()
}

// openArray consumes the '[' at the next position, as openObject does '{'.
func (s *scanner) openArray(w *where) error {
	if s.peek() != '[' {
		if s.kind() == "invalid JSON" {
			return s.syntaxError("an array")
		}
		return errorf("%s must be an array, not %s", w.String(), s.kind())
	}
	s.pos++
	return s.enter()
}

// nextMember reads the next key of an object opened by openObject and the
// ':' after it. It returns ok=false, having consumed the '}', when the
// object ends. n counts the members read so far; the caller starts it at 0.
func (s *scanner) nextMember(n *int) (key []byte, ok bool, err error) {
	c := s.peek()
	if *n > 0 {
		switch c {
		case '}':
			s.pos++
			s.depth--
			return nil, false, nil
		case ',':
			s.pos++
			c = s.peek()
		default:
			return nil, false, s.syntaxError("',' or '}' after an object member")
		}
	} else if c == '}' {
		s.pos++
		s.depth--
		return nil, false, nil
	}
	if c != '"' {
		return nil, false, s.syntaxError("a string key")
	}
	key, err = s.readString()
	if err != nil {
		return nil, false, err
	}
	if s.peek() != ':' {
		return nil, false, s.syntaxError("':' after an object key")
	}
	s.pos++
	*n++
	return key, true, nil
}

// nextElement moves to the next element of an array opened by openArray.
// It returns false, having consumed the ']', when the array ends. n counts
// the elements so far; the caller starts it at 0.
func (s *scanner) nextElement(n *int) (bool, error) {
	c := s.peek()
	if *n > 0 {
		switch c {
		case ']':
			s.pos++
			s.depth--
			return false, nil
		case ',':
			s.pos++
			s.skipSpace()
		default:
			return false, s.syntaxError("',' or ']' after an array element")
		}
	} else if c == ']' {
		s.pos++
		s.depth--
		return false, nil
	}
	*n++
	return true, nil
}

// end checks that nothing but whitespace follows the top-level value.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos < len(s.buf) {
		return errorf("invalid JSON at byte %d: %s follows the end of the top-level object", s.pos, s.found())
	}
	return nil
}

// isNull consumes a null at the next position and reports whether there
// was one.
func (s *scanner) isNull() bool {
	if s.peek() == 'n' && len(s.buf)-s.pos >= 4 && string(s.buf[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// literal consumes lit ("true", "false", "null") at s.pos.
func (s *scanner) literal(lit string) error {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.syntaxError(lit)
	}
	s.pos += len(lit)
	return nil
}

// readBool reads true or false; w names the value for the message.
func (s *scanner) readBool(w *where) (bool, error) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	if s.kind() == "invalid JSON" {
		return false, s.syntaxError("a value")
	}
	return false, errorf("%s must be true or false, not %s", w.String(), s.kind())
}

// readStringValue reads a string; w names the value for the message.
func (s *scanner) readStringValue(w *where) ([]byte, error) {
	if s.peek() != '"' {
		if s.kind() == "invalid JSON" {
			return nil, s.syntaxError("a value")
		}
		return nil, errorf("%s must be a string, not %s", w.String(), s.kind())
	}
	return s.readString()
}

// plainASCII marks the bytes that readString passes over without a second
// look: ASCII, not a control character, not '"' nor '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// readString reads the string that starts at the '"' at s.pos. The result
// aliases buf when the string has no escapes, and scratch otherwise; it
// refuses control characters and bytes that are not UTF-8.
func (s *scanner) readString() ([]byte, error) {
	b := s.buf
	start := s.pos + 1
	ascii := true
	for i := start; i < len(b); i++ {
		c := b[i]
		if plainASCII[c] {
			continue
		}
		switch {
		case c == '"':
			str := b[start:i]
			if !ascii && !utf8.Valid(str) {
				return nil, s.badUTF8(start, str)
			}
			s.pos = i + 1
			return str, nil
		case c == '\\':
			return s.readEscaped(start, i)
		case c < 0x20:
			s.pos = i
			return nil, errorf("invalid JSON at byte %d: control character 0x%02x in a string; escape it", i, c)
		case c >= 0x80:
			ascii = false
		}
	}
	s.pos = len(b)
	return nil, errorf("invalid JSON at byte %d: string is not terminated", start-1)
}

// badUTF8 reports the first byte of str, which starts at offset start, that
// is not UTF-8.
func (s *scanner) badUTF8(start int, str []byte) error {
	off := 0
	for off < len(str) {
		r, n := utf8.DecodeRune(str[off:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		off += n
	}
	s.pos = start + off
	return errorf("invalid JSON at byte %d: byte 0x%02x in a string is not UTF-8", start+off, str[off])
}

// readEscaped continues readString from the first backslash at i, writing
// the unescaped string into scratch. Lone surrogates in \u escapes become
// U+FFFD, as encoding/json does.
func (s *scanner) readEscaped(start, i int) ([]byte, error) {
	b := s.buf
	out := append(s.scratch[:0], b[start:i]...)
	if !utf8.Valid(out) {
		return nil, s.badUTF8(start, out)
	}
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			s.pos = i + 1
			s.scratch = out
			return out, nil
		case c < 0x20:
			s.pos = i
			return nil, errorf("invalid JSON at byte %d: control character 0x%02x in a string; escape it", i, c)
		case c == '\\':
			if i+1 >= len(b) {
				i++
				continue
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					s.pos = i
					return nil, errorf("invalid JSON at byte %d: \\u must be followed by 4 hex digits", i)
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						r2, ok = hex4(b, i+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				s.pos = i
				return nil, errorf("invalid JSON at byte %d: invalid escape \\%c in a string", i, e)
			}
			i += 2
		case c < 0x80:
			out = append(out, c)
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				s.pos = i
				return nil, errorf("invalid JSON at byte %d: byte 0x%02x in a string is not UTF-8", i, c)
			}
			out = append(out, b[i:i+n]...)
			i += n
		}
	}
	s.pos = len(b)
	s.scratch = out
	return nil, errorf("invalid JSON at byte %d: string is not terminated", start-1)
}

// hex4 decodes the 4 hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number is a JSON number as scanned: its text, and its value as a decimal
// mant × 10^exp when that is exact (!inexact).
type number struct {
	start, end int
	mant       uint64
	exp        int
	flags      uint8 // numNeg | numInexact | numPlain; one field keeps number in registers
}

const (
	// numNeg is set for a negative number.
	numNeg = 1 << iota
	// numInexact is set when the number has more than 19 significant
	// digits, so mant holds only the first 19.
	numInexact
	// numPlain is set when the number has no fraction and no exponent.
	numPlain
)

// scanNumber scans the JSON number at s.pos, checking its grammar.
func (s *scanner) scanNumber() (number, error) {
	// The fast path: at most 19 digits in all, so that mant cannot
	// overflow, accumulated without counting, in locals that stay in
	// registers.
	b := s.buf
	i := s.pos
	start := i
	flags := uint8(numPlain)
	if i < len(b) && b[i] == '-' {
		flags |= numNeg
		i++
	}
	first := i
	var mant uint64
	for i < len(b) {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		mant = mant*10 + uint64(c)
		i++
	}
	nd := i - first
	if nd == 0 || (nd > 1 && b[first] == '0') {
		return s.scanNumberSlow()
	}
	exp := 0
	if i < len(b) && b[i] == '.' {
		flags &^= numPlain
		i++
		frac := i
		for i < len(b) {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			mant = mant*10 + uint64(c)
			i++
		}
		if i == frac {
			return s.scanNumberSlow()
		}
		exp = frac - i
		nd += i - frac
	}
	if nd > 19 || (i < len(b) && (b[i] == 'e' || b[i] == 'E')) {
		return s.scanNumberSlow()
	}
	s.pos = i
	return number{start: start, end: i, mant: mant, exp: exp, flags: flags}, nil
}

// scanNumberSlow is scanNumber for the numbers its fast path leaves:
// exponents, more than 19 digits, and errors. It counts significant digits
// one by one.
func (s *scanner) scanNumberSlow() (number, error) {
	b := s.buf
	i := s.pos
	n := number{start: i, flags: numPlain}
	if i < len(b) && b[i] == '-' {
		n.flags |= numNeg
		i++
	}
	digits := 0 // significant digits in mant
	switch {
	case i < len(b) && b[i] == '0':
		i++
		if i < len(b) && '0' <= b[i] && b[i] <= '9' {
			s.pos = i
			return n, s.syntaxError("no digit after a leading 0")
		}
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			if digits < 19 {
				n.mant = n.mant*10 + uint64(b[i]-'0')
				digits++
			} else {
				n.exp++
				if b[i] != '0' {
					n.flags |= numInexact
				}
			}
		}
	default:
		s.pos = i
		return n, s.syntaxError("a digit")
	}
	if i < len(b) && b[i] == '.' {
		n.flags &^= numPlain
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.pos = i
			return n, s.syntaxError("a digit after '.'")
		}
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			switch {
			case n.mant == 0 && b[i] == '0':
				n.exp--
			case digits < 19:
				n.mant = n.mant*10 + uint64(b[i]-'0')
				digits++
				n.exp--
			case b[i] != '0':
				n.flags |= numInexact
			}
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		n.flags &^= numPlain
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.pos = i
			return n, s.syntaxError("a digit in the exponent")
		}
		e := 0
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			if e < 1e8 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		n.exp += e
	}
	n.end = i
	s.pos = i
	return n, nil
}

// text returns the number's text without copying; it must not outlive buf
// and must not be kept (strconv copies what its errors keep).
func (s *scanner) text(n number) string {
	b := s.buf[n.start:n.end]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// shortText returns the number's text for a message, shortened.
func (s *scanner) shortText(n number) string {
	b := s.buf[n.start:n.end]
	if len(b) > 40 {
		return string(b[:37]) + "..."
	}
	return string(b)
}

// float32pow10 holds the powers of ten that float32 represents exactly.
var float32pow10 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}

// float64pow10 holds the powers of ten that float64 represents exactly.
var float64pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
	1e20, 1e21, 1e22,
}

// parseFloat32 converts a scanned number to the nearest float32, giving the
// same result as strconv.ParseFloat(text, 32); ok is false when the number
// is out of range. fastFloat32 decides nearly all numbers; the rest go to
// strconv.
func (s *scanner) parseFloat32(n number) (f float32, ok bool) {
	if f, ok := fastFloat32(n.mant, n.exp, n.flags&numNeg != 0, n.flags&numInexact != 0); ok {
		return f, true
	}
	v, err := strconv.ParseFloat(s.text(n), 32)
	return float32(v), err == nil
}

// fastFloat32 returns the float32 nearest to the decimal ±mant × 10^exp,
// where mant holds the first 19 significant digits when inexact is set. ok
// is false when it cannot tell, and strconv must. Two paths:
//
//   - When the significand and the power of ten are both exact float32
//     values, one IEEE multiplication or division rounds correctly (the
//     fast path strconv itself takes).
//   - Otherwise, with a power of ten exact in float64, the float64 quotient
//     or product is within 2 ulp (of float64) of the decimal, even when the
//     significand lost digits beyond the 19th. Rounding that float64 to
//     float32 is then correct unless it lies within a few float64 ulps of a
//     midpoint between two float32s, which the low 29 bits of its
//     significand tell: those numbers, about one in 2^25, are left to
//     strconv, as are subnormal and overflowing results.
func fastFloat32(mant uint64, exp int, neg, inexact bool) (float32, bool) {
	if mant == 0 {
		if neg {
			return float32(negZero), true
		}
		return 0, true
	}
	if !inexact && mant < 1<<24 && exp >= -10 && exp <= 10 {
		f := float32(mant)
		if neg {
			f = -f
		}
		if exp < 0 {
			return f / float32pow10[-exp], true
		}
		return f * float32pow10[exp], true
	}
	if exp < -22 || exp > 22 {
		return 0, false
	}
	v := float64(mant)
	if exp < 0 {
		v /= float64pow10[-exp]
	} else {
		v *= float64pow10[exp]
	}
	bits := math.Float64bits(v)
	e := int(bits>>52) - 1023
	low := int64(bits&(1<<29-1)) - 1<<28 // distance from a midpoint
	if e < -126 || e > 127 || (low <= 4 && low >= -4) || v >= math.MaxFloat32 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return float32(v), true
}

// parseFloat64 converts a scanned number to the nearest float64, as
// strconv.ParseFloat(text, 64) does.
func (s *scanner) parseFloat64(n number) (f float64, ok bool) {
	if n.flags&numInexact == 0 && n.mant < 1<<53 {
		if n.mant == 0 {
			if n.flags&numNeg != 0 {
				return negZero, true
			}
			return 0, true
		}
		f = float64(n.mant)
		if n.flags&numNeg != 0 {
			f = -f
		}
		switch {
		case n.exp == 0:
			return f, true
		case n.exp > 0 && n.exp <= 22:
			return f * float64pow10[n.exp], true
		case n.exp < 0 && n.exp >= -22:
			return f / float64pow10[-n.exp], true
		}
	}
	v, err := strconv.ParseFloat(s.text(n), 64)
	return v, err == nil
}

// negZero is -0.0, which Go has no constant for.
var negZero = func() float64 { z := 0.0; return -z }()

// intStatus says why a number is not an integer of a type.
type intStatus uint8

const (
	intOK intStatus = iota
	intFraction
	intRange
)

// parseInt converts a scanned number to an integer magnitude and sign,
// exactly: 3, 3.0 and 0.3e1 are all 3, 3.5 is not an integer, and a
// magnitude above 1<<64-1 is out of range.
func (s *scanner) parseInt(n number) (neg bool, mag uint64, st intStatus) {
	if n.flags&numPlain != 0 && n.flags&numInexact == 0 && n.exp == 0 {
		return n.flags&numNeg != 0 && n.mant != 0, n.mant, intOK
	}
	// Collect the significant digits and the power of ten that scales them.
	b := s.buf[n.start:n.end]
	i := 0
	if b[0] == '-' {
		i++
	}
	var digits [24]byte
	nd := 0
	exp := 0
	extra := false // a nonzero digit beyond those kept
	addDigit := func(c byte, frac bool) {
		if nd == 0 && c == '0' {
			if frac {
				exp--
			}
			return
		}
		switch {
		case nd < len(digits):
			digits[nd] = c
			nd++
			if frac {
				exp--
			}
		case c != '0':
			extra = true
			if !frac {
				exp++
			}
		default:
			if !frac {
				exp++
			}
		}
	}
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		addDigit(b[i], false)
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			addDigit(b[i], true)
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if b[i] == '+' || b[i] == '-' {
			eneg = b[i] == '-'
			i++
		}
		e := 0
		for ; i < len(b); i++ {
			if e < 1e8 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if nd == 0 {
		return false, 0, intOK // zero, however written
	}
	if extra {
		// More than 24 significant digits: either a fraction or more than
		// 20 digits before the point.
		if nd+exp > 20 {
			return n.flags&numNeg != 0, 0, intRange
		}
		return n.flags&numNeg != 0, 0, intFraction
	}
	for nd > 0 && digits[nd-1] == '0' {
		nd--
		exp++
	}
	if exp < 0 {
		return n.flags&numNeg != 0, 0, intFraction
	}
	if nd+exp > 20 {
		return n.flags&numNeg != 0, 0, intRange
	}
	for _, c := range digits[:nd] {
		d := uint64(c - '0')
		if mag > (1<<64-1-d)/10 {
			return n.flags&numNeg != 0, 0, intRange
		}
		mag = mag*10 + d
	}
	for ; exp > 0; exp-- {
		if mag > (1<<64-1)/10 {
			return n.flags&numNeg != 0, 0, intRange
		}
		mag *= 10
	}
	return n.flags&numNeg != 0, mag, intOK
}

// skipValue skips one JSON value of any kind, checking its grammar.
func (s *scanner) skipValue() error {
	switch s.peek() {
	case '"':
		_, err := s.readString()
		return err
	case '{':
		s.pos++
		if err := s.enter(); err != nil {
			return err
		}
		for n := 0; ; {
			_, ok, err := s.nextMember(&n)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skipValue(); err != nil {
				return err
			}
		}
	case '[':
		s.pos++
		if err := s.enter(); err != nil {
			return err
		}
		for n := 0; ; {
			ok, err := s.nextElement(&n)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skipValue(); err != nil {
				return err
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'N', 'I':
		if _, n := s.nonFinite(); n > 0 && s.inData {
			s.pos += n
			return nil
		}
		_, err := s.scanNumber()
		return err
	}
	return s.syntaxError("a value")
}

// readInt reads an integer in [lo, hi]; w names it for the message.
func (s *scanner) readInt(w *where, lo, hi int64) (int64, error) {
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		if s.kind() == "invalid JSON" {
			return 0, s.syntaxError("a value")
		}
		return 0, errorf("%s must be an integer, not %s", w.String(), s.kind())
	}
	n, err := s.scanNumber()
	if err != nil {
		return 0, err
	}
	neg, mag, st := s.parseInt(n)
	switch {
	case st == intFraction:
		return 0, errorf("%s must be an integer, not %s", w.String(), s.shortText(n))
	case st == intRange || (!neg && mag > uint64(hi)) || (neg && (lo >= 0 || mag > uint64(-lo))):
		return 0, errorf("%s is %s; must be between %d and %d", w.String(), s.shortText(n), lo, hi)
	}
	if neg {
		return -int64(mag), nil
	}
	return int64(mag), nil
}
