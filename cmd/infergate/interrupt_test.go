package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// interruptChildEnv makes the test binary run interruptChild instead of
// the tests (TestMain).
const interruptChildEnv = "INFERGATE_TEST_INTERRUPT_CHILD"

// interruptChild waits for the first interrupt, says so, and then keeps
// on as a step that does not heed the context would.
func interruptChild() {
	ctx, stop := interruptContext()
	defer stop()
	fmt.Println("ready")
	<-ctx.Done()
	fmt.Println("interrupted")
	time.Sleep(time.Minute)
	fmt.Println("slept")
}

// The first SIGINT ends the context; the second ends the process.
func TestSecondInterruptEndsTheProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), interruptChildEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("got %q (%v); want %q", lines.Text(), lines.Err(), want)
		}
	}
	expect("ready")
	cmd.Process.Signal(syscall.SIGINT)
	expect("interrupted")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The signals are given back on a goroutine of the context's, a moment
	// after it ends: a signal in that moment is still caught, so the
	// second one is sent again until the process ends.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
				t.Fatalf("the process ended with %v; want it killed by SIGINT", err)
			}
			return
		case <-deadline:
			t.Fatalf("SIGINTs after the first did not end the process")
		case <-tick.C:
		}
	}
}
