package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
	"github.com/infergate/infergate/trainer"
	"github.com/infergate/infergate/trainer/onnx"
)

// runTrain is `infergate train`: read the nodes' traffic logs, join the
// predictions with their feedback labels, train, compare with the live
// versions on a holdout, check the export against ONNX Runtime, and
// upload the candidate as a staged version when it is better.
func runTrain(args []string) error {
	fs := newFlagSet("train", "[flags] MODEL", `Train a new version of MODEL from the traffic the gateways logged (serve
--traffic-percent) and the labels clients reported for it (POST
/v2/models/MODEL/feedback): read every node's traffic log, join each sampled
prediction of one row with its latest label (from 0 to 1), train a logistic
regression (or an MLP with --hidden) on the binary cross-entropy, and compare
it with the versions that answered on a holdout (one example in
--holdout-every, by a hash of its id). Before anything is published, ONNX
Runtime runs the exported model on the holdout and must agree with the
trainer's own forward pass. With --upload, a candidate with a lower holdout
log loss than the live versions is uploaded as a staged version, for
"infergate models shadow" and "promote" (or an experiment) to take on.

  infergate train ctr --addr http://10.0.0.5:8080,http://10.0.0.6:8080
  infergate train ctr --hidden 32 --epochs 30 --upload`)
	gf := addGatewayFlags(fs, "base URLs of the nodes whose traffic logs to read, comma-separated; the first that answers takes the upload")
	hidden := fs.String("hidden", "", "hidden layer sizes, comma-separated (e.g. 32,16); empty trains a logistic regression")
	cfg := trainer.DefaultConfig()
	fs.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "passes over the training examples")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "examples per step of Adam")
	fs.Float64Var(&cfg.LearningRate, "learning-rate", cfg.LearningRate, "Adam's step size")
	fs.Float64Var(&cfg.L2, "l2", cfg.L2, "weight decay of the weights")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the initial weights and of the examples' order")
	holdoutEvery := fs.Int("holdout-every", 5, "put one example in this many in the holdout")
	minExamples := fs.Int("min-examples", 100, "refuse to train on fewer labeled examples")
	outFile := fs.String("out", "", "also write the candidate's ONNX model to this file")
	upload := fs.Bool("upload", false, "upload the candidate as a staged version when its holdout log loss beats the live versions'")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up reading the logs and uploading after this long")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so, which checks the exported model (default: $INFERGATE_ORT_LIB, else lib/libonnxruntime.so.1 from \"make setup\")")
	pos, err := parseArgs(fs, args, "MODEL")
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	model := pos[0]
	if cfg.Hidden, err = parseHidden(*hidden); err != nil {
		return err
	}
	if *holdoutEvery < 2 {
		return fmt.Errorf("--holdout-every %d: use 2 or more", *holdoutEvery)
	}
	gw, err := gf.gateway(*timeout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	// The model's input, as the first node that answers serves it.
	input, width, output, err := gw.Signature(ctx, model)
	if err != nil {
		return err
	}
	cfg.InputName, cfg.OutputName = input, output
	if err := cfg.Validate(); err != nil {
		return err
	}
	j := trainer.NewJoiner(model, input, width, 0)
	events := 0
	add := func(e *trafficlog.Event) { events++; j.Add(e) }
	from := fmt.Sprintf("%d node(s)", len(gw.Nodes))
	logs := gw.Logs(cliLog.Logf)
	var src trainer.Source = logs
	if r, err := gf.kafkaReader(ctx); err != nil {
		return err
	} else if r != nil {
		defer r.Close()
		src, from = r, fmt.Sprintf("Kafka topic %q", gf.kafkaTopic)
	}
	if err := src.Read(ctx, add); err != nil {
		return err
	}
	if missing := logs.Missing(); src == trainer.Source(logs) && len(missing) > 0 {
		// Trained on part of the traffic: said where the figures are.
		from = fmt.Sprintf("%d of %d node(s) (not read: %s)", len(gw.Nodes)-len(missing), len(gw.Nodes), strings.Join(missing, ", "))
	}
	exs, st := j.Examples()
	fmt.Printf("read %d events from %s: %d predictions and %d feedback of %s\n", events, from, st.Predictions, st.Feedback, model)
	fmt.Printf("joined %d labeled examples; left out: %d predictions without a label, %d of several rows, %d of another input, %d with a label outside 0 to 1; %d labels without a logged prediction\n",
		st.Joined, st.Unlabeled, st.MultiRow, st.WrongInput, st.BadLabel, st.Orphans)
	if len(exs) < *minExamples {
		return fmt.Errorf("%d labeled examples, fewer than --min-examples %d: log more traffic (--traffic-percent) or send more feedback", len(exs), *minExamples)
	}
	train, holdout := trainer.Split(exs, *holdoutEvery)
	if len(holdout) == 0 || len(train) == 0 {
		return fmt.Errorf("the split left %d examples to train on and %d to hold out; lower --holdout-every", len(train), len(holdout))
	}
	kind := "a logistic regression"
	if len(cfg.Hidden) > 0 {
		kind = fmt.Sprintf("an MLP with hidden layers %v", cfg.Hidden)
	}
	start := time.Now()
	m, losses, err := trainer.Train(cfg, train)
	if err != nil {
		return err
	}
	fmt.Printf("trained %s on %d examples in %s: loss %.4f after the first epoch, %.4f after the last (%d)\n",
		kind, len(train), time.Since(start).Round(time.Millisecond), losses[0], losses[len(losses)-1], len(losses))
	cmp := trainer.Compare(m, holdout)
	fmt.Printf("holdout of %d: live versions %s\n", len(holdout), cmp.Live)
	fmt.Printf("               candidate     %s\n", cmp.Candidate)

	m.Metadata[onnx.MetaModel] = model
	m.Metadata["infergate.trained_on"] = strconv.Itoa(len(train))
	m.DocString = fmt.Sprintf("trained by infergate train on %d examples of %s's traffic", len(train), model)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("BUG: the trained model does not validate: %w", err)
	}
	data := m.Model().Marshal()
	rows, err := checkParity(*ortLib, data, m, holdout)
	if err != nil {
		return err
	}
	fmt.Printf("ONNX Runtime agrees with the trainer on %d holdout rows\n", rows)
	if *outFile != "" {
		if err := os.WriteFile(*outFile, data, 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%d bytes)\n", *outFile, len(data))
	}
	if !cmp.Better() {
		fmt.Println("the candidate is not better than the live versions on the holdout; nothing uploaded")
		return nil
	}
	if !*upload {
		fmt.Println("the candidate is better on the holdout; --upload uploads it as a staged version")
		return nil
	}
	v, err := gw.Upload(ctx, model, data)
	if err != nil {
		return err
	}
	fmt.Printf("uploaded %s version %d (sha256:%x), staged; next: infergate models shadow %s %d --percent 10, then an experiment or a promotion\n",
		model, v, sha256.Sum256(data), model, v)
	return nil
}

// checkParity runs the exported model in ONNX Runtime on (up to 256 of)
// the holdout and compares it with the trainer's forward pass: what is
// published must compute what was evaluated. It returns how many rows
// agreed.
func checkParity(lib string, data []byte, m *onnx.MLP, holdout []trainer.Example) (int, error) {
	if err := engine.Init(engine.ResolveLibPath(lib)); err != nil {
		return 0, fmt.Errorf("ONNX Runtime is needed to check the exported model: %w", err)
	}
	em, err := engine.Load(data, engine.Options{})
	if err != nil {
		return 0, fmt.Errorf("BUG: ONNX Runtime refuses the exported model: %w", err)
	}
	defer em.Close()
	rows := min(len(holdout), 256)
	x := make([]float32, 0, rows*m.In())
	for _, ex := range holdout[:rows] {
		x = append(x, ex.Features...)
	}
	in := oip.Tensor{Name: m.InputName, Datatype: oip.FP32, Shape: []int64{int64(rows), int64(m.In())}, Data: f32le(x)}
	outs, err := em.Run(context.Background(), []oip.Tensor{in}, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("ONNX Runtime cannot run the exported model: %w", err)
	}
	if len(outs) != 1 || len(outs[0].Data) != 4*rows {
		return 0, errors.New("BUG: ONNX Runtime's output of the exported model has the wrong shape")
	}
	want := m.Forward(x, rows)
	worst := 0.0
	for i := range rows {
		got := math.Float32frombits(uint32(outs[0].Data[4*i]) | uint32(outs[0].Data[4*i+1])<<8 | uint32(outs[0].Data[4*i+2])<<16 | uint32(outs[0].Data[4*i+3])<<24)
		worst = math.Max(worst, math.Abs(float64(got-want[i])))
	}
	if !(worst <= 1e-4) { // NaN too
		return 0, fmt.Errorf("BUG: ONNX Runtime and the trainer's forward pass differ by %g on the holdout; nothing published", worst)
	}
	return rows, nil
}

// parseHidden parses --hidden: layer sizes, comma-separated.
func parseHidden(s string) ([]int, error) {
	var sizes []int
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		n, err := strconv.Atoi(h)
		if err != nil {
			return nil, fmt.Errorf("--hidden %q: %q is not a layer size", s, h)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func f32le(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}
