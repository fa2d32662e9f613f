package daemon

import (
	"log/slog"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
)

// EmbeddedOptions prepares the workers authd runs in-process in embedded mode: the
// delivery key <dataDir>/delivery.key (created, mode 0600, if missing) and the
// development outbox <dataDir>/outbox/ for every channel. Pass the result to Start
// (after replacing Senders with real channels if the operator configured some), and
// give its Key to the publisher: notify.Publisher.WithDeliveryKey(o.Key).
func EmbeddedOptions(js jetstream.JetStream, names notify.Names, dataDir string, log *slog.Logger) (Options, error) {
	keyFile := filepath.Join(dataDir, notify.DefaultDeliveryKeyFile)
	created, err := notify.EnsureDeliveryKeyFile(keyFile)
	if err != nil {
		return Options{}, err
	}
	if created {
		log.Info("generated a delivery key (shared with notifyd)", "path", keyFile)
	}
	key, err := notify.LoadDeliveryKey(keyFile)
	if err != nil {
		return Options{}, err
	}
	dir := filepath.Join(dataDir, "outbox")
	senders, err := OutboxSenders(dir, log)
	if err != nil {
		return Options{}, err
	}
	log.Warn("codes are delivered to the development outbox: files in clear, one per message", "dir", dir)
	return Options{JS: js, Names: names, Key: key, Senders: senders, Logger: log}, nil
}
