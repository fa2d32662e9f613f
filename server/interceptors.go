package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// requiredRoles maps a full method name, or a service prefix ending in "/", to the
// roles of which a caller needs one. Methods not listed are denied (deny by default);
// the exempt ones need no key at all.
var requiredRoles = map[string][]string{
	"/twofactor.v1.ChallengeService/":                    {RoleLogin},
	"/twofactor.v1.EnrollmentService/":                   {RoleSelfService},
	"/twofactor.v1.AppPasswordService/VerifyAppPassword": {RoleLogin},
	"/twofactor.v1.AppPasswordService/":                  {RoleSelfService},
	"/twofactor.v1.AdminService/":                        {RoleAdmin},
	"/twofactor.v1.PasswordService/":                     {RoleLogin, RoleSelfService},
}

var exemptPrefixes = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

func rolesFor(fullMethod string) ([]string, bool) {
	if r, ok := requiredRoles[fullMethod]; ok {
		return r, true
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		r, ok := requiredRoles[fullMethod[:i+1]]
		return r, ok
	}
	return nil, false
}

func exempt(fullMethod string) bool {
	for _, p := range exemptPrefixes {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return false
}

type ctxKey int

const (
	principalKey ctxKey = iota
	requestIDKey
)

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey).(*principal)
	return p
}

// callerID names the authenticated caller for audit records.
func callerID(ctx context.Context) string {
	if p := principalFrom(ctx); p != nil {
		return p.Name + "(" + p.KeyID + ")"
	}
	return ""
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// authenticate checks the bearer key and the role the method needs.
func (s *core) authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	if exempt(fullMethod) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return nil, status.Error(codes.Unauthenticated, "missing API key: send metadata \"authorization: Bearer <key>\"")
	}
	token, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization metadata must be \"Bearer <key>\"")
	}
	p := s.keys.check(strings.TrimSpace(token))
	if p == nil {
		return nil, status.Error(codes.Unauthenticated, "unknown API key")
	}
	roles, ok := rolesFor(fullMethod)
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not open to API callers", fullMethod)
	}
	for _, r := range roles {
		if p.has(r) {
			return context.WithValue(ctx, principalKey, p), nil
		}
	}
	return nil, status.Errorf(codes.PermissionDenied, "API key %q lacks the role %s needs (%s)", p.KeyID, fullMethod, strings.Join(roles, " or "))
}

func newRequestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) == 1 && len(v[0]) <= 64 && v[0] != "" && printable(v[0]) {
			return v[0]
		}
	}
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// unaryInterceptor: request id, panic recovery, authentication, one log line.
func (s *core) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	rid := newRequestID(ctx)
	ctx = context.WithValue(ctx, requestIDKey, rid)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", rid))
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(ctx, "panic", "method", info.FullMethod, "request_id", rid, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error (request id "+rid+")")
		}
		s.logCall(ctx, info.FullMethod, rid, start, err)
		s.metrics.rpc(info.FullMethod, status.Code(err).String(), time.Since(start))
	}()
	actx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	ctx = actx
	return handler(ctx, req)
}

// streamInterceptor authenticates streams (health Watch, reflection).
func (s *core) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	rid := newRequestID(ss.Context())
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic", "method", info.FullMethod, "request_id", rid, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error (request id "+rid+")")
		}
		s.logCall(ss.Context(), info.FullMethod, rid, start, err)
		s.metrics.rpc(info.FullMethod, status.Code(err).String(), time.Since(start))
	}()
	ctx, aerr := s.authenticate(context.WithValue(ss.Context(), requestIDKey, rid), info.FullMethod)
	if aerr != nil {
		return aerr
	}
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (s *core) logCall(ctx context.Context, method, rid string, start time.Time, err error) {
	st := status.Convert(err)
	level := slog.LevelInfo
	if st.Code() == codes.Internal || st.Code() == codes.Unknown {
		level = slog.LevelError
	}
	if err == nil {
		// A successful call is a debug line (-log-level debug gives a full
		// access log): what it did that matters is in the audit trail, and it
		// is counted in the metrics. At thousands of calls a second, a line for
		// each cost 7 % of authd's CPU.
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", st.Code().String()),
		slog.Duration("duration", time.Since(start)),
		slog.String("request_id", rid),
	}
	if p := principalFrom(ctx); p != nil {
		attrs = append(attrs, slog.String("caller", p.KeyID))
	}
	if err != nil && st.Code() != codes.OK {
		attrs = append(attrs, slog.String("error", st.Message()))
	}
	s.log.LogAttrs(ctx, level, "rpc", attrs...)
}
