package notify_test

import (
	"strings"
	"testing"

	"github.com/twofactor/twofactor/notify"
)

func TestNames(t *testing.T) {
	n, err := notify.NewNames("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{n.GatewaySend(notify.ChannelSMS), "acme.gateway.send.sms"},
		{n.GatewaySendAll(), "acme.gateway.send.*"},
		{n.GatewayNotice(notify.ChannelEmail), "acme.gateway.notice.email"},
		{n.GatewayNoticeAll(), "acme.gateway.notice.*"},
		{n.GatewaySubject(notify.KindNotice, "sms"), "acme.gateway.notice.sms"},
		{n.GatewaySubject(notify.KindCode, "sms"), "acme.gateway.send.sms"},
		{n.NoticeStream(), "ACME_NOTICES"},
		{n.KindOf("acme.gateway.notice.sms"), notify.KindNotice},
		{n.KindOf("acme.gateway.send.sms"), notify.KindCode},
		{n.KindOf("acme.gateway.notice.fax"), ""},
		{n.KindOf("acme.push.request"), ""},
		{n.PushRequest(), "acme.push.request"},
		{n.PushResponse("c1"), "acme.push.response.c1"},
		{n.GatewayStatus(), "acme.gateway.status"},
		{n.Audit(notify.EventFactorEnrolled), "acme.audit.factor.enrolled"},
		{n.AuditAll(), "acme.audit.>"},
		{n.AppPasswordRevoked(), "acme.apppassword.revoked"},
		{n.ThrottleFailed(), "acme.throttle.failed"},
		{n.DeadLetter("acme.gateway.send.sms"), "acme.deadletter.gateway.send.sms"},
		{n.DeadLetter("other.x"), "acme.deadletter.other.x"},
		{n.DeadLetterAll(), "acme.deadletter.>"},
		{n.GatewayStream(), "ACME_GATEWAY"},
		{n.PushStream(), "ACME_PUSH"},
		{n.GatewayStatusStream(), "ACME_GATEWAY_STATUS"},
		{n.AuditStream(), "ACME_AUDIT"},
		{n.DeadLetterStream(), "ACME_DEADLETTER"},
		{n.DeliveredBucket(), "ACME_DELIVERED"},
		{notify.Names{}.AuditStream(), "TWOFACTOR_AUDIT"},
		{notify.DefaultNames().GatewaySend("email"), "twofactor.gateway.send.email"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestNewNamesRejects(t *testing.T) {
	for _, p := range []string{"", "Acme", "a.b", "a b", "a*", "a>", strings.Repeat("a", 33), "é"} {
		if _, err := notify.NewNames(p); err == nil {
			t.Errorf("NewNames(%q) accepted", p)
		}
	}
}

func TestChannelOf(t *testing.T) {
	n := notify.DefaultNames()
	for _, tc := range []struct {
		subject, want string
		ok            bool
	}{
		{"twofactor.gateway.send.email", "email", true},
		{"twofactor.gateway.send.signal", "signal", true},
		{"twofactor.push.request", "push", true},
		{"twofactor.gateway.send.fax", "", false},
		{"twofactor.gateway.notice.telegram", "telegram", true},
		{"twofactor.gateway.notice.sms.x", "", false},
		{"other.gateway.send.sms", "", false},
		{"twofactor.audit.lockout", "", false},
	} {
		got, ok := n.ChannelOf(tc.subject)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ChannelOf(%q) = %q, %v; want %q, %v", tc.subject, got, ok, tc.want, tc.ok)
		}
	}
}
