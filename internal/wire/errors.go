package wire

import (
	"errors"
	"fmt"
)

var (
	// ErrNotCLC reports bytes that are not a CLC message at all: the peer advertised
	// SMC in the TCP handshake but speaks something else on the stream. The bytes
	// belong to the application.
	ErrNotCLC = errors.New("smc: wire: not a CLC message")

	// ErrUnsupported reports a well-formed CLC message for a mode this package does
	// not implement, such as an SMC-R or SMC-D v1 Accept.
	ErrUnsupported = errors.New("smc: wire: unsupported CLC mode")
)

// ParseError reports a CLC message that could not be decoded. Every parser in this
// package returns its failures as a *ParseError.
type ParseError struct {
	// Type is the message type being parsed, or 0 when unknown.
	Type Type
	// Code is the decline code that describes the failure to the peer:
	// CodePeerNoSMC for bytes that are not CLC, CodeModeUnsupp for a mode this
	// package does not implement, CodeCnfErr for a malformed message.
	Code Code
	// Msg says what is wrong.
	Msg string
	// Err is ErrNotCLC, ErrUnsupported or nil; Unwrap returns it.
	Err error
}

// Error implements error.
func (e *ParseError) Error() string {
	if e.Type == 0 {
		return "smc: wire: " + e.Msg
	}
	return "smc: wire: " + e.Type.String() + ": " + e.Msg
}

// Unwrap returns ErrNotCLC, ErrUnsupported or nil.
func (e *ParseError) Unwrap() error { return e.Err }

// perr returns a *ParseError for a malformed message of type t.
func perr(t Type, c Code, format string, args ...any) *ParseError {
	return &ParseError{Type: t, Code: c, Msg: fmt.Sprintf(format, args...)}
}

// unsupported returns a *ParseError wrapping ErrUnsupported.
func unsupported(t Type, format string, args ...any) *ParseError {
	return &ParseError{Type: t, Code: CodeModeUnsupp, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}
