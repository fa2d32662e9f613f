package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Undecodable requests (issue 16, finding 7). grpc-go turns any error of the codec
// into codes.Internal before an interceptor runs, so a string field holding invalid
// UTF-8 (which proto3 forbids) would answer Internal. The codec below never fails a
// decode: it resets the message and leaves a marker (a per-process random nonce and
// the reason) in its unknown fields; the decode interceptors, which run after
// authentication, answer InvalidArgument with the reason. A handler can thus
// never see a half-decoded message, even without the interceptors (it sees an empty
// one). Clients cannot forge the marker: they do not know the nonce.

// decodeMarkerField is the field number of the marker: the largest one protobuf allows,
// defined by no message of ours.
const decodeMarkerField protowire.Number = protowire.MaxValidNumber

// maxDecodeDepth bounds the walk that names the offending field.
const maxDecodeDepth = 32

var decodeNonce = func() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}()

// ServerOptions installs decodeCodec, and the chains end with decodeUnaryInterceptor
// and decodeStreamInterceptor, which answer an undecodable request with
// InvalidArgument ("context.user_agent: invalid UTF-8", "request: malformed protobuf
// message") instead of Internal.

// decodeCodec is grpc-go's proto codec whose Unmarshal marks the message instead of
// failing.
type decodeCodec struct{}

func (decodeCodec) Name() string { return "proto" }

func (decodeCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (decodeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return encoding.GetCodecV2("proto").Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	raw := buf.ReadOnlyData()
	if err := proto.Unmarshal(raw, m); err == nil {
		return nil
	}
	reason := "request: malformed protobuf message"
	if path := InvalidUTF8Path(m.ProtoReflect().Descriptor(), raw); path != "" {
		reason = path + ": invalid UTF-8"
	}
	proto.Reset(m)
	mark := protowire.AppendTag(nil, decodeMarkerField, protowire.BytesType)
	mark = protowire.AppendBytes(mark, append(append([]byte{}, decodeNonce...), reason...))
	m.ProtoReflect().SetUnknown(mark)
	return nil
}

// decodeFailure is the reason the codec left in v's unknown fields, or "".
func decodeFailure(v any) string {
	m, ok := v.(proto.Message)
	if !ok {
		return ""
	}
	b := m.ProtoReflect().GetUnknown()
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != decodeMarkerField || typ != protowire.BytesType {
		return ""
	}
	val, n := protowire.ConsumeBytes(b[n:])
	if n < 0 || !bytes.HasPrefix(val, decodeNonce) {
		return ""
	}
	return string(val[len(decodeNonce):])
}

func decodeUnaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if reason := decodeFailure(req); reason != "" {
		return nil, status.Error(codes.InvalidArgument, reason)
	}
	return handler(ctx, req)
}

func decodeStreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, decodeStream{ss})
}

type decodeStream struct{ grpc.ServerStream }

func (s decodeStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if reason := decodeFailure(m); reason != "" {
		return status.Error(codes.InvalidArgument, reason)
	}
	return nil
}

// InvalidUTF8Path is the dotted path ("context.user_agent") of the first string field
// in b, the wire form of a message of type md, whose value is not UTF-8; "" when there
// is none or b is malformed before one is found. Map entries appear as
// "<field>.key" / "<field>.value".
func InvalidUTF8Path(md protoreflect.MessageDescriptor, b []byte) string {
	return invalidUTF8Path(md, b, 0)
}

func invalidUTF8Path(md protoreflect.MessageDescriptor, b []byte, depth int) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return string(fd.Name())
			}
		case protoreflect.MessageKind:
			if depth < maxDecodeDepth {
				if p := invalidUTF8Path(fd.Message(), v, depth+1); p != "" {
					return string(fd.Name()) + "." + p
				}
			}
		}
	}
	return ""
}
