package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/infergate/infergate/oip"
)

// Bounds of the gateway the suite starts.
const (
	gatewayStartTimeout = 30 * time.Second // until it logs its address
	gatewayReadyTimeout = 2 * time.Minute  // until its models are loaded
	gatewayStopGrace    = 15 * time.Second // SIGTERM to SIGKILL
	gatewayLogTail      = 64 << 10         // bytes of its log kept for errors
)

// servingLine is the log line of `infergate serve` that gives its address.
var servingLine = regexp.MustCompile(`serving on (https?://\S+)`)

// gatewayProcess is an `infergate serve` the suite started and stops.
type gatewayProcess struct {
	cmd    *exec.Cmd
	url    string
	tail   *tailBuffer
	exited chan struct{}
	// waitErr is cmd.Wait's result, set before exited is closed.
	waitErr error
}

// startGateway runs exe with args (a `serve` command line that listens on
// 127.0.0.1:0), reads its address from its log, and waits until it is
// ready (over TLS under what tc returns, when it serves https). Its
// output also goes to logTo when not nil. It runs on the servers' CPUs
// of cpus, when not nil. The process gets SIGKILL if this one dies
// first.
func startGateway(ctx context.Context, exe string, args []string, logTo io.Writer, cpus *cpuSplit, tc func(serverName string) *tls.Config) (*gatewayProcess, error) {
	g := &gatewayProcess{tail: &tailBuffer{max: gatewayLogTail}, exited: make(chan struct{})}
	g.cmd = exec.Command(exe, args...)
	// A gateway of its own, on loopback, answers the suite without
	// tokens, whatever the shell exports for the gateways it runs.
	g.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "INFERGATE_ADMIN_TOKEN=") || strings.HasPrefix(kv, "INFERGATE_INFERENCE_TOKEN=")
	})
	pr, pw := io.Pipe()
	out := []io.Writer{pw, g.tail}
	if logTo != nil {
		out = append(out, logTo)
	}
	g.cmd.Stderr = io.MultiWriter(out...)
	g.cmd.Stdout = g.cmd.Stderr
	setDeathSignal(g.cmd)
	if err := cpus.start(g.cmd); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrGatewayStart, exe, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		pw.Close()
		close(g.exited)
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
				break
			}
		}
		io.Copy(io.Discard, pr) // keep draining, or the gateway blocks on its log
	}()
	fail := func(format string, a ...any) (*gatewayProcess, error) {
		g.stop()
		return nil, fmt.Errorf("%w: %s; its log ends:\n%s", ErrGatewayStart, fmt.Sprintf(format, a...), g.tail.String())
	}
	timer := time.NewTimer(gatewayStartTimeout)
	defer timer.Stop()
	select {
	case a := <-addr:
		g.url = a
	case <-g.exited:
		return fail("it exited (%v)", g.waitErr)
	case <-timer.C:
		return fail("it logged no address within %s", gatewayStartTimeout)
	case <-ctx.Done():
		return fail("%s", ctx.Err())
	}
	c := oip.NewClient(g.url)
	c.SetTLS(tc)
	c.SetTimeout(5 * time.Second)
	deadline := time.Now().Add(gatewayReadyTimeout)
	for {
		if ok, _ := c.ServerReady(); ok {
			return g, nil
		}
		select {
		case <-g.exited:
			return fail("it exited (%v)", g.waitErr)
		case <-ctx.Done():
			return fail("%s", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail("it was not ready within %s", gatewayReadyTimeout)
		}
	}
}

// stop sends SIGTERM, waits up to gatewayStopGrace for the gateway to
// drain and exit, then kills it. It returns how long that took. It may be
// called more than once.
func (g *gatewayProcess) stop() time.Duration {
	start := time.Now()
	select {
	case <-g.exited:
		return 0
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(gatewayStopGrace)
	defer t.Stop()
	select {
	case <-g.exited:
	case <-t.C:
		g.cmd.Process.Kill()
		<-g.exited
	}
	return time.Since(start)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
