package onnx

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// uniformInputs returns rows*in features uniform in [-1, 1), the same for the
// same seed.
func uniformInputs(seed uint64, rows, in int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = float32(2*r.Float64() - 1)
	}
	return x
}

func TestDemoModels(t *testing.T) {
	f := func(m *MLP, name string, sizes []int, seed string) {
		t.Helper()
		if err := m.Validate(); err != nil {
			t.Fatalf("%s: %s", name, err)
		}
		var got []int
		for _, l := range m.Layers {
			got = append(got, l.In)
		}
		got = append(got, m.Out())
		if !slices.Equal(got, sizes) {
			t.Fatalf("%s: sizes %v; want %v", name, got, sizes)
		}
		for i, l := range m.Layers {
			want := Relu
			if i == len(m.Layers)-1 {
				want = Sigmoid
			}
			if l.Act != want {
				t.Fatalf("%s: layer %d activation %s; want %s", name, i, l.Act, want)
			}
		}
		if m.InputName != "features" || m.OutputName != "score" {
			t.Fatalf("%s: names %q, %q; want features, score", name, m.InputName, m.OutputName)
		}
		md := m.Model().Metadata
		if md[MetaModel] != name || md[MetaInitSeed] != seed {
			t.Fatalf("%s: metadata %v; want %s=%s and %s=%s", name, md, MetaModel, name, MetaInitSeed, seed)
		}
		if m.DocString == "" {
			t.Fatalf("%s: empty doc string", name)
		}
	}
	f(DemoCTR(), "ctr", []int{64, 256, 256, 1}, "1")
	f(DemoRanker(), "ranker", []int{256, 1024, 1024, 1}, "2")
}

// TestDemoSpread checks that the demo scores for random inputs in [-1, 1]
// are spread over (0, 1): neither all near 0.5 nor saturated at 0 or 1.
func TestDemoSpread(t *testing.T) {
	const rows = 128
	f := func(m *MLP) {
		t.Helper()
		y := m.Forward(uniformInputs(3, rows, m.In()), rows)
		slices.Sort(y)
		var mean, sq float64
		for _, v := range y {
			mean += float64(v)
		}
		mean /= rows
		for _, v := range y {
			sq += (float64(v) - mean) * (float64(v) - mean)
		}
		std := math.Sqrt(sq / rows)
		p5, p50, p95 := y[rows/20], y[rows/2], y[rows*19/20]
		t.Logf("%s: min %.3f p5 %.3f p50 %.3f p95 %.3f max %.3f; mean %.3f std %.3f",
			m.Metadata[MetaModel], y[0], p5, p50, p95, y[rows-1], mean, std)
		if std < 0.08 || p95-p5 < 0.25 {
			t.Fatalf("scores too narrow: std %.3f, p5..p95 %.3f..%.3f; want std >= 0.08 and a 0.25 wide middle", std, p5, p95)
		}
		if y[0] < 0.02 || y[rows-1] > 0.98 {
			t.Fatalf("scores saturate: min %.4f max %.4f; want within [0.02, 0.98]", y[0], y[rows-1])
		}
		if p50 < 0.3 || p50 > 0.7 {
			t.Fatalf("median score %.3f; want within [0.3, 0.7]", p50)
		}
	}
	f(DemoCTR())
	f(DemoRanker())
}

// TestDemoCTRDigest pins the bytes of the ctr demo model. The registry
// addresses models by digest, so a change here changes every deployment's
// demo version: make it only on purpose, and update the digest.
func TestDemoCTRDigest(t *testing.T) {
	sum := sha256.Sum256(DemoCTR().Model().Marshal())
	const want = "5a8a0b301393ce04bf0b35031cb86f0d6d1a37f687543af7454837cc8da674a5"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("sha256 of DemoCTR().Model().Marshal() = %s; want %s", got, want)
	}
}
