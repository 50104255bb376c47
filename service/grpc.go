package service

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
)

// authorizationServer adapts Authorizer to authzd.v1.AuthorizationService.
type authorizationServer struct {
	authzdv1.UnimplementedAuthorizationServiceServer
	a *Authorizer
}

func (s *authorizationServer) Check(ctx context.Context, req *authzdv1.CheckRequest) (*authzdv1.CheckResponse, error) {
	resp, err := s.a.Check(ctx, req)
	return resp, toStatus(err)
}

func (s *authorizationServer) BatchCheck(ctx context.Context, req *authzdv1.BatchCheckRequest) (*authzdv1.BatchCheckResponse, error) {
	resp, err := s.a.BatchCheck(ctx, req)
	return resp, toStatus(err)
}

// adminServer serves authzd.v1.AdminService.
type adminServer struct {
	authzdv1.UnimplementedAdminServiceServer
	a   *Authorizer
	log *slog.Logger
}

func (s *adminServer) FlushCache(ctx context.Context, req *authzdv1.FlushCacheRequest) (*authzdv1.FlushCacheResponse, error) {
	if id := req.GetPrincipalId(); id != "" {
		n := s.a.FlushPrincipal(ctx, id)
		s.log.Info("cache flushed for principal", "principal", id, "entries", n)
	} else {
		s.a.FlushAll(ctx)
		s.log.Info("cache flushed")
	}
	return &authzdv1.FlushCacheResponse{}, nil
}

// recoverUnary turns a panic in a handler into an INTERNAL error (never an
// allow) and logs the stack.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler; request denied", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}
