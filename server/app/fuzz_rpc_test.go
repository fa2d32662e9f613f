package app

import (
	"context"
	"encoding/base32"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// fuzzBytes hands out the fuzzer's bytes as choices; past the end it answers 0.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

// stringPalette: what an attacker or a confused client sends in a string field.
var stringPalette = []string{
	"", "alice", "bob", "admin", "root", "192.0.2.1", "2001:db8::1", "fe80::1%eth0",
	"fe80::1%" + strings.Repeat("z", 100), "fe80::1%" + strings.Repeat("z", 17), "not an ip",
	"00000000-0000-0000-0000-000000000000", "123456", "12345678", "tfap_aaaa-bbbb-cccc-dddd",
	"Mozilla/5.0\x00", "nul\x00in the middle", "\xff\xfe invalid UTF-8", "caf\xc3", "\u202eRTL",
	strings.Repeat("A", 256), strings.Repeat("é", 600), strings.Repeat("x", 1025), strings.Repeat("{", 70000),
	`{"id":"x","rawId":"eA","type":"public-key","response":{}}`, "https://example.com", "a.b.c",
}

// appendMessage appends a random wire-format message of type md, driven by f.
func appendMessage(b []byte, md protoreflect.MessageDescriptor, f *fuzzBytes, depth int) []byte {
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if f.next()%3 == 0 {
			continue
		}
		n := 1
		if fd.IsList() {
			n = int(f.next() % 4)
			if f.next() == 0xff {
				n = 1001 // over MaxListLen
			}
		}
		for j := 0; j < n; j++ {
			b = appendField(b, fd, f, depth)
		}
	}
	if f.next() == 0xfe { // an unknown field, and now and then garbage
		b = protowire.AppendTag(b, 999, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

func appendField(b []byte, fd protoreflect.FieldDescriptor, f *fuzzBytes, depth int) []byte {
	num := fd.Number()
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		s := stringPalette[int(f.next())%len(stringPalette)]
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	case protoreflect.MessageKind:
		if fd.IsMap() || depth >= 4 {
			return b
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, appendMessage(nil, fd.Message(), f, depth+1))
	case protoreflect.BoolKind:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(f.next()%2))
	case protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		v := uint64(f.next() % 8)
		if c := f.next(); c > 0xf0 {
			v = ^uint64(0) - uint64(c) // negative or huge
		}
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, v)
	}
	return b
}

// unaryMethods lists every unary method the server registered, with its input type.
func unaryMethods(t testing.TB, g *grpc.Server) (names []string, inputs map[string]protoreflect.MessageDescriptor) {
	inputs = map[string]protoreflect.MessageDescriptor{}
	for svc := range g.GetServiceInfo() {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			t.Fatalf("service %s: %v", svc, err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := 0; i < methods.Len(); i++ {
			m := methods.Get(i)
			if m.IsStreamingClient() || m.IsStreamingServer() {
				continue
			}
			name := "/" + svc + "/" + string(m.Name())
			names = append(names, name)
			inputs[name] = m.Input()
		}
	}
	sort.Strings(names)
	return names, inputs
}

// FuzzEveryRPC sends every unary RPC of every service (twofactor's, health) random
// fields through a whole authd: strings from a hostile palette (NUL, invalid UTF-8,
// over-long, IP zones), lists over the bound, odd numbers. Whatever arrives, the
// answer is never Internal, Unknown or a timeout (issue 16, finding 4). On
// PostgreSQL when TWOFACTOR_TEST_DATABASE_URL names one (its column bounds and
// NUL refusal are what made such input Internal).
// CI: go test -run XXX -fuzz FuzzEveryRPC -fuzztime 20000x ./server/app/
func FuzzEveryRPC(f *testing.F) {
	a, key := startApp(f, "-database-url", storagetest.URL(f), "-throttle-base-delay", "1ms", "-throttle-max-delay", "1ms")
	names, inputs := unaryMethods(f, a.grpc)
	if len(names) < 20 {
		f.Fatalf("only %d unary methods found", len(names))
	}
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	stringPalette = append(stringPalette, seedState(f, a.Addr(), key)...)
	for i := range names {
		f.Add(byte(i), []byte{1, 1, 1, 1, 1, 1, 1, 1})
		f.Add(byte(i), []byte{1, 18, 1, 17, 1, 9, 1, 16, 1, 19})
	}
	f.Fuzz(func(t *testing.T, which byte, choices []byte) {
		method := names[int(which)%len(names)]
		body := appendMessage(nil, inputs[method], &fuzzBytes{choices}, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		var out []byte
		err := conn.Invoke(ctx, method, &body, &out)
		switch status.Code(err) {
		case codes.Internal, codes.Unknown, codes.DeadlineExceeded:
			t.Fatalf("%s(%x): %v", method, body, err)
		}
	})
}

// seedState gives the fuzzer live things to aim at: alice with an active TOTP
// factor, backup codes and an app password, and open challenges of both kinds
// (sealed TOTP, stored backup code); their ids join the string palette.
func seedState(t testing.TB, addr, key string) []string {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	en, ch, apw := pb.NewEnrollmentServiceClient(conn), pb.NewChallengeServiceClient(conn), pb.NewAppPasswordServiceClient(conn)
	begin, err := en.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TOTP, Name: "Phone",
		Options: &pb.BeginEnrollmentRequest_Totp{Totp: &pb.TotpEnrollmentOptions{AccountName: "alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	tp := begin.GetTotp()
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(tp.GetSecret())
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.CodeAt(seed, totp.Params{Algorithm: tp.GetAlgorithm(), Digits: int(tp.GetDigits()), Period: uint(tp.GetPeriodSeconds())}, time.Now())
	if _, err := en.FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: begin.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: code}}); err != nil {
		t.Fatal(err)
	}
	codes, err := en.IssueBackupCodes(ctx, &pb.IssueBackupCodesRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	out := []string{begin.GetFactorId(), codes.GetCodes()[0]}
	for _, m := range []pb.Method{pb.Method_METHOD_TOTP, pb.Method_METHOD_BACKUP_CODE} {
		for i := 0; i < 3; i++ {
			c, err := ch.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: m})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c.GetChallengeId())
		}
	}
	issued, err := apw.IssueAppPassword(ctx, &pb.IssueAppPasswordRequest{UserId: "alice", Name: "DAV"})
	if err != nil {
		t.Fatal(err)
	}
	return append(out, issued.GetPassword(), issued.GetAppPassword().GetId())
}
