package onnx

// DemoCTR returns the demo click-through-rate model of DESIGN.md ("ctr"): an
// MLP 64-256-256-1 drawn from seed 1, Relu hidden layers and a Sigmoid
// output, reading "features" FLOAT [batch, 64] and writing "score" FLOAT
// [batch, 1]. Every call returns a new MLP with the same weights.
func DemoCTR() *MLP {
	m := NewMLP(1, []int{64, 256, 256, 1}, Relu, Sigmoid)
	m.DocString = "infergate demo click-through-rate model: random weights, seed 1; " +
		"features FLOAT [batch, 64] -> score FLOAT [batch, 1], a probability."
	m.Metadata[MetaModel] = "ctr"
	return m
}

// DemoRanker returns the demo ranking model of DESIGN.md ("ranker"): an MLP
// 256-1024-1024-1 drawn from seed 2, Relu hidden layers and a Sigmoid output,
// reading "features" FLOAT [batch, 256] and writing "score" FLOAT [batch, 1].
// Every call returns a new MLP with the same weights.
func DemoRanker() *MLP {
	m := NewMLP(2, []int{256, 1024, 1024, 1}, Relu, Sigmoid)
	m.DocString = "infergate demo ranking model: random weights, seed 2; " +
		"features FLOAT [batch, 256] -> score FLOAT [batch, 1], a relevance in (0, 1)."
	m.Metadata[MetaModel] = "ranker"
	return m
}
