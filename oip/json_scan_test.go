package oip

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// randomNumber returns JSON number text of many shapes: short and long
// significands, leading and trailing zeros, exponents near the edges of
// float32 and float64, and numbers next to float32 midpoints.
func randomNumber(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0: // as Go writes float32
		return strconv.FormatFloat(float64(math.Float32frombits(r.Uint32()&0x7f7fffff)), 'g', -1, 32)
	case 1: // as Python writes a float32 widened to float64
		f := float64(float32(math.Abs(r.NormFloat64()) * math.Pow(10, float64(r.IntN(20)-10))))
		return strconv.FormatFloat(f, 'g', -1, 64)
	case 2: // a float32 midpoint, nudged by a digit far down
		f := math.Float32frombits(r.Uint32() & 0x7f7fffff)
		mid := new(big.Float).SetPrec(200).SetFloat64(float64(f))
		next := new(big.Float).SetPrec(200).SetFloat64(float64(math.Nextafter32(f, math.MaxFloat32)))
		mid.Add(mid, next).Quo(mid, big.NewFloat(2))
		s := mid.Text('e', 40+r.IntN(20))
		if r.IntN(2) == 0 {
			// Truncate to fewer digits: lands just below the midpoint.
			mant, exp, _ := strings.Cut(s, "e")
			mant = mant[:min(len(mant), 3+r.IntN(30))]
			s = mant + "e" + exp
		}
		return s
	case 3: // plain decimals of any length
		var b strings.Builder
		b.WriteString(strconv.Itoa(r.IntN(1000)))
		b.WriteByte('.')
		for range 1 + r.IntN(30) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return b.String()
	case 4: // small integers and exact cases
		return strconv.Itoa(r.IntN(1 << 25))
	case 5: // exponents of any size
		return strconv.Itoa(1+r.IntN(999)) + "e" + strconv.Itoa(r.IntN(700)-350)
	case 6: // many leading zeros
		return "0." + strings.Repeat("0", r.IntN(50)) + strconv.FormatUint(r.Uint64(), 10)
	}
	// float64 values of every magnitude
	return strconv.FormatFloat(math.Float64frombits(r.Uint64()&0x7fefffffffffffff), 'g', -1, 64)
}

func TestParseFloatMatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(positive string) {
		for _, text := range []string{positive, "-" + positive} {
			s := scanner{buf: []byte(text)}
			n, err := s.scanNumber()
			if err != nil || s.pos != len(text) {
				t.Fatalf("scanNumber(%q): %v at %d", text, err, s.pos)
			}
			want32, err32 := strconv.ParseFloat(text, 32)
			got32, ok32 := s.parseFloat32(n)
			if ok32 != (err32 == nil) || (ok32 && math.Float32bits(got32) != math.Float32bits(float32(want32))) {
				t.Fatalf("parseFloat32(%q) = %v, %v; want %v, %v", text, got32, ok32, float32(want32), err32)
			}
			want64, err64 := strconv.ParseFloat(text, 64)
			got64, ok64 := s.parseFloat64(n)
			if ok64 != (err64 == nil) || (ok64 && math.Float64bits(got64) != math.Float64bits(want64)) {
				t.Fatalf("parseFloat64(%q) = %v, %v; want %v, %v", text, got64, ok64, want64, err64)
			}
		}
	}
	for _, text := range []string{
		"0", "1", "0.0", "1e0", "1E+2", "1e-2", "0e999999999", "3.4028235e38", "3.4028236e38",
		"3.40282356779733661637539395458142568448e38", // float32 overflow threshold
		"1e-45", "7e-46", "1e-50", "1.17549435e-38", "1.0000000596046447753906251",
		"1.000000059604644775390625", "9007199254740993", "123456789012345678901234567890",
		"0.1", "0.3", "16777217", "1e22", "1e23", "4.9e-324", "2.5e-324", "1.7976931348623157e308",
	} {
		check(text)
	}
	n := 200000
	if testing.Short() {
		n = 20000
	}
	for range n {
		check(randomNumber(r))
	}
}

func TestParseInt(t *testing.T) {
	f := func(text string, wantNeg bool, wantMag uint64, wantSt intStatus) {
		t.Helper()
		s := scanner{buf: []byte(text)}
		n, err := s.scanNumber()
		if err != nil {
			t.Fatalf("scanNumber(%q): %s", text, err)
		}
		neg, mag, st := s.parseInt(n)
		if st != wantSt || (st == intOK && (neg != wantNeg || mag != wantMag)) {
			t.Fatalf("parseInt(%q) = %v, %d, %d; want %v, %d, %d", text, neg, mag, st, wantNeg, wantMag, wantSt)
		}
	}
	f("0", false, 0, intOK)
	f("-0", false, 0, intOK)
	f("-0.0e5", false, 0, intOK)
	f("0.000", false, 0, intOK)
	f("7", false, 7, intOK)
	f("-7", true, 7, intOK)
	f("7.000", false, 7, intOK)
	f("70e-1", false, 7, intOK)
	f("0.07e2", false, 7, intOK)
	f("1e19", false, 1e19, intOK)
	f("10000000000000000000", false, 1e19, intOK)
	f("18446744073709551615", false, math.MaxUint64, intOK)
	f("18446744073709551615.000000000000000000000", false, math.MaxUint64, intOK)
	f("1.8446744073709551615e19", false, math.MaxUint64, intOK)
	f("18446744073709551616", false, 0, intRange)
	f("1e20", false, 0, intRange)
	f("1e99999999999", false, 0, intRange)
	f("123456789012345678901234567890", false, 0, intRange)
	f("0.5", false, 0, intFraction)
	f("1e-1", false, 0, intFraction)
	f("1e-99999999999", false, 0, intFraction)
	f("1.0000000000000000000000000001", false, 0, intFraction)
	f("100000000000000000000000000001e-5", false, 0, intRange)
	f("100000000000000000000000000001e-10", false, 0, intFraction)
	f("100000000000000000000000000001e-30", false, 0, intFraction)
}

func TestReadStringEscapes(t *testing.T) {
	f := func(text, want string) {
		t.Helper()
		s := scanner{buf: []byte(text)}
		got, err := s.readString()
		if err != nil {
			t.Fatalf("readString(%s): %s", text, err)
		}
		if string(got) != want || s.pos != len(text) {
			t.Fatalf("readString(%s) = %q at %d; want %q at %d", text, got, s.pos, want, len(text))
		}
	}
	f(`""`, "")
	f(`"abc"`, "abc")
	f(`"é😀"`, "é😀")
	f(`"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t")
	f(`"\u0041\u00e9\u20AC"`, "Aé€")
	f(`"\ud83d\ude00"`, "😀")
	f(`"\ud83d"`, "\uFFFD")
	f(`"\ude00\ud83d"`, "\uFFFD\uFFFD")
	f(`"\ud83d\u0041"`, "\uFFFDA")
	f(`"x\ud83dy"`, "x\uFFFDy")
	f(`"é\n"`, "é\n")
}

// TestDecodeFP32MatchesStrconv decodes "data" arrays of numbers of every
// shape, with and without whitespace, and compares each element with
// strconv.ParseFloat(s, 32): the fast run, the scanner and strconv must
// agree to the bit.
func TestDecodeFP32MatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var req InferRequest
	for round := range 200 {
		var texts []string
		var b strings.Builder
		for len(texts) < 500 {
			text := randomNumber(r)
			if r.IntN(2) == 0 {
				text = "-" + text
			}
			if _, err := strconv.ParseFloat(text, 32); err != nil {
				continue // out of range: an error, tested elsewhere
			}
			if len(texts) > 0 {
				b.WriteString([]string{",", ", ", " ,\n\t", ","}[r.IntN(4)])
			}
			texts = append(texts, text)
			b.WriteString(text)
		}
		body := `{"inputs":[{"name":"x","datatype":"FP32","shape":[` + strconv.Itoa(len(texts)) + `],"data":[` + b.String() + `]}]}`
		if err := DecodeRequest(&req, []byte(body), -1); err != nil {
			t.Fatalf("round %d: %s", round, err)
		}
		data := req.Inputs[0].Data
		for i, text := range texts {
			want, _ := strconv.ParseFloat(text, 32)
			got := math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
			if math.Float32bits(got) != math.Float32bits(float32(want)) {
				t.Fatalf("element %d %q decodes to %v; want %v", i, text, got, float32(want))
			}
		}
	}
}
