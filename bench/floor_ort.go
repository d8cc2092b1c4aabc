package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/oip"
)

// ortSender runs the model in this process: the ort-floor's "request" is
// one Model.Run of a fixed batch, checked like a gateway answer.
type ortSender struct {
	ctx    context.Context
	m      *engine.Model
	inputs []oip.Tensor
	dst    []oip.Tensor
	rows   int
}

// newORTSender makes a sender of batches of rows random rows for m.
func newORTSender(ctx context.Context, m *engine.Model, rows int, seed uint64) (*ortSender, error) {
	rng := rand.New(rand.NewPCG(seed, 0xda3e39cb94b95bdb))
	s := &ortSender{ctx: ctx, m: m, rows: rows}
	for _, in := range m.Inputs() {
		shape := concreteShape(in.Shape, rows)
		data, err := randomData(rng, in.Datatype, int(oip.ShapeElements(shape)))
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		s.inputs = append(s.inputs, oip.Tensor{Name: in.Name, Datatype: in.Datatype, Shape: shape, Data: data})
	}
	return s, nil
}

func (s *ortSender) send(uint64) (time.Time, int, string) {
	out, err := s.m.Run(s.ctx, s.inputs, nil, s.dst)
	done := time.Now()
	if err != nil {
		return done, 0, ErrKindRun
	}
	s.dst = out
	if checkOutputs(len(out), func(i int) *oip.Tensor { return &out[i] }, s.rows, s.m.Outputs()) != nil {
		return done, 0, ErrKindBadBody
	}
	return done, s.rows, ""
}

func (s *ortSender) close() {}

// batchSizes returns 1, 2, 4, ... up to and including maxBatch (which
// need not be a power of two).
func batchSizes(maxBatch int) []int {
	var out []int
	for b := 1; b < maxBatch; b *= 2 {
		out = append(out, b)
	}
	return append(out, max(maxBatch, 1))
}
