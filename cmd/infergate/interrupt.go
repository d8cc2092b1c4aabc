package main

import (
	"context"
	"os/signal"
	"syscall"
)

// interruptContext returns a context that ends at the first SIGINT or
// SIGTERM, for a command that stops in order when asked. Once it has
// ended the signals have their default effect again: a second Ctrl-C
// ends the process at once, even in a step that does not heed the
// context (a suite putting back a model's configuration, a trainer
// saving its state on a hung disk).
func interruptContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}
