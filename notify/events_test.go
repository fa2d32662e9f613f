package notify_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
)

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeVectors(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		file    string
		decode  func([]byte) (any, error)
		want    any
		wantErr string
	}{
		{"audit_v1.json", decAudit, notify.AuditEvent{V: 1, ID: "0b8a4c8e-5a55-4c1e-9d3e-2f7c1a9e0001",
			Time: at("2026-03-01T12:00:00.123456789Z"), Event: notify.EventChallengeRejected, UserID: "u-42",
			Actor: "alice", Caller: "webapp", Method: "totp", Result: "rejected", ClientIP: "192.0.2.7",
			UserAgent: "Mozilla/5.0", RequestID: "req-9", Details: map[string]string{"remaining_attempts": "2"}}, ""},
		{"audit_v2.json", decAudit, nil, "version 2"},
		{"audit_bad_event.json", decAudit, nil, "audit event name"},
		{"gateway_send_v1.json", decSend, notify.GatewaySend{V: 1, Kind: notify.KindCode, ChallengeID: "ch-1", Channel: "sms", UserID: "u-42",
			Destination: "+15550100", Code: "123456", ExpiresAt: at("2026-03-01T12:10:00Z")}, ""},
		{"gateway_send_bad_channel.json", decSend, nil, `channel "fax"`},
		{"gateway_send_v3_notice.json", decSend, notify.GatewaySend{V: 3, Kind: notify.KindNotice, ChallengeID: "n-1",
			Channel: "email", UserID: "u-42", ExpiresAt: at("2026-03-02T12:00:00Z"), KeyID: "d1", Sealed: []byte{1, 2, 3}}, ""},
		{"gateway_status_notice.json", decStatus, notify.GatewayStatus{V: 1, ID: "delivered-n-1", Time: at("2026-03-01T12:00:05Z"),
			ChallengeID: "n-1", Channel: "email", Subject: "twofactor.gateway.notice.email", State: notify.StatusDelivered,
			Attempts: 1, Kind: notify.KindNotice}, ""},
		{"push_request_v1.json", decPush, notify.PushRequest{V: 1, ChallengeID: "ch-2", UserID: "u-42", DeviceID: "d-1",
			Number: 37, ExpiresAt: at("2026-03-01T12:05:00Z"), Client: "webapp", ClientIP: "192.0.2.7", UserAgent: "Mozilla/5.0"}, ""},
		{"gateway_status_v1.json", decStatus, notify.GatewayStatus{V: 1, ID: "failed-ch-1", Time: at("2026-03-01T12:00:05Z"),
			ChallengeID: "ch-1", Channel: "sms", Subject: "twofactor.gateway.send.sms", State: notify.StatusFailed,
			Attempts: 5, Error: "provider said 503"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := tc.decode(readVector(t, tc.file))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestDecodeErrorHidesPayload(t *testing.T) {
	_, err := notify.DecodeGatewaySend([]byte(`{"code":"987654",`))
	if err == nil || strings.Contains(err.Error(), "987654") {
		t.Fatalf("err = %v: want an error that does not quote the payload", err)
	}
}

func decAudit(b []byte) (any, error)  { return notify.DecodeAuditEvent(b) }
func decSend(b []byte) (any, error)   { return notify.DecodeGatewaySend(b) }
func decPush(b []byte) (any, error)   { return notify.DecodePushRequest(b) }
func decStatus(b []byte) (any, error) { return notify.DecodeGatewayStatus(b) }

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"audit_v1.json", "audit_v2.json", "audit_bad_event.json", "gateway_send_v1.json",
		"gateway_send_bad_channel.json", "gateway_send_v3_notice.json", "push_request_v1.json", "gateway_status_v1.json",
		"gateway_status_notice.json"} {
		f.Add(readVector(f, name))
	}
	f.Add([]byte(`{"v":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := notify.DecodeAuditEvent(data); err == nil {
			if e.V > notify.SchemaVersion || e.Event == "" {
				t.Fatalf("accepted invalid audit event %+v", e)
			}
		}
		if g, err := notify.DecodeGatewaySend(data); err == nil {
			if !notify.ValidChannel(g.Channel) || g.ChallengeID == "" || (g.Kind != notify.KindCode && g.Kind != notify.KindNotice) {
				t.Fatalf("accepted invalid gateway send %+v", g)
			}
		} else if strings.Contains(err.Error(), string(data)) && len(data) > 8 {
			t.Fatalf("error quotes the payload: %v", err)
		}
		_, _ = notify.DecodePushRequest(data)
		_, _ = notify.DecodeGatewayStatus(data)
	})
}

func BenchmarkDecodeAuditEvent(b *testing.B) {
	data := readVector(b, "audit_v1.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := notify.DecodeAuditEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}
