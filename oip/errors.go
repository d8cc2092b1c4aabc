package oip

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// Error is a request, response or metadata document that breaks the
// protocol or does not fit the model: broken JSON, a field of the wrong
// type, a shape that disagrees with its data or with the model. Message is
// written for the person who sent the bytes and names the value at fault.
//
// Every error that DecodeRequest, CheckInputs and CheckOutputs return is an
// *Error: a server answers it with 400 Bad Request and the body that
// AppendError(dst, err.Error()) writes. Find it with errors.As.
type Error struct {
	Message string
}

// Error returns e.Message.
func (e *Error) Error() string { return e.Message }

// errorf returns an *Error with the formatted message.
func errorf(format string, a ...any) error {
	return &Error{Message: fmt.Sprintf(format, a...)}
}

// StatusError is an answer of a server with a status code other than 2xx,
// as the Client reports it. Message is the "error" member of the body, or
// the start of the body when it has none.
type StatusError struct {
	Code    int
	Message string
}

// Error returns the status code, its text and the server's message.
func (e *StatusError) Error() string {
	text := fasthttp.StatusMessage(e.Code)
	if e.Message == "" {
		return fmt.Sprintf("server answered %d %s", e.Code, text)
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Code, text, e.Message)
}
