package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Bounded, clean input (issue 16, finding 4; OWASP ASVS 4.0 V5.1.3, V5.1.4: input
// validated against length and character set before use). Every request of every
// service, whatever its type, passes checkBounds before its handler runs: each
// string, in any nested message, list or map, is valid UTF-8 without NUL bytes and
// at most its limit long, each list and map at most MaxListLen long; the client's
// IP address is a bounded, parseable address. A user agent over MaxUserAgentLen is
// truncated (at a character boundary) rather than refused: it is informational, and
// a browser's may legitimately be long. The handlers' own validators then check
// each field's meaning. Nothing is written before this passes.
const (
	// MaxStringLen bounds a string field without a limit of its own, in bytes.
	MaxStringLen = 1024
	// MaxJSONLen bounds a field whose name ends in "_json" (WebAuthn responses), in
	// bytes.
	MaxJSONLen = 64 << 10
	// MaxUserAgentLen is the length, in bytes, a ClientContext.user_agent is cut to
	// (the audit record's column).
	MaxUserAgentLen = 512
	// MaxClientLen bounds ClientContext.client, in bytes.
	MaxClientLen = 255
	// MaxIPLen bounds an IP address with its zone ("fe80::1%eth0"), in bytes (the
	// audit record's column); MaxIPZoneLen bounds the zone (an interface name).
	MaxIPLen     = 64
	MaxIPZoneLen = 16
	// MaxListLen bounds every repeated field and map.
	MaxListLen = 1000
	// maxBoundsDepth bounds the nesting the walk follows.
	maxBoundsDepth = 16
)

// ipFields hold a client IP address: empty, or an address CheckClientIP accepts.
var ipFields = map[protoreflect.FullName]bool{
	"twofactor.v1.ClientContext.ip":   true,
	"twofactor.v1.ThrottleSubject.ip": true,
}

// stringLimits are the string fields whose bound is not MaxStringLen.
var stringLimits = map[protoreflect.FullName]int{
	"twofactor.v1.ClientContext.client": MaxClientLen,
	"twofactor.v1.ClientContext.ip":     MaxIPLen,
	"twofactor.v1.ThrottleSubject.ip":   MaxIPLen,
}

const userAgentField protoreflect.FullName = "twofactor.v1.ClientContext.user_agent"

func boundsUnaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := CheckBounds(m); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

func boundsStreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, boundsStream{ss})
}

type boundsStream struct{ grpc.ServerStream }

func (s boundsStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		return CheckBounds(pm)
	}
	return nil
}

// CheckBounds checks m as described above, truncating an over-long user agent in
// place. Its error is a *FieldError naming the field's path ("context.ip: …").
func CheckBounds(m proto.Message) error {
	if e := checkMessage(m.ProtoReflect(), 0); e != nil {
		return &FieldError{Field: e.path, Message: e.msg}
	}
	return nil
}

// boundsErr is a failed check; the path is built on the way up, so a request that
// passes costs no allocation.
type boundsErr struct{ path, msg string }

func fail(format string, args ...any) *boundsErr {
	return &boundsErr{msg: fmt.Sprintf(format, args...)}
}

// in prefixes the path with seg, a field name or an index ("[2]").
func (e *boundsErr) in(seg string) *boundsErr {
	switch {
	case e.path == "":
		e.path = seg
	case e.path[0] == '[':
		e.path = seg + e.path
	default:
		e.path = seg + "." + e.path
	}
	return e
}

func checkMessage(m protoreflect.Message, depth int) *boundsErr {
	if depth > maxBoundsDepth {
		return fail("is nested too deeply")
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		var e *boundsErr
		switch {
		case fd.IsList():
			e = checkList(fd, m.Get(fd).List(), depth)
		case fd.IsMap():
			e = checkMap(fd, m.Get(fd).Map(), depth)
		case fd.FullName() == userAgentField:
			if s := m.Get(fd).String(); len(s) > MaxUserAgentLen {
				m.Set(fd, protoreflect.ValueOfString(truncateUTF8(s, MaxUserAgentLen)))
			}
			e = checkValue(fd, m.Get(fd), depth)
		default:
			e = checkValue(fd, m.Get(fd), depth)
		}
		if e != nil {
			return e.in(string(fd.Name()))
		}
	}
	return nil
}

func checkList(fd protoreflect.FieldDescriptor, l protoreflect.List, depth int) *boundsErr {
	if l.Len() > MaxListLen {
		return fail("has more than %d entries", MaxListLen)
	}
	for j := 0; j < l.Len(); j++ {
		if e := checkValue(fd, l.Get(j), depth); e != nil {
			return e.in(fmt.Sprintf("[%d]", j))
		}
	}
	return nil
}

func checkMap(fd protoreflect.FieldDescriptor, mp protoreflect.Map, depth int) *boundsErr {
	if mp.Len() > MaxListLen {
		return fail("has more than %d entries", MaxListLen)
	}
	var e *boundsErr
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		seg := fmt.Sprintf("[%q]", truncateUTF8(k.String(), 64))
		if fd.MapKey().Kind() == protoreflect.StringKind {
			if e = checkString(fd.MapKey(), k.String()); e != nil {
				e = e.in(seg)
				e.msg = "key " + e.msg
				return false
			}
		}
		if e = checkValue(fd.MapValue(), v, depth); e != nil {
			e = e.in(seg)
		}
		return e == nil
	})
	return e
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) *boundsErr {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return checkString(fd, v.String())
	case protoreflect.BytesKind:
		if len(v.Bytes()) > MaxJSONLen {
			return fail("is longer than %d bytes", MaxJSONLen)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(v.Message(), depth+1)
	}
	return nil
}

func checkString(fd protoreflect.FieldDescriptor, s string) *boundsErr {
	limit, ok := stringLimits[fd.FullName()]
	if !ok {
		limit = MaxStringLen
		if strings.HasSuffix(string(fd.Name()), "_json") {
			limit = MaxJSONLen
		}
	}
	switch {
	case len(s) > limit:
		return fail("is longer than %d bytes", limit)
	case !utf8.ValidString(s):
		return fail("is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return fail("contains a NUL byte")
	}
	if ipFields[fd.FullName()] && s != "" {
		if err := CheckClientIP(s); err != nil {
			return fail("%v", err)
		}
	}
	return nil
}

// CheckClientIP accepts an IPv4 or IPv6 address, with a zone of at most
// MaxIPZoneLen bytes, MaxIPLen bytes in all.
func CheckClientIP(s string) error {
	if len(s) > MaxIPLen {
		return fmt.Errorf("is longer than %d bytes", MaxIPLen)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return errors.New("is not an IP address")
	}
	if z := a.Zone(); len(z) > MaxIPZoneLen {
		return fmt.Errorf("has a zone longer than %d bytes", MaxIPZoneLen)
	}
	return nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
