package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/natstest"
)

// BenchmarkDeliver measures a sealed gateway send published and delivered end to end
// (seal, publish, consume, open, send to a provider that accepts at once, record, ack,
// delivered status) with the default concurrency of 4.
func BenchmarkDeliver(b *testing.B) {
	_, js, names := natstest.Start(b)
	key, _ := notify.GenerateDeliveryKey()
	done := make(chan struct{}, 4096)
	d, err := Start(context.Background(), Options{JS: js, Names: names, Key: key,
		Senders: map[string]channels.Sender{notify.ChannelEmail: channels.SenderFunc(func(context.Context, channels.Message) error {
			done <- struct{}{}
			return nil
		})}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Stop()
	pub := notify.NewPublisher(js, nil, names).WithDeliveryKey(key)
	exp := time.Now().Add(time.Hour)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g := notify.GatewaySend{ChallengeID: fmt.Sprintf("b%d", i), Channel: notify.ChannelEmail, UserID: "u",
			Destination: "alice@example.org", Code: "123456", Text: "Your code is 123456.", ExpiresAt: exp}
		if err := pub.PublishGatewaySend(context.Background(), g); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		<-done
	}
}

func BenchmarkSealOpen(b *testing.B) {
	key, _ := notify.GenerateDeliveryKey()
	g := notify.GatewaySend{ChallengeID: "0b8a4c8e-5a55-4c1e-9d3e-2f7c1a9e0001", Channel: notify.ChannelSMS, UserID: "u-42",
		Destination: "+4915550100", Code: "123456", Text: "Your sign-in code is 123456.\n\n@example.org #123456",
		ExpiresAt: time.Now().Add(5 * time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		data, err := key.SealGatewaySend(g)
		if err != nil {
			b.Fatal(err)
		}
		dec, err := notify.DecodeGatewaySend(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := key.OpenGatewaySend(dec); err != nil {
			b.Fatal(err)
		}
	}
}
