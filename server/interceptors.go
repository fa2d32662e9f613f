package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
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
	"/twofactor.v1.DevService/":                          {RoleAdmin},
	"/twofactor.v1.PasswordService/":                     {RoleLogin, RoleSelfService},
}

var exemptPrefixes = []string{
	// Devices authenticate each request by their signature, checked by the
	// DeviceService itself (device.go), not by an API key.
	"/twofactor.v1.DeviceService/",
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
	callKey
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

// authenticate checks the bearer key and the role the method needs (the AuthFunc
// of go-grpc-middleware's auth interceptor; the method comes from the call).
func (s *core) authenticate(ctx context.Context) (context.Context, error) {
	fullMethod, _ := grpc.Method(ctx)
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
			if c := callFrom(ctx); c != nil {
				c.principal = p // for the access log line, written outside this interceptor
			}
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

// call is what the outer interceptors know of one call: its request id and,
// once authenticated, its caller.
type call struct {
	rid       string
	principal *principal
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey).(*call)
	return c
}

// The chain, the same for unary calls and streams, outermost first:
//
//	request id → access log and metrics → panic recovery → caller authentication
//	→ undecodable request (codec.go) → bounded, clean input (bounds.go)
//
// Recovery and authentication are go-grpc-middleware's; the request id and the
// log/metrics line are ours (the line's fields and levels are what operators
// grep and alert on; see logCall).
func (s *core) unaryChain() []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{
		unaryRequestID,
		s.unaryObserve,
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(s.recovered)),
		auth.UnaryServerInterceptor(s.authenticate),
		decodeUnaryInterceptor,
		boundsUnaryInterceptor,
	}
}

func (s *core) streamChain() []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{
		streamRequestID,
		s.streamObserve,
		recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(s.recovered)),
		auth.StreamServerInterceptor(s.authenticate),
		decodeStreamInterceptor,
		boundsStreamInterceptor,
	}
}

// withRequestID gives the call its request id (the caller's x-request-id when
// sane), in the context and the response header.
func withRequestID(ctx context.Context) context.Context {
	rid := newRequestID(ctx)
	ctx = context.WithValue(ctx, requestIDKey, rid)
	return context.WithValue(ctx, callKey, &call{rid: rid})
}

func unaryRequestID(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx = withRequestID(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", requestIDFrom(ctx)))
	return handler(ctx, req)
}

func streamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = withRequestID(ss.Context())
	return handler(srv, w)
}

// unaryObserve writes the call's log line and metrics.
func (s *core) unaryObserve(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.observe(ctx, info.FullMethod, start, err)
	return resp, err
}

func (s *core) streamObserve(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	s.observe(ss.Context(), info.FullMethod, start, err)
	return err
}

func (s *core) observe(ctx context.Context, method string, start time.Time, err error) {
	s.logCall(ctx, method, requestIDFrom(ctx), start, err)
	s.metrics.rpc(method, status.Code(err).String(), time.Since(start))
}

// recovered turns a panic into Internal naming the request id, logged with its stack.
func (s *core) recovered(ctx context.Context, p any) error {
	rid := requestIDFrom(ctx)
	method, _ := grpc.Method(ctx)
	s.log.ErrorContext(ctx, "panic", "method", method, "request_id", rid, "panic", p, "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error (request id "+rid+")")
}

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
	if c := callFrom(ctx); c != nil && c.principal != nil {
		attrs = append(attrs, slog.String("caller", c.principal.KeyID))
	}
	if err != nil && st.Code() != codes.OK {
		attrs = append(attrs, slog.String("error", st.Message()))
	}
	s.log.LogAttrs(ctx, level, "rpc", attrs...)
}
