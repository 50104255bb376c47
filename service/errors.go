package service

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authzd/authzd/identity"
)

// The one place where errors become gRPC status codes. Internal causes stay
// in logs; callers get a public message.

var (
	// errNoPolicy means no policy set has compiled yet.
	errNoPolicy = errors.New("no policy loaded yet")
)

// invalidArgument is a malformed request; its message is public.
type invalidArgument struct{ msg string }

func (e *invalidArgument) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &invalidArgument{msg: fmt.Sprintf(format, args...)}
}

// toStatus maps an error from the Check flow to a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var ia *invalidArgument
	switch {
	case errors.As(err, &ia):
		return status.Error(codes.InvalidArgument, ia.msg)
	case errors.Is(err, errNoPolicy):
		return status.Error(codes.Unavailable, "authzd has no policy loaded yet")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before a decision was made")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	}
	return status.Error(codes.Internal, "internal error")
}

// undecidedStatus is the gRPC error of an Envoy check that could not be
// decided (on_error: grpc_error): UNAVAILABLE when authzd cannot decide
// right now (no policy yet, an identity provider or the evaluation ran out
// of time), INTERNAL otherwise. reason is public; err stays in logs.
func undecidedStatus(err error, reason string) error {
	if errors.Is(err, errNoPolicy) || errors.Is(err, identity.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.Unavailable, reason)
	}
	return status.Error(codes.Internal, reason)
}
